"""Shared helpers of the adamp_torch tests: gradients that steer each projection branch."""

from __future__ import annotations

import itertools

import numpy as np
import torch

import adamp_core

KINDS = ("random", "channel", "layer", "zero")


def _orthogonal_rows(raw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    norms = np.sum(weight * weight, axis=1, keepdims=True)
    coef = np.sum(raw * weight, axis=1, keepdims=True) / np.where(norms > 0, norms, 1.0)
    return raw - coef * weight


def gradient(kind: str, raw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``raw`` made orthogonal to each output channel ("channel"), to the whole weight
    ("layer"), zeroed ("zero") or kept ("random"); 1-D weights only get random or zero."""
    if kind == "zero":
        return np.zeros_like(raw)
    if kind == "random" or weight.ndim < 2:
        return raw
    rows = (weight.shape[0], -1) if kind == "channel" else (1, -1)
    return _orthogonal_rows(raw.reshape(rows), weight.reshape(rows)).reshape(raw.shape)


def reference_run(name, params, grads_per_step, history=None, **hyper):
    """Run adamp_core's optimizer ``name`` ("adamp" or "sgdp") on float64 copies.

    Returns (params, states, branches of the last step a parameter had a
    gradient) as NumPy objects. A list passed as ``history`` receives the
    parameters before the first step and after each step.
    """
    params = [np.asarray(p, dtype=np.float64) for p in params]
    states = adamp_core.init_states(name, params)
    branches = [adamp_core.Branch.NONE] * len(params)
    if history is not None:
        history.append(list(params))
    for grads in grads_per_step:
        params, states, last = adamp_core.step_params(name, params, grads, states, hyper)
        branches = [
            old if g is None else new for old, new, g in zip(branches, last, grads, strict=True)
        ]
        if history is not None:
            history.append(list(params))
    return params, states, branches


FLOAT32_UNIT = 2.0**-24  # unit roundoff of float32 (round to nearest)
ROUNDINGS_PER_STEP = 16


def float32_bounds(history) -> list[float]:
    """Per parameter, a bound on |float32 run - exact run| after the steps in ``history``.

    A float32 step w ← (1 - lr·λ·r + s·c)·w - s·u rounds each element about 16 times
    at unit roundoff u = 2^-24, counted on the two magnitudes involved:
    - |w|: the per-row scale (1 - lr·λ·r + s·c) takes 3 roundings, the multiply
      and the fused add 1 each, and the cast of the float64 step scalars 1: ~6;
    - |Δw| = |s·u|: the moments (lerp 3, mul + addcmul 4, whose relative error
      halves under sqrt), the sqrt, the eps shift and the division each round the
      update, and the row sums of the projection coefficient add a few: ~10.
    Errors of earlier steps carry over unamplified (|1 - lr·λ·r| <= 1; the
    projection depends on w only through its direction, a second-order effect),
    so the bound adds up over the steps:
    16·u·Σ_t (max|w_{t-1}| + max|Δw_t|), with the magnitudes taken from the exact
    (float64 reference) trajectory. Measured errors are below 1·u·Σ_t(...).
    """
    bounds = []
    for i in range(len(history[0])):
        total = sum(
            np.abs(before[i]).max() + np.abs(after[i] - before[i]).max()
            for before, after in itertools.pairwise(history)
        )
        bounds.append(ROUNDINGS_PER_STEP * FLOAT32_UNIT * total)
    return bounds


def torch_params(arrays, dtype=torch.float64):
    return [torch.nn.Parameter(torch.tensor(a, dtype=dtype)) for a in arrays]


def set_grads(params, grads, dtype=torch.float64):
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else torch.tensor(g, dtype=dtype)
