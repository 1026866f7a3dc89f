"""Jitted optax update time: ``adamp_jax.adamp`` vs ``optax.adamw`` and
``adamp_jax.sgdp`` vs ``optax.sgd(momentum)`` on ResNet-50 and ViT-B/16 shaped
pytrees (float32, Flax layout: output channels last).

One timed call is a whole training-step update: ``opt.update`` plus
``optax.apply_updates``, jitted with params and state donated, blocking until
the result is ready. Gradients are random; the projection's branch decisions
therefore match a real run only in cost, not in outcome (both ways cost the same:
every branch is computed and selected with ``where``).
"""

from __future__ import annotations

import os
import statistics

import adamp_jax
import jax
import jax.numpy as jnp
import optax

from benchmarks.common import median_seconds, print_table, write_json
from benchmarks.shapes import MODELS, output_channels_last

PAIRS = {
    "adamp vs adamw": (
        lambda: adamp_jax.adamp(1e-3, weight_decay=1e-2),
        lambda: optax.adamw(1e-3, weight_decay=1e-2),
    ),
    "sgdp vs sgd(momentum)": (
        lambda: adamp_jax.sgdp(0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
}


def _pytree(model: str, key) -> dict[str, jax.Array]:
    shapes = [output_channels_last(s) for s in MODELS[model]()]
    keys = jax.random.split(key, len(shapes))
    return {
        f"p{i:03d}": jax.random.normal(k, s, jnp.float32)
        for i, (k, s) in enumerate(zip(keys, shapes, strict=True))
    }


def make_step(opt: optax.GradientTransformation, params, grads):
    """A blocking call running one jitted ``update`` + ``apply_updates`` (donated buffers).

    The call's ``carry`` attribute holds the current ``[params, state]`` (copies:
    the arguments are not donated).
    """

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(step, donate_argnums=(0, 1))
    carry = [jax.tree.map(jnp.copy, params), opt.init(params)]

    def call():
        carry[0], carry[1] = jitted(carry[0], carry[1], grads)
        jax.block_until_ready(carry)

    call.carry = carry
    return call


def time_pair(ours, theirs, *, repeat: int) -> tuple[float, float]:
    """Median seconds of each call, measured alternately so shared-machine load
    (this benchmark's CPU is shared) hits both sides alike."""
    for call in (ours, theirs):
        call()
        call()  # compile and warm up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for call, bucket in ((ours, times[0]), (theirs, times[1])):
            bucket.append(median_seconds(call, warmup=0, repeat=1))
    return statistics.median(times[0]), statistics.median(times[1])


def main(quick: bool = False) -> dict:
    repeat = 3 if quick else 15
    rows, records = [], []
    key = jax.random.PRNGKey(0)
    for model in MODELS:
        params = _pytree(model, key)
        grads = _pytree(model, jax.random.PRNGKey(1))
        for pair, (ours, theirs) in PAIRS.items():
            t_ours, t_theirs = time_pair(
                make_step(ours(), params, grads), make_step(theirs(), params, grads), repeat=repeat
            )
            ratio = t_ours / t_theirs
            rows.append((model, pair, t_ours * 1e3, t_theirs * 1e3, ratio))
            records.append(
                {"model": model, "pair": pair, "ours_ms": t_ours * 1e3,
                 "baseline_ms": t_theirs * 1e3, "ratio": ratio}
            )  # fmt: skip
        del params, grads
    device = jax.devices()[0]
    print_table(
        f"adamp_jax vs optax, jitted update + apply_updates ({device.platform}, float32)",
        ("model", "pair", "ours ms", "optax ms", "ratio"),
        rows,
    )
    load = os.getloadavg()
    print(f"load average during the run (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    payload = {
        "load_average": list(load),
        "device": f"{device.platform}:{device.device_kind}",
        "jax": jax.__version__,
        "optax": optax.__version__,
        "quick": quick,
        # adamp_jax separates its passes with optimization barriers only for XLA:CPU
        "optimization_barriers": jax.default_backend() == "cpu",
        "results": records,
    }
    write_json("jax", payload)
    return payload


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
