"""SGDP: SGD with momentum, decoupled weight decay and the radial projection.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 1, as implemented by the
authors' ``adamp`` 0.3.0. Symbols -> arguments: η -> ``lr``, μ ->
``momentum``, τ -> ``dampening``, λ -> ``weight_decay``, δ -> ``delta``,
ε -> ``eps``.

One step for a parameter w with gradient g::

    b ← μ b + (1 - τ) g             (momentum_buffer; τ applies on step 1 too,
                                     unlike torch.optim.SGD, which sets b = g)
    p = g + μ b if nesterov else b
    (p, r) = projection(w, g, p) if w.ndim > 1 else (p, 1)
    w ← w · (1 - η λ r / (1 - μ))   (decay divided by 1 - μ)
    w ← w - η p

Without Nesterov, the authors' code projects ``b`` itself (``p`` is the
stored buffer, modified in place), so the *projected* buffer carries into the
next step: ``project_buffer=True``, the default. timm and pytorch_optimizer
project a copy and keep ``b`` unprojected: ``project_buffer=False``. With
Nesterov the two are the same.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from adamp_core.adamp import StepResult, as_float64, check_same_shape
from adamp_core.projection import Branch, projection
from adamp_core.validation import check_bool, check_param_dtype, validate_sgdp

__all__ = ["SGDPState", "sgdp_init", "sgdp_step"]


class SGDPState(NamedTuple):
    """State of one parameter, named as ``torch.optim.SGD`` names it."""

    momentum_buffer: np.ndarray


def sgdp_init(param) -> SGDPState:
    """A zero momentum buffer for ``param``."""
    check_param_dtype("sgdp_init", np.asarray(param).dtype)
    return SGDPState(momentum_buffer=np.zeros(np.shape(param), dtype=np.float64))


def sgdp_step(
    param,
    grad,
    state: SGDPState,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    eps: float = 1e-8,
    delta: float = 0.1,
    wd_ratio: float = 0.1,
    channel_axis: int = 0,
    project_buffer: bool = True,
) -> StepResult:
    """One SGDP step for one parameter; see the module docstring for the math.

    A ``grad`` of None skips the parameter: parameter and state come back unchanged.
    """
    validate_sgdp(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        eps=eps,
        weight_decay=weight_decay,
        delta=delta,
        wd_ratio=wd_ratio,
        nesterov=nesterov,
    )
    check_bool("project_buffer", project_buffer)
    lr, momentum, dampening, eps, weight_decay, delta, wd_ratio = map(
        float, (lr, momentum, dampening, eps, weight_decay, delta, wd_ratio)
    )  # validated real numbers, as Python floats
    param = as_float64(param, "sgdp_step")
    if grad is None:
        return StepResult(param, state, np.zeros_like(param), 0.0, 1.0, 1.0, Branch.NONE)
    grad = as_float64(grad, "sgdp_step", "a gradient")
    check_same_shape(param, grad)
    buffer = momentum * state.momentum_buffer + (1.0 - dampening) * grad
    direction = grad + momentum * buffer if nesterov else buffer
    direction, ratio, branch = projection(
        param, grad, direction, delta=delta, wd_ratio=wd_ratio, eps=eps, channel_axis=channel_axis
    )
    if project_buffer and not nesterov:
        buffer = direction
    decay_factor = 1.0 - lr * weight_decay * ratio / (1.0 - momentum)
    new_param = param * decay_factor - lr * direction
    return StepResult(new_param, SGDPState(buffer), direction, lr, decay_factor, ratio, branch)
