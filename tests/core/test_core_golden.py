"""Golden checks: each term of the update, on inputs small enough to derive by hand.

Expected values are written from the algorithm's formulas in each test, not
taken from the reference's output.
"""

from __future__ import annotations

import numpy as np
import pytest

import adamp_core
from adamp_core import Branch

EPS = 1e-8


def adamp1(param, grad, **hp):
    return adamp_core.adamp_step(
        np.asarray(param, float),
        np.asarray(grad, float),
        adamp_core.adamp_init(np.asarray(param, float)),
        **hp,
    )


def test_adam_eps_is_added_after_the_bias_correction():
    # Step 1: m = 0.1 g, sqrt(v)/sqrt(1 - β₂) = |g|, so direction = 0.1 g / (|g| + ε).
    g = 1e-6
    result = adamp1([1.0], [g], lr=0.1)
    assert result.direction[0] == pytest.approx(0.1 * g / (g + EPS), rel=1e-14)
    # The other placement, (sqrt(v) + ε) / sqrt(1 - β₂), would give 0.1 / 1.316: far off.
    other = 0.1 * g / (g + EPS / np.sqrt(1 - 0.999))
    assert abs(result.direction[0] - other) > 0.2 * other
    assert result.step_size == pytest.approx(0.1 / (1 - 0.9), rel=1e-15)


def test_bias_correction_at_step_two():
    # Constant g: m₂ = 0.19 g = (1 - β₁²) g and v₂ = (1 - β₂²) g², so both corrections cancel.
    g, lr = 0.5, 0.01
    state = adamp_core.adamp_init(np.zeros(1))
    param = np.zeros(1)
    for _ in range(2):
        result = adamp_core.adamp_step(param, np.array([g]), state, lr=lr)
        param, state = result.param, result.state
    assert state.step == 2
    assert state.exp_avg[0] == pytest.approx(0.19 * g, rel=1e-15)
    assert state.exp_avg_sq[0] == pytest.approx(0.001999 * g * g, rel=1e-13)
    assert result.step_size == pytest.approx(lr / 0.19, rel=1e-14)
    assert result.step_size * result.direction[0] == pytest.approx(lr * g / (g + EPS), rel=1e-13)


def test_nesterov_direction_at_step_one():
    # (β₁ m + (1 - β₁) g) / denom with m = 0.1 g: 0.19 g / (|g| + ε).
    g = 2.0
    result = adamp1([1.0], [g], nesterov=True)
    assert result.direction[0] == pytest.approx(0.19 * g / (g + EPS), rel=1e-14)


def test_channel_projection_removes_the_radial_part_row_by_row():
    w = np.array([[3.0, 4.0], [0.0, 2.0]])
    g = np.array([[4.0, -3.0], [1.0, 0.0]])  # each row orthogonal to w's row: cos = 0
    u = np.ones((2, 2))
    result = adamp_core.projection(w, g, u, delta=0.1, wd_ratio=0.25, eps=EPS)
    assert result.branch is Branch.CHANNEL and result.wd_ratio == 0.25
    unit0 = np.array([3.0, 4.0]) / (5.0 + EPS)
    unit1 = np.array([0.0, 2.0]) / (2.0 + EPS)
    expected = np.stack([u[0] - unit0 * (unit0 @ u[0]), u[1] - unit1 * (unit1 @ u[1])])
    np.testing.assert_allclose(result.update, expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(result.update, [[0.16, -0.12], [1.0, 0.0]], atol=1e-7)


def test_layer_projection_when_rows_are_not_invariant():
    w = np.array([[1.0, 0.0], [1.0, 0.0]])
    g = np.array([[1.0, 0.0], [-1.0, 0.0]])  # each row parallel (cos 1), the whole orthogonal
    u = np.array([[1.0, 2.0], [3.0, 4.0]])
    result = adamp_core.projection(w, g, u, delta=0.1, wd_ratio=0.1, eps=EPS)
    assert result.branch is Branch.LAYER
    unit = w.ravel() / (np.sqrt(2.0) + EPS)
    expected = u.ravel() - unit * (unit @ u.ravel())
    np.testing.assert_allclose(result.update.ravel(), expected, rtol=1e-14)


def test_threshold_is_strict_and_scales_with_row_length():
    # Row length 4: the threshold is δ / 2. cos exactly 0.5 with δ = 1 does not project.
    w = np.array([[1.0, 0.0, 0.0, 0.0]])
    g = np.array([[1.0, np.sqrt(3.0), 0.0, 0.0]])  # cos = 1 / 2
    at = adamp_core.projection(w, g, w, delta=1.0, wd_ratio=0.1, eps=EPS)
    above = adamp_core.projection(w, g, w, delta=1.0 + 1e-9, wd_ratio=0.1, eps=EPS)
    assert at.branch is Branch.NONE and above.branch is Branch.CHANNEL


def test_cosine_clamps_each_norm_separately():
    # Current torch: (x / max(|x|, ε)) · (y / max(|y|, ε)) = 0.1 · 0.1.
    # The older x·y / max(|x||y|, ε) would give 1e-10.
    x = np.array([[1e-9, 0.0]])
    cos = adamp_core.cosine_similarity(x, x, EPS)
    assert cos[0] == pytest.approx(0.01, rel=1e-12)


def test_one_dimensional_and_zero_weights():
    one_d = adamp1([1.0, 2.0], [0.0, 0.0], weight_decay=0.1)
    assert one_d.branch is Branch.NONE and one_d.wd_ratio == 1.0
    zero_w = adamp1(np.zeros((2, 2)), np.ones((2, 2)), weight_decay=0.1)
    assert zero_w.branch is Branch.CHANNEL and zero_w.wd_ratio == 0.1
    # A zero weight has zero unit vectors: the projection is a no-op, Adam's step-1 direction stays.
    np.testing.assert_allclose(zero_w.direction, 0.1 / (1.0 + EPS), rtol=1e-14)


def test_adamp_decay_uses_lr_and_wd_ratio():
    result = adamp1(np.eye(2), np.zeros((2, 2)), lr=0.5, weight_decay=0.2, wd_ratio=0.3)
    assert result.branch is Branch.CHANNEL
    assert result.decay_factor == 1.0 - 0.5 * 0.2 * 0.3
    np.testing.assert_array_equal(result.param, np.eye(2) * (1.0 - 0.5 * 0.2 * 0.3))


def sgdp1(param, grad, **hp):
    param = np.asarray(param, float)
    return adamp_core.sgdp_step(param, np.asarray(grad, float), adamp_core.sgdp_init(param), **hp)


def test_sgdp_dampening_applies_on_the_first_step():
    result = sgdp1([1.0], [2.0], lr=0.1, momentum=0.9, dampening=0.5)
    assert result.state.momentum_buffer[0] == 1.0  # (1 - 0.5) · 2, not 2 as torch.optim.SGD
    assert result.param[0] == pytest.approx(1.0 - 0.1 * 1.0, rel=1e-15)


def test_sgdp_decay_is_divided_by_one_minus_momentum():
    result = sgdp1([1.0], [0.0], lr=0.1, momentum=0.9, weight_decay=0.1)
    assert result.decay_factor == pytest.approx(1.0 - 0.1 * 0.1 / 0.1, rel=1e-15)


def test_sgdp_nesterov_direction():
    result = sgdp1([1.0], [2.0], lr=0.1, momentum=0.9, nesterov=True)
    assert result.direction[0] == pytest.approx(2.0 + 0.9 * 2.0, rel=1e-15)


@pytest.mark.parametrize("project_buffer", [True, False])
def test_sgdp_buffer_projection_in_place_or_not(project_buffer):
    w = np.array([[3.0, 4.0]])
    g1 = np.array([[3.0, 4.0]])  # parallel to w: no projection, buffer = g1
    g2 = np.array([[4.0, -3.0]])  # orthogonal to w: projects the buffer 0.9 g1 + g2
    hp = {"lr": 0.01, "momentum": 0.9, "project_buffer": project_buffer}
    first = adamp_core.sgdp_step(w, g1, adamp_core.sgdp_init(w), **hp)
    assert first.branch is Branch.NONE
    second = adamp_core.sgdp_step(first.param, g2, first.state, **hp)
    assert second.branch is Branch.CHANNEL
    unprojected = 0.9 * g1 + g2
    stored = second.state.momentum_buffer
    if project_buffer:
        np.testing.assert_array_equal(stored, second.direction)
        assert abs(float(np.sum(stored * first.param))) < 1e-6  # radial part gone
    else:
        np.testing.assert_allclose(stored, unprojected, rtol=1e-15)


def test_none_gradient_skips_the_parameter():
    state = adamp_core.adamp_init(np.ones(2))
    result = adamp_core.adamp_step(np.ones(2), None, state)
    assert result.state is state and result.state.step == 0
    np.testing.assert_array_equal(result.param, np.ones(2))
