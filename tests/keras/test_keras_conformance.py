"""The conformance suite against adamp_keras on this process's KERAS_BACKEND.

``make test`` runs tests/keras once per backend (tensorflow, jax, torch). Every
case must pass, the per-parameter step count included (adamp_keras counts steps
per variable, as the authors' code does).
"""

import pytest
from adamp_conformance.builtin import get_adapter
from adamp_conformance.runner import run_suite, select_cases


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("adamp_keras")


def _check_conforms(adapter, dtype):
    results = run_suite(adapter, select_cases(dtypes=[dtype]))
    failing = {r.case_id: (r.reason, r.deviations) for r in results if r.failed}
    assert not failing, failing
    checked = [r for r in results if r.comparison is not None]
    assert checked and all(not r.comparison.branch_mismatches for r in checked)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_adamp_keras_conforms(adapter, dtype):
    _check_conforms(adapter, dtype)


def test_adamp_keras_conforms_float64(adapter):
    if "float64" not in adapter.dtypes:
        pytest.skip("Keras on JAX without jax_enable_x64 stores float64 variables as float32")
    _check_conforms(adapter, "float64")
