"""adamp_jax as an optax citizen: API, validation, tracing, composition, dtypes."""

from __future__ import annotations

import adamp_jax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamp_core
from adamp_core import Branch

SHAPES = {"conv": (3, 3, 2, 4), "dense": (6, 5), "bias": (5,)}


def tree(seed: int, dtype=jnp.float32, shapes=SHAPES):
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    return {
        k: jax.random.normal(key, s, dtype)
        for key, (k, s) in zip(keys, shapes.items(), strict=True)
    }


def orthogonal_grads(params, seed=1):
    """Gradients orthogonal to every output channel (last axis): the CHANNEL branch."""
    grads = tree(seed, shapes={k: v.shape for k, v in params.items()})
    out = {}
    for k, g in grads.items():
        p = params[k]
        if p.ndim < 2:
            out[k] = g
            continue
        axes = tuple(range(p.ndim - 1))
        out[k] = g - p * jnp.sum(g * p, axes) / jnp.sum(p * p, axes)
    return out


def run(opt, steps=3, params=None, grads_fn=None, jit=True):
    params = tree(0) if params is None else params
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    for i in range(steps):
        grads = (grads_fn or (lambda p, i: tree(10 + i)))(params, i)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def assert_trees_close(a, b, rtol=1e-6, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


FACTORIES = {
    "adamp": lambda **kw: adamp_jax.adamp(1e-2, **kw),
    "sgdp": lambda **kw: adamp_jax.sgdp(0.1, momentum=0.9, **kw),
}


# ---------------------------------------------------------------- API and validation


def test_named_states_and_signatures():
    state = adamp_jax.adamp(1e-3).init(tree(0))
    inner = state[0]
    assert isinstance(inner, adamp_jax.ScaleByAdamPState)
    assert inner._fields == ("count", "mu", "nu", "branch")
    sgd_state = adamp_jax.sgdp(0.1).init(tree(0))[0]
    assert isinstance(sgd_state, adamp_jax.ScaleBySGDPState)
    assert sgd_state._fields == ("count", "trace", "branch")
    assert isinstance(adamp_jax.adamp(1e-3), optax.GradientTransformationExtraArgs)
    assert isinstance(adamp_jax.scale_by_adamp(), optax.GradientTransformation)


@pytest.mark.parametrize("name", FACTORIES)
def test_update_without_params_is_a_clear_error(name):
    opt = FACTORIES[name]()
    params = tree(0)
    with pytest.raises(ValueError, match="needs the current parameters"):
        opt.update(tree(1), opt.init(params))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: adamp_jax.adamp(-1.0), r"learning_rate must be a finite number >= 0, got -1.0"),
        (lambda: adamp_jax.adamp(1e-3, b1=1.0), r"b1 must be a finite number in \[0, 1\), got 1.0"),
        (lambda: adamp_jax.adamp(1e-3, b2=-0.1), r"b2 must be"),
        (lambda: adamp_jax.adamp(1e-3, eps=0.0), r"eps must be a finite number > 0"),
        (lambda: adamp_jax.adamp(1e-3, weight_decay=-1), r"weight_decay must be"),
        (lambda: adamp_jax.adamp(1e-3, wd_ratio=2.0), r"wd_ratio must be"),
        (lambda: adamp_jax.adamp(1e-3, delta=float("nan")), r"delta must be"),
        (lambda: adamp_jax.adamp(1e-3, nesterov=1), r"nesterov must be True or False"),
        (
            lambda: adamp_jax.sgdp(0.1, momentum=1.0),
            r"momentum must be a finite number in \[0, 1\)",
        ),
        (lambda: adamp_jax.sgdp(0.1, dampening=1.5), r"dampening must be"),
        (lambda: adamp_jax.sgdp(float("inf")), r"learning_rate must be"),
        (lambda: adamp_jax.sgdp(0.1, project_buffer=None), r"project_buffer must be True or False"),
    ],
)
def test_bad_hyperparameters_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "axis",
    [2, -3, True, 1.5, np.array(1.5), np.array(True), jnp.array(1.5), jnp.array(True)],
    ids=["2", "-3", "True", "1.5", "np-1.5", "np-True", "jnp-1.5", "jnp-True"],
)
def test_bad_channel_axis_raises_value_error(axis):
    """0-d float or bool arrays are rejected like the Python values, not int()-cast."""
    opt = adamp_jax.adamp(1e-3, channel_axis=axis)
    params = {"dense": jnp.ones((6, 5))}
    with pytest.raises(ValueError, match=r"channel_axis for \['dense'\] must be"):
        opt.update(params, opt.init(params), params)


@pytest.mark.parametrize(
    "axis", [np.array(0), jnp.array(0), np.int64(0)], ids=["np", "jnp", "np-int"]
)
def test_integer_scalar_arrays_are_channel_axes(axis):
    grads = lambda p, i: orthogonal_grads(p, seed=i)  # noqa: E731
    as_array = run(adamp_jax.adamp(1e-2, channel_axis={"conv": axis, "dense": axis, "bias": 0}),
                   grads_fn=grads)  # fmt: skip
    as_int = run(adamp_jax.adamp(1e-2, channel_axis={"conv": 0, "dense": 0, "bias": 0}),
                 grads_fn=grads)  # fmt: skip
    assert_trees_close(as_array[0], as_int[0], rtol=0, atol=0)


def test_channel_axis_pytree_with_wrong_structure_raises():
    opt = adamp_jax.adamp(1e-3, channel_axis={"other": 0})
    params = tree(0)
    with pytest.raises(ValueError, match="channel_axis must be one value"):
        opt.update(params, opt.init(params), params)


# ---------------------------------------------------------------- channel axis


def test_default_axis_is_last_and_equals_explicit_forms():
    grads = lambda p, i: orthogonal_grads(p, seed=i)  # noqa: E731
    default = run(adamp_jax.adamp(1e-2), grads_fn=grads)
    explicit = run(adamp_jax.adamp(1e-2, channel_axis=-1), grads_fn=grads)
    as_callable = run(
        adamp_jax.adamp(1e-2, channel_axis=lambda leaf: leaf.ndim - 1), grads_fn=grads
    )
    as_tree = run(
        adamp_jax.adamp(1e-2, channel_axis={"conv": 3, "dense": 1, "bias": 0}), grads_fn=grads
    )
    for other in (explicit, as_callable, as_tree):
        assert_trees_close(default[0], other[0], rtol=0, atol=0)
    assert adamp_jax.projection_branches(default[1]) == {
        "conv": Branch.CHANNEL, "dense": Branch.CHANNEL, "bias": Branch.NONE,
    }  # fmt: skip


def test_channel_axis_none_disables_projection_per_leaf():
    opt = adamp_jax.adamp(1e-2, channel_axis={"conv": None, "dense": -1, "bias": 0})
    _, state = run(opt, grads_fn=lambda p, i: orthogonal_grads(p, seed=i))
    assert adamp_jax.projection_branches(state)["conv"] is Branch.NONE
    assert adamp_jax.projection_branches(state)["dense"] is Branch.CHANNEL


def test_one_d_leaves_are_never_projected():
    params = {"v": jnp.array([1.0, 0.0, 0.0])}
    grads = {"v": jnp.array([0.0, 1.0, 0.0])}  # orthogonal: would project if 2-D
    opt = adamp_jax.sgdp(0.1, weight_decay=0.1)
    updates, state = opt.update(grads, opt.init(params), params)
    assert adamp_jax.projection_branches(state)["v"] is Branch.NONE
    # full weight decay (ratio 1): w <- w (1 - lr wd) - lr g
    np.testing.assert_allclose(updates["v"], [-0.01, -0.1, 0.0], rtol=1e-6)


# ---------------------------------------------------------------- tracing


@pytest.mark.parametrize("name", FACTORIES)
def test_jit_traces_once(name):
    opt = FACTORIES[name](weight_decay=1e-2)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = tree(0)
    state = opt.init(params)
    for i in range(3):
        params, state = step(params, state, tree(10 + i))
    assert len(traces) == 1


@pytest.mark.parametrize("name", FACTORIES)
def test_vmap_equals_a_loop(name):
    opt = FACTORIES[name](weight_decay=1e-2)
    batch = [tree(s) for s in range(3)]
    grads = [orthogonal_grads(p, seed=5) if i == 0 else tree(20 + i) for i, p in enumerate(batch)]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731

    @jax.jit
    def one(p, g):
        updates, state = opt.update(g, opt.init(p), p)
        return updates, state

    v_updates, v_state = jax.jit(jax.vmap(one))(stack(batch), stack(grads))
    for i, (p, g) in enumerate(zip(batch, grads, strict=True)):
        updates, _ = one(p, g)
        assert_trees_close(jax.tree.map(lambda x, i=i: x[i], v_updates), updates)
    branches = adamp_jax.projection_branches(v_state)
    np.testing.assert_array_equal(branches["conv"], [1, 0, 0])


def test_init_under_eval_shape():
    params = tree(0, jnp.bfloat16)
    state = jax.eval_shape(adamp_jax.adamp(1e-3, mu_dtype=jnp.float32).init, params)
    inner = state[0]
    assert inner.mu["conv"].shape == (3, 3, 2, 4)
    assert inner.mu["conv"].dtype == jnp.float32
    assert inner.nu["conv"].dtype == jnp.bfloat16
    assert inner.branch["conv"].shape == ()
    assert inner.branch["conv"].dtype == jnp.int32
    sgd_state = jax.eval_shape(
        adamp_jax.sgdp(0.1, momentum=0.9, accumulator_dtype=jnp.float32).init, params
    )
    sgd_inner = sgd_state[0]
    assert isinstance(sgd_inner, adamp_jax.ScaleBySGDPState)
    assert isinstance(sgd_inner.trace["conv"], jax.ShapeDtypeStruct)
    assert sgd_inner.trace["conv"].shape == (3, 3, 2, 4)
    assert sgd_inner.trace["conv"].dtype == jnp.float32
    assert sgd_inner.trace["bias"].shape == (5,)
    assert sgd_inner.count.shape == ()
    assert sgd_inner.count.dtype == jnp.int32
    assert sgd_inner.branch["conv"].shape == ()
    assert sgd_inner.branch["conv"].dtype == jnp.int32


# ---------------------------------------------------------------- inject_hyperparams, schedules


ADAMP_HP = dict(learning_rate=1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1, delta=0.2,
                wd_ratio=0.3)  # fmt: skip
SGDP_HP = dict(learning_rate=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1, eps=1e-6,
               delta=0.2, wd_ratio=0.3)  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "hyper"), [(adamp_jax.adamp, ADAMP_HP), (adamp_jax.sgdp, SGDP_HP)]
)
def test_inject_hyperparams_every_numeric_hyperparameter(factory, hyper):
    injected = optax.inject_hyperparams(factory, static_args=("channel_axis", "mask"))(**hyper)
    grads_fn = lambda p, i: orthogonal_grads(p, seed=i) if i % 2 else tree(30 + i)  # noqa: E731
    plain = run(factory(**hyper), grads_fn=grads_fn)
    traced = run(injected, grads_fn=grads_fn)  # hyperparameters are tracers under jit
    assert set(traced[1].hyperparams) == set(hyper)
    assert_trees_close(plain[0], traced[0])
    assert adamp_jax.projection_branches(traced[1]) == adamp_jax.projection_branches(plain[1])


def test_injected_hyperparameters_change_without_retracing():
    opt = optax.inject_hyperparams(adamp_jax.adamp, static_args=("channel_axis",))(
        learning_rate=1e-2, weight_decay=0.0, delta=0.1
    )
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = opt.update(grads, state, params)
        return updates, state

    params = tree(0)
    grads = orthogonal_grads(params)
    state = opt.init(params)
    _, s1 = step(params, state, grads)
    state.hyperparams["delta"] = jnp.zeros([], jnp.float32)  # δ = 0: nothing is scale-invariant
    _, s2 = step(params, state, grads)
    assert len(traces) == 1
    assert adamp_jax.projection_branches(s1)["conv"] is Branch.CHANNEL
    assert adamp_jax.projection_branches(s2)["conv"] is Branch.NONE


def test_inject_hyperparams_without_static_channel_axis_explains():
    opt = optax.inject_hyperparams(adamp_jax.adamp)(learning_rate=1e-2)
    params = tree(0)
    with pytest.raises(ValueError, match="static_args"):
        jax.jit(opt.update)(params, opt.init(params), params)


@pytest.mark.parametrize("name", FACTORIES)
def test_schedules_for_learning_rate_and_weight_decay(name):
    lr = {"adamp": 1e-2, "sgdp": 0.1}[name]
    factory = adamp_jax.adamp if name == "adamp" else adamp_jax.sgdp
    extra = {} if name == "adamp" else {"momentum": 0.9}
    lr_sched = lambda c: lr * (1.0 + c)  # noqa: E731
    wd_sched = lambda c: 0.1 / (1.0 + c)  # noqa: E731
    scheduled = factory(lr_sched, weight_decay=wd_sched, **extra)
    params = tree(0)
    s_state = scheduled.init(params)
    p_sched = p_const = params
    c_states = {}
    for i in range(3):
        g = orthogonal_grads(p_sched, seed=i) if i == 1 else tree(40 + i)
        u, s_state = jax.jit(scheduled.update)(g, s_state, p_sched)
        p_sched = optax.apply_updates(p_sched, u)
        # the same step with constants: rebuild with the step's values, carry the state
        const = factory(lr_sched(i), weight_decay=wd_sched(i), **extra)
        c_state = c_states.get("s", const.init(params))
        u, c_state = const.update(g, c_state, p_const)
        c_states["s"] = c_state
        p_const = optax.apply_updates(p_const, u)
    assert_trees_close(p_sched, p_const)


# ---------------------------------------------------------------- composition


NOT_BOOLS = [0.5, 1, 0, np.float32(1.0), jnp.array(1.0), jnp.ones((6, 5))]


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("bad", NOT_BOOLS, ids=["0.5", "1", "0", "np-f32", "jnp-f32", "f32-array"])
def test_weight_decay_mask_values_must_be_bools(name, bad):
    """The decay is multiplied by the mask: a number would scale it silently."""
    params = tree(0)
    mask = {"conv": True, "dense": bad, "bias": False}
    message = r"mask for \['dense'\] must be True or False"
    opt = FACTORIES[name](weight_decay=0.5, mask=mask)
    with pytest.raises(ValueError, match=message):
        opt.update(tree(1), opt.init(params), params)
    as_callable = FACTORIES[name](weight_decay=0.5, mask=lambda p: mask)
    with pytest.raises(ValueError, match=message):
        jax.jit(as_callable.update)(tree(1), as_callable.init(params), params)


@pytest.mark.parametrize("name", FACTORIES)
def test_weight_decay_mask_accepts_bool_arrays_and_traced_bools(name):
    python = {"conv": True, "dense": False, "bias": False}
    arrays = {"conv": np.array(True), "dense": jnp.array(False), "bias": np.False_}

    def traced(params):  # computed from the values: tracers inside jit
        return {k: jnp.all(jnp.isfinite(v)) & (k == "conv") for k, v in params.items()}

    expected = run(FACTORIES[name](weight_decay=0.5, mask=python))[0]
    for mask in (arrays, traced):
        assert_trees_close(run(FACTORIES[name](weight_decay=0.5, mask=mask))[0], expected, 0, 0)


@pytest.mark.parametrize("name", FACTORIES)
def test_weight_decay_mask(name):
    mask = {"conv": True, "dense": False, "bias": False}
    masked = run(FACTORIES[name](weight_decay=0.5, mask=mask))[0]
    with_decay = run(FACTORIES[name](weight_decay=0.5))[0]
    without = run(FACTORIES[name](weight_decay=0.0))[0]
    assert_trees_close(masked["conv"], with_decay["conv"], rtol=0, atol=0)
    assert_trees_close(masked["dense"], without["dense"], rtol=0, atol=0)
    assert not np.allclose(with_decay["dense"], without["dense"], atol=1e-4)
    as_callable = run(FACTORIES[name](weight_decay=0.5, mask=lambda p: mask))[0]
    assert_trees_close(as_callable, masked, rtol=0, atol=0)


def test_chain_with_clipping_and_diagnostics_inside():
    opt = optax.chain(optax.clip_by_global_norm(1.0), adamp_jax.adamp(1e-2))
    _, state = run(opt, grads_fn=lambda p, i: orthogonal_grads(p, seed=i))
    assert adamp_jax.projection_branches(state)["conv"] is Branch.CHANNEL


@pytest.mark.parametrize("name", FACTORIES)
def test_multisteps_accumulates_then_steps_once(name):
    params = tree(0)
    g1, g2 = tree(50), tree(51)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
    multi = optax.MultiSteps(FACTORIES[name](weight_decay=0.1), every_k_schedule=2)
    state = multi.init(params)
    u1, state = jax.jit(multi.update)(g1, state, params)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u1))
    assert adamp_jax.projection_branches(state)["conv"] is Branch.NONE  # never stepped
    u2, state = jax.jit(multi.update)(g2, state, params)
    direct = FACTORIES[name](weight_decay=0.1)
    expected, _ = direct.update(mean, direct.init(params), params)
    assert_trees_close(u2, expected)


def test_apply_if_finite_skips_nan_steps():
    opt = optax.apply_if_finite(adamp_jax.adamp(1e-2), max_consecutive_errors=3)
    params = tree(0)
    state = opt.init(params)
    bad = jax.tree.map(lambda g: g.at[(0,) * g.ndim].set(jnp.nan), tree(1))
    updates, new_state = jax.jit(opt.update)(bad, state, params)
    assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates))
    assert int(new_state.notfinite_count) == 1
    assert int(adamp_jax.find_projection_state(new_state).count) == 0
    updates, new_state = jax.jit(opt.update)(tree(1), new_state, params)
    assert int(adamp_jax.find_projection_state(new_state).count) == 1


def test_optax_masked_leaves_pass_through():
    mask = {"conv": True, "dense": True, "bias": False}
    opt = optax.masked(adamp_jax.adamp(1e-2), mask)
    params = tree(0)
    grads = orthogonal_grads(params)
    updates, state = jax.jit(opt.update)(grads, opt.init(params), params)
    np.testing.assert_array_equal(updates["bias"], grads["bias"])  # untouched by masked
    full, _ = adamp_jax.adamp(1e-2).update(grads, adamp_jax.adamp(1e-2).init(params), params)
    assert_trees_close(updates["conv"], full["conv"])
    branches = adamp_jax.projection_branches(state)
    assert branches["conv"] is Branch.CHANNEL
    assert len(jax.tree.leaves(branches)) == 2  # the masked-out bias holds no branch


# ---------------------------------------------------------------- dtypes


REFERENCE_STEPS = {
    "adamp": lambda p, g: adamp_core.adamp_step(
        p, g, adamp_core.adamp_init(p), lr=1e-2, weight_decay=0.1, channel_axis=p.ndim - 1
    ),
    "sgdp": lambda p, g: adamp_core.sgdp_step(
        p, g, adamp_core.sgdp_init(p), lr=0.1, momentum=0.9, weight_decay=0.1,
        channel_axis=p.ndim - 1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("name", FACTORIES)
def test_updates_keep_param_dtype(name, dtype):
    """The update has the params' dtype and equals the NumPy reference's (float64, from
    the same rounded inputs) up to that dtype's rounding: bfloat16 is computed in
    float32 and rounded once (8 mantissa bits), float32 to a few ulps of the step."""
    params, grads = tree(0, dtype), tree(1, dtype)
    opt = FACTORIES[name](weight_decay=0.1)
    updates, _ = jax.jit(opt.update)(grads, opt.init(params), params)
    tol = float(jnp.finfo(dtype).eps) * (1 if dtype == jnp.bfloat16 else 4)
    for k in params:
        assert updates[k].dtype == dtype
        p, g = (np.asarray(x[k], np.float64) for x in (params, grads))
        expected = REFERENCE_STEPS[name](p, g).param - p
        np.testing.assert_allclose(
            np.asarray(updates[k], np.float64), expected, rtol=tol,
            atol=tol * np.max(np.abs(expected)), err_msg=k,
        )  # fmt: skip


def test_mu_dtype():
    """A bfloat16 first moment holds the float32 run's m up to rounding (each step
    rounds once, by at most eps_bf16/2 of |m|, and β₁ < 1 damps earlier errors),
    and the parameters move as in the float32 run up to that rounding:
    |Δm| <= steps·eps_bf16·max|m|, |Δw| <= steps·lr·eps_bf16."""
    steps, lr = 3, 1e-2
    params, state = run(adamp_jax.adamp(lr, mu_dtype=jnp.bfloat16), steps=steps)
    params32, state32 = run(adamp_jax.adamp(lr), steps=steps)
    assert state[0].mu["conv"].dtype == jnp.bfloat16
    assert state[0].nu["conv"].dtype == jnp.float32
    assert params["conv"].dtype == jnp.float32
    eps = float(jnp.finfo(jnp.bfloat16).eps)
    for k in params:
        mu, mu32 = np.asarray(state[0].mu[k], np.float32), np.asarray(state32[0].mu[k])
        np.testing.assert_allclose(mu, mu32, rtol=0, atol=steps * eps * np.max(np.abs(mu32)))
        np.testing.assert_allclose(params[k], params32[k], rtol=0, atol=steps * lr * eps)
        assert not np.array_equal(mu, mu32) or k == "bias"  # the rounding is real


# ---------------------------------------------------------------- diagnostics


def test_branch_before_first_step_is_none_and_step_has_no_host_transfer():
    opt = adamp_jax.adamp(1e-2)
    params = tree(0)
    state = opt.init(params)
    assert set(adamp_jax.projection_branches(state).values()) == {Branch.NONE}
    step = jax.jit(opt.update)
    step(tree(1), state, params)  # compile outside the guard
    with jax.transfer_guard_device_to_host("disallow"):
        _, state = step(orthogonal_grads(params), state, params)
        assert isinstance(state[0].branch["conv"], jax.Array)
    assert adamp_jax.projection_branches(state)["conv"] is Branch.CHANNEL


def test_projection_branches_needs_an_adamp_state():
    with pytest.raises(ValueError, match="no scale_by_adamp or scale_by_sgdp state"):
        adamp_jax.projection_branches(optax.adam(1e-3).init(tree(0)))
