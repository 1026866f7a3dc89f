"""The public implementations: the suite names the deviations they are known to have.

Each runs only if installed (``make test`` installs them, without their dependencies).
"""

import re

import pytest
from adamp_conformance.builtin import Unavailable, get_adapter
from adamp_conformance.runner import run_suite, select_cases

EXPECTED = {
    # timm keeps the SGDP buffer unprojected (it projects a clone).
    "timm": {"sgdp_buffer_not_projected"},
    # pytorch_optimizer: eps before the bias correction, one step counter per group, clone.
    "pytorch_optimizer": {
        "eps_inside_bias_correction",
        "eps_inside_bias_correction+per_group_step_counter",
        "sgdp_buffer_not_projected",
    },
    # torch_optimizer: cosine x.y / ((|x| + eps)(|y| + eps)).
    "torch_optimizer": {"cos_plus_eps"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_implementation_deviations_are_named(name):
    pytest.importorskip("torch")
    try:
        adapter = get_adapter(name)
    except Unavailable as exc:
        pytest.skip(str(exc))
    results = run_suite(adapter, select_cases(dtypes=["float64", "float32"]))
    failing = [r for r in results if r.failed]
    assert failing
    assert [r.id for r in failing if not r.deviations] == []  # every failure explained
    # a finding "a|b" (the case cannot tell a from b) names each of its alternatives
    named = {alt for r in failing for d in r.deviations for alt in d.split("|")}
    assert EXPECTED[name] <= named
    # each failing case's explanation involves one of the expected deviations
    for r in failing:
        assert any(
            set(re.split(r"[+|]", d)) & {e for x in EXPECTED[name] for e in x.split("+")}
            for d in r.deviations
        ), (r.id, r.deviations)


def test_authors_adamp_crashes_on_channels_last_memory_and_the_run_goes_on():
    pytest.importorskip("adamp")
    pytest.importorskip("torch")
    results = run_suite(get_adapter("adamp+channels_last"), select_cases(dtypes=["float32"]))
    four_d = {r.id for r in results if r.status == "error"}
    assert four_d and all(
        "view size is not compatible" in r.reason for r in results if r.status == "error"
    )
    # the cases without a 4-D weight still run and pass
    assert {r.status for r in results if r.id not in four_d} <= {"pass", "unsupported"}
