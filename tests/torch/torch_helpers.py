"""Shared helpers of the adamp_torch tests: float32 error bounds, tensors from arrays."""

from __future__ import annotations

import itertools

import numpy as np
import torch

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
