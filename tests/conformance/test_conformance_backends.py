"""This project's backends against the suite, every dtype."""

import pytest
from adamp_conformance.builtin import Unavailable, get_adapter
from adamp_conformance.runner import run_suite

# Known failures, reported to the backend owners; strict: a fix makes the test fail until
# the entry is removed.
KNOWN: dict[str, set[str]] = {
    # (was: float16 zero weight row gave NaN; fixed in adamp_torch c72082d)
    "adamp_torch": set(),
}


def _adapter(name):
    try:
        return get_adapter(name)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", ["adamp_torch-foreach", "adamp_torch-single", "adamp_torch-fused"])
def test_adamp_torch_conforms(name):
    pytest.importorskip("torch")
    results = run_suite(_adapter(name))
    assert {r.id for r in results if r.failed} == KNOWN["adamp_torch"]
    assert all(r.comparison.max_state_err is not None for r in results if r.comparison)
    assert not any(r.comparison.branch_mismatches for r in results if r.status == "pass")


def test_adamp_jax_conforms():
    pytest.importorskip("optax")
    results = run_suite(_adapter("adamp_jax"))
    assert [r.id for r in results if r.failed] == []
    # optax has no "no gradient" and counts steps globally: those cases are unsupported
    assert {r.case_id for r in results if r.status == "unsupported"} == {"adamp-per-param-step"}


def test_adamp_torch_channels_last_memory_conforms():
    pytest.importorskip("torch")
    results = run_suite(_adapter("adamp_torch+channels_last"))
    assert {r.id for r in results if r.failed} == KNOWN["adamp_torch"]
