"""Meta-tests: every deliberately broken implementation is caught by the expected flags."""

import re

import pytest
from adamp_conformance.broken import BROKEN
from adamp_conformance.runner import run_suite, select_cases

VARIANT_BROKEN = [name for name, b in BROKEN.items() if b.flags]


@pytest.mark.parametrize("name", VARIANT_BROKEN)
def test_broken_implementation_is_caught_by_its_flags(name):
    broken = BROKEN[name]
    results = run_suite(broken.adapter, select_cases(dtypes=["float64", "float32"]))
    failing = [r for r in results if r.failed]
    assert failing, f"{name} passes the suite"
    for flag in broken.flags:
        assert any(flag.value in r.flags for r in failing), f"{name}: no {flag.value} case fails"
    # the runner names the deviation on the cases of the expected flags
    flagged = [r for r in failing if set(r.flags) & {f.value for f in broken.flags}]
    named = [
        r for r in flagged if any(broken.variant in re.split(r"[+|]", d) for d in r.deviations)
    ]
    assert named, (
        f"{name}: deviation {broken.variant} never named: {[r.deviations for r in flagged]}"
    )
