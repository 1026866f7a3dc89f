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
    names = list(params)
    current = [np.asarray(params[k], dtype).astype(np.float64) for k in names]
    axes = [channel_axis % p.ndim if p.ndim > 1 else 0 for p in current]
    hyperparams = [{**hyper, "channel_axis": axis} for axis in axes]
    states = adamp_core.init_states(kind, current)
    grads_seq, params_seq, branches_seq = [], [], []
    for _ in range(steps):
        grads = []
        for name, p, axis in zip(names, current, axes, strict=True):
            g = make_gradient(grad_kinds.get(name, "random"), rng.normal(size=p.shape), p, axis)
            grads.append(np.asarray(g, dtype).astype(np.float64))
        current, states, branches = adamp_core.step_params(
            kind, current, grads, states, hyperparams
        )
        grads_seq.append(dict(zip(names, grads, strict=True)))
        params_seq.append(dict(zip(names, current, strict=True)))
        branches_seq.append(dict(zip(names, branches, strict=True)))
    return grads_seq, params_seq, branches_seq
