"""The projection of AdamP and SGDP as device-side tensor math (no host synchronisation).

Heo et al., ICLR 2021 (arXiv:2006.08217), as implemented by the authors' ``adamp``
0.3.0; the NumPy specification is :func:`adamp_core.projection`. For a weight w
with gradient g and update u, PyTorch layout (output channels on axis 0), the
channel view has one row per output channel and the layer view is one row. Per
row i of a view (row length d)::

    cos_i = |g_i · w_i| / (max(||g_i||, ε) · max(||w_i||, ε))
    fires  = max_i cos_i < δ / sqrt(d)
    u_i   ← u_i - w_i · (w_i · u_i) / (||w_i|| + ε)²      (= u - ŵ (ŵ · u), ŵ = w/(||w||+ε))

The channel view is tried first, then the layer view. The layer statistics are
sums of the channel ones, so each tensor is read once per statistic:
``g·g, w·w, g·w, w·u`` per channel row, and everything after that works on
vectors of rows. The decision is a ``torch.where`` select, never a Python
``if`` on a value, so a step neither synchronises with the host nor breaks a
``torch.compile`` graph.

Tensors are handled in batches: the row statistics of N tensors are
concatenated into one (4, R) matrix, ``seg`` maps each row to its tensor, and
the per-tensor (layer) quantities are ``scatter_add`` / ``scatter_reduce`` over
``seg``. Under FSDP2 a tensor is sharded along axis 0 (``Shard(0)``), so each
channel row lives whole on one rank: the row statistics are local, and only
the per-tensor sums (all-reduce SUM) and channel maxima (all-reduce MAX) cross
ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from adamp_torch._cache import cached

__all__ = ["Decision", "decide", "row_stats"]


class Decision(NamedTuple):
    """The projection of a batch of N tensors with R local channel rows in all."""

    coef: Tensor  # (R,): u ← u - w · coef per row (0 where nothing fired)
    ratio: Tensor  # (N,): wd_ratio where a view fired, else 1
    branch: Tensor  # (N,) int64: adamp_core.Branch codes (0 none, 1 channel, 2 layer)
    seg: Tensor  # (R,) int64: the tensor index of each row
    rows: list[int]  # local rows per tensor, to split (R,) vectors back


def _flat_rows(x: Tensor) -> Tensor:
    # flatten(1) is a view for contiguous tensors and a copy otherwise (channels_last,
    # other strides): reshape-based, it works for every layout, unlike .view(rows, -1).
    return x.flatten(1) if x.ndim > 2 else x


def _dot_rows(x: Tensor, y: Tensor, spare: Tensor | None) -> Tensor:
    if spare is None:
        return torch.linalg.vecdot(x, y)
    return torch.mul(x, y, out=spare.view(x.shape)).sum(dim=1)


def row_stats(param: Tensor, grad: Tensor, update: Tensor, spare: Tensor | None = None) -> Tensor:
    """(4, rows): per output channel ``g·g, w·w, g·w, w·u`` (sums over axes 1..ndim-1).

    ``spare``, a contiguous buffer of ``param``'s size, holds the products instead
    of a fresh temporary. float16 and bfloat16 tensors get float32 statistics.
    """
    w, g, u = _flat_rows(param), _flat_rows(grad), _flat_rows(update)
    if param.dtype in (torch.float16, torch.bfloat16):
        # in 16 bits, (||w|| + ε)² underflows for ε = 1e-8 (a zero weight would give 0/0)
        # and overflows for ||w|| > 256: decide in float32
        w, g, u, spare = w.float(), g.float(), u.float(), None
    g_norm = torch.linalg.vector_norm(g, dim=1)
    w_norm = torch.linalg.vector_norm(w, dim=1)
    return torch.stack(
        [g_norm * g_norm, w_norm * w_norm, _dot_rows(g, w, spare), _dot_rows(w, u, spare)]
    )


def _segments(rows: Sequence[int], like: Tensor, cache: dict | None) -> Tensor:
    def build() -> Tensor:
        counts = torch.tensor(list(rows), dtype=torch.int64)
        seg = torch.repeat_interleave(torch.arange(len(rows)), counts, output_size=sum(rows))
        return seg.to(like.device, non_blocking=True)

    return cached(cache, "segments", like, tuple(rows), build)


def _thresholds(
    shapes: Sequence[torch.Size], delta: float, like: Tensor, cache: dict | None
) -> tuple[Tensor, Tensor]:
    """δ/sqrt(d) per tensor for the channel view and the layer view (computed in float64)."""

    def build() -> tuple[Tensor, Tensor]:
        channel = [delta / math.sqrt(math.prod(s[1:])) for s in shapes]
        layer = [delta / math.sqrt(math.prod(s)) for s in shapes]
        both = torch.tensor([channel, layer], dtype=torch.float64).to(like.dtype)
        both = both.to(like.device, non_blocking=True)
        return both[0], both[1]

    return cached(cache, "thresholds", like, (delta, *(tuple(s) for s in shapes)), build)


def decide(
    stats: Sequence[Tensor],
    shapes: Sequence[torch.Size],
    *,
    delta: float,
    wd_ratio: float,
    eps: float,
    groups: Sequence[object] = (),
    cache: dict | None = None,
) -> Decision:
    """Decide the projection of N tensors from their :func:`row_stats`.

    Args:
      stats: per tensor, the (4, local rows) output of :func:`row_stats`.
      shapes: per tensor, its global shape (a DTensor's full shape); the
        thresholds use the global row length.
      delta, wd_ratio, eps: the optimizer's δ, wd_ratio and ε (Python floats).
      groups: process groups across which a tensor's rows are sharded; the
        per-tensor sums and maxima are all-reduced over each.
      cache: a dict that keeps the row-to-tensor index and the thresholds between
        steps (so that, after a first step, a step copies nothing from the host).
    """
    rows = [s.shape[1] for s in stats]
    joined = torch.cat(list(stats), dim=1)
    seg = _segments(rows, joined, cache)
    n = len(stats)
    gg, ww, gw, wu = joined.unbind(0)
    w_norm = ww.sqrt()
    cos_rows = gw.abs() / (gg.sqrt().clamp_min(eps) * w_norm.clamp_min(eps))
    channel_max = joined.new_zeros(n).scatter_reduce_(0, seg, cos_rows, "amax")
    layer = joined.new_zeros(4, n).scatter_add_(1, seg.expand(4, -1), joined)
    if groups:
        import torch.distributed as dist

        for group in groups:
            dist.all_reduce(layer, op=dist.ReduceOp.SUM, group=group)
            dist.all_reduce(channel_max, op=dist.ReduceOp.MAX, group=group)
    lgg, lww, lgw, lwu = layer.unbind(0)
    l_norm = lww.sqrt()
    cos_layer = lgw.abs() / (lgg.sqrt().clamp_min(eps) * l_norm.clamp_min(eps))
    channel_thr, layer_thr = _thresholds(shapes, delta, joined, cache)
    channel = channel_max < channel_thr
    layer_fires = (cos_layer < layer_thr) & ~channel
    coef_rows = wu / (w_norm + eps).square()
    coef_layer = lwu / (l_norm + eps).square()
    coef = torch.where(channel[seg], coef_rows, torch.where(layer_fires[seg], coef_layer[seg], 0.0))
    fired = channel | layer_fires
    # a Python float in where() would become a float32 tensor: build it in the stats' dtype
    ratio = torch.where(fired, joined.new_full((), wd_ratio), joined.new_ones(()))
    branch = channel.to(torch.int64) + 2 * layer_fires.to(torch.int64)
    return Decision(coef, ratio, branch, seg, rows)


def per_row(values: Tensor, decision: Decision, ndims: Sequence[int]) -> list[Tensor]:
    """Split an (R,) vector into per-tensor (rows, 1, ..., 1) tensors that broadcast."""
    return [
        part.reshape(part.shape[0], *([1] * (ndim - 1)))
        for part, ndim in zip(values.split(decision.rows), ndims, strict=True)
    ]
