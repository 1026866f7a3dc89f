"""Shared helpers of the Keras tests: the reference stepper, gradient makers, subprocesses.

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

import adamp_core

F32_RTOL = 1e-6
F32_ATOL = 2e-6
REPO = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()
BACKENDS = ("tensorflow", "jax", "torch")


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def tangent_grad(param: np.ndarray, rng: np.random.Generator, channel_axis: int = -1):
    """A gradient orthogonal to every output-channel row of ``param``: the channel view fires."""
    moved = np.moveaxis(param, channel_axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    g = rng.standard_normal(rows.shape)
    g -= rows * (np.sum(rows * g, 1, keepdims=True) / np.sum(rows * rows, 1, keepdims=True))
    return np.moveaxis(g.reshape(moved.shape), 0, channel_axis)


def radial_grad(param: np.ndarray, rng: np.random.Generator):
    """A gradient with a strong radial part: no view fires."""
    return param + 0.3 * rng.standard_normal(param.shape)


def layer_grad(param: np.ndarray, rng: np.random.Generator, channel_axis: int = -1):
    """Orthogonal to w as a whole but radial in one channel: only the layer view fires."""
    g = tangent_grad(param, rng, channel_axis)
    moved = np.moveaxis(g, channel_axis, 0).copy()
    w_moved = np.moveaxis(param, channel_axis, 0)
    moved[0] += w_moved[0]
    moved[1] -= (
        w_moved[0].ravel()
        @ w_moved[0].ravel()
        / (w_moved[1].ravel() @ w_moved[1].ravel())
        * w_moved[1]
    )
    return np.moveaxis(moved, 0, channel_axis)


GRAD_KINDS = {"tangent": tangent_grad, "radial": radial_grad, "layer": layer_grad}


class Reference:
    """adamp_core stepping a list of float64 parameters alongside a Keras optimizer."""

    def __init__(self, params, algorithm: str, **hyper):
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.algorithm = algorithm
        self.hyper = hyper
        self.states = adamp_core.init_states(algorithm, self.params)
        self.branches: list[adamp_core.Branch] = []

    def step(self, grads, *, decay_mask=None, **override):
        hyper = {"channel_axis": -1, **self.hyper, **override}
        per_param = [
            hyper if decay_mask is None or decay_mask[i] else {**hyper, "weight_decay": 0.0}
            for i in range(len(self.params))
        ]
        self.params, self.states, self.branches = adamp_core.step_params(
            self.algorithm, self.params, grads, self.states, per_param
        )


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
