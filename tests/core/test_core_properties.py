"""Invariants of the reference, checked with hypothesis.

Where the reference's sums are exactly rounded (math.fsum), reordering rows,
channels or axes cannot change a single bit, so those properties assert exact
equality.
"""

from __future__ import annotations

import numpy as np
from gradients import channel_orthogonal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import adamp_core
from adamp_core import Branch, channel_rows, projection

FLOATS = st.floats(-10.0, 10.0, allow_nan=False, allow_subnormal=False)
SHAPES_2D_PLUS = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5)
SHAPES_ANY = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
settings.register_profile("core", max_examples=60, deadline=None)
settings.load_profile("core")


@st.composite
def weight_and_raw(draw, shapes=SHAPES_2D_PLUS):
    shape = draw(shapes)
    weight = draw(hnp.arrays(np.float64, shape, elements=FLOATS))
    raw = draw(hnp.arrays(np.float64, shape, elements=FLOATS))
    return weight, raw


@st.composite
def adamp_hyperparams(draw):
    return {
        "lr": draw(st.floats(1e-4, 1e-1)),
        "beta1": draw(st.sampled_from([0.0, 0.9])),
        "beta2": draw(st.sampled_from([0.99, 0.999])),
        "weight_decay": draw(st.sampled_from([0.0, 0.1])),
        "delta": draw(st.sampled_from([0.0, 0.1, 1.0])),
        "wd_ratio": draw(st.sampled_from([0.1, 0.5])),
        "nesterov": draw(st.booleans()),
    }


@given(weight_and_raw(), st.sampled_from([1e-8, 1e-3]))
def test_projected_update_is_orthogonal_to_each_projected_row(data, eps):
    weight, update = data
    grad = channel_orthogonal(update[::-1].copy(), weight)  # cos = 0: the channel view fires
    result = projection(weight, grad, update, delta=0.1, wd_ratio=0.1, eps=eps)
    assert result.branch is Branch.CHANNEL
    w_rows, u_rows, p_rows = (channel_rows(x, 0) for x in (weight, update, result.update))
    norms = np.linalg.norm(w_rows, axis=1)
    unit = w_rows / (norms + eps)[:, None]
    radial = np.sum(unit * u_rows, axis=1)
    # ŵ·u' = (1 - |ŵ|²)·(ŵ·u) exactly: not 0 only because ε is added to the norm.
    predicted = (1 - np.sum(unit * unit, axis=1)) * radial
    rounding = 64 * np.finfo(np.float64).eps * (np.linalg.norm(u_rows, axis=1) + np.abs(radial))
    assert np.all(np.abs(np.sum(unit * p_rows, axis=1) - predicted) <= rounding)


def independent_adamw(param, grads, hp):
    """Adam with decoupled decay, written from the paper, without the reference's helpers."""
    m = np.zeros_like(param)
    v = np.zeros_like(param)
    for t, g in enumerate(grads, start=1):
        m = hp["beta1"] * m + (1 - hp["beta1"]) * g
        v = hp["beta2"] * v + (1 - hp["beta2"]) * g * g
        m_hat_scale = hp["lr"] / (1 - hp["beta1"] ** t)
        denom = np.sqrt(v) / np.sqrt(1 - hp["beta2"] ** t) + 1e-8
        numerator = hp["beta1"] * m + (1 - hp["beta1"]) * g if hp["nesterov"] else m
        param = param * (1 - hp["lr"] * hp["weight_decay"]) - m_hat_scale * numerator / denom
    return param


@given(weight_and_raw(SHAPES_ANY), adamp_hyperparams(), st.integers(1, 5))
def test_delta_zero_never_projects_and_is_adamw(data, hp, steps):
    weight, raw = data
    hp = {**hp, "delta": 0.0}
    grads = [np.roll(raw, k) * (k + 1) for k in range(steps)]
    param, state = weight, adamp_core.adamp_init(weight)
    for grad in grads:
        result = adamp_core.adamp_step(param, grad, state, **hp)
        assert result.branch is Branch.NONE and result.wd_ratio == 1.0
        param, state = result.param, result.state
    expected = independent_adamw(weight, grads, hp)
    np.testing.assert_allclose(param, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(weight)))


def run_steps(step, init, param, grads, channel_axis=0, **hp):
    state, branches = init(param), []
    for grad in grads:
        result = step(param, grad, state, channel_axis=channel_axis, **hp)
        param, state = result.param, result.state
        branches.append(result.branch)
    return param, state, branches


OPTIMIZERS = st.sampled_from(
    [
        (adamp_core.OPTIMIZERS["adamp"], {"lr": 1e-2, "weight_decay": 0.1}),
        (adamp_core.OPTIMIZERS["sgdp"], {"lr": 1e-1, "momentum": 0.9, "weight_decay": 0.1}),
    ]
)


def steered_grads(weight, raw, steps=4):
    """A mix of gradients: orthogonal per channel, raw, and zero, so branches vary."""
    return [channel_orthogonal(raw, weight), raw * 0.5, np.zeros_like(raw), -raw][:steps]


@given(weight_and_raw(), OPTIMIZERS, st.randoms(use_true_random=False))
def test_permuting_channels_permutes_the_result(data, optimizer, random):
    weight, raw = data
    (_, init, step, _), hp = optimizer
    order = list(range(weight.shape[0]))
    random.shuffle(order)
    grads = steered_grads(weight, raw)
    p1, s1, b1 = run_steps(step, init, weight, grads, **hp)
    p2, s2, b2 = run_steps(step, init, weight[order], [g[order] for g in grads], **hp)
    assert b1 == b2
    np.testing.assert_array_equal(p1[order], p2)
    for a, b in zip(s1, s2, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a[order], b)


@given(weight_and_raw(), OPTIMIZERS)
def test_channel_axis_last_on_moved_weight_equals_axis_first(data, optimizer):
    weight, raw = data
    (_, init, step, _), hp = optimizer
    grads = steered_grads(weight, raw)
    p0, _, b0 = run_steps(step, init, weight, grads, channel_axis=0, **hp)
    last = [np.moveaxis(x, 0, -1) for x in (weight, *grads)]
    p1, _, b1 = run_steps(step, init, last[0], last[1:], channel_axis=-1, **hp)
    assert b0 == b1
    np.testing.assert_array_equal(np.moveaxis(p0, 0, -1), p1)


@given(weight_and_raw(SHAPES_ANY), weight_and_raw(SHAPES_ANY), OPTIMIZERS)
def test_parameters_are_independent(first, second, optimizer):
    (name, init, step, _), hp = optimizer
    (w1, g1), (w2, g2) = first, second
    states = adamp_core.init_states(name, [w1, w2])
    together = adamp_core.step_params(name, [w1, w2], [g1, g2], states, hp)
    alone = step(w1, g1, init(w1), **hp)
    other = adamp_core.step_params(name, [w1, -w2], [g1, 3 * g2], states, hp)
    np.testing.assert_array_equal(together.params[0], alone.param)
    np.testing.assert_array_equal(other.params[0], alone.param)
    assert together.branches[0] is alone.branch


@given(weight_and_raw(SHAPES_ANY), OPTIMIZERS, st.sampled_from([0.1, 0.5, 1.0]))
def test_zero_gradient_leaves_only_scaled_weight_decay(data, optimizer, wd_ratio):
    weight, _ = data
    (_, init, step, _), hp = optimizer
    hp = {**hp, "wd_ratio": wd_ratio}
    param, _, branches = run_steps(step, init, weight, [np.zeros_like(weight)] * 3, **hp)
    projected = weight.ndim > 1
    assert branches == [Branch.CHANNEL if projected else Branch.NONE] * 3
    ratio = wd_ratio if projected else 1.0
    momentum = hp.get("momentum", 0.0)
    factor = 1.0 - hp["lr"] * hp["weight_decay"] * ratio / (1.0 - momentum)
    if step is adamp_core.adamp_step:
        factor = 1.0 - hp["lr"] * hp["weight_decay"] * ratio
    np.testing.assert_array_equal(param, weight * factor * factor * factor)


@given(weight_and_raw(), OPTIMIZERS)
def test_result_does_not_depend_on_memory_layout(data, optimizer):
    weight, raw = data
    (_, init, step, _), hp = optimizer
    grads = steered_grads(weight, raw)
    p_c, _, _ = run_steps(step, init, weight, grads, **hp)
    fortran = [np.asfortranarray(x) for x in (weight, *grads)]
    p_f, _, _ = run_steps(step, init, fortran[0], fortran[1:], **hp)
    np.testing.assert_array_equal(p_c, p_f)


def test_step_params_takes_a_mapping_per_parameter_and_skips_a_missing_gradient():
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    grad = channel_orthogonal(rng.normal(size=(3, 4)), params[0], channel_axis=-1)
    states = adamp_core.init_states("sgdp", params)
    hyperparams = [{"lr": 0.1, "momentum": 0.9, "channel_axis": -1}, {"lr": 0.2}]
    stepped = adamp_core.step_params("sgdp", params, [grad, None], states, hyperparams)
    alone = adamp_core.sgdp_step(params[0], grad, states[0], **hyperparams[0])
    np.testing.assert_array_equal(stepped.params[0], alone.param)
    np.testing.assert_array_equal(stepped.states[0].momentum_buffer, alone.state.momentum_buffer)
    assert stepped.branches == [adamp_core.Branch.CHANNEL, adamp_core.Branch.NONE]
    np.testing.assert_array_equal(stepped.params[1], params[1])
    assert stepped.states[1] is states[1]
