"""The conformance suite against adamp_keras on this process's KERAS_BACKEND.

``make test`` runs tests/keras once per backend (tensorflow, jax, torch).
"""

import keras
import pytest
from adamp_conformance.builtin import get_adapter
from adamp_conformance.runner import run_suite, select_cases

BACKEND = keras.backend.backend()
# Keras counts steps with one optimizer-wide counter (``iterations``), so a variable left
# without gradient still advances its bias correction: the suite names this deviation.
PER_GROUP_STEP = {"adamp-per-param-step"}


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("adamp_keras")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_adamp_keras_conforms(adapter, dtype):
    results = run_suite(adapter, select_cases(dtypes=[dtype]))
    failing = {r.case_id: r for r in results if r.failed}
    assert set(failing) <= PER_GROUP_STEP, {k: r.reason for k, r in failing.items()}
    for r in failing.values():
        assert r.deviations == ["per_group_step_counter"], r.deviations
    checked = [r for r in results if r.comparison is not None]
    assert checked and all(not r.comparison.branch_mismatches for r in checked if not r.failed)


def test_adamp_keras_conforms_float64(adapter):
    if "float64" not in adapter.dtypes:
        pytest.skip("Keras on JAX without jax_enable_x64 stores float64 variables as float32")
    results = run_suite(adapter, select_cases(dtypes=["float64"]))
    failing = {r.case_id: r for r in results if r.failed}
    assert set(failing) <= PER_GROUP_STEP, {k: r.reason for k, r in failing.items()}
    for r in failing.values():
        assert r.deviations == ["per_group_step_counter"], r.deviations
