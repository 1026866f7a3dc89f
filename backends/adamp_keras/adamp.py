"""AdamP for Keras 3: Adam with decoupled weight decay and the radial projection.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 2, as implemented by the
authors' ``adamp`` 0.3.0 (specification: :func:`adamp_core.adamp_step`).
Arguments -> symbols: ``learning_rate`` η, ``beta_1`` β₁, ``beta_2`` β₂,
``epsilon`` ε, ``weight_decay`` λ, ``delta`` δ, ``wd_ratio``.

One step for a variable w with gradient g (t counts this variable's steps, like
the authors' per-parameter ``step``: a variable without gradient does not advance)::

    m ← β₁ m + (1 - β₁) g ;  v ← β₂ v + (1 - β₂) g²
    p = m / (sqrt(v) / sqrt(1 - β₂ᵗ) + ε)        (Nesterov: (β₁ m + (1 - β₁) g) / ...)
    (p, r) = projection(w, g, p)                 (r = wd_ratio if it fired, else 1;
                                                  1-D variables: (p, 1))
    w ← w · (1 - η λ r)                          (decoupled; only where decay applies)
    w ← w - η / (1 - β₁ᵗ) · p
"""

from __future__ import annotations

import keras
from keras import ops

from adamp_core import validate_adamp
from adamp_keras._base import (
    ChannelAxis,
    ProjectedOptimizer,
    as_dtype,
    learning_rate_for_validation,
    value_of,
)

__all__ = ["AdamP"]

_NAMES = {"lr": "learning_rate", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}


@keras.saving.register_keras_serializable(package="adamp_keras")
class AdamP(ProjectedOptimizer):
    """AdamP (Heo et al., ICLR 2021) as a ``keras.optimizers.Optimizer``.

    Args:
      learning_rate: float, ``LearningRateSchedule`` or zero-argument callable. η.
      beta_1, beta_2: decay rates of the first and second moments, in [0, 1).
      epsilon: ε, > 0: Adam's denominator (added after the bias correction), the
        cosine clamp and the unit-vector denominator of the projection.
      weight_decay: λ >= 0 or None. Decoupled: w ← w·(1 - η λ r), applied once,
        inside the update (not by the base class); ``exclude_from_weight_decay``
        works.
      delta: δ >= 0; a view is scale-invariant if max |cos| < δ / sqrt(row length).
      wd_ratio: r in [0, 1], the decay factor of projected variables.
      nesterov: Nesterov momentum in the direction.
      channel_axis: the output-channel axis of the channel view: an int (default
        -1, the last axis of Dense and ConvND kernels), None (never project), a
        mapping ``{regex searched in variable.path: int or
        None}`` (first match wins, others use -1), or ``callable(variable) -> int
        or None``. 1-D variables are never projected.
      **kwargs: every ``keras.optimizers.Optimizer`` keyword (``name``,
        ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``use_ema``,
        ``ema_momentum``, ``ema_overwrite_frequency``, ``loss_scale_factor``,
        ``gradient_accumulation_steps``).

    The state per variable is ``exp_avg``, ``exp_avg_sq``, its int32 ``step`` count
    and the int32 branch code read by :meth:`projection_branches`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=None,
        delta=0.1,
        wd_ratio=0.1,
        nesterov=False,
        channel_axis: ChannelAxis = -1,
        name=None,
        **kwargs,
    ):
        validate_adamp(
            lr=learning_rate_for_validation(learning_rate),
            beta1=beta_1,
            beta2=beta_2,
            eps=epsilon,
            weight_decay=0.0 if weight_decay is None else weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
            names=_NAMES,
        )
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
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.nesterov = nesterov

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._exp_avgs, self._exp_avg_sqs = self.add_optimizer_variables(
            variables, ["exp_avg", "exp_avg_sq"]
        )
        self._steps = [
            self.add_variable(
                shape=(),
                dtype="int32",
                name=f"{v.path.replace('/', '_')}_step",
                initializer="zeros",
            )
            for v in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        """One AdamP step of ``variable`` (see the module docstring)."""
        if (steps := self._jax_steps()) is not None:
            return self._jax_update_step(steps, gradient, variable, learning_rate)
        index, dtype, lr, grad, param = self._inputs(gradient, variable, learning_rate)
        exp_avg, exp_avg_sq = self._exp_avgs[index], self._exp_avg_sqs[index]
        step = value_of(self._steps[index]) + 1  # this variable's own count (authors' code)
        self.assign(self._steps[index], step)
        t = ops.cast(step, dtype)
        bias1 = 1.0 - self.beta_1**t
        bias2 = 1.0 - self.beta_2**t

        grad_sq = grad * grad
        m = self.beta_1 * as_dtype(value_of(exp_avg), dtype) + (1.0 - self.beta_1) * grad
        v = self.beta_2 * as_dtype(value_of(exp_avg_sq), dtype) + (1.0 - self.beta_2) * grad_sq
        self.assign(exp_avg, as_dtype(m, exp_avg.dtype))
        self.assign(exp_avg_sq, as_dtype(v, exp_avg_sq.dtype))

        # u = m / (sqrt(v)/sqrt(bias2) + ε) = sqrt(bias2)·û with û = m / (sqrt(v) + ε·sqrt(bias2)):
        # one full-size op less; û is projected (the coefficient scales with it)
        sqrt_bias2 = ops.sqrt(bias2)
        numerator = self.beta_1 * m + (1.0 - self.beta_1) * grad if self.nesterov else m
        scaled = numerator / (ops.sqrt(v) + self.epsilon * sqrt_bias2)
        coef, ratio, _ = self._project(index, param, grad, scaled, grad_sq)

        # w ← w·(1 - η λ r) - η/bias1·sqrt(bias2)·(û - c·w), in one pass over w
        step = (lr / bias1) * sqrt_bias2
        scale = self._decay_factor(index, lr, ratio) + step * coef
        new_param = param * scale - step * scaled
        self.assign(variable, as_dtype(new_param, keras.backend.standardize_dtype(variable.dtype)))

    _own_update_step = update_step  # a subclass overriding it opts out of the torch fast path

    def _torch_step(self, fast, learning_rate):
        """All float32/float64 variables at once in ``torch._foreach`` ops (torch backend)."""
        from adamp_keras._torch import adamp_step

        adamp_step(self, fast, learning_rate)

    def _jax_update_step(self, steps, gradient, variable, learning_rate):
        """The same step through ``adamp_jax``'s leaf function (Keras JAX backend)."""
        index = self._get_variable_index(variable)
        count = value_of(self._steps[index]) + 1
        self.assign(self._steps[index], count)
        exp_avg, exp_avg_sq = self._exp_avgs[index], self._exp_avg_sqs[index]
        step, m, v, branch = steps.adamp_leaf_step(
            value_of(variable), gradient, value_of(exp_avg), value_of(exp_avg_sq), count,
            b1=self.beta_1, b2=self.beta_2, nesterov=self.nesterov, **self._leaf_options(index),
        )  # fmt: skip
        self.assign(exp_avg, m)
        self.assign(exp_avg_sq, v)
        self._apply_leaf_step(index, variable, step, branch, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "nesterov": self.nesterov})
        return config
