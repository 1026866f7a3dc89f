"""Shared helpers of the JAX backend tests: reference trajectories from adamp_core."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from core_gradients import make_gradient

import adamp_core

# Leaf shapes in Flax layout (output channels last) plus 1-D leaves.
SHAPES = {"conv": (3, 3, 2, 4), "dense": (6, 5), "bias": (5,), "embed": (7, 1, 3)}


def make_params(seed: int, shapes=SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in shapes.items()}


def reference_run(
    kind: str,
    params: dict[str, np.ndarray],
    grad_kinds: dict[str, str],
    steps: int,
    *,
    seed: int,
    channel_axis: int = -1,
    dtype=np.float64,
    **hyper,
):
    """Run the NumPy reference for ``steps`` steps.

    The gradient of each step is drawn at random and steered by ``grad_kinds``
    (see tests/core/core_gradients.py) relative to the reference's current
    parameter, then rounded to ``dtype``. Returns ``(grads, params, branches)``:
    per-step gradient dicts, parameter dicts after each step, and branch dicts.
    """
    rng = np.random.default_rng(seed)
    step_fn = adamp_core.adamp_step if kind == "adamp" else adamp_core.sgdp_step
    init_fn = adamp_core.adamp_init if kind == "adamp" else adamp_core.sgdp_init
    current = {k: np.asarray(v, dtype).astype(np.float64) for k, v in params.items()}
    states = {k: init_fn(v) for k, v in current.items()}
    grads_seq, params_seq, branches_seq = [], [], []
    for _ in range(steps):
        grads, branches, new = {}, {}, {}
        for name, p in current.items():
            raw = rng.normal(size=p.shape)
            axis = channel_axis % p.ndim if p.ndim > 1 else 0
            g = make_gradient(grad_kinds.get(name, "random"), raw, p, axis)
            g = np.asarray(g, dtype).astype(np.float64)
            result = step_fn(p, g, states[name], channel_axis=axis, **hyper)
            grads[name], branches[name], new[name] = g, result.branch, result.param
            states[name] = result.state
        current = {k: np.asarray(v) for k, v in new.items()}
        grads_seq.append(grads)
        params_seq.append(current)
        branches_seq.append(branches)
    return grads_seq, params_seq, branches_seq
