"""Stepping a list of parameters, as an optimizer does for one parameter group.

Each parameter carries its own state and step count (the authors' convention):
a parameter whose gradient is None is skipped and its count does not advance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from adamp_core.adamp import StepResult
from adamp_core.projection import Branch

__all__ = ["MultiStep", "step_params"]


class MultiStep(NamedTuple):
    params: list[np.ndarray]
    states: list[NamedTuple]
    branches: list[Branch]


def step_params(
    step: Callable[..., StepResult],
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray | None],
    states: Sequence[NamedTuple],
    **hyperparams: object,
) -> MultiStep:
    """Apply ``step`` (``adamp_step`` or ``sgdp_step``) to each parameter independently."""
    if not len(params) == len(grads) == len(states):
        raise ValueError(
            f"params, grads and states must have the same length, "
            f"got {len(params)}, {len(grads)} and {len(states)}"
        )
    results = [step(p, g, s, **hyperparams) for p, g, s in zip(params, grads, states, strict=True)]
    return MultiStep(
        [r.param for r in results], [r.state for r in results], [r.branch for r in results]
    )
