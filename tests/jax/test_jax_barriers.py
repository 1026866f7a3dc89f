"""The optimisation barriers that separate adamp_jax's passes are for XLA:CPU only.

They are decided when the step is traced, from ``jax.default_backend()``: the
traced program has them for "cpu" and none for any other backend (stood in for
by patching the function; the step then still runs here on CPU), and the values
are the same either way (barriers never change a value).
"""

from __future__ import annotations

import adamp_jax
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

PARAMS = {"kernel": jnp.linspace(-1.0, 1.0, 24).reshape(2, 3, 4), "bias": jnp.ones(4)}
GRADS = jax.tree.map(lambda p: jnp.cos(3.0 * p), PARAMS)


def _count_barriers(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "optimization_barrier"
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _count_barriers(sub)
    return count


def _update(opt):
    def update(params, grads):
        state = opt.init(params)
        return opt.update(grads, state, params)

    return update


@pytest.mark.parametrize(
    "opt",
    [adamp_jax.adamp(1e-2, weight_decay=0.1), adamp_jax.sgdp(0.1, momentum=0.9, nesterov=True)],
    ids=["adamp", "sgdp"],
)
def test_barriers_only_when_tracing_for_cpu(opt, monkeypatch):
    assert jax.default_backend() == "cpu"  # the test machine
    update = _update(opt)
    on_cpu = jax.make_jaxpr(update)(PARAMS, GRADS)
    expected = jax.jit(update)(PARAMS, GRADS)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    update = _update(opt)  # a new function: JAX caches traces per function
    elsewhere = jax.make_jaxpr(update)(PARAMS, GRADS)
    got = jax.jit(update)(PARAMS, GRADS)
    assert _count_barriers(on_cpu.jaxpr) > 0
    assert _count_barriers(elsewhere.jaxpr) == 0
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
