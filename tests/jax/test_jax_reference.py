"""adamp_jax agrees with the NumPy reference (adamp_core), step by step.

Tolerances: each float32 step rounds the parameter to float32 (half an ulp,
<= eps32·|p|/2) and computes a float32 update of size <= ~lr with a few ulps
of relative error, so after n steps |p_jax - p_ref| <= n·eps·(|p| + 1). The
same bound with eps64 holds in float64 (x64 enabled only inside the test).
"""

from __future__ import annotations

import adamp_jax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax_cases import make_gradient, make_params, reference_run

import adamp_core

STEPS = 4
KINDS = {"conv": "channel_orthogonal", "dense": "layer_orthogonal", "embed": "random"}
ZERO = {"conv": "zero", "dense": "zero", "embed": "zero", "bias": "zero"}

ADAMP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=0.1, nesterov=True),
    dict(lr=3e-3, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.05, delta=0.2, wd_ratio=0.3),
]
SGDP_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1, project_buffer=False),
    dict(lr=0.05, momentum=0.8, dampening=0.3, nesterov=True, weight_decay=0.2, wd_ratio=0.5),
]


def _optax(kind: str, hyper: dict, channel_axis):
    h = dict(hyper)
    lr = h.pop("lr")
    if kind == "adamp":
        rename = {"beta1": "b1", "beta2": "b2"}
        return adamp_jax.adamp(
            lr, channel_axis=channel_axis, **{rename.get(k, k): v for k, v in h.items()}
        )
    return adamp_jax.sgdp(lr, channel_axis=channel_axis, **h)


def _compare(kind, hyper, dtype, grad_kinds, channel_axis=-1, seed=0):
    params0 = make_params(seed)
    grads, ref_params, ref_branches = reference_run(
        kind, params0, grad_kinds, STEPS, seed=seed + 1, channel_axis=channel_axis,
        dtype=dtype, **hyper,
    )  # fmt: skip
    opt = _optax(kind, hyper, channel_axis)
    params = {k: jnp.asarray(v, dtype) for k, v in params0.items()}
    state = opt.init(params)
    update = jax.jit(opt.update)
    eps = np.finfo(dtype).eps
    for n, (g, ref_p, ref_b) in enumerate(zip(grads, ref_params, ref_branches, strict=True), 1):
        updates, state = update({k: jnp.asarray(v, dtype) for k, v in g.items()}, state, params)
        params = optax.apply_updates(params, updates)
        for name, value in params.items():
            assert value.dtype == dtype
            np.testing.assert_allclose(
                np.asarray(value, np.float64), ref_p[name], rtol=n * eps, atol=n * eps,
                err_msg=f"{kind} {name} step {n}",
            )  # fmt: skip
        assert adamp_jax.projection_branches(state) == ref_b


@pytest.mark.parametrize("hyper", ADAMP_CASES)
@pytest.mark.parametrize("grad_kinds", [KINDS, ZERO], ids=["steered", "zero"])
def test_adamp_matches_reference_float64(hyper, grad_kinds):
    with jax.enable_x64(True):
        _compare("adamp", hyper, np.float64, grad_kinds)


@pytest.mark.parametrize("hyper", SGDP_CASES)
@pytest.mark.parametrize("grad_kinds", [KINDS, ZERO], ids=["steered", "zero"])
def test_sgdp_matches_reference_float64(hyper, grad_kinds):
    with jax.enable_x64(True):
        _compare("sgdp", hyper, np.float64, grad_kinds)


@pytest.mark.parametrize(("kind", "hyper"), [("adamp", ADAMP_CASES[1]), ("sgdp", SGDP_CASES[1])])
def test_matches_reference_float32(kind, hyper):
    _compare(kind, hyper, np.float32, KINDS)


@pytest.mark.parametrize("channel_axis", [0, 1])
def test_other_channel_axes_match_reference(channel_axis):
    with jax.enable_x64(True):
        _compare("adamp", ADAMP_CASES[1], np.float64, KINDS, channel_axis=channel_axis, seed=3)


def test_steered_gradients_reach_every_branch():
    """Guard for the tests above: the steered cases exercise CHANNEL, LAYER and NONE."""
    _, _, branches = reference_run("adamp", make_params(0), KINDS, 1, seed=1, lr=1e-2)
    assert {int(b) for b in branches[0].values()} == {0, 1, 2}


@settings(max_examples=12, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple),
    axis_seed=st.integers(0, 100),
    kind=st.sampled_from(["random", "channel_orthogonal", "layer_orthogonal", "zero"]),
    seed=st.integers(0, 2**16),
)
def test_one_step_any_shape_and_axis_matches_reference(shape, axis_seed, kind, seed):
    """One float64 step of both optimizers on arbitrary small shapes and channel axes."""
    ndim = len(shape)
    axis = axis_seed % (2 * ndim) - ndim  # every axis in [-ndim, ndim)
    rng = np.random.default_rng(seed)
    param = rng.normal(size=shape)
    grad = make_gradient(kind, rng.normal(size=shape), param, axis % ndim)
    with jax.enable_x64(True):
        for opt, ref in (
            (adamp_jax.adamp(1e-2, weight_decay=0.1, channel_axis=axis),
             adamp_core.adamp_step(param, grad, adamp_core.adamp_init(param), lr=1e-2,
                                   weight_decay=0.1, channel_axis=axis)),
            (adamp_jax.sgdp(0.1, momentum=0.9, weight_decay=0.1, channel_axis=axis),
             adamp_core.sgdp_step(param, grad, adamp_core.sgdp_init(param), lr=0.1,
                                  momentum=0.9, weight_decay=0.1, channel_axis=axis)),
        ):  # fmt: skip
            p = jnp.asarray(param)
            updates, state = jax.jit(opt.update)(jnp.asarray(grad), opt.init(p), p)
            eps = np.finfo(np.float64).eps
            np.testing.assert_allclose(
                np.asarray(p + updates), ref.param, rtol=2 * eps, atol=2 * eps
            )
            assert adamp_jax.projection_branches(state) is ref.branch
