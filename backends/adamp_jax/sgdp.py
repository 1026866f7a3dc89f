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

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree as otu
from optax._src import base, numerics, utils

from adamp_core import check_bool
from adamp_jax._common import (
    ChannelAxis,
    check_leaf_dtypes,
    compute_dtype,
    leaf_axes,
    leaf_masks,
    require_params,
    unflatten_columns,
    validate,
)
from adamp_jax._steps import sgdp_leaf_step

__all__ = ["ScaleBySGDPState", "scale_by_sgdp", "sgdp"]

_NAMES = {"lr": "learning_rate"}


class ScaleBySGDPState(NamedTuple):
    """State of :func:`scale_by_sgdp`."""

    count: jax.Array  # shape=(), int32: steps taken (drives a weight-decay schedule)
    trace: base.Updates  # momentum buffer b (dtype accumulator_dtype or the params')
    branch: base.Updates  # int32 scalar per leaf: adamp_core.Branch of the last step


def scale_by_sgdp(
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    weight_decay: base.ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    eps: jax.typing.ArrayLike = 1e-8,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    channel_axis: ChannelAxis = -1,
    project_buffer: bool = True,
    accumulator_dtype: Any | None = None,
    mask: Any | Callable[[base.Params], Any] | None = None,
) -> base.GradientTransformation:
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
    accumulator_dtype = utils.canonicalize_dtype(accumulator_dtype)
    keep_projected = project_buffer and not nesterov

    def init_fn(params):
        check_leaf_dtypes(params, "scale_by_sgdp")
        return ScaleBySGDPState(
            count=jnp.zeros([], jnp.int32),
            trace=otu.zeros_like(params, dtype=accumulator_dtype),
            branch=jax.tree.map(lambda _: jnp.zeros([], jnp.int32), params),
        )

    def update_fn(updates, state, params=None):
        require_params(params, "scale_by_sgdp", updates)
        leaves, treedef = jax.tree.flatten(params)
        grads = treedef.flatten_up_to(updates)
        traces = treedef.flatten_up_to(state.trace)
        axes = leaf_axes(channel_axis, params)
        masks = leaf_masks(mask, params)
        decay = weight_decay(state.count) if callable(weight_decay) else weight_decay
        out = [
            _leaf_step(p, g, b, axis, keep, decay)
            for p, g, b, axis, keep in zip(leaves, grads, traces, axes, masks, strict=True)
        ]
        new_updates, trace, branch = unflatten_columns(treedef, out, 3)
        count = numerics.safe_increment(state.count)
        return new_updates, ScaleBySGDPState(count=count, trace=trace, branch=branch)

    def _leaf_step(param, grad, buf, axis, keep, decay):
        dtype = compute_dtype(param.dtype)
        lam = jnp.asarray(decay, dtype) * jnp.asarray(keep, dtype)
        step, new_buf, branch = sgdp_leaf_step(
            param, grad, buf, axis=axis, lam=lam, momentum=momentum, dampening=dampening,
            nesterov=nesterov, keep_projected=keep_projected, eps=eps, delta=delta,
            wd_ratio=wd_ratio,
        )  # fmt: skip
        return step.astype(param.dtype), new_buf, branch

    return base.GradientTransformation(init_fn, update_fn)


def sgdp(
    learning_rate: base.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    weight_decay: base.ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    eps: jax.typing.ArrayLike = 1e-8,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    channel_axis: ChannelAxis = -1,
    project_buffer: bool = True,
    accumulator_dtype: Any | None = None,
    mask: Any | Callable[[base.Params], Any] | None = None,
) -> base.GradientTransformationExtraArgs:
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
