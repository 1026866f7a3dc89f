"""Smoke test of benchmarks/bench_keras.py's timing code on a tiny input, on the Keras
backend this process runs (KERAS_BACKEND)."""

from __future__ import annotations

import keras
import numpy as np
from keras_helpers import to_numpy

from adamp_core import Branch
from benchmarks.bench_keras import _model, time_models


def test_time_models_runs_and_steps_the_weights():
    models, times = time_models(
        ("AdamW", "AdamP"), rounds=2, steps=1, size=8, widths=(4, 8), warmup=1
    )
    assert set(times) == {"AdamW", "AdamP"}
    assert all(len(t) == 2 and all(s > 0 for s in t) for t in times.values())
    keras.utils.set_random_seed(0)  # time_models builds every model from this seed
    initial = [to_numpy(w) for w in _model(8, (4, 8)).trainable_weights]
    for model in models.values():
        trained = [to_numpy(w) for w in model.trainable_weights]
        assert len(trained) == len(initial)
        # warmup + 2 rounds = 3 steps of lr 1e-3: the kernels move by ~3e-3 (the conv
        # biases, cancelled by batch norm, get almost no gradient)
        kernels = [(a, b) for a, b in zip(initial, trained, strict=True) if a.ndim > 1]
        assert len(kernels) == 3
        assert all(not np.allclose(a, b, rtol=0, atol=1e-4) for a, b in kernels)
    adamp = models["AdamP"]
    branches = adamp.optimizer.projection_branches()
    conv = [layer.kernel.path for layer in adamp.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(conv) == 2
    assert all(branches[path] is Branch.CHANNEL for path in conv)  # each precedes batch norm


def test_step_call_steps_the_variables_the_way_keras_runs_it():
    """The optimizer-step-alone timer of bench_keras on two tiny variables: each call
    is one step (tf.function apply, jitted stateless_apply or eager apply)."""
    from benchmarks.bench_keras import _optimizer, _step_call

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 2, 4), (4,)]
    for name in ("AdamW", "AdamP", "SGD", "SGDP"):
        variables = [keras.Variable(rng.standard_normal(s).astype("float32")) for s in shapes]
        grads = [keras.ops.convert_to_tensor(rng.standard_normal(s).astype("float32"))
                 for s in shapes]  # fmt: skip
        before = [to_numpy(v) for v in variables]
        optimizer = _optimizer(name)
        call = _step_call(optimizer, variables, grads)
        call()
        call()
        if keras.backend.backend() == "jax":  # stateless: the call carries the values
            iterations = [v is optimizer.iterations for v in optimizer.variables].index(True)
            assert int(call.carry[0][iterations]) == 2
            after = [np.asarray(v) for v in call.carry[1]]
        else:
            assert int(to_numpy(optimizer.iterations)) == 2
            after = [to_numpy(v) for v in variables]
        assert all(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
