"""The projection of AdamP and SGDP in ``keras.ops`` (runs on every Keras backend).

Heo et al., ICLR 2021 (arXiv:2006.08217), as implemented by the authors' ``adamp``
0.3.0; the NumPy specification is :func:`adamp_core.projection`. For a weight w
with gradient g and update u, the channel view has one row per output channel
(Keras layout: the last axis, ``channel_axis=-1``) and the layer view is one row.
Per row i of a view (row length d)::

    cos_i = |g_i · w_i| / (max(||g_i||, ε) · max(||w_i||, ε))
    fires = max_i cos_i < δ / sqrt(d)       (evaluated squared, see project())
    u_i  ← u_i - w_i · (w_i · u_i) / (||w_i|| + ε)²       (= u - ŵ (ŵ · u), ŵ = w/(||w||+ε))

The channel view is tried first, then the layer view. Each channel statistic
(``g·g, w·w, g·w, w·u``) is a sum over every axis but the channel axis (with
channels last, a ``(rows, channels)`` view summed by a matrix-vector product),
and the layer statistic is the sum of the channel ones, so each tensor is read
once per statistic. The projection is returned as a per-channel coefficient,
``u - w·c``, which the optimizers fold into their final pass. The choice is ``ops.where``, never a
Python ``if`` on a value, so the step traces under ``jit`` / ``tf.function`` and
never synchronises with the host.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
from keras import ops

from adamp_core import Branch

__all__ = ["Projected", "project"]


class Projected(NamedTuple):
    """What the projection does to one variable's update u: ``u - w·coef``."""

    coef: object  # tensor broadcastable to the variable: per-channel, per-tensor or 0
    ratio: object  # scalar tensor: wd_ratio where a view fired, else 1
    branch: object  # int32 scalar tensor: an adamp_core.Branch code


def _channel_sum(x, channel_axis: int, shape):
    """Per-channel sums of ``x`` over every other axis, shaped to broadcast against it.

    On TensorFlow with channels last (Keras layout) ``x`` is a ``(rows, channels)``
    matrix and the sums are ``ones(1, rows) @ x``: a matrix-vector product reads
    the rows contiguously (about 25% faster than a strided ``reduce_sum`` on CPU).
    Elsewhere ``ops.sum``: XLA fuses it with the product, and Keras's torch
    ``matmul`` computes float64 inputs in float32.
    """
    rows = math.prod(shape) // shape[channel_axis]
    if channel_axis == len(shape) - 1 and keras.backend.backend() == "tensorflow":
        ones = ops.ones((1, rows), dtype=x.dtype)
        return ops.matmul(ones, ops.reshape(x, (rows, shape[-1])))  # (1, channels)
    axes = tuple(i for i in range(len(shape)) if i != channel_axis)
    return ops.sum(x, axis=axes, keepdims=True)


def project(
    param,
    grad,
    update,
    *,
    channel_axis: int,
    delta: float,
    wd_ratio: float,
    eps: float,
    grad_sq=None,
):
    """The projection of ``update`` for ``param`` (see the module docstring).

    Returns the coefficient c with ``projected update = update - param·c`` (c is 0
    where no view fires), so that callers fold the projection into their final
    pass. The test ``|g·w| / (max(||g||, ε)·max(||w||, ε)) < t`` is evaluated
    squared, as ``(g·w / max(g·g, ε²))·(g·w) < t²·max(w·w, ε²)`` (the same
    inequality: both sides are >= 0 and max(sqrt(x), ε) = sqrt(max(x, ε²))),
    which saves the square roots. Dividing by g·g before multiplying by g·w keeps
    every intermediate finite: the left side is at most w·w (Cauchy-Schwarz), so
    the test is exact up to rounding for any float32 g and w with finite g·g and
    w·w (||g||, ||w|| < 1.8e19), where ``(g·w)²`` would overflow to inf once
    |g·w| > 1.8e19 and never project. Arithmetic uses the tensors' operators,
    ``keras.ops`` only where an operator does not exist, so eager backends
    dispatch few calls.

    Args:
      param: w before this step's decay and update (a tensor of static shape, ndim >= 2).
      grad: ∇f(w) of this step, same shape and dtype.
      update: the direction to project (Adam's m̂/denominator, SGD's buffer), or
        any positive multiple of it (c scales with it).
      channel_axis: the output-channel axis, already normalised to ``[0, ndim)``.
      delta, wd_ratio, eps: δ, the decay ratio where a view fires, ε.
      grad_sq: ``grad * grad`` if the caller has it already (AdamP's second moment).

    Returns:
      :class:`Projected` ``(coef, ratio, branch)``.
    """
    shape = tuple(param.shape)
    size = math.prod(shape)
    gg = _channel_sum(grad * grad if grad_sq is None else grad_sq, channel_axis, shape)
    ww = _channel_sum(param * param, channel_axis, shape)
    gw = _channel_sum(grad * param, channel_axis, shape)
    wu = _channel_sum(param * update, channel_axis, shape)
    gg_l, ww_l, gw_l, wu_l = (ops.sum(s) for s in (gg, ww, gw, wu))

    eps2 = eps * eps
    row_length = size // shape[channel_axis]
    # (g·w / max(g·g, ε²))·(g·w) <= w·w: nothing overflows (see above)
    lhs, lhs_l = gw / ops.maximum(gg, eps2) * gw, gw_l / ops.maximum(gg_l, eps2) * gw_l
    channel_fires = ops.all(lhs < (delta * delta / row_length) * ops.maximum(ww, eps2))
    layer_fires = ops.logical_and(
        ops.logical_not(channel_fires), lhs_l < (delta * delta / size) * ops.maximum(ww_l, eps2)
    )

    coef_channel = wu / (ops.sqrt(ww) + eps) ** 2
    coef_layer = wu_l / (ops.sqrt(ww_l) + eps) ** 2
    coef = ops.where(channel_fires, coef_channel, ops.where(layer_fires, coef_layer, 0.0))
    fired = ops.cast(ops.logical_or(channel_fires, layer_fires), param.dtype)
    ratio = fired * wd_ratio + (1.0 - fired)  # exactly wd_ratio or 1
    branch = int(Branch.CHANNEL) * ops.cast(channel_fires, "int32") + int(Branch.LAYER) * ops.cast(
        layer_fires, "int32"
    )
    return Projected(coef, ratio, branch)
