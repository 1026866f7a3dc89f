"""What AdamP and SGDP share in Keras: channel axes, decay, diagnostics, config.

Keras's base optimizer multiplies every variable by ``1 - lr·weight_decay``
*before* ``update_step``. AdamP and SGDP scale their decay by ``wd_ratio`` where
the projection fired, which is only known inside the update, so
:meth:`ProjectedOptimizer._apply_weight_decay` is a no-op and ``update_step``
applies the decay itself, once, to variables that ``exclude_from_weight_decay``
did not exclude.

Projection diagnostics: one int32 scalar optimizer variable per trainable
variable holds the :class:`adamp_core.Branch` code of its last step (0 none,
1 channel, 2 layer), written on the device inside the step;
:meth:`ProjectedOptimizer.projection_branches` reads them all at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import keras
from keras import ops

from adamp_core import (
    UNCHECKED,
    Branch,
    check_in_range,
    check_param_dtype,
    normalise_channel_axis,
)
from adamp_keras._jax import jax_steps
from adamp_keras._projection import Projected, project

__all__ = ["ChannelAxis", "ProjectedOptimizer"]

ChannelAxis = int | None | Mapping[str, int | None] | Callable[[keras.Variable], int | None]
_CALLABLE_KEY = "__callable__"
_LOW_PRECISION = ("float16", "bfloat16")


def compute_dtype(variable) -> str:
    """float32 for half-precision variables (their update is computed in float32)."""
    dtype = keras.backend.standardize_dtype(variable.dtype)
    return "float32" if dtype in _LOW_PRECISION else dtype


def value_of(variable):
    """The backend tensor behind a Keras variable (a backend variable passes through), so
    that arithmetic uses the backend's operators, not Keras's operator overloads."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def as_dtype(x, dtype: str):
    """``x`` in ``dtype``, without a cast op when it already is."""
    return x if keras.backend.standardize_dtype(x.dtype) == dtype else ops.cast(x, dtype)


def dense_gradient(gradient, shape):
    """A dense gradient: TensorFlow hands Embedding gradients over as IndexedSlices
    (indices, values); they are scattered (duplicates summed) into a dense tensor."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        return ops.scatter(ops.expand_dims(gradient.indices, -1), gradient.values, shape)
    return gradient


def _resolve_axis(spec, variable) -> int | None:
    """The channel axis of ``variable`` in ``[0, ndim)``, or None to never project it."""
    ndim = len(variable.shape)
    if callable(spec):
        axis = spec(variable)
    elif isinstance(spec, Mapping):
        axis = -1
        for pattern, value in spec.items():
            if re.search(pattern, variable.path):
                axis = value
                break
    else:
        axis = spec
    if ndim < 2 or axis is None:
        return None
    return normalise_channel_axis(axis, ndim, repr(variable.path))


def _check_channel_axis(spec) -> None:
    ok = spec is None or callable(spec) or isinstance(spec, Mapping)
    ok = ok or (isinstance(spec, int) and not isinstance(spec, bool))
    if not ok:
        raise ValueError(
            "channel_axis must be an int, None, a mapping {path regex: int or None} or a "
            f"callable(variable) -> int or None, got {spec!r}"
        )
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if not isinstance(key, str) or not (
                value is None or (isinstance(value, int) and not isinstance(value, bool))
            ):
                raise ValueError(
                    "channel_axis must be a mapping from str (a regex searched in "
                    f"variable.path) to int or None, got {key!r}: {value!r}"
                )


def is_schedule(learning_rate) -> bool:
    """A LearningRateSchedule or a callable: Keras evaluates it each step."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return True
    return callable(learning_rate) and not hasattr(learning_rate, "shape")


def learning_rate_for_validation(learning_rate):
    """The value to range-check: UNCHECKED for a schedule; a Keras variable's value; else
    the value itself, so that a string, a sequence or None is refused with the
    argument's name."""
    if is_schedule(learning_rate):
        return UNCHECKED
    if isinstance(learning_rate, keras.Variable):
        return ops.convert_to_numpy(learning_rate.value)
    return learning_rate


class ProjectedOptimizer(keras.optimizers.Optimizer):
    """Base of AdamP and SGDP: the channel axis, decoupled decay and branch codes."""

    def __init__(self, *, learning_rate, channel_axis: ChannelAxis, delta, wd_ratio, epsilon,
                 weight_decay, **kwargs):  # fmt: skip
        if not is_schedule(learning_rate):  # Keras takes a Python float only
            learning_rate = float(learning_rate_for_validation(learning_rate))
        if weight_decay is not None:
            weight_decay = check_in_range("weight_decay", weight_decay, ">=0")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        if isinstance(channel_axis, Mapping) and _CALLABLE_KEY in channel_axis:
            channel_axis = keras.saving.deserialize_keras_object(channel_axis[_CALLABLE_KEY])
        _check_channel_axis(channel_axis)
        self.channel_axis = channel_axis
        self.delta = float(delta)
        self.wd_ratio = float(wd_ratio)
        self.epsilon = float(epsilon)

    # -- building -------------------------------------------------------------

    def build(self, variables):
        if self.built:
            return
        for v in variables:  # before any state is created for them
            check_param_dtype(type(self).__name__, v.dtype, f"the variable {v.path!r}")
        super().build(variables)
        self._channel_axes = [_resolve_axis(self.channel_axis, v) for v in variables]
        self._branches = [
            self.add_variable(
                shape=(),
                dtype="int32",
                name=f"{v.path.replace('/', '_')}_projection",
                initializer="zeros",
            )
            for v in variables
        ]

    # -- the step -------------------------------------------------------------

    def _apply_weight_decay(self, variables):
        """No-op: the decay depends on the projection and is applied in ``update_step``."""

    def _decays(self, index: int) -> bool:
        if not self.weight_decay:
            return False
        return self._use_weight_decay(self._trainable_variables[index])

    def _inputs(self, gradient, variable, learning_rate):
        """(index, compute dtype, lr, grad, param) of one update_step call, as backend tensors."""
        index = self._get_variable_index(variable)
        dtype = compute_dtype(variable)
        grad = as_dtype(dense_gradient(gradient, tuple(variable.shape)), dtype)
        param = as_dtype(value_of(variable), dtype)
        return index, dtype, ops.cast(learning_rate, dtype), grad, param

    def _project(self, index: int, param, grad, update, grad_sq=None) -> Projected:
        """The projection coefficient of ``update`` (0 for 1-D variables) and decay
        ratio; records the branch code."""
        axis = self._channel_axes[index]
        if axis is None or math.prod(param.shape) == 0:
            return Projected(0.0, 1.0, None)
        result = project(
            param,
            grad,
            update,
            channel_axis=axis,
            delta=self.delta,
            wd_ratio=self.wd_ratio,
            eps=self.epsilon,
            grad_sq=grad_sq,
        )
        self.assign(self._branches[index], result.branch)
        return result

    def _decay_factor(self, index: int, lr, ratio, scale: float = 1.0):
        """``1 - η λ scale r`` where weight decay applies to the variable, else 1."""
        if not self._decays(index):
            return 1.0
        return 1.0 - lr * (self.weight_decay * scale) * ratio

    # -- the torch backend: one multi-tensor step over all variables -------------

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """On torch, float32/float64 variables step together in ``torch._foreach`` ops
        (``adamp_keras._torch``), like Keras's own torch optimizers; the rest, and
        every variable on the other backends, go through ``update_step``. So does
        every variable of a subclass that overrides ``update_step``."""
        overridden = type(self).update_step is not type(self)._own_update_step
        if keras.backend.backend() != "torch" or overridden:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        from adamp_keras import _torch

        fast, slow = _torch.split_fast(self, grads, trainable_variables)
        if fast:
            self._torch_step(fast, ops.convert_to_tensor(learning_rate))
        for _, grad, variable in slow:
            self.update_step(grad, variable, learning_rate)

    # -- the JAX backend: adamp_jax's step math ---------------------------------

    def _jax_steps(self):
        """``adamp_jax._steps`` on the Keras JAX backend (when importable), else None."""
        return jax_steps() if keras.backend.backend() == "jax" else None

    def _leaf_options(self, index: int) -> dict:
        """The per-variable keywords of the ``adamp_jax._steps`` functions."""
        return {
            "axis": self._channel_axes[index],
            "lam": self.weight_decay if self._decays(index) else 0.0,
            "eps": self.epsilon,
            "delta": self.delta,
            "wd_ratio": self.wd_ratio,
        }

    def _apply_leaf_step(self, index: int, variable, step, branch, learning_rate) -> None:
        """``variable ← variable - η step`` (rounded once) and the branch code."""
        new = value_of(variable).astype(step.dtype) - ops.cast(learning_rate, step.dtype) * step
        self.assign(variable, new.astype(variable.dtype))
        if self._channel_axes[index] is not None and math.prod(variable.shape) > 0:
            self.assign(self._branches[index], branch)

    # -- diagnostics ----------------------------------------------------------

    def projection_branches(self) -> dict[str, Branch]:
        """``{variable.path: Branch}`` for the last step of every trainable variable.

        NONE for variables that never stepped, 1-D variables and variables whose
        last step did not project. Reads all codes in one device-to-host transfer;
        the step itself never synchronises. Empty before the optimizer is built.
        """
        if not self.built or not self._branches:
            return {}
        if any(getattr(b, "_value", True) is None for b in self._branches):
            # Keras's JAX trainer detaches variable values inside fit().
            raise RuntimeError(
                "projection_branches: the optimizer variables are held by a running "
                "fit() on the JAX backend; in a callback call self.model.jax_state_sync() "
                "first"
            )
        codes = ops.convert_to_numpy(ops.stack([b.value for b in self._branches]))
        return {
            v.path: Branch(int(code))
            for v, code in zip(self._trainable_variables, codes, strict=True)
        }

    # -- config ---------------------------------------------------------------

    def _channel_axis_config(self):
        spec = self.channel_axis
        if callable(spec):
            return {_CALLABLE_KEY: keras.saving.serialize_keras_object(spec)}
        return dict(spec) if isinstance(spec, Mapping) else spec

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "delta": self.delta,
                "wd_ratio": self.wd_ratio,
                "channel_axis": self._channel_axis_config(),
            }
        )
        return config
