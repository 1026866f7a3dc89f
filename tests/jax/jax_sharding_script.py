"""Run by test_jax_sharding.py in a subprocess: 8 fake CPU devices need XLA_FLAGS
set before jax is imported, which the pytest process has already done."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import adamp_jax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

SHAPES = {"conv": (3, 3, 4, 16), "dense": (8, 24), "rows": (16, 6), "bias": (16,)}
SPECS = {"conv": P(None, None, None, "x"), "dense": P("x", None), "rows": P("x", None),
         "bias": P("x")}  # fmt: skip


def make(seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), len(SHAPES))
    out = {k: jax.random.normal(key, s) for key, (k, s) in zip(keys, SHAPES.items(), strict=True)}
    return out


def assert_state_sharded_like(name, state, shard):
    inner = adamp_jax.find_projection_state(state)
    moments = (inner.mu, inner.nu) if name == "adamp" else (inner.trace,)
    for moment in moments:
        for k in SHAPES:
            assert moment[k].sharding.is_equivalent_to(shard[k], len(SHAPES[k])), (name, k)


def train(opt, params, grads_list):
    state = opt.init(params)
    step = jax.jit(opt.update)
    branches = []
    for g in grads_list:
        updates, state = step(g, state, params)
        params = optax.apply_updates(params, updates)
        branches.append(adamp_jax.projection_branches(state))
    return params, state, branches


def main():
    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("x",))
    shard = {k: NamedSharding(mesh, s) for k, s in SPECS.items()}
    params = make(0)
    p = params["conv"]
    g = make(1)["conv"]
    grads_list = [make(i) for i in range(1, 4)]
    axes = (0, 1, 2)
    # step 1: a conv gradient orthogonal to every output channel, so CHANNEL fires
    grads_list[0]["conv"] = g - p * jnp.sum(g * p, axes) / jnp.sum(p * p, axes)
    for name, opt in (
        ("adamp", adamp_jax.adamp(1e-2, weight_decay=0.1)),
        ("sgdp", adamp_jax.sgdp(0.1, momentum=0.9, weight_decay=0.1)),
    ):
        single_p, _, single_b = train(opt, params, grads_list)
        sharded_params = jax.device_put(params, shard)
        sharded_grads = [jax.device_put(gr, shard) for gr in grads_list]
        # the state has the params' sharding from init on, not only after a step
        assert_state_sharded_like(name, opt.init(sharded_params), shard)
        multi_p, multi_s, multi_b = train(opt, sharded_params, sharded_grads)
        # float32; only the order of the per-channel sums differs between layouts
        for k in SHAPES:
            np.testing.assert_allclose(multi_p[k], single_p[k], rtol=1e-6, atol=1e-6)
            assert multi_p[k].sharding.is_equivalent_to(shard[k], len(SHAPES[k])), k
        assert_state_sharded_like(name, multi_s, shard)
        assert multi_b == single_b
        print(name, "first step", {k: int(v) for k, v in multi_b[0].items()})
    print("SHARDING OK")


if __name__ == "__main__":
    main()
