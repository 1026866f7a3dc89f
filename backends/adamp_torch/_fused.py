"""``fused=True``: the AdamP and SGDP step as a few kernels per bucket.

On the CPU one call of a C++ multi-tensor kernel (:mod:`adamp_torch._cpu_kernel`)
steps a whole bucket: per tensor, a read-only pass for the row statistics, the
decision, and one pass that writes the state and the parameter. The number of
calls does not grow with the number of tensors.

On CUDA, and for FSDP2-sharded buckets, Inductor compiles the step functions
below once per (dtype, device type) with every size symbolic, so one set of
generated kernels (Triton on CUDA, C++ on the CPU) serves every parameter shape
and no shape, learning rate or set of parameters with gradients recompiles them:

- ``adamp_tensor`` / ``sgdp_tensor``: the whole step of one projected tensor
  (ndim > 1) viewed as (rows, cols) in memory order: one compiled call each;
- sharded: ``*_stats`` per tensor (the (4, rows) row statistics), the batched
  decision of :func:`adamp_torch._projection.decide` with its all-reduces, then
  ``*_apply`` per tensor, the projection folded into a per-row scale of w;
- ``*_plain``: the tensors that are never projected (biases, norms: small),
  concatenated into one flat vector, updated by one call and copied back.

Everything is computed in float32 for float16/bfloat16 parameters (float64
for float64 ones) and rounded once when written. With a GradScaler (``grad_scale``
and ``found_inf``, as torch's fused optimizers take them) the gradients are
unscaled inside the kernels and a step with ``found_inf`` writes nothing back.
"""

from __future__ import annotations

import functools
import math
import shutil
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.fx.experimental import _config as fx_config

from adamp_torch import _cpu_kernel
from adamp_torch._cache import cached
from adamp_torch._functional import (
    Bucket,
    ProjectionArgs,
    _vector,
    bias_corrections,
    decay_factors,
    decide_bucket,
)
from adamp_torch._projection import Decision

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FALLBACK = "use fused=False (the default single-tensor path on the CPU, or foreach=True)"


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype the step is computed in: float32 for 16-bit parameters."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# ---------------------------------------------------------------- checks


def check_fused_param(p: Tensor, name: str) -> None:
    """Refuse, at construction, a parameter the fused path cannot step."""
    if p.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"{name}(fused=True) supports float16, bfloat16, float32 and float64 parameters, "
            f"got one of dtype {p.dtype}; {_FALLBACK}"
        )
    device = p.device.type
    if device == "cpu":
        _check_cpp_compiler(name)
    elif device == "cuda":
        _check_triton(name)
    else:
        raise ValueError(
            f"{name}(fused=True) runs on CPU and CUDA parameters, got one on {p.device}; "
            f"{_FALLBACK}"
        )


def check_fused_group(group: dict, defaults: dict, name: str) -> None:
    """One ``fused`` for all groups (GradScaler treats the optimizer as a whole), and params
    that the fused path can step."""
    if group["fused"] != defaults.get("fused"):
        raise ValueError(
            f"fused must be the same in every parameter group of {name}: the constructor has "
            f"fused={defaults.get('fused')}, a group has fused={group['fused']}"
        )
    for p in group["params"]:
        check_fused_param(p, name)


@functools.cache
def _cpp_compiler() -> str | None:
    try:
        from torch._inductor import cpp_builder

        return cpp_builder.get_cpp_compiler()
    except Exception:  # any failure means "no usable compiler"
        return None


def _check_cpp_compiler(name: str) -> None:
    compiler = _cpp_compiler()
    if compiler is None or shutil.which(compiler) is None:
        raise RuntimeError(
            f"{name}(fused=True) on the CPU needs a C++ compiler (the step is compiled C++ "
            f"there), and none was found: install g++ or set CXX; or {_FALLBACK}"
        )


def _check_triton(name: str) -> None:
    from torch.utils._triton import has_triton

    if not has_triton():
        raise RuntimeError(
            f"{name}(fused=True) on CUDA needs Triton (Inductor generates the step as Triton "
            f"kernels), and it is not installed or not usable; {_FALLBACK}"
        )


# ---------------------------------------------------------------- layout


def row_order(p: Tensor) -> list[int] | None:
    """Axis order that makes ``p`` contiguous with axis 0 first (None if there is none).

    Contiguous: 0, 1, ..., n-1; channels_last (N, C, H, W): 0, 2, 3, 1. Every
    channel row is then one contiguous run, so a (rows, cols) view exists.
    """
    if p.is_contiguous():
        return list(range(p.ndim))
    rest = sorted(range(1, p.ndim), key=lambda d: (-p.stride(d), d))
    order = [0, *rest]
    return order if p.permute(order).is_contiguous() else None


def rows_view(t: Tensor, order: list[int]) -> Tensor:
    """``t`` as (rows, cols) in ``order``: a view when the layout matches, else a copy.

    Detached, so the compiled functions see a plain tensor rather than a view of
    a base whose rank and strides they would guard on (writes still land in ``t``).
    """
    if t.is_contiguous() and order == sorted(order):
        return t.view(_rows_cols(t)).detach()
    return t.permute(order).reshape(_rows_cols(t)).detach()


def _rows_cols(t: Tensor) -> tuple[int, int]:
    return t.shape[0], math.prod(t.shape[1:])


def writable_rows(t: Tensor, order: list[int], pending: list) -> Tensor:
    """``t`` as a (rows, cols) view to write into; a copy queued in ``pending`` if it has none.

    A state tensor laid out unlike its parameter (a model moved to channels_last
    after the first step) is worked on as a copy and copied back after the step.
    """
    if t.is_contiguous() and order == sorted(order):
        return t.view(_rows_cols(t)).detach()
    permuted = t.permute(order)
    if permuted.is_contiguous():
        return permuted.view(_rows_cols(t)).detach()
    copy = permuted.contiguous()
    pending.append((permuted, copy))
    return copy.view(_rows_cols(t))


# ---------------------------------------------------------------- compiled functions


@functools.cache
def compiled(fn: Callable, like: tuple[torch.dtype, str]) -> Callable:
    """``fn`` compiled once for every shape; call it inside :func:`every_shape`.

    One copy of ``fn`` per (dtype, device type): Dynamo keeps its compilations per
    code object, up to a limit (8), and the static flags times four dtypes would
    exceed it in one process.
    """
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{str(like[0])[6:]}_{like[1]}")
    clone = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__)
    return torch.compile(clone, dynamic=True, fullgraph=True)


def every_shape():
    """Sizes stay symbolic even when 0 or 1 (no specialisation, so no recompilation)."""
    return fx_config.patch(backed_size_oblivious=True, use_duck_shape=False)


def _grad(g: Tensor, grad_factor: Tensor) -> Tensor:
    # grad_factor = ±1/grad_scale (- under maximize): a tensor, so neither recompiles
    return g.to(grad_factor.dtype) * grad_factor


def _stack_stats(w: Tensor, g: Tensor, u: Tensor) -> Tensor:
    return torch.stack([(g * g).sum(1), (w * w).sum(1), (g * w).sum(1), (w * u).sum(1)])


def _adamp_direction(g, m, v, c1, beta2, c2, shift, grad_factor, nesterov):
    """The new moments and the direction u, all in the compute dtype (never rounded)."""
    gf = _grad(g, grad_factor)
    m_new = torch.lerp(m.to(gf.dtype), gf, c1)
    v_new = v.to(gf.dtype) * beta2 + c2 * gf * gf
    numerator = torch.where(nesterov, torch.lerp(m_new, gf, c1), m_new)
    return gf, m_new, v_new, numerator / (v_new.sqrt() + shift)


def adamp_stats(w, g, m, v, c1, beta2, c2, shift, grad_factor, nesterov):
    """The (4, rows) statistics of the step's direction; writes nothing (2-D views).

    The moments are written by :func:`adamp_apply`, which recomputes them from the
    same inputs: u never comes from moments rounded to a 16-bit state (where a
    small v rounds to 0 and u would blow up).
    """
    gf, _, _, u = _adamp_direction(g, m, v, c1, beta2, c2, shift, grad_factor, nesterov)
    return _stack_stats(w.to(gf.dtype), gf, u)


def adamp_apply(w, g, m, v, scale, neg_step, c1, beta2, c2, shift, grad_factor, skip, nesterov):
    """m, v updated; w ← scale·w + neg_step·u (unless ``skip``); 2-D views."""
    _, m_new, v_new, u = _adamp_direction(g, m, v, c1, beta2, c2, shift, grad_factor, nesterov)
    w_new = w.to(shift.dtype) * scale.unsqueeze(1) + neg_step * u
    m.copy_(torch.where(skip, m, m_new.to(m.dtype)))
    v.copy_(torch.where(skip, v, v_new.to(v.dtype)))
    w.copy_(torch.where(skip, w, w_new.to(w.dtype)))


def adamp_plain(w, g, m, v, c1, beta2, c2, shift, neg_step, decay, grad_factor, skip, nesterov):
    """The unprojected update of flat vectors; per-element ``shift`` and ``neg_step``."""
    _, m_new, v_new, u = _adamp_direction(g, m, v, c1, beta2, c2, shift, grad_factor, nesterov)
    w_new = w.to(shift.dtype) * decay + neg_step * u
    return (
        torch.where(skip, w, w_new.to(w.dtype)),
        torch.where(skip, m, m_new.to(m.dtype)),
        torch.where(skip, v, v_new.to(v.dtype)),
    )


def _decide(w, gf, u, delta, wd_ratio, eps):
    """:func:`adamp_torch._projection.decide` for one unsharded (rows, cols) tensor.

    Returns the per-row projection coefficient (0 where nothing fired), the decay
    ratio (wd_ratio where a view fired, else 1) and the branch code. The thresholds
    δ/sqrt(d) are computed in float64 and rounded, as the batched decision does.
    """
    wf = w.to(gf.dtype)
    gg, ww, gw, wu = (gf * gf).sum(1), (wf * wf).sum(1), (gf * wf).sum(1), (wf * u).sum(1)
    w_norm = ww.sqrt()
    cos_rows = gw.abs() / (gg.sqrt().clamp_min(eps) * w_norm.clamp_min(eps))
    l_norm = ww.sum().sqrt()
    cos_layer = gw.sum().abs() / (gg.sum().sqrt().clamp_min(eps) * l_norm.clamp_min(eps))
    rows, cols = w.shape
    channel_thr = (delta / torch.full((), cols, dtype=torch.float64).sqrt()).to(gf.dtype)
    layer_thr = (delta / torch.full((), rows * cols, dtype=torch.float64).sqrt()).to(gf.dtype)
    channel = cos_rows.amax() < channel_thr
    layer = (cos_layer < layer_thr) & ~channel
    coef_rows = wu / (w_norm + eps).square()
    coef_layer = wu.sum() / (l_norm + eps).square()
    coef = torch.where(channel, coef_rows, torch.where(layer, coef_layer, 0.0))
    ratio = torch.where(channel | layer, wd_ratio, 1.0)
    return coef, ratio, channel.to(torch.int64) + 2 * layer.to(torch.int64)


def adamp_tensor(w, g, m, v, branch, c1, beta2, c2, shift, neg_step, decay_rate, delta,
                 wd_ratio, eps, grad_factor, skip, nesterov):  # fmt: skip
    """The whole AdamP step of one unsharded projected tensor: one compiled call."""
    _, m_new, v_new, u = _adamp_direction(g, m, v, c1, beta2, c2, shift, grad_factor, nesterov)
    coef, ratio, code = _decide(w, _grad(g, grad_factor), u, delta, wd_ratio, eps)
    scale = (1.0 - decay_rate * ratio) - neg_step * coef
    w_new = w.to(shift.dtype) * scale.unsqueeze(1) + neg_step * u
    m.copy_(torch.where(skip, m, m_new.to(m.dtype)))
    v.copy_(torch.where(skip, v, v_new.to(v.dtype)))
    w.copy_(torch.where(skip, w, w_new.to(w.dtype)))
    branch.copy_(torch.where(skip, branch, code))


def sgdp_tensor(w, g, b, branch, momentum, undamped, neg_step, decay_rate, delta, wd_ratio, eps,
                project, grad_factor, skip, nesterov):  # fmt: skip
    """The whole SGDP step of one unsharded projected tensor: one compiled call."""
    gf, b_new, d = _sgdp_direction(g, b, momentum, undamped, grad_factor, nesterov)
    coef, ratio, code = _decide(w, gf, d, delta, wd_ratio, eps)
    wf = w.to(gf.dtype)
    decay = 1.0 - decay_rate * ratio
    projected = b_new - wf * coef.unsqueeze(1)
    # kept projected buffer: d is the projected buffer; else the projection folds into w
    scale = torch.where(project, decay, decay - neg_step * coef)
    d = torch.where(project, projected, d)
    b.copy_(torch.where(skip, b, torch.where(project, projected, b_new).to(b.dtype)))
    w.copy_(torch.where(skip, w, (wf * scale.unsqueeze(1) + neg_step * d).to(w.dtype)))
    branch.copy_(torch.where(skip, branch, code))


def _sgdp_direction(g, b, momentum, undamped, grad_factor, nesterov):
    """The new buffer and the direction d (b, or g + μb under Nesterov), unrounded."""
    gf = _grad(g, grad_factor)
    b_new = b.to(gf.dtype) * momentum + undamped * gf
    return gf, b_new, torch.where(nesterov, gf + momentum * b_new, b_new)


def sgdp_stats(w, g, b, momentum, undamped, grad_factor, nesterov):
    """The (4, rows) statistics of the step's direction; writes nothing."""
    gf, _, d = _sgdp_direction(g, b, momentum, undamped, grad_factor, nesterov)
    return _stack_stats(w.to(gf.dtype), gf, d)


def sgdp_apply(
    w, g, b, scale, neg_step, coef, momentum, undamped, project, grad_factor, skip, nesterov
):
    """b updated; w ← scale·w + neg_step·d. With ``project`` (kept projected buffer),
    d = b - w·coef is both the direction and the stored buffer."""
    _, b_new, d = _sgdp_direction(g, b, momentum, undamped, grad_factor, nesterov)
    wf = w.to(scale.dtype)
    projected = b_new - wf * coef.unsqueeze(1)
    d = torch.where(project, projected, d)
    b.copy_(torch.where(skip, b, torch.where(project, projected, b_new).to(b.dtype)))
    w.copy_(torch.where(skip, w, (wf * scale.unsqueeze(1) + neg_step * d).to(w.dtype)))


def sgdp_plain(w, g, b, momentum, undamped, neg_step, decay, grad_factor, skip, nesterov):
    gf, b_new, d = _sgdp_direction(g, b, momentum, undamped, grad_factor, nesterov)
    w_new = w.to(gf.dtype) * decay + neg_step * d
    return torch.where(skip, w, w_new.to(w.dtype)), torch.where(skip, b, b_new.to(b.dtype))


# ---------------------------------------------------------------- the step


@dataclass
class Scaling:
    """GradScaler's ``grad_scale`` and ``found_inf`` on the bucket's device (or neutral)."""

    grad_factor: Tensor  # 0-dim, opmath dtype: 1/grad_scale, negated under maximize
    skip: Tensor  # 0-dim bool
    keep: Tensor  # 0-dim float32: 1 - found_inf, what the step counters advance by


def scaling(
    grad_scale: Tensor | None, found_inf: Tensor | None, like: Tensor, maximize: bool
) -> Scaling:
    dtype, device = opmath(like.dtype), like.device
    sign = -1.0 if maximize else 1.0
    if grad_scale is None:
        inv = torch.full((), sign, dtype=dtype, device=device)
    else:
        inv = sign / grad_scale.to(device, torch.float64, non_blocking=True)
        inv = inv.to(dtype)
    if found_inf is None:
        found = torch.zeros((), dtype=torch.float32, device=device)
    else:
        found = found_inf.to(device, torch.float32, non_blocking=True)
    return Scaling(inv, found > 0, 1.0 - found)


def projected_views(bucket: Bucket, keys: tuple[str, ...], pending: list) -> list[tuple]:
    """Per projected tensor, (w, g, *state) as (rows, cols) in memory order (views)."""
    views = []
    for i in range(bucket.n_projected):
        p = bucket.params[i]
        order = row_order(p) or list(range(p.ndim))
        written = [
            writable_rows(t, order, pending) for t in (p, *(bucket.state[k][i] for k in keys))
        ]
        views.append((written[0], rows_view(bucket.grads[i], order), *written[1:]))
    return views


CPU_KERNEL = True  # False: the CPU runs Inductor's per-tensor kernels too (as CUDA does)


def _uses_cpu_kernel(bucket: Bucket) -> bool:
    # sharded buckets all-reduce their row statistics between the two passes, which the
    # kernel cannot: they take Inductor's stats/apply calls
    return CPU_KERNEL and bucket.params[0].device.type == "cpu" and not bucket.groups


def kernel_operands(bucket: Bucket, keys: tuple[str, ...], pending: list) -> tuple[list, list]:
    """[params, grads, *state] of the bucket for the CPU kernel, and each tensor's (rows,
    cols): the memory of every operand is that row-major matrix, in the parameter's memory
    order for the projected tensors, one row for the others. Contiguous tensors go as they
    are (no view ops: a step of a large model would make thousands); others through
    (rows, cols) views, or copies queued in ``pending``."""
    operands: list[list[Tensor]] = [[] for _ in range(2 + len(keys))]
    shapes = []
    for i, p in enumerate(bucket.params):
        tensors = (p, bucket.grads[i], *(bucket.state[k][i] for k in keys))
        projected = i < bucket.n_projected
        if not all(t.is_contiguous() for t in tensors):
            tensors = _laid_out(tensors, projected, pending)
        rows = p.shape[0] if projected else 1
        shapes.append((rows, p.numel() // rows))
        for column, t in zip(operands, tensors, strict=True):
            column.append(t)
    return operands, shapes


def _laid_out(tensors: tuple[Tensor, ...], projected: bool, pending: list) -> tuple:
    w, g, *state = tensors
    if not projected:
        flat = _cpu_kernel.flat_rows
        return (flat(w, pending), flat(g, None), *(flat(t, pending) for t in state))
    order = row_order(w) or list(range(w.ndim))
    written = [writable_rows(t, order, pending) for t in (w, *state)]
    return (written[0], rows_view(g, order), *written[1:])


def finish(pending: list) -> None:
    """Copy the worked-on copies back (only tensors with no (rows, cols) view have one)."""
    for target, copy in pending:
        target.copy_(copy)


def per_row(values: Tensor, decision: Decision) -> list[Tensor]:
    """An (R,) vector split per tensor, (rows,) each (the kernels broadcast it over cols)."""
    return split_inputs(values, decision.rows)


def split_inputs(values: Tensor, sizes: list[int] | None = None) -> list[Tensor]:
    """``values`` split (or unbound) into kernel inputs that never cause a recompilation.

    Views of one vector differ in their storage offset, which the compiled functions
    would specialise on for 0 and 1: two leading pad elements make every offset >= 2,
    and detaching drops the base tensor they would guard on too.
    """
    padded = torch.cat([values.new_zeros(2), values])
    parts = padded.split([2, *sizes])[1:] if sizes is not None else padded.unbind(0)[2:]
    return [part.detach() for part in parts]


def flat(tensors: list[Tensor]) -> Tensor:
    # unprojected tensors are mostly 1-D already: no reshape call for those
    return torch.cat([t if t.ndim == 1 else t.reshape(-1) for t in tensors])


def write_back(targets: list[Tensor], values: Tensor) -> None:
    """Copy a flat vector back into the tensors it was concatenated from."""
    parts = values.split([t.numel() for t in targets])
    shaped = [p if t.ndim == 1 else p.view(t.shape) for p, t in zip(parts, targets, strict=True)]
    torch._foreach_copy_(targets, shaped)


def per_element(values: Tensor, targets: list[Tensor], cache: dict | None) -> Tensor:
    """An (N,) per-tensor vector repeated over each tensor's elements (a cached gather)."""
    counts = tuple(t.numel() for t in targets)

    def build() -> Tensor:  # (repeat_interleave costs milliseconds on the CPU)
        owner = torch.arange(len(counts)).repeat_interleave(torch.tensor(counts))
        return owner.to(values.device, non_blocking=True)

    owner = cached(cache, "owner", values, counts, build)
    return values[owner]


def _full(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    # a fill, not a host-to-device copy: no sync, and allowed under CUDA-graph capture
    return torch.full((), value, dtype=dtype, device=device)


class FusedAdamP(NamedTuple):
    """One fused AdamP step's options and per-tensor scalars (after the counters advanced)."""

    beta1: float
    beta2: float
    eps: float
    delta: float
    wd_ratio: float
    nesterov: bool
    scale: Scaling
    sqrt_bias2: Tensor  # (N,) float64: sqrt(1 - β₂ᵗ)
    step_size: Tensor  # (N,) float64: lr·sqrt(1 - β₂ᵗ)/(1 - β₁ᵗ)
    decay_rate: Tensor | None  # lr·λ, or None when λ = 0
    cache: dict | None


# already compiled: under an outer torch.compile(opt.step) it runs as it is (a graph break)
# rather than being traced again, inlined through its own compiled functions
@torch.compiler.disable
def adamp_fused(
    bucket: Bucket,
    *,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    delta,
    wd_ratio,
    nesterov,
    maximize,
    grad_scale=None,
    found_inf=None,
    cache=None,
) -> None:
    """One fused AdamP step of a bucket (same math as :func:`adamp_update`)."""
    like = bucket.params[0]
    scale = scaling(grad_scale, found_inf, like, maximize)
    steps = bucket.state["step"]
    keep = scale.keep.to(steps[0].device, non_blocking=True)
    bias1, sqrt_bias2 = bias_corrections(steps, like, beta1, beta2, increment=keep)
    lr_t = _vector(lr, like)
    step = FusedAdamP(
        beta1, beta2, eps, delta, wd_ratio, nesterov, scale, sqrt_bias2,
        step_size=lr_t * sqrt_bias2 / bias1,  # u uses sqrt(b2)·m / (sqrt(v) + ε·sqrt(b2))
        decay_rate=lr_t * weight_decay if weight_decay != 0 else None,
        cache=cache,
    )  # fmt: skip
    _run(bucket, step, _adamp_cpu_kernel if _uses_cpu_kernel(bucket) else _adamp_inductor)


def _run(bucket: Bucket, step, update: Callable) -> None:
    """``update(bucket, step, pending)``, then the copies of tensors without a (rows, cols)
    view written back."""
    pending: list = []
    update(bucket, step, pending)
    finish(pending)


def _adamp_cpu_kernel(bucket: Bucket, step: FusedAdamP, pending: list) -> None:
    """The whole bucket in one call of the CPU kernel."""
    k = bucket.n_projected
    operands, shapes = kernel_operands(bucket, ("exp_avg", "exp_avg_sq"), pending)
    values = [step.delta, step.wd_ratio, step.eps, torch.get_num_threads()]
    values += [1.0 - step.beta1, step.beta2, 1.0 - step.beta2]
    _cpu_kernel.step(
        "adamp",
        _cpp_compiler(),
        operands,
        shapes,
        k,
        [step.eps * step.sqrt_bias2, -step.step_size],
        _cpu_kernel.scalars(step.scale.grad_factor, step.decay_rate, values),
        step.scale.skip,
        (int(step.nesterov),),
        bucket.branches[:k],
    )


def _adamp_inductor(bucket: Bucket, step: FusedAdamP, pending: list) -> None:
    """Inductor's kernels: per projected tensor (two calls each when sharded), then one
    call for the unprojected tensors concatenated."""
    like, k, scale = bucket.params[0], bucket.n_projected, step.scale
    dtype, device, key = opmath(like.dtype), like.device, (like.dtype, like.device.type)
    shift, neg = (step.eps * step.sqrt_bias2).to(dtype), (-step.step_size).to(dtype)
    # 1 - β from the Python floats: in float32, 1 - float32(0.999) is off by 1.3e-5 relative
    c1, c2 = _full(1.0 - step.beta1, dtype, device), _full(1.0 - step.beta2, dtype, device)
    moments = (c1, _full(step.beta2, dtype, device), c2)
    # flags as tensors (only elementwise selects depend on them): one compilation
    flags = dict(
        grad_factor=scale.grad_factor, nesterov=torch.full((), step.nesterov, device=device)
    )
    views = projected_views(bucket, ("exp_avg", "exp_avg_sq"), pending)
    shifts, negs = split_inputs(shift[:k]), split_inputs(neg[:k])
    if views and not bucket.groups:  # each tensor decides alone: one call per tensor
        rate = _decay_rate(step.decay_rate, dtype, device)
        proj = _projection_inputs(step, dtype, device)
        with every_shape():
            for i, vw in enumerate(views):
                compiled(adamp_tensor, key)(*vw, bucket.branches[i], *moments, shifts[i],
                    negs[i], rate, *proj, skip=scale.skip, **flags)  # fmt: skip
    elif views:  # sharded: the row statistics are reduced across ranks before deciding
        with every_shape():
            stats = [compiled(adamp_stats, key)(*vw, *moments, shifts[i], **flags)
                     for i, vw in enumerate(views)]  # fmt: skip
        decision = decide_bucket(bucket, stats, _projection_args(step), step.cache, scale.skip)
        decay = decay_factors(step.decay_rate, decision.ratio)
        sizes = step.step_size[:k].to(dtype)
        scales = per_row(decay[decision.seg] + sizes[decision.seg] * decision.coef, decision)
        with every_shape():
            for i, vw in enumerate(views):
                compiled(adamp_apply, key)(*vw, scales[i], negs[i], *moments, shifts[i],
                    skip=scale.skip, **flags)  # fmt: skip
    if k < len(bucket.params):
        params = bucket.params[k:]
        ms, vs = bucket.state["exp_avg"][k:], bucket.state["exp_avg_sq"][k:]
        decay = decay_factors(step.decay_rate, torch.ones((), dtype=dtype, device=device))
        per_tensor = [per_element(x[k:], params, step.cache) for x in (shift, neg)]
        flats = [flat(t) for t in (params, bucket.grads[k:], ms, vs)]
        with every_shape():
            w, m, v = compiled(adamp_plain, key)(
                *flats, *moments, *per_tensor, decay, skip=scale.skip, **flags
            )
        for targets, values in ((params, w), (ms, m), (vs, v)):
            write_back(targets, values)


def _decay_rate(decay_rate: Tensor | None, dtype: torch.dtype, device) -> Tensor:
    return decay_rate.to(dtype) if decay_rate is not None else _full(0.0, dtype, device)


def _projection_inputs(step, dtype: torch.dtype, device) -> list[Tensor]:
    """δ (float64: the thresholds δ/sqrt(d) are computed in float64, as the batched
    decision does), wd_ratio and ε as 0-dim inputs of the compiled step."""
    delta = _full(step.delta, torch.float64, device)
    return [delta, _full(step.wd_ratio, dtype, device), _full(step.eps, dtype, device)]


def _projection_args(step) -> ProjectionArgs:
    return ProjectionArgs(step.delta, step.wd_ratio, step.eps)


class FusedSGDP(NamedTuple):
    """One fused SGDP step's options and scalars."""

    momentum: float
    dampening: float
    nesterov: bool
    project_updates: bool  # the stored buffer is projected (project_buffer, no Nesterov)
    eps: float
    delta: float
    wd_ratio: float
    scale: Scaling
    lr: Tensor  # 0-dim float64
    decay_rate: Tensor | None  # lr·λ/(1-μ), or None when λ = 0
    cache: dict | None


@torch.compiler.disable
def sgdp_fused(
    bucket: Bucket,
    *,
    lr,
    momentum,
    dampening,
    weight_decay,
    nesterov,
    eps,
    delta,
    wd_ratio,
    project_buffer,
    maximize,
    grad_scale=None,
    found_inf=None,
    cache=None,
) -> None:
    """One fused SGDP step of a bucket (same math as :func:`sgdp_update`)."""
    like = bucket.params[0]
    lr_t = _vector(lr, like)
    step = FusedSGDP(
        momentum, dampening, nesterov, project_buffer and not nesterov, eps, delta, wd_ratio,
        scale=scaling(grad_scale, found_inf, like, maximize),
        lr=lr_t,
        decay_rate=lr_t * (weight_decay / (1.0 - momentum)) if weight_decay != 0 else None,
        cache=cache,
    )  # fmt: skip
    _run(bucket, step, _sgdp_cpu_kernel if _uses_cpu_kernel(bucket) else _sgdp_inductor)


def _sgdp_cpu_kernel(bucket: Bucket, step: FusedSGDP, pending: list) -> None:
    """The whole bucket in one call of the CPU kernel."""
    k = bucket.n_projected
    operands, shapes = kernel_operands(bucket, ("momentum_buffer",), pending)
    values = [step.delta, step.wd_ratio, step.eps, torch.get_num_threads()]
    values += [step.momentum, 1.0 - step.dampening]
    _cpu_kernel.step(
        "sgdp",
        _cpp_compiler(),
        operands,
        shapes,
        k,
        [(-step.lr).expand(len(bucket.params))],
        _cpu_kernel.scalars(step.scale.grad_factor, step.decay_rate, values),
        step.scale.skip,
        (int(step.nesterov), int(step.project_updates)),
        bucket.branches[:k],
    )


def _sgdp_inductor(bucket: Bucket, step: FusedSGDP, pending: list) -> None:
    """Inductor's kernels: per projected tensor (two calls each when sharded), then one
    call for the unprojected tensors concatenated."""
    like, k, scale = bucket.params[0], bucket.n_projected, step.scale
    dtype, device, key = opmath(like.dtype), like.device, (like.dtype, like.device.type)
    neg = (-step.lr).to(dtype)
    trace = (_full(step.momentum, dtype, device), _full(1.0 - step.dampening, dtype, device))
    # flags as tensors (only elementwise selects depend on them): one compilation
    flags = dict(
        grad_factor=scale.grad_factor, nesterov=torch.full((), step.nesterov, device=device)
    )
    project = torch.full((), step.project_updates, device=device)
    views = projected_views(bucket, ("momentum_buffer",), pending)
    if views and not bucket.groups:  # each tensor decides alone: one call per tensor
        rate = _decay_rate(step.decay_rate, dtype, device)
        proj = _projection_inputs(step, dtype, device)
        with every_shape():
            for i, vw in enumerate(views):
                compiled(sgdp_tensor, key)(*vw, bucket.branches[i], *trace, neg, rate, *proj,
                    project, skip=scale.skip, **flags)  # fmt: skip
    elif views:  # sharded: the row statistics are reduced across ranks before deciding
        with every_shape():
            stats = [compiled(sgdp_stats, key)(*vw, *trace, **flags) for vw in views]
        decision = decide_bucket(bucket, stats, _projection_args(step), step.cache, scale.skip)
        decay = decay_factors(step.decay_rate, decision.ratio)[decision.seg]
        coef = decision.coef.to(dtype)
        scales = per_row(decay if step.project_updates else decay - neg * coef, decision)
        coefs = per_row(coef, decision)
        with every_shape():
            for i, vw in enumerate(views):
                compiled(sgdp_apply, key)(*vw, scales[i], neg, coefs[i], *trace, project,
                    skip=scale.skip, **flags)  # fmt: skip
    if k < len(bucket.params):
        params, bufs = bucket.params[k:], bucket.state["momentum_buffer"][k:]
        decay = decay_factors(step.decay_rate, torch.ones((), dtype=dtype, device=device))
        with every_shape():
            w, b = compiled(sgdp_plain, key)(
                *(flat(t) for t in (params, bucket.grads[k:], bufs)),
                *trace, neg, decay, skip=scale.skip, **flags,
            )  # fmt: skip
        write_back(params, w)
        write_back(bufs, b)
