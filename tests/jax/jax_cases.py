"""Shared helpers of the JAX backend tests: reference trajectories from adamp_core."""

from __future__ import annotations

import numpy as np
from gradients import make_gradient
from reference_runs import Reference

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
    (see tests/support/gradients.py) relative to the reference's current
    parameter, then rounded to ``dtype``. Returns ``(grads, params, branches)``:
    per-step gradient dicts, parameter dicts after each step, and branch dicts.
    """
    rng = np.random.default_rng(seed)
    names = list(params)
    reference = Reference([np.asarray(params[k], dtype) for k in names], kind, **hyper)
    axes = [channel_axis % p.ndim if p.ndim > 1 else 0 for p in reference.params]
    grads_seq, params_seq, branches_seq = [], [], []
    for _ in range(steps):
        grads = []
        for name, p, axis in zip(names, reference.params, axes, strict=True):
            g = make_gradient(grad_kinds.get(name, "random"), rng.normal(size=p.shape), p, axis)
            grads.append(np.asarray(g, dtype).astype(np.float64))
        reference.step(grads, per_param=[{"channel_axis": axis} for axis in axes])
        grads_seq.append(dict(zip(names, grads, strict=True)))
        params_seq.append(dict(zip(names, reference.params, strict=True)))
        branches_seq.append(dict(zip(names, reference.branches, strict=True)))
    return grads_seq, params_seq, branches_seq
