"""Helpers shared by ``scale_by_adamp`` and ``scale_by_sgdp``.

- hyperparameter validation through ``adamp_core``: numbers and concrete
  scalar arrays are range-checked, schedules pass where optax accepts them
  (``learning_rate``, ``weight_decay``), tracers (``optax.inject_hyperparams``
  under ``jit``) pass, anything else (strings, sequences, None) is refused;
- refusing parameters of a dtype the algorithm does not define (at ``init``)
  and ``None`` gradient leaves (at ``update``), naming the leaf;
- resolving the per-leaf channel axis and weight-decay mask;
- the compute dtype of a leaf (at least float32, so bfloat16 reductions are
  accumulated in float32);
- the small pieces both build their state and update from (zero branch codes,
  a schedule's value at the count, one leaf's masked decay).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamp_core import (
    UNCHECKED,
    check_param_dtype,
    normalise_channel_axis,
    validate_adamp,
    validate_sgdp,
)

__all__ = [
    "ChannelAxis",
    "canonical_dtype",
    "check_leaf_dtypes",
    "compute_dtype",
    "leaf_axes",
    "leaf_decay",
    "leaf_masks",
    "require_params",
    "schedule_value",
    "unflatten_columns",
    "validate",
    "zeros_branch",
]

# An int, None (never project), a callable leaf -> int | None, or a pytree of those.
ChannelAxis = Any

# Arguments optax types as ScalarOrSchedule: a callable of the step count is allowed.
_SCHEDULABLE = ("lr", "weight_decay")


def _unchecked(key: str, value: object) -> bool:
    """A traced value (its number is unknown here) or a schedule where one is allowed."""
    if isinstance(value, jax.core.Tracer):
        return True
    is_schedule = callable(value) and not isinstance(value, (jax.Array, np.ndarray))
    return key in _SCHEDULABLE and is_schedule


def validate(kind: str, values: Mapping[str, object], names: Mapping[str, str]) -> None:
    """Run ``adamp_core.validate_<kind>`` on the values given.

    Missing keys, tracers and schedules are not checked (UNCHECKED): optax checks
    no traced value either. Everything else must be a number or a concrete scalar
    array in range, so a string, a tuple (``adamp(1e-3, (0.9, 0.999))``,
    torch's positional betas) or None is refused here and not in ``update``.
    """
    keys = ("lr", "eps", "weight_decay", "delta", "wd_ratio", "nesterov")
    keys += ("beta1", "beta2") if kind == "adamp" else ("momentum", "dampening")
    checked = dict.fromkeys(keys, UNCHECKED)
    for key, value in values.items():
        if key == "nesterov" or not _unchecked(key, value):
            checked[key] = value
    validator = validate_adamp if kind == "adamp" else validate_sgdp
    validator(**checked, names=names)


def _where(path) -> str:
    return f"the leaf {jax.tree_util.keystr(path)}" if path else "the parameter"


def check_leaf_dtypes(params, who: str) -> None:
    """Refuse complex, integer and bool leaves at ``init``, naming the first one."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        check_param_dtype(who, jnp.result_type(leaf), _where(path))


def require_params(params, who: str, updates=None) -> None:
    """``update`` needs params, and a gradient array for every parameter leaf."""
    if params is None:
        raise ValueError(
            f"{who}.update needs the current parameters: the projection and the weight "
            "decay use them. Call update(updates, state, params)."
        )
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    grads = treedef.flatten_up_to(updates) if updates is not None else []
    for (path, _), grad in zip(paths_leaves, grads, strict=False):
        if grad is None:
            raise ValueError(
                f"{who}.update got None as the gradient of {_where(path)}: pass an array "
                "for every parameter, or leave the parameter out of the optimizer with "
                "optax.masked or optax.multi_transform"
            )


def compute_dtype(dtype) -> jnp.dtype:
    """The dtype a leaf's step is computed in: its own, but at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def _normalise_axis(axis, ndim: int, path) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, jax.core.Tracer):
        raise ValueError(
            "channel_axis is structural, not a numeric hyperparameter: with "
            "optax.inject_hyperparams pass static_args=('channel_axis',)"
        )
    if (
        isinstance(axis, (jax.Array, np.ndarray))
        and axis.shape == ()
        and np.issubdtype(axis.dtype, np.integer)  # not bool, not float: as for Python values
    ):
        axis = int(axis)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(
            f"channel_axis for {jax.tree_util.keystr(path) or 'the parameter'} must be an "
            f"int or None, got {axis!r}"
        )
    if ndim < 2:
        return None
    return normalise_channel_axis(axis, ndim, jax.tree_util.keystr(path) or "the parameter")


def _per_leaf(spec, params, what: str) -> list:
    """Broadcast ``spec`` (a leaf value, a callable of the leaf, or a pytree) over params."""
    leaves, treedef = jax.tree.flatten(params)
    if callable(spec) and not isinstance(spec, (jax.Array, np.ndarray)):
        return [spec(leaf) for leaf in leaves]
    if isinstance(spec, (numbers.Number, str, np.generic, jax.Array, np.ndarray)) or spec is None:
        return [spec] * len(leaves)
    try:
        return treedef.flatten_up_to(spec)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{what} must be one value, a callable of a parameter, or a pytree with the "
            f"structure of the params ({treedef}); use a callable inside optax.masked. "
            f"Mismatch: {error}"
        ) from None


def leaf_axes(channel_axis: ChannelAxis, params) -> list[int | None]:
    """The normalised channel axis of each leaf of ``params`` (None: never projected)."""
    specs = _per_leaf(channel_axis, params, "channel_axis")
    paths_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [
        _normalise_axis(spec, jnp.ndim(leaf), path)
        for spec, (path, leaf) in zip(specs, paths_leaves, strict=True)
    ]


def unflatten_columns(treedef, rows: list[tuple], width: int) -> list:
    """Turn per-leaf result tuples into ``width`` pytrees of the params' structure."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    return [treedef.unflatten(list(column)) for column in columns]


def _is_bool(value) -> bool:
    """A Python or NumPy bool, or an array (concrete or traced) of bool dtype."""
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, (jax.Array, np.ndarray)) and value.dtype == np.bool_


def leaf_masks(mask: Any | Callable[[Any], Any] | None, params) -> list:
    """The weight-decay mask of each leaf: True applies decay (default everywhere).

    Each mask leaf must be a bool (or a bool array, e.g. traced inside
    ``optax.masked``): the decay is multiplied by it, so a number such as 0.5
    would silently scale the decay instead of switching it.
    """
    if mask is None:
        return [True] * len(jax.tree.leaves(params))
    if callable(mask):
        mask = mask(params)
    masks = _per_leaf(mask, params, "mask")
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for path, value in zip(paths, masks, strict=True):
        if not _is_bool(value):
            raise ValueError(
                f"mask for {jax.tree_util.keystr(path) or 'the parameter'} must be True or "
                f"False (or a bool array): True applies weight decay, got {value!r}"
            )
    return masks


def zeros_branch(params):
    """One int32 branch code (adamp_core.Branch) per leaf, all NONE."""
    return jax.tree.map(lambda _: jnp.zeros([], jnp.int32), params)


def schedule_value(value, count):
    """A number, or a schedule's value at ``count``."""
    return value(count) if callable(value) else value


def canonical_dtype(dtype):
    """``dtype`` as JAX canonicalises it (float64 -> float32 without x64); None stays None."""
    return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)


def leaf_decay(decay, keep, dtype):
    """λ of one leaf in its compute dtype: 0 where the weight-decay mask leaves it out."""
    return jnp.asarray(decay, dtype) * jnp.asarray(keep, dtype)
