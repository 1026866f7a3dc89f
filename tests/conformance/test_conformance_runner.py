"""The runner on the reference, the authors' adamp 0.3.0, layouts and misbehaving adapters."""

import numpy as np
import pytest
from adamp_conformance.adapters import CHANNELS_LAST, from_layout, to_layout
from adamp_conformance.broken import BROKEN
from adamp_conformance.builtin import get_adapter
from adamp_conformance.golden import load_all, simulate_case
from adamp_conformance.runner import run_suite, select_cases, suite_report
from adamp_conformance.variants import VariantStepper

import adamp_core


@pytest.mark.parametrize("name", ["reference", "reference-channels-last"])
def test_reference_passes_every_case_exactly(name):
    results = run_suite(get_adapter(name))
    assert [r.id for r in results if r.status != "pass"] == []
    assert max(r.comparison.max_param_abs for r in results) == 0.0
    assert all(r.comparison.max_state_err is not None for r in results)


def test_variant_engine_reproduces_the_reference():
    for golden in load_all():
        traj = simulate_case(golden)
        for t, params in enumerate(traj.params):
            for got, want in zip(params, golden.reference.params[t], strict=True):
                np.testing.assert_allclose(got, want, rtol=0, atol=4e-15 * max(1, t))
        assert np.array_equal(traj.branches, golden.reference.branches), golden.id


@pytest.mark.parametrize("optimizer", ["adamp", "sgdp"])
def test_variant_engine_honours_a_forced_channel_axis(optimizer):
    """VariantStepper(channel_axis=k) equals adamp_core with channel_axis=k, with
    gradients steered so that only the channel view along axis k fires."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal(w.shape)
    rows = np.moveaxis(w, 2, 0).reshape(5, -1)
    grows = np.moveaxis(g, 2, 0).reshape(5, -1)
    grows -= rows * (np.sum(rows * grows, axis=1) / np.sum(rows * rows, axis=1))[:, None]
    g = np.moveaxis(grows.reshape(5, 3, 4), 0, 2)  # orthogonal to each axis-2 row of w
    if optimizer == "adamp":
        hp = {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1,
              "delta": 0.1, "wd_ratio": 0.1, "nesterov": False}  # fmt: skip
        result = adamp_core.adamp_step(w, g, adamp_core.adamp_init(w), channel_axis=2, **hp)
    else:
        hp = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1,
              "nesterov": False, "eps": 1e-8, "delta": 0.1, "wd_ratio": 0.1}  # fmt: skip
        result = adamp_core.sgdp_step(w, g, adamp_core.sgdp_init(w), channel_axis=2, **hp)
    assert result.branch is adamp_core.Branch.CHANNEL
    stepper = VariantStepper(optimizer, [hp], [0], [w], "float64", channel_axis=2)
    (got,) = stepper.step([g])
    np.testing.assert_allclose(got, result.param, rtol=1e-15, atol=1e-15)
    assert stepper.branches() == [int(adamp_core.Branch.CHANNEL)]


def test_layout_round_trip():
    x = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    y = to_layout(x, CHANNELS_LAST)
    assert y.shape == (4, 5, 3, 2)  # (O, I, kh, kw) -> (kh, kw, I, O)
    assert np.array_equal(from_layout(y, CHANNELS_LAST), x)
    assert to_layout(np.ones((3, 7)), CHANNELS_LAST).shape == (7, 3)


def test_authors_adamp_passes_float64_and_float32():
    pytest.importorskip("adamp")
    pytest.importorskip("torch")
    results = run_suite(get_adapter("adamp"), select_cases(dtypes=["float64", "float32"]))
    assert [r.id for r in results if r.failed] == []
    unsupported = {r.case_id for r in results if r.status == "unsupported"}
    assert unsupported == {"sgdp-unprojected-buffer"}  # it has no project_buffer option


@pytest.mark.parametrize("mode", ["raises", "nan", "wrong_shape"])
def test_misbehaving_adapter_fails_each_case_and_the_run_goes_on(mode):
    cases = select_cases(dtypes=["float32"], optimizers=["adamp"])
    results = run_suite(BROKEN[mode].adapter, cases)
    assert len(results) == len(cases)
    assert all(r.failed for r in results)
    if mode != "nan":
        assert {r.status for r in results} == {"error"}
    report = suite_report(BROKEN[mode].adapter, results)
    assert report["summary"]["passed"] is False
    assert report["cases"][0]["first_failing_step"] is not None


def test_factory_that_raises_is_an_error_not_a_crash():
    from adamp_conformance.adapters import Adapter

    def factory(problem):
        raise RuntimeError("cannot build")

    results = run_suite(Adapter("bad", factory), select_cases(dtypes=["float64"])[:3])
    assert [r.status for r in results] == ["error"] * 3
    assert "cannot build" in results[0].reason
