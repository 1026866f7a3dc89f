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

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from adamp_torch._projection import decide, per_row, row_stats


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


def _vector(value: float | Tensor, like: Tensor) -> Tensor:
    """A Python float or a 0-dim tensor as a float64 tensor on ``like``'s device."""
    if isinstance(value, Tensor):
        return value.to(device=like.device, dtype=torch.float64)
    return torch.tensor(value, dtype=torch.float64, device=like.device)


def _scalars(vector: Tensor, like: Tensor) -> list[Tensor]:
    """An (N,) vector as N 0-dim tensors of ``like``'s dtype (they broadcast in foreach ops)."""
    return list(vector.to(like.dtype).unbind(0))


def apply_update(
    ops,
    bucket: Bucket,
    updates: Sequence[Tensor],
    step_size: Tensor,
    decay_rate: Tensor | None,
    proj: ProjectionArgs,
    *,
    cache: dict | None,
    project_updates: bool = False,
) -> None:
    """w ← (1 - decay_rate·r)·w - step_size·proj(u): the shared end of both optimizers.

    ``step_size`` is an (N,) float64 vector; ``decay_rate`` a float64 scalar
    tensor (λ·lr for AdamP, λ·lr/(1-μ) for SGDP) or None when λ = 0; r is ``wd_ratio`` where the
    projection fired and 1 elsewhere. With ``project_updates`` the projection
    is written into ``updates`` (SGDP's stored buffer) instead of being folded
    into the parameter scale.
    """
    params, grads, shapes = bucket.params, bucket.grads, bucket.shapes
    like, k = params[0], bucket.n_projected
    if k:
        pick = params[:k]
        stats = [row_stats(params[i], grads[i], updates[i]) for i in range(k)]
        decision = decide(
            stats,
            shapes[:k],
            delta=proj.delta,
            wd_ratio=proj.wd_ratio,
            eps=proj.eps,
            groups=bucket.groups,
            cache=cache,
        )
        ops.copy_(bucket.branches[:k], list(decision.branch.unbind(0)))
        dtype = decision.coef.dtype
        if decay_rate is None:
            decay = torch.ones_like(decision.ratio)
        else:
            decay = 1.0 - decay_rate.to(dtype) * decision.ratio
        ndims = [len(s) for s in shapes[:k]]
        if project_updates:
            ops.addcmul_(updates[:k], pick, per_row(-decision.coef, decision, ndims))
            if decay_rate is not None:
                ops.mul_(pick, list(decay.unbind(0)))
        else:
            sizes = step_size[:k].to(dtype)
            scale = decay[decision.seg] + sizes[decision.seg] * decision.coef
            ops.mul_(pick, per_row(scale, decision, ndims))
    if decay_rate is not None and k < len(params):
        factor = (1.0 - decay_rate).expand(len(params) - k)
        ops.mul_(params[k:], _scalars(factor, like))
    ops.addcmul_(params, updates, _scalars(-step_size, like))


def adamp_update(
    ops,
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
    cache: dict | None = None,
) -> None:
    """One AdamP step of a bucket; state lists ``step``, ``exp_avg``, ``exp_avg_sq``.

    m ← β₁m + (1-β₁)g; v ← β₂v + (1-β₂)g²; u = m / (sqrt(v)/sqrt(1-β₂ᵗ) + ε)
    (Nesterov: numerator β₁m + (1-β₁)g); w ← (1 - lr·λ·r)·w - lr/(1-β₁ᵗ)·proj(u).
    """
    like = bucket.params[0]
    steps, exp_avgs, exp_avg_sqs = (bucket.state[k] for k in ("step", "exp_avg", "exp_avg_sq"))
    grads = ops.neg(bucket.grads) if maximize else bucket.grads
    ops.add_scalar_(steps, 1.0)
    t = torch.stack(list(steps)).to(device=like.device, dtype=torch.float64)
    bias1 = 1.0 - torch.pow(beta1, t)
    sqrt_bias2 = torch.sqrt(1.0 - torch.pow(beta2, t))
    lr_t = _vector(lr, like)
    ops.lerp_(exp_avgs, grads, 1.0 - beta1)
    ops.mul_(exp_avg_sqs, beta2)
    ops.addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
    denom = ops.sqrt(exp_avg_sqs)
    ops.div_(denom, _scalars(sqrt_bias2, like))
    ops.add_scalar_(denom, eps)
    numerator = ops.lerp(exp_avgs, grads, 1.0 - beta1) if nesterov else exp_avgs
    updates = ops.div(numerator, denom)
    del denom
    bucket.grads = grads
    apply_update(
        ops,
        bucket,
        updates,
        lr_t / bias1,
        lr_t * weight_decay if weight_decay != 0 else None,
        ProjectionArgs(delta, wd_ratio, eps),
        cache=cache,
    )


def sgdp_update(
    ops,
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
    cache: dict | None = None,
) -> None:
    """One SGDP step of a bucket; state list ``momentum_buffer``.

    b ← μb + (1-τ)g; d = g + μb (Nesterov) or b; w ← (1 - lr·λ·r/(1-μ))·w - lr·proj(d).
    Without Nesterov and with ``project_buffer``, b itself is replaced by proj(b).
    """
    like = bucket.params[0]
    bufs = bucket.state["momentum_buffer"]
    grads = ops.neg(bucket.grads) if maximize else bucket.grads
    ops.mul_(bufs, momentum)
    ops.add_(bufs, grads, 1.0 - dampening)
    updates = ops.add(grads, bufs, momentum) if nesterov else bufs
    bucket.grads = grads
    lr_t = _vector(lr, like)
    apply_update(
        ops,
        bucket,
        updates,
        lr_t.expand(len(bucket.params)),
        lr_t * (weight_decay / (1.0 - momentum)) if weight_decay != 0 else None,
        ProjectionArgs(delta, wd_ratio, eps),
        cache=cache,
        project_updates=project_buffer and not nesterov,
    )
