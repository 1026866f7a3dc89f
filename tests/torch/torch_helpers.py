"""Shared helpers of the adamp_torch tests: gradients that steer each projection branch."""

from __future__ import annotations

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


def reference_run(step, params, grads_per_step, **hyper):
    """Run adamp_core's ``step`` (adamp_step or sgdp_step) on float64 copies.

    Returns (params, states, branches of the last step) as NumPy objects.
    """
    init = adamp_core.adamp_init if step is adamp_core.adamp_step else adamp_core.sgdp_init
    params = [np.asarray(p, dtype=np.float64) for p in params]
    states = [init(p) for p in params]
    branches = [adamp_core.Branch.NONE] * len(params)
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            if g is None:
                continue
            result = step(params[i], g, states[i], **hyper)
            params[i], states[i], branches[i] = result.param, result.state, result.branch
    return params, states, branches


def torch_params(arrays, dtype=torch.float64):
    return [torch.nn.Parameter(torch.tensor(a, dtype=dtype)) for a in arrays]


def set_grads(params, grads, dtype=torch.float64):
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else torch.tensor(g, dtype=dtype)
