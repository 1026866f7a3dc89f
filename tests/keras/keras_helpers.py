"""Shared helpers of the Keras tests: the reference and gradients in Keras layout, subprocesses.

Tolerances. Variables are float32 (unit roundoff u = 6e-8). One AdamP/SGDP step
of a float32 implementation differs from the float64 reference by a few u
relative to the update size (~lr), plus the rounding of w itself (u·|w|); the
row reductions (length <= 72 here) add at most ~sqrt(72)·u relative. Over a
handful of steps the bound stays below 2e-6 absolute for |w| ~ 1, lr <= 0.05, so
``F32_ATOL = 2e-6`` with ``F32_RTOL = 1e-6`` keeps more than 10x margin without
hiding a wrong term (a wrong term changes w by ~lr = 1e-2).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
from gradients import make_gradient
from reference_runs import Reference

F32_RTOL = 1e-6
F32_ATOL = 2e-6
REPO = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()
BACKENDS = ("tensorflow", "jax", "torch")


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def steered(kind: str, param: np.ndarray, rng: np.random.Generator, channel_axis: int = -1):
    """A gradient of ``kind`` (see tests/support/gradients.py) for ``param``, from a normal
    draw; Keras layout (output channels last) by default."""
    return make_gradient(kind, rng.standard_normal(param.shape), param, channel_axis)


def keras_reference(params, name: str, **hyper) -> Reference:
    """adamp_core stepping alongside a Keras optimizer: output channels last by default."""
    return Reference(params, name, **{"channel_axis": -1, **hyper})


def make_variables(shapes, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s) for s in shapes]
    values = [
        keras.ops.convert_to_numpy(keras.ops.cast(v, dtype)).astype(np.float64) for v in values
    ]
    variables = [keras.Variable(v, dtype=dtype, name=f"w{i}") for i, v in enumerate(values)]
    return values, variables


def conv_bn_model(seed=0, head_dtype=None):
    """Conv (no bias) + BatchNorm + ReLU + pooling + Dense head; ``head_dtype`` pins the
    head's dtype (float32 logits under a mixed policy)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv"),
            keras.layers.BatchNormalization(epsilon=1e-5, name="bn"),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="head", dtype=head_dtype),
        ]
    )


def digits_like(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def run_python(code: str, backend: str, *, env: dict | None = None, timeout: float = 240) -> str:
    """Run ``code`` in a fresh interpreter with ``KERAS_BACKEND=backend``; return stdout."""
    full_env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # the test helpers importable in the child, as pytest's pythonpath makes them here
    helpers = [str(REPO / "tests" / "keras"), str(REPO / "tests" / "support")]
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [*helpers, os.environ.get("PYTHONPATH")]))
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"subprocess on {backend} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout
