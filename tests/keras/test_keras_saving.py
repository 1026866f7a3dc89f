"""Saving and loading ``.keras`` files with AdamP/SGDP, on one backend and across backends.

``keras.saving.load_model`` needs no custom_objects (the classes are registered);
the config and every optimizer variable (moments, buffers, branch codes,
iterations) round-trip, and training resumes exactly. A file written by another
Keras backend (in a subprocess with another KERAS_BACKEND) loads here and
training continues as it does there.
"""

from __future__ import annotations

import json

import adamp_keras
import keras
import numpy as np
import pytest
from keras_helpers import BACKEND, BACKENDS, conv_bn_model, digits_like, run_python, to_numpy

from adamp_core import Branch

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIMIZERS = {
    "adamp": lambda: adamp_keras.AdamP(learning_rate=0.01, weight_decay=0.05, nesterov=True),
    "sgdp": lambda: adamp_keras.SGDP(learning_rate=0.05, momentum=0.9, weight_decay=1e-3),
}


def _trained(name, epochs=2):
    x, y = digits_like()
    model = conv_bn_model()
    model.compile(optimizer=OPTIMIZERS[name](), loss=LOSS)
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return model


def _resume(model):
    x, y = digits_like()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return [to_numpy(w) for w in model.weights]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_save_load_round_trips_and_training_resumes_exactly(name, tmp_path):
    model = _trained(name)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    saved_state = [to_numpy(v) for v in model.optimizer.variables]
    loaded_state = [to_numpy(v) for v in loaded.optimizer.variables]
    assert [v.shape for v in loaded.optimizer.variables] == [
        v.shape for v in model.optimizer.variables
    ]
    for a, b in zip(saved_state, loaded_state, strict=True):
        np.testing.assert_array_equal(a, b)
    # keyed by variable.path, which carries the (auto-numbered) model name
    branches = list(loaded.optimizer.projection_branches().values())
    assert branches == list(model.optimizer.projection_branches().values())
    assert Branch.CHANNEL in branches
    # the same computation on the same backend from the same state: bit-identical
    for a, b in zip(_resume(model), _resume(loaded), strict=True):
        np.testing.assert_array_equal(a, b)


CROSS_SCRIPT = """
import json
import numpy as np
import test_keras_saving as t
from keras_helpers import to_numpy
model = t._trained({name!r})
model.save({path!r})
state = [to_numpy(v) for v in model.optimizer.variables]
resumed = t._resume(model)
np.savez({npz!r}, *state, *resumed)
print(json.dumps({{"n_state": len(state), "config": model.optimizer.get_config()}}))
"""


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_file_saved_on_another_backend_loads_and_resumes(name, tmp_path):
    """Saved on the next backend in (tensorflow, jax, torch), loaded on this one.

    Resumed weights agree to float32 tolerance: the backends' conv and reduction
    kernels round differently (u = 6e-8 relative), and one more epoch (2 steps)
    of lr <= 0.05 moves that by far less than 1e-5.
    """
    other = BACKENDS[(BACKENDS.index(BACKEND) + 1) % len(BACKENDS)]
    path, npz = tmp_path / f"{other}.keras", tmp_path / f"{other}.npz"
    out = run_python(CROSS_SCRIPT.format(name=name, path=str(path), npz=str(npz)), other)
    info = json.loads(out.strip().splitlines()[-1])
    arrays = np.load(npz)
    values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    saved_state, their_resumed = values[: info["n_state"]], values[info["n_state"] :]

    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer).__name__ == {"adamp": "AdamP", "sgdp": "SGDP"}[name]
    assert json.loads(json.dumps(loaded.optimizer.get_config())) == info["config"]
    loaded_state = [to_numpy(v) for v in loaded.optimizer.variables]
    assert len(loaded_state) == len(saved_state)
    for a, b in zip(saved_state, loaded_state, strict=True):
        np.testing.assert_array_equal(a.astype(b.dtype), b)  # iteration: int64 on TF
    for theirs, ours in zip(their_resumed, _resume(loaded), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
