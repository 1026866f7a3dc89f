"""The two optimizers by name, and stepping a list of parameters as an optimizer does.

:data:`OPTIMIZERS` maps ``"adamp"`` and ``"sgdp"`` to their state initialiser,
their one-parameter step and the names of the step's hyperparameters, so code
that handles either optimizer looks it up once instead of choosing functions.

:func:`step_params` steps a list: each parameter carries its own state and step
count (the authors' convention), and a parameter whose gradient is None is
skipped (parameter and state unchanged, branch NONE, the count does not advance).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from adamp_core.adamp import StepResult, adamp_init, adamp_step
from adamp_core.projection import Branch
from adamp_core.sgdp import sgdp_init, sgdp_step

__all__ = ["OPTIMIZERS", "MultiStep", "Optimizer", "get_optimizer", "init_states", "step_params"]


class Optimizer(NamedTuple):
    """One optimizer of the reference."""

    name: str
    init: Callable[[np.ndarray], NamedTuple]  # the zero state of one parameter
    step: Callable[..., StepResult]  # step(param, grad, state, **hyperparameters)
    hyperparameters: tuple[str, ...]  # the step's keyword arguments, channel_axis included


def _optimizer(name: str, init, step) -> Optimizer:
    keywords = inspect.signature(step).parameters.values()
    names = tuple(p.name for p in keywords if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return Optimizer(name, init, step, names)


OPTIMIZERS: dict[str, Optimizer] = {
    "adamp": _optimizer("adamp", adamp_init, adamp_step),
    "sgdp": _optimizer("sgdp", sgdp_init, sgdp_step),
}


class MultiStep(NamedTuple):
    params: list[np.ndarray]
    states: list[NamedTuple]
    branches: list[Branch]


def get_optimizer(name: str) -> Optimizer:
    """The entry of :data:`OPTIMIZERS` for ``name``; a ValueError names the known ones."""
    if name not in OPTIMIZERS:
        known = ", ".join(repr(k) for k in OPTIMIZERS)
        raise ValueError(f"optimizer must be one of {known}, got {name!r}")
    return OPTIMIZERS[name]


def init_states(name: str, params: Sequence[np.ndarray]) -> list[NamedTuple]:
    """The zero state of each parameter for the optimizer ``name``."""
    init = get_optimizer(name).init
    return [init(p) for p in params]


def step_params(
    name: str,
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray | None],
    states: Sequence[NamedTuple],
    hyperparams: Mapping[str, object] | Sequence[Mapping[str, object]],
) -> MultiStep:
    """One step of optimizer ``name`` for each parameter, independently.

    ``hyperparams`` holds the step's keyword arguments (``channel_axis``
    included): one mapping for every parameter, or a sequence of one mapping
    per parameter (parameter groups, a channel axis per tensor).
    """
    step = get_optimizer(name).step
    per_param = [hyperparams] * len(params) if isinstance(hyperparams, Mapping) else hyperparams
    if not len(params) == len(grads) == len(states) == len(per_param):
        raise ValueError(
            f"params, grads, states and hyperparams must have the same length, got "
            f"{len(params)}, {len(grads)}, {len(states)} and {len(per_param)}"
        )
    results = [
        step(p, g, s, **hp) for p, g, s, hp in zip(params, grads, states, per_param, strict=True)
    ]
    return MultiStep(
        [r.param for r in results], [r.state for r in results], [r.branch for r in results]
    )
