"""The radial projection of AdamP/SGDP for one array, in ``jax.numpy``.

Heo et al., ICLR 2021 (arXiv:2006.08217), Eq. (12), as the authors' ``adamp``
0.3.0 implements it (see ``adamp_core.projection`` for the reference). For a
weight w, its gradient g and an update u, two views are tried in order:

- channel view: rows are the slices along ``channel_axis`` (row length
  d = size / channels);
- layer view: the whole array is one row (d = size).

In a view, ``cos_i = |g_i · w_i| / (max(||g_i||, ε) · max(||w_i||, ε))``. The
view fires when ``max_i cos_i < δ / sqrt(d)``; then each update row loses its
radial part, ``u_i ← u_i - w_i (w_i · u_i) / (||w_i|| + ε)²`` (which is
``u_i - ŵ_i (ŵ_i · u_i)`` with ``ŵ_i = w_i / (||w_i|| + ε)``), and weight decay
is scaled by ``wd_ratio``. Neither firing leaves u unchanged with ratio 1.

Everything is selected with ``jnp.where``: no Python branch depends on a value,
so the function traces once under ``jit`` and works under ``vmap`` and with
traced hyperparameters. The layer sums are sums of the per-channel sums, so
the per-channel dot products serve both views. Those are ``einsum`` contractions
over a free reshape (before, channels, after) of each array: on CPU a dot
reads its operands once, where a multiply-then-reduce materialises the product.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamp_core import Branch

__all__ = ["LeafProjection", "project_leaf"]


class LeafProjection(NamedTuple):
    update: jax.Array  # the update with its radial part removed (or unchanged)
    wd_ratio: jax.Array  # scalar: wd_ratio where a view fired, else 1
    branch: jax.Array  # int32 scalar: adamp_core.Branch code


def _cosine(dot, sq_x, sq_y, eps):
    """|x·y| / (max(||x||, ε) max(||y||, ε)), torch's cosine_similarity clamping."""
    return jnp.abs(dot) / (jnp.maximum(jnp.sqrt(sq_x), eps) * jnp.maximum(jnp.sqrt(sq_y), eps))


def _channel_dot(x, y, axis: int) -> jax.Array:
    """Per-channel dot products of x and y (shape (channels,)), at full precision."""
    before = math.prod(x.shape[:axis])
    after = math.prod(x.shape[axis + 1 :])
    channels = x.shape[axis]
    if after == 1:
        spec, shape = "ac,ac->c", (before, channels)
    elif before == 1:
        spec, shape = "cb,cb->c", (channels, after)
    else:
        spec, shape = "acb,acb->c", (before, channels, after)
    return jnp.einsum(spec, x.reshape(shape), y.reshape(shape), precision=jax.lax.Precision.HIGHEST)


def project_leaf(param, grad, update, *, delta, wd_ratio, eps, axis: int | None) -> LeafProjection:
    """Project ``update`` for the weight ``param`` with gradient ``grad``.

    ``axis`` is the channel axis, already normalised to ``[0, ndim)``, or None
    for a leaf that is never projected. Arrays of fewer than two dimensions or
    of size 0 are never projected. All three arrays share one float dtype.
    """
    one = jnp.ones([], update.dtype)
    if axis is None or param.ndim < 2 or param.size == 0:
        return LeafProjection(update, one, jnp.zeros([], jnp.int32))
    # A barrier on grad keeps XLA from sharing g*g with the optimizer's g²
    # (which would materialise it); the others keep it from rewriting the layer
    # sums (sums of the channel sums) into second full passes over the arrays.
    grad = jax.lax.optimization_barrier(grad)
    gp, gg, pp = jax.lax.optimization_barrier(
        (_channel_dot(grad, param, axis), _channel_dot(grad, grad, axis),
         _channel_dot(param, param, axis))
    )  # fmt: skip
    row_len = param.size // param.shape[axis]
    channel = jnp.max(_cosine(gp, gg, pp, eps)) < delta / math.sqrt(row_len)
    pp_layer = jnp.sum(pp)
    layer_cos = _cosine(jnp.sum(gp), jnp.sum(gg), pp_layer, eps)
    layer = jnp.logical_and(~channel, layer_cos < delta / math.sqrt(param.size))

    pu = jax.lax.optimization_barrier(_channel_dot(param, update, axis))
    coef_channel = pu / jnp.square(jnp.sqrt(pp) + eps)
    coef_layer = jnp.sum(pu) / jnp.square(jnp.sqrt(pp_layer) + eps)
    coef = jnp.where(channel, coef_channel, jnp.where(layer, coef_layer, jnp.zeros_like(pu)))
    broadcast = [1] * param.ndim
    broadcast[axis] = param.shape[axis]
    coef = coef.reshape(broadcast)
    projected = update - param * coef

    fired = jnp.logical_or(channel, layer)
    ratio = jnp.where(fired, jnp.asarray(wd_ratio, update.dtype), one)
    branch = jnp.where(
        channel, jnp.int32(Branch.CHANNEL), jnp.where(layer, jnp.int32(Branch.LAYER), 0)
    ).astype(jnp.int32)
    return LeafProjection(projected, ratio, branch)
