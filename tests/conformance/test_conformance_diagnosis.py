"""Diagnosis: naming the cause on ports written like public ones, ambiguity, localisation,
the layout re-run, and the adapter helpers handing hyperparameters over as floats."""

from dataclasses import replace

import numpy as np
import pytest
from adamp_conformance.adapters import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    Adapter,
    as_float,
    translate,
)
from adamp_conformance.broken import BROKEN
from adamp_conformance.flags import FLAG_VARIANTS
from adamp_conformance.golden import load_all
from adamp_conformance.ports import BANK, Port, classify, port_adapter
from adamp_conformance.runner import run_suite, select_cases, suite_report
from adamp_conformance.table import summarise
from adamp_conformance.variants import VARIANTS
from hypothesis import assume, given, settings
from hypothesis import strategies as st

CANNOT_SPLIT = {
    "cos_against_update": {"cos_against_momentum", "no_projection"},
    "eps_squared_underflow": {"cos_naive"},
}


def _flag_cases(variant: str) -> list[str]:
    """The case ids built to expose ``variant`` (their flags name it)."""
    flags = {
        f.value for f, per in FLAG_VARIANTS.items() for names in per.values() if variant in names
    }
    return sorted({c.case_id for c in load_all() if flags & set(c.flags)})


@pytest.mark.parametrize("layout", [CHANNELS_LAST, CHANNELS_FIRST])
def test_faithful_port_passes_every_case(layout):
    results = run_suite(port_adapter(Port, layout))
    assert [r.id for r in results if r.status != "pass"] == []


@pytest.mark.parametrize("name", sorted(n for n in BANK if n != "port-tf_keras-keras"))
def test_bank_port_is_named_on_the_cases_of_its_flag(name):
    """Each mistake seen in a public port, in both layouts, is caught by the cases built for
    it and named there (alone or in a finding the case cannot split)."""
    port = BANK[name]
    (expected,) = port.expected
    results = run_suite(port.adapter, select_cases(ids=_flag_cases(expected)))
    failing = [r for r in results if r.failed]
    assert failing, f"{name} passes the cases of its flag"
    assert {classify(r, port.expected) for r in failing} == {"named"}, [
        (r.id, r.deviations) for r in failing
    ]
    # named alone on some case, except where no case can split two names: SGDP's update is
    # its buffer, AdamP's m / denom is never orthogonal to the weight here (no projection),
    # and float16 flushing eps^2 to 0 is the naive cosine
    siblings = CANNOT_SPLIT.get(expected, set())
    assert any(set(r.deviations[0].split("|")) <= {expected} | siblings for r in failing)


def test_every_new_variant_has_an_exposing_case_and_a_bank_port():
    new = {n for p in BANK.values() for n in p.expected} - {
        "channel_axis_first_of_channels_last",
        "channel_axis_last",
        "cos_plus_eps",
    }
    assert len(new) == 8 and new <= set(VARIANTS)
    exposed = {name for c in load_all() for name in c.meta["exposes"]}
    assert new <= exposed
    for variant in new:
        layouts = {p.adapter.layout for p in BANK.values() if variant in p.expected}
        assert layouts == {CHANNELS_FIRST, CHANNELS_LAST}, variant


def test_names_a_case_cannot_split_are_one_ambiguous_finding():
    # cos-eps-old-torch: x.y/((|x|+eps)(|y|+eps)) and x.y/max(|x||y|, eps) take the same decisions
    results = run_suite(
        BROKEN["cosine_plus_eps"].adapter, select_cases(ids=["adamp-cos-eps-old-torch-f64"])
    )
    (result,) = results
    (finding,) = result.findings
    assert finding["ambiguous"] and {"cos_plus_eps", "cos_old_torch"} <= set(finding["names"])
    assert finding["names"][0] in result.findings[0]["names"]  # exposed names come first
    assert len(result.deviations) == 1 and "|" in result.deviations[0]
    # counted once in the table
    assert sum(summarise(results)["deviations"].values()) == 1


def test_axis_variants_are_ambiguous_on_two_dimensional_weights():
    # adamp-cos-eps holds one (3, 9) weight: the last axis and axis 0 of (9, 3) coincide
    adapter = BROKEN["wrong_channel_axis"].adapter
    (result,) = run_suite(adapter, select_cases(ids=["adamp-cos-eps-f64"]), swap_layout=False)
    assert result.deviations == ["channel_axis_last|channel_axis_first_of_channels_last"]


def test_wrong_axis_is_looked_past_with_the_layout_swapped():
    """A tf.keras-style port: PyTorch's reshape(x.shape[0], -1) on Keras kernels, the
    (|x|+eps)(|y|+eps) cosine, scalars in the variable dtype."""
    port = BANK["port-tf_keras-keras"]
    ids = ["adamp-channel-f64", "adamp-cos-eps-f64", "adamp-weight-decay-bf16"]
    results = run_suite(port.adapter, select_cases(ids=ids))
    by_id = {r.id: r for r in results}
    assert by_id["adamp-channel-f64"].deviations == ["channel_axis_first_of_channels_last"]
    assert by_id["adamp-channel-f64"].layout_swapped.status == "pass"
    swapped = by_id["adamp-cos-eps-f64"].layout_swapped
    assert swapped.failed and swapped.deviations[0].startswith("cos_plus_eps")
    assert by_id["adamp-weight-decay-bf16"].deviations == ["scalars_in_param_dtype"]
    summary = suite_report(port.adapter, results)["summary"]
    after = summary["after_layout_swap"]
    assert after["layout"] == CHANNELS_FIRST and after["rerun"] == 3 and after["pass"] == 1
    assert any(d.startswith("cos_plus_eps") for d in after["deviations"])
    assert "scalars_in_param_dtype" in after["deviations"]


def test_no_swap_without_an_axis_finding():
    results = run_suite(BROKEN["eps_moved"].adapter, select_cases(ids=["adamp-channel-f64"]))
    assert results[0].layout_swapped is None
    assert (
        suite_report(BROKEN["eps_moved"].adapter, results)["summary"]["after_layout_swap"] is None
    )


# ------------------------------------------------------------------------------ localising


class _NoProjectionAbove2D(Port):
    """Projects only 2-D weights (``if p.ndim == 2``): no variant does that."""

    def project(self, param, grad, update, hp):
        if param.ndim > 2:
            return update, self.work(1.0)
        return super().project(param, grad, update, hp)


class _DoubleDecay(Port):
    def decay(self, weight_decay):
        return 2 * weight_decay


class _HalfProjection(Port):
    """Removes half of the radial component."""

    def project(self, param, grad, update, hp):
        projected, ratio = super().project(param, grad, update, hp)
        return (projected + update) / 2, ratio


class _Beta2ForFirstMoment(Port):
    """beta2 where beta1 belongs (first moment and its bias correction)."""

    def _adamp(self, i, p, g):
        hp = self.hp[i]
        self.hp[i] = {**hp, "beta1": hp["beta2"]}
        try:
            return super()._adamp(i, p, g)
        finally:
            self.hp[i] = hp


def _no_state(cls):
    return type(cls.__name__ + "NoState", (cls,), {"state": None})


@pytest.mark.parametrize(
    ("cls", "case_id", "step", "tensor", "quantity"),
    [
        (_NoProjectionAbove2D, "adamp-reduction-axes-f64", 1, "conv", "cosine decision"),
        (_DoubleDecay, "adamp-weight-decay-f64", 1, "conv", "decay factor"),
        # step 1: the buffer is the (orthogonal) gradient, nothing radial to remove
        (_HalfProjection, "sgdp-channel-f32", 2, "conv", "projected update"),
        (_Beta2ForFirstMoment, "adamp-bias-correction-f64", 1, "dense", "moments"),
        # without state: m / (1 - beta^1) is g whatever beta, so the update departs at step 2
        (_no_state(_Beta2ForFirstMoment), "adamp-bias-correction-f64", 2, "dense", "direction"),
    ],
)
def test_unexplained_failure_is_localised(cls, case_id, step, tensor, quantity):
    adapter = replace(port_adapter(cls, CHANNELS_LAST), name=cls.__name__)
    (result,) = run_suite(adapter, select_cases(ids=[case_id]))
    assert result.status == "fail" and result.deviations == []
    loc = result.localisation
    assert (loc["step"], loc["tensor"], loc["quantity"]) == (step, tensor, quantity), loc
    assert result.nearest["variant"] in VARIANTS and result.nearest["distance"] > 1.0
    assert classify(result, frozenset()) == "localised"


# ------------------------------------------------------------------- hyperparameters handed over


def test_hyperparameters_are_handed_over_as_floats():
    assert translate({"lr": 2**20, "weight_decay": 0.0, "nesterov": True}) == {
        "lr": 1048576.0,
        "weight_decay": 0.0,
        "nesterov": True,
    }
    assert type(translate({"lr": 2**20})["lr"]) is float
    assert as_float(np.int64(3)) == 3.0 and as_float(False) is False
    seen = []

    def factory(problem):
        seen.extend(problem.groups)
        return port_adapter(Port, CHANNELS_FIRST).factory(problem)

    (result,) = run_suite(Adapter("spy", factory), select_cases(ids=["sgdp-cos-eps-f64"]))
    assert result.status == "pass"
    assert type(seen[0]["lr"]) is float and seen[0]["lr"] == 2.0**20
    assert type(seen[0]["weight_decay"]) is float and seen[0]["nesterov"] is False


def test_rename_merges_with_the_helper_defaults():
    from adamp_conformance.adapters import KERAS_RENAME, TORCH_RENAME

    merged = {**TORCH_RENAME, "eps": "epsilon"}
    assert translate({"beta1": 0.9, "beta2": 0.99, "eps": 1e-8}, merged) == {
        "betas": (0.9, 0.99),
        "epsilon": 1e-8,
    }
    assert translate({"lr": 0.1, "delta": 0.1}, {**KERAS_RENAME, "delta": None}) == {
        "learning_rate": 0.1
    }


# one case per behaviour family; the full measurement (every case, ~2-5 min) is
# `python -m adamp_conformance.ports`, quoted in docs/conformance.md
SAMPLE = [
    "adamp-channel-f32", "adamp-layer-f32", "adamp-weight-decay-bf16", "adamp-nesterov-f32",
    "adamp-eps-placement-f32", "adamp-bias-correction-f32", "adamp-zero-weight-f32",
    "adamp-channel-axis-f32", "adamp-cos-eps-f64", "adamp-multi-group-f32",
    "adamp-per-param-step-f32", "adamp-cos-operand-f32", "adamp-reduction-axes-f32",
    "adamp-scalar-precision-f64", "adamp-eps-squared-f16", "sgdp-momentum-buffer-f32",
    "sgdp-dampening-f32", "sgdp-zero-grad-f32", "sgdp-threshold-f32",
    "sgdp-decoupled-decay-f32",
]  # fmt: skip


def test_figures_on_a_sample_of_cases():
    """>= 90% of the failing cases named or localised, none with only a wrong name, over the
    21 broken adapters and the bank of ports."""
    from adamp_conformance.ports import all_entries, figures

    entries = all_entries()
    assert len(entries) == 21 + len(BANK)
    table = figures(entries, select_cases(ids=SAMPLE))
    failing = sum(row["failing"] for row in table.values())
    good = sum(row["named"] + row["localised"] for row in table.values())
    assert all(row["failing"] for row in table.values()), "an adapter passes the sample"
    assert good >= 0.9 * failing
    assert sum(row["wrong"] for row in table.values()) == 0, {
        name: row["cases"] for name, row in table.items() if row["wrong"]
    }


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.sampled_from(load_all()), st.sampled_from(sorted(VARIANTS)))
def test_a_variant_trajectory_is_named_as_that_variant(golden, name):
    """Self-consistency: the trajectory a variant produces on a case it changes is named
    as that variant, alone or in one finding with the names the case cannot split."""
    from adamp_conformance.compare import compare
    from adamp_conformance.diagnosis import diagnose
    from adamp_conformance.golden import simulate_case
    from adamp_conformance.tolerance import tolerance_for

    variant = VARIANTS[name]
    assume(golden.optimizer in variant.optimizers)
    traj = simulate_case(golden, variant)
    tol = tolerance_for(golden.dtype)
    assume(not compare(traj, golden.reference, tol, check_state=True, check_branches=True).passed)
    found = diagnose(golden, traj, has_state=True, has_branches=True)
    assert [name in f.names for f in found.findings] == [True], found.as_dict()


@given(
    st.dictionaries(
        st.sampled_from(["lr", "beta1", "eps", "weight_decay", "nesterov", "momentum"]),
        st.one_of(st.integers(0, 2**30), st.floats(0, 1e6), st.booleans()),
    )
)
def test_translate_hands_every_number_over_as_a_float(hp):
    out = translate(hp)
    for key, value in hp.items():
        assert type(out[key]) is (bool if isinstance(value, bool) else float)
        assert out[key] == value
