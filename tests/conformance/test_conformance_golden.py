"""The golden files: regenerated bit for bit, accepted by the generator, covering every flag."""

import json

import numpy as np
import pytest
from adamp_conformance.cases import CASES
from adamp_conformance.flags import FLAG_VARIANTS, Flag
from adamp_conformance.golden import GOLDEN_DIR, build, build_all, check, load_all, load_manifest
from adamp_conformance.tolerance import DTYPES, round_to


def test_regenerated_golden_files_are_bit_identical():
    manifest, files = build_all()
    committed = load_manifest()
    assert manifest["case_set_hash"] == committed["case_set_hash"]
    assert json.loads(json.dumps(manifest["cases"])) == committed["cases"]
    for case_id, arrays in files.items():
        with np.load(GOLDEN_DIR / f"{case_id}.npz") as stored:
            assert sorted(stored.files) == sorted(arrays), case_id
            for key, value in arrays.items():
                assert stored[key].dtype == value.dtype, key
                assert stored[key].tobytes() == value.tobytes(), f"{case_id}: {key} differs"


def test_golden_set_is_small_and_complete():
    size = sum(f.stat().st_size for f in GOLDEN_DIR.iterdir())
    assert size < 5e6
    ids = [c.id for c in load_all()]
    assert len(ids) == len(set(ids))
    assert {c.id for c in CASES} == {c.case_id for c in load_all()}
    covered = {flag for c in CASES for flag in c.flags}
    assert covered == set(Flag), f"flags without a case: {set(Flag) - covered}"
    assert {c.dtype for c in load_all()} == set(DTYPES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_generator_accepts_every_case(case):
    for dtype in case.dtypes:
        result = check(build(case, dtype))
        assert result["problems"] == [], (case.id, dtype)


def test_generator_rejects_a_blind_case():
    # Eps placement is invisible at gradients ~1: the generator must refuse the flag.
    from dataclasses import replace

    case = next(c for c in CASES if c.id == "adamp-eps-placement")
    blind = replace(case, params=tuple(replace(p, grad_scale=1.0) for p in case.params))
    problems = check(build(blind, "float32"))["problems"]
    assert any("eps_inside_bias_correction" in p for p in problems)


def test_generator_rejects_a_decision_near_the_threshold():
    from dataclasses import replace

    case = next(c for c in CASES if c.id == "adamp-cos-eps")
    # delta such that the cosine 0.5 sits 1% below the threshold
    near = replace(case, hyper={**case.hyper, "delta": 0.505 * 3.0})
    problems = check(build(near, "float64"))["problems"]
    assert any("threshold" in p for p in problems)


def test_every_flag_names_existing_variants():
    from adamp_conformance.variants import VARIANTS

    for per_optimizer in FLAG_VARIANTS.values():
        for names in per_optimizer.values():
            assert set(names) <= set(VARIANTS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_to_is_idempotent_and_nearest(dtype):
    x = np.random.default_rng(0).standard_normal(1000) * 10.0 ** np.arange(-3, 7).repeat(100)
    once = round_to(x, dtype)
    assert np.array_equal(round_to(once, dtype), once)
    if dtype == "bfloat16":  # against the float32 bit pattern: low 16 bits cleared
        bits = once.astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0)
        assert np.all(np.abs(once - x) <= np.abs(x) * 2.0**-8)
