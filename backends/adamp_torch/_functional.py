"""The AdamP and SGDP updates of one bucket of tensors (same device, dtype and sharding).

All per-tensor scalars (bias corrections, step sizes, decay factors) are
computed as tensors on the parameters' device, so a step reads no value back
to the host; ``lr`` may be a Python float or a 0-dim tensor.

The projection is folded into the parameter update. With the update u, its
projection u' = u - w·c (c per channel row, from :func:`decide`), the step
size s and the decay factor k = 1 - λ·(lr)·r::

    w ← k·w - s·u'  =  (k + s·c)·w - s·u

so the projected update is never materialised: the parameter is scaled per
row and then receives ``-s·u`` (the rows where nothing fired have c = 0).
SGDP with ``project_buffer`` (the authors' in-place projection of the stored
momentum) materialises u' in the buffer instead, since it is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from adamp_torch._cache import cache_key
from adamp_torch._projection import Decision, decide, per_row, row_stats


@dataclass
class Bucket:
    """Local tensors of parameters that share device, dtype and sharding."""

    params: list[Tensor] = field(default_factory=list)  # the projected ones (ndim > 1) first
    n_projected: int = 0  # how many leading entries are candidates for the projection
    grads: list[Tensor] = field(default_factory=list)
    shapes: list[torch.Size] = field(default_factory=list)  # global shapes
    branches: list[Tensor] = field(default_factory=list)  # 0-dim int64, written each step
    groups: tuple = ()  # process groups the tensors are sharded over (axis 0)
    state: dict[str, list[Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectionArgs:
    delta: float
    wd_ratio: float
    eps: float


def scratch_for(like: Tensor, numel: int, cache: dict | None) -> Tensor | None:
    """A (2, numel) buffer kept in ``cache`` and reused across tensors and steps.

    On the CPU a fresh large tensor costs page faults on every step; the
    single-tensor path writes its temporaries into views of this buffer instead.
    None under ``torch.compile``, which plans its own buffers.
    """
    if cache is None or torch.compiler.is_compiling():
        return None
    key = cache_key("scratch", like)
    flat = cache.get(key)
    if flat is None or flat.shape[1] < numel:
        flat = torch.empty(2, numel, dtype=like.dtype, device=like.device)
        cache[key] = flat
    return flat


def _views(flat: Tensor | None, param: Tensor) -> tuple[Tensor | None, Tensor | None]:
    if flat is None:
        return None, None
    n = param.numel()
    return flat[0, :n].view(param.shape), flat[1, :n].view(param.shape)


def _vector(value: float | Tensor, like: Tensor) -> Tensor:
    """A Python float or a 0-dim tensor as a float64 tensor on ``like``'s device."""
    if isinstance(value, Tensor):
        return value.to(torch.float64).to(like.device, non_blocking=True)
    # a fill, not a host-to-device copy: allowed while a CUDA graph is being captured
    return torch.full((), value, dtype=torch.float64, device=like.device)


def _scalars(vector: Tensor, like: Tensor) -> list[Tensor]:
    """An (N,) vector as N 0-dim tensors of ``like``'s dtype (they broadcast in foreach ops)."""
    return list(vector.to(like.dtype).unbind(0))


class Plan(NamedTuple):
    """What the projection decided for a bucket, as per-tensor factors."""

    scales: list[Tensor | None]  # w ← scale·w first (per row, 0-dim, or None: no-op)
    update_coefs: list[Tensor] | None  # project_updates: u ← u - w·coef, per row
    neg_step: list[Tensor]  # then w ← w + neg_step·u (0-dim each)


def plan(
    bucket: Bucket,
    stats: Sequence[Tensor],
    step_size: Tensor,
    decay_rate: Tensor | None,
    proj: ProjectionArgs,
    *,
    cache: dict | None,
    project_updates: bool = False,
) -> Plan:
    """Decide the projection of the bucket's first ``n_projected`` tensors and fold it.

    w ← (1 - decay_rate·r)·w - step_size·proj(u), with ``step_size`` an (N,) float64
    vector, ``decay_rate`` a float64 scalar tensor (λ·lr for AdamP, λ·lr/(1-μ) for
    SGDP) or None when λ = 0, and r = ``wd_ratio`` where a view fired, else 1.
    Without ``project_updates`` the projection u - w·c becomes the per-row scale
    (1 - decay_rate·r) + step_size·c of w; with it, u itself is projected (SGDP's
    kept buffer). Also writes each tensor's branch code to ``bucket.branches``.
    """
    like, k, n = bucket.params[0], bucket.n_projected, len(bucket.params)
    scales: list[Tensor | None] = [None] * n
    update_coefs = None
    if decay_rate is not None and k < n:
        scales[k:] = _scalars((1.0 - decay_rate).expand(n - k), like)
    if k:
        decision = decide_bucket(bucket, stats, proj, cache)
        dtype = decision.coef.dtype  # float32 for 16-bit parameters
        decay = decay_factors(decay_rate, decision.ratio)
        ndims = [len(s) for s in bucket.shapes[:k]]
        if project_updates:
            update_coefs = per_row(-decision.coef, decision, ndims)
            if decay_rate is not None:
                scales[:k] = list(decay.unbind(0))
        else:
            sizes = step_size[:k].to(dtype)
            scale = decay[decision.seg] + sizes[decision.seg] * decision.coef
            scales[:k] = per_row(scale, decision, ndims)
    return Plan(scales, update_coefs, _scalars(-step_size, like))


def decide_bucket(
    bucket: Bucket,
    stats: Sequence[Tensor],
    proj: ProjectionArgs,
    cache: dict | None,
    skip: Tensor | None = None,
) -> Decision:
    """The batched projection decision of the bucket's projected tensors.

    Writes each tensor's branch code, except where ``skip`` (a 0-dim bool tensor:
    GradScaler found an inf) keeps the previous codes.
    """
    k = bucket.n_projected
    decision = decide(
        stats,
        bucket.shapes[:k],
        delta=proj.delta,
        wd_ratio=proj.wd_ratio,
        eps=proj.eps,
        groups=bucket.groups,
        cache=cache,
    )
    branch = decision.branch
    if skip is not None:
        branch = torch.where(skip, torch.stack(bucket.branches[:k]), branch)
    torch._foreach_copy_(bucket.branches[:k], list(branch.unbind(0)))
    return decision


def decay_factors(decay_rate: Tensor | None, ratio: Tensor) -> Tensor:
    """Per tensor 1 - decay_rate·r (r = wd_ratio where a view fired, else 1)."""
    return (
        torch.ones_like(ratio) if decay_rate is None else 1.0 - decay_rate.to(ratio.dtype) * ratio
    )


def apply_foreach(bucket: Bucket, updates: Sequence[Tensor], folded: Plan) -> None:
    """Apply a :class:`Plan` with multi-tensor operations."""
    params, k = bucket.params, bucket.n_projected
    if folded.update_coefs is not None:
        torch._foreach_addcmul_(list(updates[:k]), params[:k], folded.update_coefs)
    scaled = [i for i, s in enumerate(folded.scales) if s is not None]
    if scaled:
        torch._foreach_mul_([params[i] for i in scaled], [folded.scales[i] for i in scaled])
    torch._foreach_addcmul_(params, list(updates), folded.neg_step)


def _stats_foreach(bucket: Bucket, updates: Sequence[Tensor]) -> list[Tensor]:
    p, g = bucket.params, bucket.grads
    return [row_stats(p[i], g[i], updates[i]) for i in range(bucket.n_projected)]


def _single_pass(
    bucket: Bucket,
    direction: Callable[[int, Tensor | None, Tensor | None], Tensor],
    step_size: Tensor,
    decay_rate: Tensor | None,
    proj: ProjectionArgs,
    *,
    cache: dict | None,
    project_updates: bool = False,
) -> None:
    """The single-tensor path after the moments are updated.

    Pass 1 computes each projected tensor's direction (into a reused buffer) and
    its row statistics; one batched decision follows; pass 2 recomputes each
    direction and applies it. Recomputing u costs about the bytes of storing it,
    and keeps the temporaries one tensor large.
    """
    params, grads, k = bucket.params, bucket.grads, bucket.n_projected
    flat = scratch_for(params[0], max(p.numel() for p in params), cache)
    stats = []
    for i in range(k):
        out, spare = _views(flat, params[i])
        u = direction(i, out, spare)
        stats.append(row_stats(params[i], grads[i], u, spare))
    folded = plan(
        bucket, stats, step_size, decay_rate, proj, cache=cache, project_updates=project_updates
    )
    for i, p in enumerate(params):
        out, spare = _views(flat, p)
        u = direction(i, out, spare)
        if folded.update_coefs is not None and i < k:
            u.addcmul_(p, folded.update_coefs[i])
        if folded.scales[i] is not None:
            p.mul_(folded.scales[i])
        p.addcmul_(u, folded.neg_step[i])


HALF = (torch.float16, torch.bfloat16)


def in_float32(*keys: str) -> Callable:
    """Run a bucket update on float32 copies of 16-bit tensors and round the results once.

    In float16, ε = 1e-8 rounds to 0 in Adam's denominator (0/0 where a gradient
    entry is zero) and the projection then spreads inf over whole rows. The state
    ``keys`` (and the parameters) keep their dtype; only the arithmetic is float32,
    as in torch's fused optimizers. The copies cost memory: the fused path
    computes in float32 inside its kernels without them.
    """

    def decorate(update: Callable) -> Callable:
        @functools.wraps(update)
        def wrapper(bucket: Bucket, **kwargs) -> None:
            if bucket.params[0].dtype not in HALF:
                update(bucket, **kwargs)
                return
            wide = dataclasses.replace(
                bucket,
                params=[p.float() for p in bucket.params],
                grads=[g.float() for g in bucket.grads],
                state={
                    k: v if k not in keys else [t.float() for t in v]
                    for k, v in bucket.state.items()
                },
            )
            update(wide, **kwargs)
            torch._foreach_copy_(bucket.params, wide.params)
            for k in keys:
                torch._foreach_copy_(bucket.state[k], wide.state[k])

        return wrapper

    return decorate


def bias_corrections(
    steps: Sequence[Tensor], like: Tensor, beta1: float, beta2: float, increment=1.0
) -> tuple[Tensor, Tensor]:
    """Advance the step counters by ``increment`` (a tensor: GradScaler's 1 - found_inf) and
    return (1 - β₁ᵗ, sqrt(1 - β₂ᵗ)) per tensor, float64 on ``like``'s device."""
    torch._foreach_add_(list(steps), increment)
    # non_blocking: a host-to-device copy that does not synchronise (steps live on the
    # CPU unless capturable)
    t = torch.stack(list(steps)).to(torch.float64).to(like.device, non_blocking=True)
    return 1.0 - torch.pow(beta1, t), torch.sqrt(1.0 - torch.pow(beta2, t))


class AdamStep(NamedTuple):
    """What one AdamP step of a bucket needs once the step counters have advanced."""

    beta1: float
    beta2: float
    nesterov: bool
    shifts: list[Tensor]  # ε·sqrt(1-β₂ᵗ) per tensor, 0-dim
    step_size: Tensor  # (N,) float64: lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ)
    decay_rate: Tensor | None  # lr·λ, or None when λ = 0
    proj: ProjectionArgs
    cache: dict | None


@in_float32("exp_avg", "exp_avg_sq")
def adamp_update(
    bucket: Bucket,
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    delta: float,
    wd_ratio: float,
    nesterov: bool,
    maximize: bool,
    foreach: bool,
    cache: dict | None = None,
) -> None:
    """One AdamP step of a bucket; state lists ``step``, ``exp_avg``, ``exp_avg_sq``.

    m ← β₁m + (1-β₁)g; v ← β₂v + (1-β₂)g²; u = m / (sqrt(v)/sqrt(1-β₂ᵗ) + ε)
    (Nesterov: numerator β₁m + (1-β₁)g); w ← (1 - lr·λ·r)·w - lr/(1-β₁ᵗ)·proj(u).
    """
    like = bucket.params[0]
    if maximize:
        bucket.grads = list(torch._foreach_neg(bucket.grads))
    bias1, sqrt_bias2 = bias_corrections(bucket.state["step"], like, beta1, beta2)
    lr_t = _vector(lr, like)
    # u = m / (sqrt(v)/sqrt(b2) + ε) = sqrt(b2) · m / (sqrt(v) + ε·sqrt(b2)): work with the
    # second form's quotient (one pass less) and move sqrt(b2) into the step size; the
    # projection is linear in u and its decision does not depend on u
    step = AdamStep(
        beta1=beta1,
        beta2=beta2,
        nesterov=nesterov,
        shifts=_scalars(eps * sqrt_bias2, like),
        step_size=lr_t * sqrt_bias2 / bias1,
        decay_rate=lr_t * weight_decay if weight_decay != 0 else None,
        proj=ProjectionArgs(delta, wd_ratio, eps),
        cache=cache,
    )
    (_adamp_foreach if foreach else _adamp_single)(bucket, step)


def _adamp_foreach(bucket: Bucket, step: AdamStep) -> None:
    """Multi-tensor operations over the whole bucket (temporaries for every tensor)."""
    ms, vs, grads = bucket.state["exp_avg"], bucket.state["exp_avg_sq"], bucket.grads
    torch._foreach_lerp_(ms, grads, 1.0 - step.beta1)
    torch._foreach_mul_(vs, step.beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - step.beta2)
    denom = torch._foreach_sqrt(vs)
    torch._foreach_add_(denom, step.shifts)
    numerator = torch._foreach_lerp(ms, grads, 1.0 - step.beta1) if step.nesterov else ms
    updates = torch._foreach_div(numerator, denom)
    del denom, numerator
    stats = _stats_foreach(bucket, updates)
    folded = plan(bucket, stats, step.step_size, step.decay_rate, step.proj, cache=step.cache)
    apply_foreach(bucket, updates, folded)


def _adamp_single(bucket: Bucket, step: AdamStep) -> None:
    """One tensor at a time (temporaries one tensor large, in a reused buffer)."""
    ms, vs, grads = bucket.state["exp_avg"], bucket.state["exp_avg_sq"], bucket.grads
    for m, v, g in zip(ms, vs, grads, strict=True):
        m.lerp_(g, 1.0 - step.beta1)
        v.mul_(step.beta2).addcmul_(g, g, value=1.0 - step.beta2)
    direction = functools.partial(_adamp_direction, bucket, step)
    _single_pass(bucket, direction, step.step_size, step.decay_rate, step.proj, cache=step.cache)


def _adamp_direction(
    bucket: Bucket, step: AdamStep, i: int, out: Tensor | None, spare: Tensor | None
) -> Tensor:
    """Tensor ``i``'s u = m / (sqrt(v) + shift), written into ``out`` when given."""
    m, v = bucket.state["exp_avg"][i], bucket.state["exp_avg_sq"][i]
    denom = torch.sqrt(v, out=out) if out is not None else torch.sqrt(v)
    denom.add_(step.shifts[i])
    numerator = m
    if step.nesterov:
        numerator = torch.lerp(m, bucket.grads[i], 1.0 - step.beta1, **_out(spare))
    return torch.div(numerator, denom, out=denom)


def _out(buffer: Tensor | None) -> dict:
    return {} if buffer is None else {"out": buffer}


class SgdStep(NamedTuple):
    """What one SGDP step of a bucket needs."""

    momentum: float
    dampening: float
    nesterov: bool
    step_size: Tensor  # (N,) float64: lr for every tensor
    decay_rate: Tensor | None  # lr·λ/(1-μ), or None when λ = 0
    proj: ProjectionArgs
    project_updates: bool  # the stored buffer is projected (project_buffer, no Nesterov)
    cache: dict | None


@in_float32("momentum_buffer")
def sgdp_update(
    bucket: Bucket,
    *,
    lr: float | Tensor,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    eps: float,
    delta: float,
    wd_ratio: float,
    project_buffer: bool,
    maximize: bool,
    foreach: bool,
    cache: dict | None = None,
) -> None:
    """One SGDP step of a bucket; state list ``momentum_buffer``.

    b ← μb + (1-τ)g; d = g + μb (Nesterov) or b; w ← (1 - lr·λ·r/(1-μ))·w - lr·proj(d).
    Without Nesterov and with ``project_buffer``, b itself is replaced by proj(b).
    """
    if maximize:
        bucket.grads = list(torch._foreach_neg(bucket.grads))
    lr_t = _vector(lr, bucket.params[0])
    step = SgdStep(
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        step_size=lr_t.expand(len(bucket.params)),
        decay_rate=lr_t * (weight_decay / (1.0 - momentum)) if weight_decay != 0 else None,
        proj=ProjectionArgs(delta, wd_ratio, eps),
        project_updates=project_buffer and not nesterov,
        cache=cache,
    )
    (_sgdp_foreach if foreach else _sgdp_single)(bucket, step)


def _sgdp_foreach(bucket: Bucket, step: SgdStep) -> None:
    """Multi-tensor operations over the whole bucket."""
    bufs, grads = bucket.state["momentum_buffer"], bucket.grads
    torch._foreach_mul_(bufs, step.momentum)
    torch._foreach_add_(bufs, grads, alpha=1.0 - step.dampening)
    updates = torch._foreach_add(grads, bufs, alpha=step.momentum) if step.nesterov else bufs
    folded = plan(
        bucket,
        _stats_foreach(bucket, updates),
        step.step_size,
        step.decay_rate,
        step.proj,
        cache=step.cache,
        project_updates=step.project_updates,
    )
    apply_foreach(bucket, updates, folded)


def _sgdp_single(bucket: Bucket, step: SgdStep) -> None:
    """One tensor at a time."""
    for b, g in zip(bucket.state["momentum_buffer"], bucket.grads, strict=True):
        b.mul_(step.momentum).add_(g, alpha=1.0 - step.dampening)
    _single_pass(
        bucket,
        functools.partial(_sgdp_direction, bucket, step),
        step.step_size,
        step.decay_rate,
        step.proj,
        cache=step.cache,
        project_updates=step.project_updates,
    )


def _sgdp_direction(
    bucket: Bucket, step: SgdStep, i: int, out: Tensor | None, spare: Tensor | None
) -> Tensor:
    """Tensor ``i``'s d: the buffer, or g + μb under Nesterov (into ``out`` when given)."""
    buf = bucket.state["momentum_buffer"][i]
    if not step.nesterov:
        return buf
    return torch.add(bucket.grads[i], buf, alpha=step.momentum, **_out(out))
