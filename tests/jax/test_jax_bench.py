"""Smoke test of benchmarks/bench_jax.py's timing code on a tiny pytree."""

from __future__ import annotations

import adamp_jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.bench_jax import make_step, time_pair


def test_time_pair_runs_and_steps_the_parameters():
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    grads = {"w": jnp.full((4, 3), 0.5), "b": jnp.full((3,), 0.5)}
    ours = make_step(adamp_jax.adamp(1e-2), params, grads)
    theirs = make_step(optax.adamw(1e-2, weight_decay=0.0), params, grads)
    t_ours, t_theirs = time_pair(ours, theirs, repeat=2)
    assert t_ours > 0
    assert t_theirs > 0
    calls = 2 + 2  # two warm-up calls, then `repeat` timed ones
    for call in (ours, theirs):
        stepped, state = call.carry
        assert int(adamp_jax.find_projection_state(state).count if call is ours
                   else state[0].count) == calls  # fmt: skip
        for name, value in stepped.items():
            # each step moves every parameter against the (positive) gradient
            assert np.all(np.asarray(value) < np.asarray(params[name])), name
    np.testing.assert_array_equal(params["w"], 1.0)  # the caller's arrays are not donated
    # both optimizers take the same steps on a leaf the projection leaves alone
    np.testing.assert_allclose(ours.carry[0]["b"], theirs.carry[0]["b"], rtol=1e-6)
