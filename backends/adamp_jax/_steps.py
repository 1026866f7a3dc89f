"""One leaf's AdamP / SGDP step in ``jax.numpy``: the math shared by ``adamp_jax``'s
optax transformations and ``adamp_keras`` on the Keras JAX backend.

Each function takes one parameter, its gradient and its state, and returns the
step ``s`` in the compute dtype (the parameter moves by ``-η s``; the caller
rounds once to the parameter's dtype), the new state and the branch code;
the decay is inside ``s`` because its ratio depends on the projection::

    AdamP: s = u / (1 - β₁ᵗ) + λ r w       (u the projected Adam direction)
    SGDP:  s = u + λ r w / (1 - μ)          (u the projected momentum direction)

The pass structure (which full-array reads each pass does, and the barriers that
keep XLA:CPU from merging or sharing them) is described in ``_projection``.
The module imports no optax: ``adamp_keras`` calls it on the Keras JAX backend.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from adamp_jax._base import compute_dtype
from adamp_jax._projection import (
    barrier,
    channel_sum,
    decide,
    is_projected,
    radial_coefficient,
    statistics,
)

__all__ = ["adamp_leaf_step", "sgdp_leaf_step"]


class AdamScalars(NamedTuple):
    """β₁, β₂, sqrt(1 - β₂ᵗ) and ε in the compute dtype (a pytree: barriers pass it through)."""

    beta1: jax.Array
    beta2: jax.Array
    sqrt_bc2: jax.Array
    eps: jax.Array


def _adam_moments(grad, mu, nu, k: AdamScalars, dtype):
    """(g, m, v) in the compute dtype: m = β₁ mu + (1 - β₁) g, v = β₂ nu + (1 - β₂) g²."""
    g = grad.astype(dtype)
    m = k.beta1 * mu.astype(dtype) + (1 - k.beta1) * g
    v = k.beta2 * nu.astype(dtype) + (1 - k.beta2) * jnp.square(g)
    return g, m, v


def _adam_direction(param, grad, mu, nu, m, v, k: AdamScalars, *, nesterov: bool, dtype):
    """(w, u) in the compute dtype. A moment stored in the compute dtype is read back
    (m, v); one stored narrower (bfloat16) is recomputed from the old moment and the
    gradient, which reads less than a float32 copy and keeps u unrounded."""
    g, m_new, v_new = _adam_moments(grad, mu, nu, k, dtype)
    m = m if mu.dtype == dtype else m_new
    v = v if nu.dtype == dtype else v_new
    numerator = k.beta1 * m + (1 - k.beta1) * g if nesterov else m
    return param.astype(dtype), numerator / (jnp.sqrt(v) / k.sqrt_bc2 + k.eps)


def adamp_leaf_step(param, grad, mu, nu, count, *, axis, lam, b1, b2, eps, delta, wd_ratio,
                    nesterov: bool):  # fmt: skip
    """``(s, new mu, new nu, branch)`` of one AdamP step; ``count`` is t (>= 1), ``lam``
    the weight decay (0 where it does not apply); ``axis`` None: never projected."""
    dtype = compute_dtype(param.dtype)
    beta1, beta2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
    t = jnp.asarray(count).astype(dtype)
    bc1 = 1 - beta1**t
    k = AdamScalars(beta1, beta2, jnp.sqrt(1 - beta2**t), jnp.asarray(eps, dtype))
    lam = jnp.asarray(lam, dtype)
    _, m, v = _adam_moments(grad, mu, nu, k, dtype)
    new_mu, new_nu = m.astype(mu.dtype), v.astype(nu.dtype)
    direction = functools.partial(_adam_direction, nesterov=nesterov, dtype=dtype)
    sources = (param, grad, mu, nu, m, v, k)
    if not is_projected(param, axis):
        p, u = direction(*sources)
        return u / bc1 + lam * p, new_mu, new_nu, jnp.zeros([], jnp.int32)
    gp, gg, pp = statistics(param, grad, axis, dtype)
    decision = decide(
        gp, gg, pp, shape=param.shape, axis=axis, delta=delta, wd_ratio=wd_ratio, eps=eps,
        dtype=dtype,
    )  # fmt: skip
    # w·u without materialising u: a reduction with u's formula fused in,
    # reading w, m, v. The barriers give it and the final pass their own
    # copies of the inputs, so XLA shares nothing between them: neither u
    # (it has a sqrt and a divide, so XLA would store it rather than compute
    # it twice) nor a broadcast scalar (XLA:CPU would write it out as an
    # array for the reduction) nor a bfloat16 -> float32 conversion.
    p, u = direction(*barrier(sources))
    pu = barrier(channel_sum(p * u, axis))
    coef = radial_coefficient(decision, pu, pp, ndim=param.ndim, axis=axis, eps=eps)
    # The final pass reads w, m, v (and g for Nesterov) and recomputes u
    # (coef in the barrier keeps XLA from merging it with the one above).
    *final_sources, coef = barrier((*sources, coef))
    p, u = direction(*final_sources)
    step = (u - p * coef) / bc1 + (lam * decision.wd_ratio) * p
    return step, new_mu, new_nu, decision.branch


class SgdScalars(NamedTuple):
    """μ and 1 - τ in the compute dtype."""

    momentum: jax.Array
    damp: jax.Array


def _sgd_trace_and_direction(param, grad, buf, b, k: SgdScalars, *, nesterov, stored, dtype):
    """(w, b, d) in the compute dtype, d = g + μ b (Nesterov) or b. ``b`` None (or a
    trace not ``stored`` in the compute dtype): b = μ buf + (1 - τ) g, recomputed."""
    g = grad.astype(dtype)
    if b is None or not stored:
        b = k.momentum * buf.astype(dtype) + k.damp * g
    return param.astype(dtype), b, (g + k.momentum * b if nesterov else b)


def sgdp_leaf_step(param, grad, buf, *, axis, lam, momentum, dampening, nesterov: bool,
                   keep_projected: bool, eps, delta, wd_ratio):  # fmt: skip
    """``(s, new buffer, branch)`` of one SGDP step. ``keep_projected``: the new buffer
    is the projected direction (``project_buffer`` without Nesterov). ``lam`` is the
    weight decay (0 where it does not apply); ``axis`` None: never projected."""
    dtype = compute_dtype(param.dtype)
    mu = jnp.asarray(momentum, dtype)
    damp = 1 - jnp.asarray(dampening, dtype)
    lam = jnp.asarray(lam, dtype)
    # Whether the trace is stored in the compute dtype: then later passes
    # read the stored b back; a narrower (bfloat16) trace is recomputed from
    # the old one instead, which keeps the step unrounded.
    stored = buf.dtype == dtype
    trace_and_direction = functools.partial(
        _sgd_trace_and_direction, nesterov=nesterov, stored=stored, dtype=dtype
    )
    k = SgdScalars(mu, damp)
    p, b, direction = trace_and_direction(param, grad, buf, None, k)
    if not is_projected(param, axis):
        return direction + (lam / (1 - mu)) * p, b.astype(buf.dtype), jnp.zeros([], jnp.int32)
    # w·d by linearity, so that d never has to exist as an array:
    # w·d = w·g + μ (w·b) with Nesterov, else w·b.
    if keep_projected or not stored:
        # w·b = μ (w·b_old) + (1-τ) (w·g): all four sums read inputs only.
        gp, gg, pp, pb_old = statistics(param, grad, axis, dtype, (param, buf))
        pb = mu * pb_old + damp * gp
    else:
        # The new trace is b itself: store it, then sum w·b over the stored
        # b (a sum over b_old would read b_old's buffer, which b overwrites
        # when the state is donated, so XLA would first copy it).
        gp, gg, pp = statistics(param, grad, axis, dtype)
        pb = barrier(channel_sum(p * barrier(b), axis))
    decision = decide(
        gp, gg, pp, shape=param.shape, axis=axis, delta=delta, wd_ratio=wd_ratio, eps=eps,
        dtype=dtype,
    )  # fmt: skip
    pd = gp + mu * pb if nesterov else pb
    coef = radial_coefficient(decision, pd, pp, ndim=param.ndim, axis=axis, eps=eps)
    if keep_projected:
        # The trace becomes the projected d = b - c·w, computed from (b_old,
        # g, w) after the sums; b itself is never stored.
        new_buf = (direction - p * coef).astype(buf.dtype)
        b = new_buf.astype(dtype)
    else:
        new_buf = b.astype(buf.dtype)
    # The final pass gets its own copies of its inputs (no conversion or
    # broadcast shared with the passes above); it reads the stored trace
    # back, or recomputes a narrower one.
    *final_sources, coef = barrier((param, grad, buf, b, k, coef))
    p, b, direction = trace_and_direction(*final_sources)
    projected = b if keep_projected and stored else direction - p * coef
    step = projected + (lam * decision.wd_ratio / (1 - mu)) * p
    return step, new_buf, decision.branch
