"""Train-step time of adamp_keras.AdamP / SGDP against keras.optimizers.AdamW / SGD.

The same small convolutional network with batch normalisation (three Conv2D +
BatchNormalization + ReLU blocks, global pooling, a Dense head; 32x32x3 inputs,
batch 32) is trained with ``model.train_on_batch`` on each Keras backend
(tensorflow, jax, torch), each backend in its own process (Keras fixes its
backend at import). ``compile`` uses Keras's default ``jit_compile="auto"``: XLA
on jax; on tensorflow XLA only where an accelerator is present (Keras turns it off
on CPU-only machines, leaving a plain ``tf.function``); eager on torch. The JSON
records what it resolved to. All optimizers use weight decay 1e-2, so
the decay pass is in every row. The four optimizers are timed in interleaved
rounds so that a noisy machine slows them alike; the reported time is the median
over rounds of the mean step time within a round. Target: AdamP <= 1.5x AdamW.

Run: ``python -m benchmarks --only keras [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import print_table, write_json

BACKENDS = ("tensorflow", "jax", "torch")
OPTIMIZERS = ("AdamW", "AdamP", "SGD", "SGDP")
BASELINE = {"AdamP": "AdamW", "SGDP": "SGD", "AdamW": "AdamW", "SGD": "SGD"}
WEIGHT_DECAY = 1e-2
BATCH, SIZE, CLASSES = 32, 32, 10
WIDTHS = (16, 32, 64)  # filters of the three conv blocks
REPO = Path(__file__).resolve().parents[1]


def _model(size: int = SIZE, widths: tuple[int, ...] = WIDTHS):
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

    adam = {"learning_rate": 1e-3, "weight_decay": WEIGHT_DECAY}
    sgd = {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": WEIGHT_DECAY}
    return {
        "AdamW": lambda: keras.optimizers.AdamW(**adam, epsilon=1e-8),
        "AdamP": lambda: adamp_keras.AdamP(**adam),
        "SGD": lambda: keras.optimizers.SGD(**sgd),
        "SGDP": lambda: adamp_keras.SGDP(**sgd),
    }[name]()


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
    warm each up, then time ``steps`` train steps per optimizer in each of ``rounds``
    interleaved rounds. ``size`` and ``widths`` shrink the model for a smoke test.
    Returns ``(models, {name: [mean seconds per step, one per round]})``."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, size, size, 3)).astype("float32")
    y = rng.integers(0, CLASSES, BATCH)
    models = {}
    for name in names:
        keras.utils.set_random_seed(0)
        model = _model(size, widths)
        model.compile(
            optimizer=_optimizer(name),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        for _ in range(warmup):  # compile / trace and warm up
            model.train_on_batch(x, y)
        models[name] = model
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)  # returns host numbers: the step has finished
            times[name].append((time.perf_counter() - start) / steps)
    return models, times


def worker(quick: bool) -> dict:
    """Time every optimizer on the backend this process runs (KERAS_BACKEND)."""
    import keras
    import numpy as np

    rounds, steps = (5, 3) if quick else (15, 10)
    models, times = time_models(rounds=rounds, steps=steps)
    params = sum(int(np.prod(w.shape)) for w in models["AdamP"].trainable_weights)
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "jit_compile": str(models["AdamP"].jit_compile),
        "trainable_parameters": params,
        "rounds": rounds,
        "steps_per_round": steps,
        "ms_per_step": {name: 1e3 * statistics.median(t) for name, t in times.items()},
    }


def _run_backend(backend: str, quick: bool) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, "-m", "benchmarks.bench_keras", "--worker"]
    result = subprocess.run(
        [*args, *(["--quick"] if quick else [])],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"backend": backend, "error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(quick: bool = False) -> dict:
    results = [_run_backend(backend, quick) for backend in BACKENDS]
    rows = []
    for res in results:
        if "error" in res:
            rows.append([res["backend"], "error", "", "", str(res["error"])])
            continue
        ms = res["ms_per_step"]
        for name in OPTIMIZERS:
            ratio = ms[name] / ms[BASELINE[name]]
            rows.append([res["backend"], name, ms[name], ratio, res["jit_compile"]])
    print_table(
        f"Keras train step, conv net + batch norm, batch {BATCH} ({'quick' if quick else 'full'})",
        ["backend", "optimizer", "ms/step", "x baseline", "jit_compile"],
        rows,
    )
    payload = {
        "quick": quick,
        "batch": BATCH,
        "input": [SIZE, SIZE, 3],
        "load_average_1_5_15_min_after": list(os.getloadavg()),
        "results": results,
    }
    path = write_json("keras", payload)
    print(f"load average after the run: {os.getloadavg()}; wrote {path}")
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.quick)))
    else:
        main(args.quick)
