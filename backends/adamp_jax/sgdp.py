"""SGDP as an optax gradient transformation.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 1, as the authors' ``adamp``
0.3.0 implements it. Optax names: η -> ``learning_rate``, μ -> ``momentum``,
τ -> ``dampening``, λ -> ``weight_decay``, δ -> ``delta``, ε -> ``eps``.

``scale_by_sgdp`` turns the gradient g of each parameter w into::

    b ← μ b + (1 - τ) g                (trace; τ applies on the first step too)
    u = g + μ b if nesterov else b
    (u, r) = projection(w, g, u)       (r = wd_ratio if it fired, else 1)
    out = u + λ r w / (1 - μ)

and ``sgdp`` chains it with ``scale_by_learning_rate``: ``w ← w (1 - η λ r /
(1 - μ)) - η u``. Without Nesterov the authors' code projects the stored
buffer in place, so with ``project_buffer=True`` (default) the trace keeps the
projected u; ``project_buffer=False`` keeps b unprojected (timm's choice).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree as otu

from adamp_core import check_bool
from adamp_jax._base import (
    ChannelAxis,
    canonical_dtype,
    check_leaf_dtypes,
    compute_dtype,
    leaf_axes,
    leaf_decay,
    leaf_masks,
    require_params,
    schedule_value,
    unflatten_columns,
    validate,
    zeros_branch,
)
from adamp_jax._steps import sgdp_leaf_step

__all__ = ["ScaleBySGDPState", "scale_by_sgdp", "sgdp"]

_NAMES = {"lr": "learning_rate"}


class ScaleBySGDPState(NamedTuple):
    """State of :func:`scale_by_sgdp`."""

    count: jax.Array  # shape=(), int32: steps taken (drives a weight-decay schedule)
    trace: optax.Updates  # momentum buffer b (dtype accumulator_dtype or the params')
    branch: optax.Updates  # int32 scalar per leaf: adamp_core.Branch of the last step


class SGDPHyperparams(NamedTuple):
    """The arguments of :func:`scale_by_sgdp` that its update reads."""

    momentum: jax.typing.ArrayLike
    dampening: jax.typing.ArrayLike
    weight_decay: optax.ScalarOrSchedule
    nesterov: bool
    keep_projected: bool  # project_buffer without Nesterov: the trace is the projected step
    eps: jax.typing.ArrayLike
    delta: jax.typing.ArrayLike
    wd_ratio: jax.typing.ArrayLike
    channel_axis: ChannelAxis
    mask: Any


def scale_by_sgdp(
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    eps: jax.typing.ArrayLike = 1e-8,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    channel_axis: ChannelAxis = -1,
    project_buffer: bool = True,
    accumulator_dtype: Any | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
    """SGDP's momentum direction plus its projection-aware decoupled weight decay.

    Args:
      momentum: μ in [0, 1) (the decay is divided by 1 - μ).
      dampening: τ in [0, 1].
      weight_decay: λ >= 0, a number or a schedule of the step count.
      nesterov: use g + μ b as the direction.
      eps: ε > 0 of the projection.
      delta: δ >= 0, the cosine threshold of the scale-invariance test.
      wd_ratio: factor in [0, 1] on the decay of projected parameters.
      channel_axis: output-channel axis: an int (default -1, Flax/Keras layout),
        None (never project), a callable ``leaf -> int | None``, or a pytree of
        those with the params' structure. 1-D leaves are never projected.
      project_buffer: keep the projected direction as the buffer (the authors'
        behaviour, default) or the unprojected one (False, timm's).
      accumulator_dtype: dtype of the trace; None: the params' dtype.
      mask: weight-decay mask (pytree of bools like params, or a callable
        params -> that pytree); False leaves get no decay.

    Returns:
      A :class:`optax.GradientTransformation` whose ``update`` requires params.
    """
    validate(
        "sgdp",
        {
            "momentum": momentum,
            "dampening": dampening,
            "eps": eps,
            "weight_decay": weight_decay,
            "delta": delta,
            "wd_ratio": wd_ratio,
            "nesterov": nesterov,
        },
        _NAMES,
    )
    check_bool("project_buffer", project_buffer)
    check_bool("project_buffer", project_buffer)
    hyper = SGDPHyperparams(
        momentum, dampening, weight_decay, nesterov, project_buffer and not nesterov, eps,
        delta, wd_ratio, channel_axis, mask,
    )  # fmt: skip
    return optax.GradientTransformation(
        functools.partial(_init, accumulator_dtype=canonical_dtype(accumulator_dtype)),
        functools.partial(_update, hyper=hyper),
    )


def _init(params, *, accumulator_dtype) -> ScaleBySGDPState:
    check_leaf_dtypes(params, "scale_by_sgdp")
    return ScaleBySGDPState(
        count=jnp.zeros([], jnp.int32),
        trace=otu.zeros_like(params, dtype=accumulator_dtype),
        branch=zeros_branch(params),
    )


def _update(updates, state, params=None, *, hyper: SGDPHyperparams):
    require_params(params, "scale_by_sgdp", updates)
    leaves, treedef = jax.tree.flatten(params)
    decay = schedule_value(hyper.weight_decay, state.count)
    columns = zip(
        leaves,
        *(treedef.flatten_up_to(tree) for tree in (updates, state.trace)),
        leaf_axes(hyper.channel_axis, params),
        leaf_masks(hyper.mask, params),
        strict=True,
    )
    rows = [_leaf_update(*column, decay, hyper) for column in columns]
    steps, trace, branch = unflatten_columns(treedef, rows, 3)
    count = optax.safe_increment(state.count)
    return steps, ScaleBySGDPState(count=count, trace=trace, branch=branch)


def _leaf_update(param, grad, buf, axis, keep, decay, hyper: SGDPHyperparams):
    """One leaf's (update, new trace, branch); the update in the parameter's dtype."""
    step, new_buf, branch = sgdp_leaf_step(
        param, grad, buf, axis=axis, lam=leaf_decay(decay, keep, compute_dtype(param.dtype)),
        momentum=hyper.momentum, dampening=hyper.dampening, nesterov=hyper.nesterov,
        keep_projected=hyper.keep_projected, eps=hyper.eps, delta=hyper.delta,
        wd_ratio=hyper.wd_ratio,
    )  # fmt: skip
    return step.astype(param.dtype), new_buf, branch


def sgdp(
    learning_rate: optax.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    eps: jax.typing.ArrayLike = 1e-8,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    channel_axis: ChannelAxis = -1,
    project_buffer: bool = True,
    accumulator_dtype: Any | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGDP (Heo et al., ICLR 2021): momentum SGD whose updates of scale-invariant
    weights lose their radial component, with decoupled, projection-aware decay.

    ``learning_rate`` is a number >= 0 or a schedule; the other arguments are
    those of :func:`scale_by_sgdp`. With ``optax.inject_hyperparams`` pass
    ``static_args=("channel_axis", "mask")``.
    """
    validate("sgdp", {"lr": learning_rate}, _NAMES)
    return optax.chain(
        scale_by_sgdp(
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
            channel_axis=channel_axis,
            project_buffer=project_buffer,
            accumulator_dtype=accumulator_dtype,
            mask=mask,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
