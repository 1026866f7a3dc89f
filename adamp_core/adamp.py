"""AdamP: Adam with decoupled weight decay and the radial projection.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 2, as implemented by the
authors' ``adamp`` 0.3.0. Symbols -> arguments: η -> ``lr``, β₁, β₂ ->
``beta1``, ``beta2``, ε -> ``eps``, λ -> ``weight_decay``, δ -> ``delta``,
and the weight-decay ratio of projected weights -> ``wd_ratio``.

One step for a parameter w with gradient g (t counts this parameter's steps)::

    t ← t + 1
    m ← β₁ m + (1 - β₁) g                       (exp_avg)
    v ← β₂ v + (1 - β₂) g²                      (exp_avg_sq)
    denom = sqrt(v) / sqrt(1 - β₂ᵗ) + ε         (ε AFTER the bias correction)
    p = m / denom                               (Nesterov: (β₁ m + (1 - β₁) g) / denom)
    (p, r) = projection(w, g, p) if w.ndim > 1 else (p, 1)
    w ← w · (1 - η λ r)                         (decoupled; η, not η / (1 - β₁ᵗ))
    w ← w - (η / (1 - β₁ᵗ)) p

The projection test and its unit vectors use w before the decay. Computation
is in float64; powers of β and all sums are correctly rounded.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from adamp_core._exact import power
from adamp_core.projection import Branch, projection
from adamp_core.validation import check_param_dtype, validate_adamp

__all__ = ["AdamPState", "StepResult", "adam_direction", "adamp_init", "adamp_step"]


class AdamPState(NamedTuple):
    """State of one parameter, named as ``torch.optim.Adam`` names it."""

    step: int
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray


class StepResult(NamedTuple):
    """One parameter's step, each term kept so tests can look at it."""

    param: np.ndarray  # the new parameter
    state: NamedTuple  # the new state
    direction: np.ndarray  # the update after projection, before the step size
    step_size: float  # the factor of ``direction``: η/(1-β₁ᵗ) for AdamP, η for SGDP
    decay_factor: float  # the factor the parameter was multiplied by first
    wd_ratio: float  # r: wd_ratio where the projection fired, else 1
    branch: Branch


def as_float64(x, who: str, what: str = "a parameter") -> np.ndarray:
    """``x`` copied to float64, after refusing a dtype the algorithm does not define.

    Without the check NumPy would drop a complex value's imaginary part (with
    only a ComplexWarning) and let an integer parameter take fractional steps.
    """
    check_param_dtype(who, np.asarray(x).dtype, what)
    return np.array(x, dtype=np.float64, copy=True)


def check_same_shape(param: np.ndarray, grad: np.ndarray) -> None:
    if param.shape != grad.shape:
        raise ValueError(f"grad shape {grad.shape} does not match param shape {param.shape}")


def adamp_init(param) -> AdamPState:
    """Zero moments and a step count of 0 for ``param``."""
    check_param_dtype("adamp_init", np.asarray(param).dtype)
    zeros = np.zeros(np.shape(param), dtype=np.float64)
    return AdamPState(step=0, exp_avg=zeros, exp_avg_sq=zeros.copy())


def adam_direction(
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    grad: np.ndarray,
    step: int,
    *,
    beta1: float,
    beta2: float,
    eps: float,
    nesterov: bool,
) -> np.ndarray:
    """Adam's direction before the step size: m / (sqrt(v) / sqrt(1 - β₂ᵗ) + ε)."""
    denom = np.sqrt(exp_avg_sq) / math.sqrt(1.0 - power(beta2, step)) + eps
    numerator = beta1 * exp_avg + (1.0 - beta1) * grad if nesterov else exp_avg
    return numerator / denom


def adamp_step(
    param,
    grad,
    state: AdamPState,
    *,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    nesterov: bool = False,
    channel_axis: int = 0,
) -> StepResult:
    """One AdamP step for one parameter; see the module docstring for the math.

    A ``grad`` of None skips the parameter: parameter and state come back
    unchanged (the step count does not advance), as in every torch optimizer.
    """
    validate_adamp(
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        delta=delta,
        wd_ratio=wd_ratio,
        nesterov=nesterov,
    )
    # validated real numbers; as Python floats, since _exact.power needs exact ones
    lr, beta1, beta2, eps, weight_decay, delta, wd_ratio = map(
        float, (lr, beta1, beta2, eps, weight_decay, delta, wd_ratio)
    )
    param = as_float64(param, "adamp_step")
    if grad is None:
        return StepResult(param, state, np.zeros_like(param), 0.0, 1.0, 1.0, Branch.NONE)
    grad = as_float64(grad, "adamp_step", "a gradient")
    check_same_shape(param, grad)
    step = state.step + 1
    exp_avg = beta1 * state.exp_avg + (1.0 - beta1) * grad
    exp_avg_sq = beta2 * state.exp_avg_sq + (1.0 - beta2) * (grad * grad)
    direction = adam_direction(
        exp_avg, exp_avg_sq, grad, step, beta1=beta1, beta2=beta2, eps=eps, nesterov=nesterov
    )
    direction, ratio, branch = projection(
        param, grad, direction, delta=delta, wd_ratio=wd_ratio, eps=eps, channel_axis=channel_axis
    )
    decay_factor = 1.0 - lr * weight_decay * ratio
    step_size = lr / (1.0 - power(beta1, step))
    new_param = param * decay_factor - step_size * direction
    new_state = AdamPState(step=step, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    return StepResult(new_param, new_state, direction, step_size, decay_factor, ratio, branch)
