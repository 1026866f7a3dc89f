"""adamp_keras.AdamP / SGDP against the NumPy reference (adamp_core, channel_axis=-1).

Runs on whichever Keras backend KERAS_BACKEND names. Each step mixes gradients
that make the channel view fire, the layer view fire, or neither, so every
branch, the decay ratio and the 1-D path are compared step by step, together
with the branch codes the optimizer reports.
"""

from __future__ import annotations

import adamp_keras
import keras
import numpy as np
import pytest
from keras_helpers import (
    F32_ATOL,
    F32_RTOL,
    keras_reference,
    make_variables,
    steered,
    to_numpy,
)
from reference_runs import Reference

from adamp_core import Branch

SHAPES = [(3, 3, 4, 8), (6, 5), (5,), (2, 3, 4)]
KIND_CYCLE = ["channel_orthogonal", "radial", "layer_only"]


def _grads(params, step, rng):
    grads = []
    for i, p in enumerate(params):
        if p.ndim < 2:
            grads.append(rng.standard_normal(p.shape))
        else:
            grads.append(steered(KIND_CYCLE[(step + i) % 3], p, rng))
    return grads


def _run(optimizer, reference: Reference, variables, steps=4, seed=1, decay_mask=None):
    rng = np.random.default_rng(seed)
    seen = set()
    for step in range(steps):
        grads = _grads(reference.params, step, rng)
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads], variables
        )
        keep = decay_mask or [True] * len(grads)
        reference.step(grads, per_param=[{} if k else {"weight_decay": 0.0} for k in keep])
        branches = optimizer.projection_branches()
        assert [branches[v.path] for v in variables] == reference.branches
        seen.update(reference.branches)
        for v, ref in zip(variables, reference.params, strict=True):
            np.testing.assert_allclose(to_numpy(v), ref, rtol=F32_RTOL, atol=F32_ATOL)
    return seen


ADAMP_CASES = [
    {},
    {"weight_decay": 0.5},
    {"weight_decay": 0.2, "nesterov": True, "beta_1": 0.8, "beta_2": 0.99},
    {"weight_decay": 0.3, "delta": 0.5, "wd_ratio": 0.5, "epsilon": 1e-6},
]


@pytest.mark.parametrize("kwargs", ADAMP_CASES)
def test_adamp_matches_reference(kwargs):
    params, variables = make_variables(SHAPES)
    optimizer = adamp_keras.AdamP(learning_rate=0.02, **kwargs)
    names = {"beta_1": "beta1", "beta_2": "beta2", "epsilon": "eps"}
    hyper = {names.get(k, k): v for k, v in kwargs.items()}
    seen = _run(optimizer, keras_reference(params, "adamp", lr=0.02, **hyper), variables)
    assert seen == set(Branch)  # every branch was exercised


SGDP_CASES = [
    {},
    {"momentum": 0.9, "weight_decay": 0.1},
    {"momentum": 0.9, "weight_decay": 0.1, "project_buffer": False},
    {"momentum": 0.8, "nesterov": True, "weight_decay": 0.2},
    {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1, "wd_ratio": 0.0},
]


@pytest.mark.parametrize("kwargs", SGDP_CASES)
def test_sgdp_matches_reference(kwargs):
    params, variables = make_variables(SHAPES, seed=3)
    optimizer = adamp_keras.SGDP(learning_rate=0.05, **kwargs)
    hyper = {("eps" if k == "epsilon" else k): v for k, v in kwargs.items()}
    seen = _run(optimizer, keras_reference(params, "sgdp", lr=0.05, **hyper), variables, seed=4)
    assert seen == set(Branch)


def test_project_buffer_changes_the_result():
    """The two buffer conventions differ by far more than the tolerance (so the cases above
    distinguish them): a buffer with a radial part is stored projected or not."""
    results = {}
    for project_buffer in (True, False):
        params, variables = make_variables(SHAPES, seed=3)
        optimizer = adamp_keras.SGDP(
            learning_rate=0.05, momentum=0.9, project_buffer=project_buffer
        )
        reference = keras_reference(
            params, "sgdp", lr=0.05, momentum=0.9, project_buffer=project_buffer
        )
        _run(optimizer, reference, variables, seed=4)
        results[project_buffer] = to_numpy(variables[1])
    assert np.max(np.abs(results[True] - results[False])) > 1e-3


def test_weight_decay_applied_exactly_once_and_exclusions_respected():
    """Zero gradients: the update is 0, so w changes only by the decay factor.

    A 2-D weight with g = 0 has cos = 0, so the projection fires and the factor is
    1 - lr·λ·wd_ratio; a 1-D weight gets 1 - lr·λ; an excluded weight keeps its
    value. The base class's own decay (1 - lr·λ before update_step) would show up
    as an extra factor.
    """
    lr, wd, ratio = 0.1, 0.5, 0.1
    params, variables = make_variables([(4, 3), (3,), (4, 3)], seed=7)
    variables[2] = keras.Variable(params[2].astype("float32"), name="excluded_kernel")
    optimizer = adamp_keras.AdamP(learning_rate=lr, weight_decay=wd, wd_ratio=ratio)
    optimizer.exclude_from_weight_decay(var_names=["excluded"])
    zeros = [keras.ops.zeros(p.shape) for p in params]
    optimizer.apply(zeros, variables)
    expected = [params[0] * (1 - lr * wd * ratio), params[1] * (1 - lr * wd), params[2]]
    for v, e in zip(variables, expected, strict=True):
        np.testing.assert_allclose(to_numpy(v), e, rtol=F32_RTOL, atol=F32_ATOL)
    branches = optimizer.projection_branches()
    assert branches[variables[0].path] is Branch.CHANNEL
    assert branches[variables[1].path] is Branch.NONE


def test_exclude_from_weight_decay_by_variable_matches_reference():
    params, variables = make_variables(SHAPES, seed=8)
    optimizer = adamp_keras.SGDP(learning_rate=0.05, momentum=0.9, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[variables[0], variables[2]])
    reference = keras_reference(params, "sgdp", lr=0.05, momentum=0.9, weight_decay=0.5)
    _run(optimizer, reference, variables, steps=3, decay_mask=[False, True, False, True])


def test_channel_axis_is_the_last_axis_by_default():
    """A Dense kernel (in, out): a gradient orthogonal per output column fires CHANNEL."""
    params, variables = make_variables([(6, 4)], seed=9)
    rng = np.random.default_rng(10)
    grad = steered("channel_orthogonal", params[0], rng, channel_axis=-1)
    optimizer = adamp_keras.AdamP()
    optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], variables)
    assert optimizer.projection_branches()[variables[0].path] is Branch.CHANNEL
    # the same gradient seen with rows on axis 0 is not orthogonal per row: no channel view
    _, other = make_variables([(6, 4)], seed=9)
    optimizer = adamp_keras.AdamP(channel_axis=0)
    optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], other)
    assert optimizer.projection_branches()[other[0].path] is not Branch.CHANNEL


@pytest.mark.parametrize("form", ["int", "mapping", "callable"])
def test_configurable_channel_axis_matches_reference(form):
    """A custom layer whose output channels are on axis 0, configured three ways."""
    params, variables = make_variables([(5, 3, 4), (4, 6)], seed=11)
    spec = {
        "int": 0,
        "mapping": {"w0": 0},
        "callable": lambda v: 0 if v.path == "w0" else -1,
    }[form]
    optimizer = adamp_keras.AdamP(learning_rate=0.02, weight_decay=0.1, channel_axis=spec)
    rng = np.random.default_rng(12)
    reference = keras_reference(params, "adamp", lr=0.02, weight_decay=0.1)
    axes = [{"channel_axis": 0}, {"channel_axis": 0 if form == "int" else -1}]
    for _ in range(3):
        refs = reference.params
        grads = [steered("channel_orthogonal", refs[0], rng, 0), steered("radial", refs[1], rng)]
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads], variables
        )
        reference.step(grads, per_param=axes)
        assert reference.branches[0] is Branch.CHANNEL
    for v, ref in zip(variables, reference.params, strict=True):
        np.testing.assert_allclose(to_numpy(v), ref, rtol=F32_RTOL, atol=F32_ATOL)


def test_channel_axis_none_never_projects():
    params, variables = make_variables([(6, 4)], seed=13)
    grad = steered("channel_orthogonal", params[0], np.random.default_rng(14))
    optimizer = adamp_keras.AdamP(channel_axis=None)
    optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], variables)
    assert optimizer.projection_branches()[variables[0].path] is Branch.NONE


def test_branches_report_none_before_any_step():
    _, variables = make_variables([(3, 4), (4,)])
    optimizer = adamp_keras.AdamP()
    assert optimizer.projection_branches() == {}
    optimizer.build(variables)
    assert optimizer.projection_branches() == {v.path: Branch.NONE for v in variables}


def test_a_variable_without_gradient_keeps_its_value_and_branch():
    params, variables = make_variables([(4, 3), (4, 3)], seed=15)
    optimizer = adamp_keras.SGDP(learning_rate=0.1, momentum=0.9)
    grad = steered("channel_orthogonal", params[0], np.random.default_rng(16))
    optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32")), None], variables)
    np.testing.assert_array_equal(to_numpy(variables[1]), params[1].astype(np.float32))
    branches = optimizer.projection_branches()
    assert (branches[variables[0].path], branches[variables[1].path]) == (
        Branch.CHANNEL,
        Branch.NONE,
    )


def test_adamp_counts_steps_per_variable():
    """A variable left without gradient does not advance its bias correction (authors' code)."""
    params, variables = make_variables([(4, 3), (3,)], seed=17)
    optimizer = adamp_keras.AdamP(learning_rate=0.05)
    reference = keras_reference(params, "adamp", lr=0.05)
    rng = np.random.default_rng(18)
    for step in range(4):
        grads = [steered("radial", reference.params[0], rng), rng.standard_normal(3)]
        if step in (0, 2):
            grads[1] = None
        optimizer.apply(
            [
                None if g is None else keras.ops.convert_to_tensor(g.astype("float32"))
                for g in grads
            ],
            variables,
        )
        reference.step(grads)
        for v, ref in zip(variables, reference.params, strict=True):
            np.testing.assert_allclose(to_numpy(v), ref, rtol=F32_RTOL, atol=F32_ATOL)


@pytest.mark.parametrize(
    ("shape", "axis"), [((3, 4, 5), 1), ((2, 3, 4, 5), -3), ((1, 6), -1), ((7, 1), -1)]
)
def test_any_channel_axis_and_degenerate_shapes_match_reference(shape, axis):
    """A middle channel axis, and one-channel / one-element rows (d = 1), on every branch."""
    params, variables = make_variables([shape], seed=19)
    optimizer = adamp_keras.SGDP(
        learning_rate=0.05, momentum=0.9, weight_decay=0.2, channel_axis=axis
    )
    reference = keras_reference(
        params, "sgdp", lr=0.05, momentum=0.9, weight_decay=0.2, channel_axis=axis
    )
    rng = np.random.default_rng(20)
    for step in range(3):
        kind = ["channel_orthogonal", "radial", "channel_orthogonal"][step]
        grad = steered(kind, reference.params[0], rng, axis)
        optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], variables)
        reference.step([grad])
        assert optimizer.projection_branches()[variables[0].path] is reference.branches[0]
        np.testing.assert_allclose(
            to_numpy(variables[0]), reference.params[0], rtol=F32_RTOL, atol=F32_ATOL
        )


def _grad_with_cosines(param, cosines, norm, rng):
    """A gradient whose channel row i (last axis) has norm ``norm`` and signed cosine
    ``cosines[i]`` with row i of ``param``."""
    rows = np.moveaxis(param, -1, 0).reshape(param.shape[-1], -1)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    other = rng.standard_normal(rows.shape)
    other -= unit * np.sum(unit * other, 1, keepdims=True)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    c = np.asarray(cosines)[:, None]
    g = norm * (c * unit + np.sqrt(1 - c * c) * other)
    return np.moveaxis(g.reshape(np.moveaxis(param, -1, 0).shape), 0, -1)


@pytest.mark.parametrize("name", ["adamp", "sgdp"])
@pytest.mark.parametrize(
    ("signs", "factor", "branch"),
    [
        ((1, 1, 1, 1), 0.5, Branch.CHANNEL),
        ((1, -1, 1, -1), 2.0, Branch.LAYER),  # rows cancel in the layer view
        ((1, 1, 1, 1), 2.0, Branch.NONE),
    ],
    ids=["channel", "layer", "none"],
)
def test_huge_magnitudes_match_reference(name, signs, factor, branch):
    """||w|| = 1e7 and ||g|| = 1e15 per row: g·w ~ 1e20 per row, whose square (1e40)
    overflows float32 (max 3.4e38), so a cosine test evaluated as (g·w)² < ... would
    see inf and never project. Every row has |cos| = factor·δ/sqrt(d) with the row
    length d = 18 (equal row norms, so alternating signs cancel in the layer view);
    a factor of 2 either side of the threshold leaves float32 rounding (relative
    ~1e-6) no say. Weight decay (lr·λ = 5%) makes the decay ratio visible in w.
    Everything here scales linearly, so the float32 tolerance applies in units of the
    tensor's largest entry (SGDP's steps of lr·||g|| make entries of ~1e13 beside
    partly cancelled ones)."""
    rng = np.random.default_rng(21)
    shape = (3, 3, 2, 4)
    param = rng.standard_normal(shape)
    rows = np.moveaxis(param, -1, 0)
    param *= 1e7 / np.linalg.norm(rows.reshape(4, -1), axis=1)  # every row norm 1e7
    param = param.astype(np.float32).astype(np.float64)
    threshold = 0.1 / np.sqrt(18)
    variable = keras.Variable(param.astype("float32"), name="huge")
    if name == "adamp":
        optimizer = adamp_keras.AdamP(learning_rate=0.1, weight_decay=0.5)
        reference = keras_reference([param], "adamp", lr=0.1, weight_decay=0.5)
    else:
        optimizer = adamp_keras.SGDP(learning_rate=0.1, momentum=0.9, weight_decay=0.05)
        reference = keras_reference([param], "sgdp", lr=0.1, momentum=0.9, weight_decay=0.05)
    for _ in range(2):
        cosines = factor * threshold * np.asarray(signs, dtype=np.float64)
        grad = _grad_with_cosines(reference.params[0], cosines, 1e15, rng)
        grad = grad.astype(np.float32).astype(np.float64)
        optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], [variable])
        reference.step([grad])
        assert reference.branches == [branch]
        assert optimizer.projection_branches()[variable.path] is branch
        scale = np.max(np.abs(reference.params[0]))
        np.testing.assert_allclose(
            to_numpy(variable), reference.params[0], rtol=F32_RTOL, atol=F32_ATOL * scale
        )
