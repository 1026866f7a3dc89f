"""The step on the Keras torch backend: all variables at once, in ``torch._foreach`` ops.

Keras runs the optimizer eagerly on torch, so each tensor operation is a Python
dispatch; Keras's own torch optimizers (``keras/src/backend/torch/optimizers``)
therefore override ``_backend_update_step`` and step every variable with one
multi-tensor (``torch._foreach_*``) call per operation. AdamP and SGDP do the
same: the moments, the decay and the update are ``_foreach`` calls over all
variables; the projection needs per-channel sums, which are per-variable
reductions over a ``(rows, channels)`` view (Keras layout: channels last, so the
view is free for contiguous kernels), and its decision is taken for all
variables at once on the concatenated channel statistics, indexed by a cached
row-to-variable map. Per-variable scalars (bias corrections, decay factors) are
0-d device tensors: nothing is read back to the host.

The math, including the overflow-safe squared cosine test, is that of
``adamp_keras._projection.project``. Variables this path does not handle
(16-bit variables, which are updated in float32; sparse gradients) go through
the generic per-variable ``update_step``.
"""

from __future__ import annotations

import math

import torch

from adamp_core import Branch

__all__ = ["adamp_step", "sgdp_step"]

_FAST_DTYPES = (torch.float32, torch.float64)


def split_fast(optimizer, grads, variables):
    """``(fast, slow)`` lists of ``(index, grad, variable)``: fast ones go through the
    multi-tensor step (float32/float64 variables with dense same-dtype gradients)."""
    fast, slow = [], []
    for grad, variable in zip(grads, variables, strict=True):
        entry = (optimizer._get_variable_index(variable), grad, variable)
        value = variable.value
        ok = isinstance(grad, torch.Tensor) and not grad.is_sparse
        ok = ok and value.dtype in _FAST_DTYPES and grad.dtype == value.dtype
        (fast if ok else slow).append(entry)
    return fast, slow


def _rows(x, axis: int):
    """``x`` as a ``(rows, channels)`` matrix with the channel axis last (a view for
    contiguous Keras kernels, whose channel axis is the last)."""
    if axis != x.ndim - 1:
        x = x.movedim(axis, -1)
    return x.reshape(-1, x.shape[-1])


class _Decision:
    """The projection of the projected variables: per-variable coefficient rows
    (``u ← u - w·coef``), decay ratios and branch codes, all on the device."""

    def __init__(self, optimizer, indices, params, grads, updates, dtype):
        axes = [optimizer._channel_axes[i] for i in indices]
        stats = [
            _channel_stats(optimizer, _rows(w, a), _rows(g, a), _rows(u, a))
            for a, w, g, u in zip(axes, params, grads, updates, strict=True)
        ]
        shapes = [tuple(p.shape) for p in params]
        seg, row_t, layer_t = _layout(optimizer, shapes, axes, params[0].device, dtype)
        joined = torch.cat(stats, dim=1)  # (4, rows of all variables)
        n = len(stats)
        eps, eps2 = optimizer.epsilon, optimizer.epsilon**2
        gg, ww, gw, wu = joined.unbind(0)
        # the squared, overflow-safe cosine test of adamp_keras._projection.project
        passes = (gw / gg.clamp_min(eps2) * gw < row_t * ww.clamp_min(eps2)).to(dtype)
        channel = joined.new_ones(n).scatter_reduce_(0, seg, passes, "amin") > 0
        layer_sums = joined.new_zeros(4, n).scatter_add_(1, seg.expand(4, -1), joined)
        gg_l, ww_l, gw_l, wu_l = layer_sums.unbind(0)
        layer_ok = gw_l / gg_l.clamp_min(eps2) * gw_l < layer_t * ww_l.clamp_min(eps2)
        layer = layer_ok & ~channel
        coef_rows = wu / (ww.sqrt() + eps) ** 2
        coef_layer = wu_l / (ww_l.sqrt() + eps) ** 2
        zero = joined.new_zeros(())
        coef_rows = torch.where(
            channel[seg], coef_rows, torch.where(layer[seg], coef_layer[seg], zero)
        )
        fired = (channel | layer).to(dtype)
        self.ratio = list((fired * optimizer.wd_ratio + (1.0 - fired)).unbind(0))
        self.branch = int(Branch.CHANNEL) * channel.to(torch.int32) + int(Branch.LAYER) * layer.to(
            torch.int32
        )
        rows = [s.shape[1] for s in stats]
        self.coef = [
            _broadcastable(c, axis, p.ndim)
            for c, axis, p in zip(coef_rows.split(rows), axes, params, strict=True)
        ]


def _fold(rows: int, channels: int) -> int:
    """k: the ``(rows, channels)`` view is summed as ``(rows / k, k·channels)``.

    A matrix-vector product over a narrow matrix (a few hundred channels) runs
    below memory speed on CPU; folding rows into columns until a row holds at
    least ``_FOLD_WIDTH`` values makes it wide (the k partial sums per channel are
    added afterwards). k is a power of two dividing ``rows``."""
    k = 1
    while k * channels < _FOLD_WIDTH and rows % (2 * k) == 0:
        k *= 2
    return k


_FOLD_WIDTH = 4096


def _channel_stats(optimizer, w, g, u):
    """(4, channels): per channel ``g·g, w·w, g·w, w·u`` of ``(rows, channels)`` views.

    Each product goes into a reused workspace and is summed over the rows by a
    matrix-vector product with ones, which reads the rows contiguously (a
    ``sum(0)`` over the strided axis, or a fresh temporary per product, costs
    about twice as much on CPU); see :func:`_fold` for the product's shape."""
    rows, channels = w.shape
    k = _fold(rows, channels)
    cache = optimizer.__dict__.setdefault("_torch_workspace", {})
    key = (w.device, w.dtype)
    space = cache.get(key)
    if space is None or space.numel() < w.numel():
        space = cache[key] = torch.empty(w.numel(), dtype=w.dtype, device=w.device)
    ones_key = (w.device, w.dtype, rows // k)
    if ones_key not in cache:
        cache[ones_key] = torch.ones(rows // k, dtype=w.dtype, device=w.device)
    ones, product = cache[ones_key], space[: w.numel()].view(w.shape)
    folded = product.view(rows // k, k * channels)
    sums = []
    for x, y in ((g, g), (w, w), (g, w), (w, u)):
        torch.mul(x, y, out=product)
        sums.append(ones @ folded)
    return torch.stack(sums).view(4, k, channels).sum(1)


def _broadcastable(coef, axis: int, ndim: int):
    shape = [1] * ndim
    shape[axis] = coef.shape[0]
    return coef.view(shape)


def _layout(optimizer, shapes, axes, device, dtype):
    """(row -> variable index, per-row channel threshold δ²/d, per-variable layer
    threshold δ²/size), cached on the optimizer for these shapes."""
    cache = optimizer.__dict__.setdefault("_torch_layout_cache", {})
    key = (tuple(shapes), tuple(axes), device, dtype)
    if key not in cache:
        channels = [s[a] for s, a in zip(shapes, axes, strict=True)]
        sizes = [math.prod(s) for s in shapes]
        d2 = optimizer.delta**2
        seg = torch.repeat_interleave(torch.arange(len(shapes)), torch.tensor(channels))
        row_t = torch.tensor([d2 / (n // c) for n, c in zip(sizes, channels, strict=True)])
        layer_t = torch.tensor([d2 / n for n in sizes], dtype=torch.float64)
        cache[key] = (
            seg.to(device),
            row_t.to(torch.float64)[seg].to(dtype).to(device),
            layer_t.to(dtype).to(device),
        )
    return cache[key]


def _projected(optimizer, fast):
    """Positions (in ``fast``) of the variables the projection considers."""
    return [
        k
        for k, (index, _, variable) in enumerate(fast)
        if optimizer._channel_axes[index] is not None and math.prod(variable.shape) > 0
    ]


def _project(optimizer, fast, params, grads, updates, dtype):
    """The projection of ``updates`` (not applied): per variable the coefficient
    (``u ← u - w·coef``, broadcastable to w; None where not projected) and the
    decay ratio (1 or wd_ratio; None where not projected). Writes the branch codes."""
    coefs, ratios = [None] * len(fast), [None] * len(fast)
    chosen = _projected(optimizer, fast)
    if chosen:
        indices = [fast[k][0] for k in chosen]
        decision = _Decision(
            optimizer, indices, *([x[k] for k in chosen] for x in (params, grads, updates)), dtype
        )
        branches = [optimizer._branches[i].value for i in indices]
        torch._foreach_copy_(branches, list(decision.branch.unbind(0)))
        for k, coef, ratio in zip(chosen, decision.coef, decision.ratio, strict=True):
            coefs[k], ratios[k] = coef, ratio
    return coefs, ratios


def _scales(optimizer, fast, lr, ratios, coefs, steps, decay_scale: float):
    """Per variable the factor s with ``w ← s·w + step·u`` = decay then the projected
    update ``step·(u - coef·w)``: ``s = 1 - η λ decay_scale r - step·coef``."""
    scales = []
    for k, (index, _, _) in enumerate(fast):
        factor = lr.new_ones(())
        if optimizer.weight_decay and optimizer._decays(index):
            lam = lr * (optimizer.weight_decay * decay_scale)
            factor = 1.0 - lam * (ratios[k] if ratios[k] is not None else 1.0)
        scales.append(factor if coefs[k] is None else factor - steps[k] * coefs[k])
    return scales


@torch.no_grad()
def adamp_step(optimizer, fast, learning_rate) -> None:
    """One AdamP step of the variables in ``fast`` (see ``adamp_keras.adamp``)."""
    dtype = fast[0][2].value.dtype
    params = [v.value for _, _, v in fast]
    grads = [g for _, g, _ in fast]
    indices = [i for i, _, _ in fast]
    m = [optimizer._exp_avgs[i].value for i in indices]
    v = [optimizer._exp_avg_sqs[i].value for i in indices]
    steps = [optimizer._steps[i].value for i in indices]
    torch._foreach_add_(steps, 1)
    t = torch.stack(steps).to(dtype)
    bias1 = 1.0 - optimizer.beta_1**t
    sqrt_bias2 = torch.sqrt(1.0 - optimizer.beta_2**t)

    torch._foreach_mul_(m, optimizer.beta_1)
    torch._foreach_add_(m, grads, alpha=1.0 - optimizer.beta_1)
    torch._foreach_mul_(v, optimizer.beta_2)
    torch._foreach_addcmul_(v, grads, grads, value=1.0 - optimizer.beta_2)

    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, list(sqrt_bias2.unbind(0)))
    torch._foreach_add_(denom, optimizer.epsilon)
    if optimizer.nesterov:
        numerator = torch._foreach_mul(m, optimizer.beta_1)
        torch._foreach_add_(numerator, grads, alpha=1.0 - optimizer.beta_1)
    else:
        numerator = m
    updates = torch._foreach_div(numerator, denom)
    del denom, numerator

    lr = learning_rate.to(dtype)
    coefs, ratios = _project(optimizer, fast, params, grads, updates, dtype)
    step = list((-lr / bias1).unbind(0))
    # w ← w·(1 - η λ r) - η/(1 - β₁ᵗ)·(u - coef·w), in two passes over w
    torch._foreach_mul_(params, _scales(optimizer, fast, lr, ratios, coefs, step, 1.0))
    torch._foreach_addcmul_(params, updates, step)


@torch.no_grad()
def sgdp_step(optimizer, fast, learning_rate) -> None:
    """One SGDP step of the variables in ``fast`` (see ``adamp_keras.sgdp``)."""
    dtype = fast[0][2].value.dtype
    params = [v.value for _, _, v in fast]
    grads = [g for _, g, _ in fast]
    mu, damp = optimizer.momentum, optimizer.dampening
    if optimizer._buffers:
        buffers = [optimizer._buffers[i].value for i, _, _ in fast]
        torch._foreach_mul_(buffers, mu)
        torch._foreach_add_(buffers, grads, alpha=1.0 - damp)
    else:
        buffers = torch._foreach_mul(grads, 1.0 - damp)
    keep_projected = optimizer.project_buffer and not optimizer.nesterov and optimizer._buffers
    directions = torch._foreach_add(grads, buffers, alpha=mu) if optimizer.nesterov else buffers

    lr = learning_rate.to(dtype)
    coefs, ratios = _project(optimizer, fast, params, grads, directions, dtype)
    step = [-lr] * len(fast)
    if keep_projected:
        # the authors' code projects the stored buffer in place; w then moves along it
        chosen = [k for k, coef in enumerate(coefs) if coef is not None]
        torch._foreach_addcmul_(
            [directions[k] for k in chosen], [params[k] for k in chosen],
            [coefs[k] for k in chosen], value=-1,
        )  # fmt: skip
        coefs = [None] * len(fast)
    # w ← w·(1 - η λ r/(1 - μ)) - η·(d - coef·w), in two passes over w
    torch._foreach_mul_(params, _scales(optimizer, fast, lr, ratios, coefs, step, 1 / (1 - mu)))
    torch._foreach_addcmul_(params, directions, step)
