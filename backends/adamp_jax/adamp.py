"""AdamP as an optax gradient transformation.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 2, as the authors'
``adamp`` 0.3.0 implements it. Optax names: η -> ``learning_rate``, β₁, β₂ ->
``b1``, ``b2``, ε -> ``eps``, λ -> ``weight_decay``, δ -> ``delta``.

``scale_by_adamp`` turns the gradient g of each parameter w into (t = count + 1)::

    m ← β₁ m + (1 - β₁) g ;  v ← β₂ v + (1 - β₂) g²
    u = m / (sqrt(v) / sqrt(1 - β₂ᵗ) + ε)        (Nesterov: (β₁ m + (1 - β₁) g) / ...)
    (u, r) = projection(w, g, u)                  (r = wd_ratio if it fired, else 1)
    out = u / (1 - β₁ᵗ) + λ r w

and ``adamp`` chains it with ``scale_by_learning_rate``, so the parameter moves
by ``-η out``: ``w ← w (1 - η λ r) - η / (1 - β₁ᵗ) u``, the authors' step
(decay decoupled, scaled by η and not by η / (1 - β₁ᵗ)). The decay lives inside
the transformation because r depends on the projection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree as otu

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
from adamp_jax._steps import adamp_leaf_step

__all__ = ["ScaleByAdamPState", "adamp", "scale_by_adamp"]

_NAMES = {"lr": "learning_rate", "beta1": "b1", "beta2": "b2"}


class ScaleByAdamPState(NamedTuple):
    """State of :func:`scale_by_adamp`."""

    count: jax.Array  # shape=(), int32: steps taken
    mu: optax.Updates  # first moment m (dtype mu_dtype or the params')
    nu: optax.Updates  # second moment v
    branch: optax.Updates  # int32 scalar per leaf: adamp_core.Branch of the last step


class AdamPHyperparams(NamedTuple):
    """The arguments of :func:`scale_by_adamp` that its update reads."""

    b1: jax.typing.ArrayLike
    b2: jax.typing.ArrayLike
    eps: jax.typing.ArrayLike
    weight_decay: optax.ScalarOrSchedule
    delta: jax.typing.ArrayLike
    wd_ratio: jax.typing.ArrayLike
    nesterov: bool
    channel_axis: ChannelAxis
    mask: Any


def scale_by_adamp(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    nesterov: bool = False,
    channel_axis: ChannelAxis = -1,
    mu_dtype: Any | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformation:
    """AdamP's direction plus its projection-aware decoupled weight decay.

    Args:
      b1, b2: decay rates of the first and second moments, in [0, 1).
      eps: added to the bias-corrected sqrt(v); also the projection's ε. > 0.
      weight_decay: λ >= 0, a number or a schedule of the step count.
      delta: δ >= 0, the cosine threshold of the scale-invariance test.
      wd_ratio: factor in [0, 1] on the decay of projected parameters.
      nesterov: use (β₁ m + (1 - β₁) g) as the numerator (the authors' Nesterov).
      channel_axis: output-channel axis: an int (default -1, Flax/Keras layout),
        None (never project), a callable ``leaf -> int | None``, or a pytree of
        those with the params' structure. 1-D leaves are never projected.
      mu_dtype: dtype of the first moment; None: the params' dtype.
      mask: weight-decay mask (pytree of bools like params, or a callable
        params -> that pytree); False leaves get no decay.

    Returns:
      A :class:`optax.GradientTransformation` whose ``update`` requires params.
    """
    validate(
        "adamp",
        {
            "beta1": b1,
            "beta2": b2,
            "eps": eps,
            "weight_decay": weight_decay,
            "delta": delta,
            "wd_ratio": wd_ratio,
            "nesterov": nesterov,
        },
        _NAMES,
    )
    hyper = AdamPHyperparams(
        b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, channel_axis, mask
    )
    return optax.GradientTransformation(
        functools.partial(_init, mu_dtype=canonical_dtype(mu_dtype)),
        functools.partial(_update, hyper=hyper),
    )


def _init(params, *, mu_dtype) -> ScaleByAdamPState:
    check_leaf_dtypes(params, "scale_by_adamp")
    return ScaleByAdamPState(
        count=jnp.zeros([], jnp.int32),
        mu=otu.zeros_like(params, dtype=mu_dtype),
        nu=otu.zeros_like(params),
        branch=zeros_branch(params),
    )


def _update(updates, state, params=None, *, hyper: AdamPHyperparams):
    require_params(params, "scale_by_adamp", updates)
    leaves, treedef = jax.tree.flatten(params)
    count = optax.safe_increment(state.count)
    decay = schedule_value(hyper.weight_decay, state.count)
    columns = zip(
        leaves,
        *(treedef.flatten_up_to(tree) for tree in (updates, state.mu, state.nu)),
        leaf_axes(hyper.channel_axis, params),
        leaf_masks(hyper.mask, params),
        strict=True,
    )
    rows = [_leaf_update(*column, count, decay, hyper) for column in columns]
    steps, mu, nu, branch = unflatten_columns(treedef, rows, 4)
    return steps, ScaleByAdamPState(count=count, mu=mu, nu=nu, branch=branch)


def _leaf_update(param, grad, mu, nu, axis, keep, count, decay, hyper: AdamPHyperparams):
    """One leaf's (update, new mu, new nu, branch); the update in the parameter's dtype."""
    step, new_mu, new_nu, branch = adamp_leaf_step(
        param, grad, mu, nu, count, axis=axis,
        lam=leaf_decay(decay, keep, compute_dtype(param.dtype)), b1=hyper.b1, b2=hyper.b2,
        eps=hyper.eps, delta=hyper.delta, wd_ratio=hyper.wd_ratio, nesterov=hyper.nesterov,
    )  # fmt: skip
    return step.astype(param.dtype), new_mu, new_nu, branch


def adamp(
    learning_rate: optax.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    nesterov: bool = False,
    channel_axis: ChannelAxis = -1,
    mu_dtype: Any | None = None,
    mask: Any | Callable[[optax.Params], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamP (Heo et al., ICLR 2021): Adam whose updates of scale-invariant weights
    lose their radial component, with decoupled, projection-aware weight decay.

    ``learning_rate`` is a number >= 0 or a schedule; the other arguments are
    those of :func:`scale_by_adamp`. With ``optax.inject_hyperparams`` every
    numeric hyperparameter can be injected; pass
    ``static_args=("channel_axis", "mask")`` so the structural arguments are
    not taken for hyperparameters.

    Example::

        opt = adamp_jax.adamp(1e-3, weight_decay=1e-2)
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        adamp_jax.projection_branches(state)  # which leaves were projected
    """
    validate("adamp", {"lr": learning_rate}, _NAMES)
    return optax.chain(
        scale_by_adamp(
            b1=b1,
            b2=b2,
            eps=eps,
            weight_decay=weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
            channel_axis=channel_axis,
            mu_dtype=mu_dtype,
            mask=mask,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
