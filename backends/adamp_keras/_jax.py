"""The step on the Keras JAX backend: ``adamp_jax``'s ``jax.numpy`` math, shared.

On JAX, Keras traces ``update_step`` into the jitted train step, so what matters
is the XLA program. ``adamp_jax._steps`` is laid out for XLA (the direction u
never materialised, the channel statistics as fused reductions, barriers on
XLA:CPU), so Keras on JAX calls it instead of the generic ``keras.ops`` code.
It needs the ``adamp_jax`` package (and so optax, which that package imports);
without it the generic code runs.
"""

from __future__ import annotations

import functools


@functools.cache
def jax_steps():
    """``adamp_jax._steps`` if it imports, else None."""
    try:
        from adamp_jax import _steps
    except ImportError:
        return None
    return _steps
