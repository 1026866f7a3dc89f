"""Data-parallel training over 2 CPU devices equals training on one device.

TensorFlow: ``tf.distribute.MirroredStrategy`` over 2 logical CPUs. JAX:
``keras.distribution.DataParallel`` over 2 fake host devices
(``--xla_force_host_platform_device_count=2``). Both need settings made before the
framework starts, so each runs in a fresh interpreter; each is skipped on the other
Keras backends, which have no such strategy in Keras 3.

The model normalises a Dense layer with LayerNormalization (per sample, so the
per-replica batch halves see the same statistics as the whole batch): its kernel
is scale-invariant as a whole, and the projection fires in the layer view.
Tolerance: the two replicas' gradients are summed in a different order than one
device sums the whole batch (float32, u = 6e-8, 16-sample sums); three AdamP
steps of lr 0.01 keep the difference below 1e-6, checked at 1e-5.
"""

from __future__ import annotations

import json

import pytest
from keras_helpers import BACKEND, run_python

COMMON = """
import json
import adamp_keras, keras, numpy as np

def build():
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, use_bias=False, name="hidden"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.ReLU(),
        keras.layers.Dense(3, name="head"),
    ], name="net")  # a fixed name: both runs' variables get the same paths

rng = np.random.default_rng(0)
x = rng.standard_normal((32, 6)).astype("float32")
y = rng.integers(0, 3, 32)

def train(model, initial):
    model.set_weights(initial)
    optimizer = adamp_keras.AdamP(learning_rate=0.01, weight_decay=0.1)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    branches = {p: int(b) for p, b in optimizer.projection_branches().items()}
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    return weights, branches, int(keras.ops.convert_to_numpy(optimizer.iterations))

keras.utils.set_random_seed(0)
initial = build().get_weights()
single = train(build(), initial)
"""

TF_SCRIPT = (
    """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    + COMMON
    + """
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    parallel = train(build(), initial)
"""
)

JAX_SCRIPT = (
    COMMON
    + """
import jax
assert len(jax.devices()) == 2
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
parallel = train(build(), initial)
"""
)

REPORT = """
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single[0], parallel[0]))
scale = max(float(np.max(np.abs(a))) for a in single[0])
print(json.dumps({"diff": diff, "scale": scale, "single": single[1:], "parallel": parallel[1:]}))
"""


def _check(out: str) -> None:
    result = json.loads(out.strip().splitlines()[-1])
    assert result["diff"] <= 1e-5 * max(1.0, result["scale"])
    single_branches, single_steps = result["single"]
    assert result["parallel"] == result["single"]
    assert single_steps == 4
    # one entry per variable, keyed by its full path; Branch codes: 0 NONE, 2 LAYER
    assert single_branches == {
        "net/hidden/kernel": 2,  # LayerNormalization makes the kernel scale-invariant
        "net/norm/gamma": 0,  # 1-D variables are never projected
        "net/norm/beta": 0,
        "net/head/kernel": 0,  # a classifier head is not scale-invariant
        "net/head/bias": 0,
    }


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute needs the tensorflow backend")
def test_mirrored_strategy_over_two_cpus_equals_one_device():
    _check(run_python(TF_SCRIPT + REPORT, "tensorflow"))


@pytest.mark.skipif(
    BACKEND != "jax", reason="keras.distribution.DataParallel needs the jax backend"
)
def test_jax_data_parallel_over_two_devices_equals_one_device():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    _check(run_python(JAX_SCRIPT + REPORT, "jax", env=env))
