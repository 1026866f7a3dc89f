"""Smoke test of benchmarks/bench_jax.py's timing code on a tiny pytree."""

from __future__ import annotations

import sys
from pathlib import Path

import adamp_jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from benchmarks.bench_jax import make_step, time_pair


def test_time_pair_runs_and_steps_the_parameters():
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    grads = {"w": jnp.full((4, 3), 0.5), "b": jnp.full((3,), 0.5)}
    ours = make_step(adamp_jax.adamp(1e-2), params, grads)
    theirs = make_step(optax.adamw(1e-2), params, grads)
    t_ours, t_theirs = time_pair(ours, theirs, repeat=2)
    assert t_ours > 0
    assert t_theirs > 0
