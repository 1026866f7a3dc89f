"""adamp_keras.AdamP / SGDP against keras.optimizers.AdamW / SGD(momentum=0.9), on every
Keras backend, at the scale of real models.

Two measurements, each Keras backend (tensorflow, jax, torch) in its own
subprocess (Keras fixes its backend at import), one subprocess at a time:

- **optimizer step alone** on the variables of ResNet-50 (161 tensors, 25.6 M
  parameters) and ViT-B/16 (152 tensors, 86.6 M), float32, in Keras layout
  (output channels last), with fixed random gradients. Each backend runs the step
  the way Keras runs it in ``fit``: TensorFlow ``optimizer.apply`` inside a
  ``tf.function`` (Keras's default on a CPU-only machine; XLA only where an
  accelerator is present, recorded as ``jit_compile``), JAX a jitted
  ``stateless_apply`` with the trainable and optimizer variables donated and
  returned in the order they came in (as Keras's trainer does), torch
  an eager ``optimizer.apply``. On JAX the same shapes are also stepped by
  ``adamp_jax.adamp`` / ``adamp_jax.sgdp`` (jitted update + ``apply_updates``,
  donated), to compare the Keras and optax paths.
- **end-to-end ``fit``** of a 5-block conv net with batch norm (3.9 M
  parameters, 16x16x3 inputs, batch 32): ``model.fit`` over a fixed set of
  batches, Keras's default ``jit_compile``.

Every optimizer uses weight decay 1e-2 (the decay pass is in every row; SGD and
SGDP without Nesterov). Optimizers are timed in interleaved rounds so that a
noisy machine slows them alike; a round times ``steps`` consecutive steps of one
optimizer and the reported time is the median over rounds. Ratios are ours /
Keras's built-in within one backend and run. Gradients are random, so the
projection's decisions match a real run in cost only (every branch is computed
and selected with ``where`` either way).

Runs on whatever device each framework picks (CPU or GPU); the device is
recorded. ``--quick``: fewer rounds, for a smoke run or a short device check.

Run: ``python -m benchmarks --only keras [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import print_table, write_json

BACKENDS = ("tensorflow", "jax", "torch")
OPTIMIZERS = ("AdamW", "AdamP", "SGD", "SGDP")
PAIRS = (("AdamP", "AdamW"), ("SGDP", "SGD"))
BASELINE = {"AdamP": "AdamW", "SGDP": "SGD", "AdamW": "AdamW", "SGD": "SGD"}
WEIGHT_DECAY = 1e-2
LEARNING_RATE = {"Adam": 1e-3, "SGD": 0.1}
STEP_MODELS = ("resnet50", "vit_b16")
BATCH, SIZE, CLASSES = 32, 32, 10
WIDTHS = (16, 32, 64)  # filters of the small conv net (tests)
FIT_SIZE, FIT_WIDTHS = 16, (64, 128, 256, 512, 512)  # the 3.9 M-parameter conv net
REPO = Path(__file__).resolve().parents[1]


# -- models and optimizers -------------------------------------------------------------


def _model(size: int = SIZE, widths: tuple[int, ...] = WIDTHS):
    """Conv2D + BatchNormalization + ReLU blocks (stride 2 after the first), global
    average pooling and a Dense head."""
    import keras

    layers = [keras.Input((size, size, 3))]
    for i, filters in enumerate(widths):
        layers += [
            keras.layers.Conv2D(filters, 3, strides=1 if i == 0 else 2, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES)]
    return keras.Sequential(layers)


def _optimizer(name: str):
    import adamp_keras
    import keras

    adam = {"learning_rate": LEARNING_RATE["Adam"], "weight_decay": WEIGHT_DECAY}
    sgd = {"learning_rate": LEARNING_RATE["SGD"], "momentum": 0.9, "weight_decay": WEIGHT_DECAY}
    return {
        "AdamW": lambda: keras.optimizers.AdamW(**adam, epsilon=1e-8),
        "AdamP": lambda: adamp_keras.AdamP(**adam),
        "SGD": lambda: keras.optimizers.SGD(**sgd),
        "SGDP": lambda: adamp_keras.SGDP(**sgd),
    }[name]()


def _interleaved(calls: dict, *, rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """``{name: [mean seconds per call, one per round]}``; each call blocks until done."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(steps):
                call()
            times[name].append((time.perf_counter() - start) / steps)
    return times


# -- end-to-end fit ----------------------------------------------------------------------


def time_models(
    names=OPTIMIZERS,
    *,
    rounds: int,
    steps: int,
    size: int = SIZE,
    widths: tuple[int, ...] = WIDTHS,
    warmup: int = 3,
):
    """Compile the model once per optimizer in ``names`` (same seed, same initial weights),
    warm each up with ``warmup`` batches, then time one ``fit`` epoch of ``steps`` batches
    per optimizer in each of ``rounds`` interleaved rounds.
    Returns ``(models, {name: [mean seconds per step, one per round]})``."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH * steps, size, size, 3)).astype("float32")
    y = rng.integers(0, CLASSES, BATCH * steps)
    models = {}
    for name in names:
        keras.utils.set_random_seed(0)
        model = _model(size, widths)
        model.compile(
            optimizer=_optimizer(name),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x[: BATCH * warmup], y[: BATCH * warmup], batch_size=BATCH, verbose=0)
        models[name] = model

    def fit(model):
        return lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    calls = {name: fit(model) for name, model in models.items()}
    times = _interleaved(calls, rounds=rounds, steps=1, warmup=0)
    return models, {name: [t / steps for t in ts] for name, ts in times.items()}


def fit_worker(quick: bool) -> dict:
    import keras
    import numpy as np

    rounds, steps = (3, 4) if quick else (7, 8)
    models, times = time_models(rounds=rounds, steps=steps, size=FIT_SIZE, widths=FIT_WIDTHS)
    params = sum(int(np.prod(w.shape)) for w in models["AdamP"].trainable_weights)
    return {
        "backend": keras.backend.backend(),
        "jit_compile": str(models["AdamP"].jit_compile),
        "trainable_parameters": params,
        "input": [FIT_SIZE, FIT_SIZE, 3],
        "batch": BATCH,
        "rounds": rounds,
        "steps_per_round": steps,
        "ms_per_step": {name: 1e3 * statistics.median(t) for name, t in times.items()},
    }


# -- the optimizer step alone ------------------------------------------------------------


def _variables_and_gradients(model: str):
    """Keras variables of ``model``'s shapes (Keras layout) and random gradients."""
    import keras
    import numpy as np

    from benchmarks.shapes import MODELS, output_channels_last

    rng = np.random.default_rng(0)
    variables, grads = [], []
    for i, shape in enumerate(output_channels_last(s) for s in MODELS[model]()):
        variables.append(keras.Variable(rng.standard_normal(shape, np.float32), name=f"p{i:03d}"))
        grads.append(keras.ops.convert_to_tensor(rng.standard_normal(shape, np.float32)))
    return variables, grads


def _sync(value) -> None:
    """Block until ``value`` (a backend tensor, or a pytree of jax arrays) is computed."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready(value)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        keras.ops.convert_to_numpy(value)  # a scalar: waits for the step that produced it


def _step_call(optimizer, variables, grads):
    """A blocking call running one optimizer step the way Keras's trainer runs it."""
    import keras

    optimizer.build(variables)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def apply(grads):
            optimizer.apply(grads, variables)
            return optimizer.iterations.value

        return lambda: _sync(apply(grads))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        # The donated state goes in and comes out in one order, as in Keras's
        # trainer (``train_step(state, data) -> (logs, state)``, state donated).
        # JAX pairs each output with the first unused donated input of its
        # shape and dtype, so with ``stateless_apply``'s own order (optimizer
        # variables in, trainable ones out first) a weight's output would take
        # a moment's buffer and XLA would copy every moment before the step.
        def apply(optimizer_values, trainable_values, grads):
            trainable_values, optimizer_values = optimizer.stateless_apply(
                optimizer_values, grads, trainable_values
            )
            return optimizer_values, trainable_values

        jitted = jax.jit(apply, donate_argnums=(0, 1))
        carry = [
            [jnp.copy(v.value) for v in optimizer.variables],
            [jnp.copy(v.value) for v in variables],
        ]

        def call():
            carry[0], carry[1] = jitted(carry[0], carry[1], grads)
            _sync(carry)

        call.carry = carry  # [optimizer variable values, trainable variable values]
        return call

    def call():
        optimizer.apply(grads, variables)
        _sync(None)

    return call


def _optax_call(name: str, variables, grads):
    """``adamp_jax.adamp`` / ``sgdp`` with the Keras optimizer's hyperparameters, jitted."""
    import adamp_jax

    from benchmarks.bench_jax import make_step

    opt = {
        "adamp_jax.adamp": lambda: adamp_jax.adamp(
            LEARNING_RATE["Adam"], weight_decay=WEIGHT_DECAY
        ),
        "adamp_jax.sgdp": lambda: adamp_jax.sgdp(
            LEARNING_RATE["SGD"], momentum=0.9, weight_decay=WEIGHT_DECAY
        ),
    }[name]()
    params = {v.name: v.value for v in variables}
    return make_step(opt, params, dict(zip(params, grads, strict=True)))


def _device() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform)
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def step_worker(model: str, quick: bool) -> dict:
    """Time the optimizer step alone on ``model``'s variables, one pair at a time (so
    that ViT-B/16's variables, gradients and two optimizers' state fit in ~2 GB)."""
    import keras

    rounds, steps = (3, 1) if quick else (7, 1)
    variables, grads = _variables_and_gradients(model)
    ms: dict[str, float] = {}
    for ours, theirs in PAIRS:
        calls = {name: _step_call(_optimizer(name), variables, grads) for name in (theirs, ours)}
        if keras.backend.backend() == "jax":
            name = "adamp_jax.adamp" if ours == "AdamP" else "adamp_jax.sgdp"
            calls[name] = _optax_call(name, variables, grads)
        times = _interleaved(calls, rounds=rounds, steps=steps, warmup=2)
        ms.update({name: 1e3 * statistics.median(t) for name, t in times.items()})
        del calls
        gc.collect()
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "device": _device(),
        "model": model,
        "parameters": sum(math.prod(v.shape) for v in variables),
        "rounds": rounds,
        "steps_per_round": steps,
        "ms_per_step": ms,
    }


# -- the driver --------------------------------------------------------------------------


def _run(backend: str, args: list[str]) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_keras", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"backend": backend, "error": result.stderr.strip().splitlines()[-3:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _ratio(ms: dict, name: str) -> float | str:
    base = "SGD" if "sgd" in name.lower() else "AdamW"
    return ms[name] / ms[base] if base in ms else ""


def main(quick: bool = False) -> dict:
    flag = ["--quick"] if quick else []
    load_before = os.getloadavg()
    steps, fits = [], []
    for backend in BACKENDS:
        for model in STEP_MODELS:
            steps.append(_run(backend, ["--step", model, *flag]))
        fits.append(_run(backend, ["--fit", *flag]))
    rows = []
    for res in steps:
        if "error" in res:
            rows.append([res["backend"], "", "error", "", str(res["error"])])
            continue
        for name, ms in res["ms_per_step"].items():
            rows.append([res["backend"], res["model"], name, ms, _ratio(res["ms_per_step"], name)])
    print_table(
        f"Keras optimizer step alone, float32, Keras layout ({'quick' if quick else 'full'})",
        ["backend", "model", "optimizer", "ms/step", "x keras baseline"],
        rows,
    )
    rows = []
    for res in fits:
        if "error" in res:
            rows.append([res["backend"], "error", "", "", str(res["error"])])
            continue
        for name, ms in res["ms_per_step"].items():
            rows.append([res["backend"], name, ms, _ratio(res["ms_per_step"], name),
                         res["jit_compile"]])  # fmt: skip
    print_table(
        f"Keras fit, conv net {FIT_WIDTHS} + batch norm, {FIT_SIZE}x{FIT_SIZE}x3, batch {BATCH}",
        ["backend", "optimizer", "ms/step", "x keras baseline", "jit_compile"],
        rows,
    )
    load_after = os.getloadavg()
    payload = {
        "quick": quick,
        "weight_decay": WEIGHT_DECAY,
        "load_average_1_5_15_min_before": list(load_before),
        "load_average_1_5_15_min_after": list(load_after),
        "step_alone": steps,
        "fit": fits,
    }
    path = write_json("keras", payload)
    print(f"load average before {load_before}, after {load_after}; wrote {path}")
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", choices=STEP_MODELS, help="worker: time the step alone")
    parser.add_argument("--fit", action="store_true", help="worker: time fit")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step_worker(args.step, args.quick)))
    elif args.fit:
        print(json.dumps(fit_worker(args.quick)))
    else:
        main(args.quick)
