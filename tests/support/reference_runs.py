"""The NumPy reference stepped alongside an implementation under test (test helper)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

import adamp_core


class Reference:
    """adamp_core's optimizer ``name`` stepping float64 copies of ``params``.

    ``hyper`` holds the step's keyword arguments for every parameter;
    ``branches`` are those of the last step each parameter had a gradient in,
    and ``history`` the parameters before the first step and after each step.
    """

    def __init__(self, params: Sequence, name: str, **hyper) -> None:
        self.name, self.hyper = name, hyper
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.states = adamp_core.init_states(name, self.params)
        self.branches = [adamp_core.Branch.NONE] * len(self.params)
        self.history = [list(self.params)]

    def step(self, grads, *, per_param: Sequence[Mapping] | None = None, **override) -> None:
        """One step; ``override`` changes hyperparameters of every parameter for this
        step, ``per_param`` (one mapping per parameter) those of each."""
        hyper = {**self.hyper, **override}
        hyperparams = hyper if per_param is None else [{**hyper, **extra} for extra in per_param]
        self.params, self.states, last = adamp_core.step_params(
            self.name, self.params, grads, self.states, hyperparams
        )
        self.branches = [
            old if g is None else new
            for old, new, g in zip(self.branches, last, grads, strict=True)
        ]
        self.history.append(list(self.params))


def reference_run(name: str, params, grads_per_step, **hyper) -> Reference:
    """The reference after one step per entry of ``grads_per_step`` (None: no gradient)."""
    reference = Reference(params, name, **hyper)
    for grads in grads_per_step:
        reference.step(grads)
    return reference
