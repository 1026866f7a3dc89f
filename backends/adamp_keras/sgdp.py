"""SGDP for Keras 3: SGD with momentum, decoupled weight decay and the radial projection.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 1, as implemented by the
authors' ``adamp`` 0.3.0 (specification: :func:`adamp_core.sgdp_step`).
Arguments -> symbols: ``learning_rate`` η, ``momentum`` μ, ``dampening`` τ,
``weight_decay`` λ, ``delta`` δ, ``epsilon`` ε, ``wd_ratio``.

One step for a variable w with gradient g::

    b ← μ b + (1 - τ) g                  (momentum_buffer; τ applies on step 1 too)
    p = g + μ b if nesterov else b
    (p, r) = projection(w, g, p)         (1-D variables: (p, 1))
    b ← p   if project_buffer and not nesterov (the authors' in-place projection)
    w ← w · (1 - η λ r / (1 - μ))        (decoupled; only where decay applies)
    w ← w - η p

With ``momentum=0`` the buffer is never read again, so none is stored.
"""

from __future__ import annotations

import keras
from keras import ops

from adamp_core import check_bool, validate_sgdp
from adamp_keras._base import (
    ChannelAxis,
    ProjectedOptimizer,
    as_dtype,
    learning_rate_for_validation,
    value_of,
)

__all__ = ["SGDP"]

_NAMES = {"lr": "learning_rate", "eps": "epsilon"}


@keras.saving.register_keras_serializable(package="adamp_keras")
class SGDP(ProjectedOptimizer):
    """SGDP (Heo et al., ICLR 2021) as a ``keras.optimizers.Optimizer``.

    Args:
      learning_rate: float, ``LearningRateSchedule`` or zero-argument callable. η.
      momentum: μ in [0, 1).
      dampening: τ in [0, 1]; unlike ``torch.optim.SGD`` it applies on step 1 too.
      nesterov: Nesterov momentum.
      weight_decay: λ >= 0 or None; decoupled, w ← w·(1 - η λ r / (1 - μ)),
        applied once inside the update; ``exclude_from_weight_decay`` works.
      epsilon: ε > 0 of the cosine clamp and the unit-vector denominator.
      delta: δ >= 0; a view is scale-invariant if max |cos| < δ / sqrt(row length).
      wd_ratio: r in [0, 1], the decay factor of projected variables.
      project_buffer: True (the authors' code): without Nesterov the stored
        buffer is replaced by its projection. False (timm): it is kept unprojected.
      channel_axis: as in :class:`adamp_keras.AdamP` (default -1, the last axis).
      **kwargs: every ``keras.optimizers.Optimizer`` keyword.

    The state per variable is ``momentum_buffer`` (when momentum > 0) and the
    int32 branch code read by :meth:`projection_branches`.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
        weight_decay=None,
        epsilon=1e-8,
        delta=0.1,
        wd_ratio=0.1,
        project_buffer=True,
        channel_axis: ChannelAxis = -1,
        name=None,
        **kwargs,
    ):
        validate_sgdp(
            lr=learning_rate_for_validation(learning_rate),
            momentum=momentum,
            dampening=dampening,
            eps=epsilon,
            weight_decay=0.0 if weight_decay is None else weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
            names=_NAMES,
        )
        check_bool("project_buffer", project_buffer)
        super().__init__(
            learning_rate=learning_rate,
            channel_axis=channel_axis,
            delta=delta,
            wd_ratio=wd_ratio,
            epsilon=epsilon,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = nesterov
        self.project_buffer = project_buffer

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._buffers = []
        if self.momentum > 0:
            self._buffers = self.add_optimizer_variables(variables, "momentum_buffer")

    def update_step(self, gradient, variable, learning_rate):
        """One SGDP step of ``variable`` (see the module docstring)."""
        if (steps := self._jax_steps()) is not None:
            return self._jax_update_step(steps, gradient, variable, learning_rate)
        index, dtype, lr, grad, param = self._inputs(gradient, variable, learning_rate)
        # (1 - τ)·g: no multiply without dampening (eager backends would run it)
        buffer = grad if self.dampening == 0 else (1.0 - self.dampening) * grad
        if self._buffers:
            stored = self._buffers[index]
            buffer = self.momentum * as_dtype(value_of(stored), dtype) + buffer
        direction = grad + self.momentum * buffer if self.nesterov else buffer
        coef, ratio, _ = self._project(index, param, grad, direction)
        decay = self._decay_factor(index, lr, ratio, 1.0 / (1.0 - self.momentum))
        if self._buffers and self.project_buffer and not self.nesterov:
            # the authors' code keeps the projected direction as the buffer
            direction = direction - param * coef
            new_param = param * decay - lr * direction
            buffer = direction
        else:
            # w ← w·(1 - η λ r/(1-μ)) - η (d - c·w), in one pass over w
            new_param = param * (decay + lr * coef) - lr * direction
        if self._buffers:
            self.assign(stored, as_dtype(buffer, keras.backend.standardize_dtype(stored.dtype)))
        self.assign(variable, as_dtype(new_param, keras.backend.standardize_dtype(variable.dtype)))

    _own_update_step = update_step  # a subclass overriding it opts out of the torch fast path

    def _torch_step(self, fast, learning_rate):
        """All float32/float64 variables at once in ``torch._foreach`` ops (torch backend)."""
        from adamp_keras._torch import sgdp_step

        sgdp_step(self, fast, learning_rate)

    def _jax_update_step(self, steps, gradient, variable, learning_rate):
        """The same step through ``adamp_jax``'s leaf function (Keras JAX backend).
        Without momentum there is no stored buffer: a zero one (never read from
        memory: XLA folds the constant) stands in."""
        index = self._get_variable_index(variable)
        param = value_of(variable)
        buffer = value_of(self._buffers[index]) if self._buffers else ops.zeros_like(param)
        step, new_buffer, branch = steps.sgdp_leaf_step(
            param, gradient, buffer, momentum=self.momentum, dampening=self.dampening,
            nesterov=self.nesterov, keep_projected=self.project_buffer and not self.nesterov,
            **self._leaf_options(index),
        )  # fmt: skip
        if self._buffers:
            self.assign(self._buffers[index], new_buffer)
        self._apply_leaf_step(index, variable, step, branch, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "dampening": self.dampening,
                "nesterov": self.nesterov,
                "project_buffer": self.project_buffer,
            }
        )
        return config
