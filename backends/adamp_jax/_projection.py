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

The projection is split so that the optimizers never materialise u:

- :func:`decide` takes the per-channel sums ``g·w``, ``g·g``, ``w·w`` and
  returns which view fired (the layer sums are sums of the channel sums, so
  the per-channel dot products serve both views);
- the optimizer computes the per-channel ``w·u`` itself (AdamP: a reduction
  with u's elementwise formula fused in; SGDP: by linearity from ``g·w`` and
  ``w·b``), and :func:`radial_coefficient` turns it into the per-channel
  factor c with ``projected = u - c·w``;
- the optimizer's final elementwise pass recomputes u and subtracts ``c·w``.

Everything is selected with ``jnp.where``: no Python branch depends on a value,
so the functions trace once under ``jit`` and work under ``vmap`` and with
traced hyperparameters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamp_core import Branch

__all__ = [
    "Decision",
    "barrier",
    "channel_sum",
    "decide",
    "is_projected",
    "radial_coefficient",
    "statistics",
]


def barrier(x):
    """``jax.lax.optimization_barrier(x)`` when tracing for XLA:CPU, else ``x`` itself.

    The barriers separate the step's passes for XLA:CPU, which would otherwise
    store shared subexpressions (u, g², a broadcast scalar) as full arrays and
    run sibling reductions badly. XLA:GPU fuses sibling reductions and keeps
    such values in registers, so there they would only constrain its fusion.
    Decided when the step is traced, from the default backend.
    """
    return jax.lax.optimization_barrier(x) if jax.default_backend() == "cpu" else x


class Decision(NamedTuple):
    channel: jax.Array  # bool scalar: the channel view fired
    layer: jax.Array  # bool scalar: the layer view fired (the channel view did not)
    wd_ratio: jax.Array  # scalar: wd_ratio where a view fired, else 1
    branch: jax.Array  # int32 scalar: adamp_core.Branch code


def is_projected(param, axis: int | None) -> bool:
    """Whether a leaf takes part in the projection at all (static: shape and axis only)."""
    return axis is not None and param.ndim >= 2 and param.size > 0


def channel_sum(x, axis: int) -> jax.Array:
    """Per-channel sums of ``x`` along every axis but ``axis`` (shape (channels,)).

    Called on a product such as ``w * u``: XLA fuses the product (and any
    elementwise formula for u) into the reduction, so it reads its operands once
    and writes nothing of the array's size.
    """
    return jnp.sum(x, axis=tuple(i for i in range(x.ndim) if i != axis))


def _cosine(dot, sq_x, sq_y, eps):
    """|x·y| / (max(||x||, ε) max(||y||, ε)), torch's cosine_similarity clamping."""
    return jnp.abs(dot) / (jnp.maximum(jnp.sqrt(sq_x), eps) * jnp.maximum(jnp.sqrt(sq_y), eps))


def decide(gp, gg, pp, *, shape, axis: int, delta, wd_ratio, eps, dtype) -> Decision:
    """Which view fires, from the per-channel ``g·w``, ``g·g`` and ``w·w``."""
    row_len = math.prod(shape) // shape[axis]
    channel = jnp.max(_cosine(gp, gg, pp, eps)) < delta / math.sqrt(row_len)
    layer_cos = _cosine(jnp.sum(gp), jnp.sum(gg), jnp.sum(pp), eps)
    layer = jnp.logical_and(~channel, layer_cos < delta / math.sqrt(math.prod(shape)))
    one = jnp.ones([], dtype)
    ratio = jnp.where(jnp.logical_or(channel, layer), jnp.asarray(wd_ratio, dtype), one)
    branch = jnp.where(
        channel, jnp.int32(Branch.CHANNEL), jnp.where(layer, jnp.int32(Branch.LAYER), 0)
    ).astype(jnp.int32)
    return Decision(channel, layer, ratio, branch)


def radial_coefficient(decision: Decision, pu, pp, *, ndim: int, axis: int, eps) -> jax.Array:
    """The per-channel c with ``projected u = u - c·w``, shaped to broadcast against w.

    ``pu`` and ``pp`` are the per-channel ``w·u`` and ``w·w``; c is
    ``(w_i·u_i) / (||w_i|| + ε)²`` per row in the channel view, the same with
    the whole tensor as one row in the layer view, and 0 when neither fired.
    """
    coef_channel = pu / jnp.square(jnp.sqrt(pp) + eps)
    coef_layer = jnp.sum(pu) / jnp.square(jnp.sqrt(jnp.sum(pp)) + eps)
    coef = jnp.where(
        decision.channel,
        coef_channel,
        jnp.where(decision.layer, coef_layer, jnp.zeros_like(pu)),
    )
    broadcast = [1] * ndim
    broadcast[axis] = pu.shape[0]
    return coef.reshape(broadcast)


def statistics(param, grad, axis: int, dtype, *extra_pairs) -> tuple[jax.Array, ...]:
    """Per-channel ``g·w``, ``g·g``, ``w·w`` (then ``x·y`` for each extra (x, y) pair),
    in ``dtype``; the arrays are converted to it inside the sums.

    Each sum is one fused reduction reading its operands once (XLA:CPU runs
    sibling reductions as separate passes; a variadic or stacked reduction that
    would compute them in one pass is far slower there). Each sum gets its own
    barrier-separated copy of its inputs, so XLA shares nothing between the
    sums or with the optimizer's passes: a shared ``g*g`` (with the second
    moment's ``g²``) or a shared bfloat16 -> float32 conversion would be written
    out as an array. The barrier on the results keeps XLA from rewriting the
    layer sums (sums of the channel sums) into second full passes.
    """
    sums = []
    for operands in ((grad, param), (grad,), (param,), *extra_pairs):
        operands = barrier(tuple(operands))
        x, y = operands if len(operands) == 2 else operands * 2
        sums.append(channel_sum(x.astype(dtype) * y.astype(dtype), axis))
    return tuple(barrier(tuple(sums)))
