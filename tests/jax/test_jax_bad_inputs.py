"""adamp_jax against the shared bad-input table (tests/support/bad_inputs.py), plus
what only optax has: schedules, injected hyperparameters and None gradient leaves."""

from __future__ import annotations

import re

import adamp_jax
import bad_inputs
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bad_inputs import (
    ADAMP_ARGS,
    DTYPE_ROWS,
    SGDP_ARGS,
    VALID,
    bad_rows,
    dtype_message,
    message,
    refusal,
)

OPTAX_NAMES = {"lr": "learning_rate", "beta1": "b1", "beta2": "b2"}
FACTORIES = {"adamp": (adamp_jax.adamp, ADAMP_ARGS), "sgdp": (adamp_jax.sgdp, SGDP_ARGS)}
ALL = bad_rows({kind: args for kind, (_, args) in FACTORIES.items()})


def build(kind: str, values: dict):
    return FACTORIES[kind][0](**{OPTAX_NAMES.get(k, k): v for k, v in values.items()})


def valid(kind: str) -> dict:
    return {arg: VALID[arg] for arg in FACTORIES[kind][1]}


def params():
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    return {"kernel": jax.random.normal(keys[0], (3, 4)), "bias": jax.random.normal(keys[1], (4,))}


def run(opt, steps: int = 3):
    p = params()
    state = opt.init(p)
    for seed in range(steps):
        key = jax.random.PRNGKey(seed)
        grads = jax.tree.map(lambda x, key=key: jax.random.normal(key, x.shape), p)
        updates, state = opt.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    return p


@pytest.mark.parametrize(("kind", "arg", "value", "tail"), ALL)
def test_bad_hyperparameter_is_refused_with_its_name(kind, arg, value, tail):
    with pytest.raises(ValueError, match=refusal(OPTAX_NAMES.get(arg, arg), arg, tail)):
        build(kind, {**valid(kind), arg: value})


# The issue's cases, as users typed them: each used to train silently wrong or fail late.
ISSUE_ROWS = [
    (lambda: adamp_jax.adamp(0.1, b1="1.0"), message("b1", "beta1", "'1.0' of type str")),
    (
        lambda: adamp_jax.adamp(0.1, wd_ratio="-3", weight_decay=0.5),
        message("wd_ratio", "wd_ratio", "'-3' of type str"),
    ),
    (
        lambda: adamp_jax.sgdp(0.1, momentum="1.0", weight_decay=0.1),
        message("momentum", "momentum", "'1.0' of type str"),
    ),
    (
        lambda: adamp_jax.adamp(1e-3, (0.9, 0.999)),
        message("b1", "beta1", "(0.9, 0.999) of type tuple"),
    ),
    (lambda: adamp_jax.adamp("0.1"), message("learning_rate", "lr", "'0.1' of type str")),
    (lambda: adamp_jax.adamp(0.1, eps=None), message("eps", "eps", "None of type NoneType")),
    (lambda: adamp_jax.adamp(0.1, delta="0.1"), message("delta", "delta", "'0.1' of type str")),
    (
        lambda: adamp_jax.adamp(0.1, b1=jnp.array(1.0)),
        message("b1", "beta1", "Array(1., dtype=float32, weak_type=True)"),
    ),
    (
        lambda: adamp_jax.sgdp(jnp.array(-0.1)),
        message("learning_rate", "lr", "Array(-0.1, dtype=float32, weak_type=True)"),
    ),
    (
        lambda: adamp_jax.adamp(0.1, b2=jnp.ones(2)),
        message("b2", "beta2", "Array([1., 1.], dtype=float32) of type ArrayImpl"),
    ),
]


@pytest.mark.parametrize(("build_it", "expected"), ISSUE_ROWS)
def test_issue_cases_are_refused_at_construction(build_it, expected):
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        build_it()


@pytest.mark.parametrize("kind", FACTORIES)
@pytest.mark.parametrize(
    "wrap", [jnp.asarray, np.array, np.float32], ids=["jnp", "np-0d", "np-f32"]
)
def test_scalar_arrays_are_accepted_as_their_value(kind, wrap):
    as_floats, wrapped = bad_inputs.float32_forms(valid(kind), wrap)
    expected = run(build(kind, as_floats))
    got = run(build(kind, wrapped))
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("kind", FACTORIES)
def test_schedules_are_accepted_where_optax_accepts_them(kind):
    constant = build(kind, valid(kind))
    scheduled = build(
        kind,
        {
            **valid(kind),
            "lr": optax.constant_schedule(VALID["lr"]),
            "weight_decay": lambda count: VALID["weight_decay"],
        },
    )
    for g, e in zip(jax.tree.leaves(run(scheduled)), jax.tree.leaves(run(constant)), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize(
    ("kind", "arg"), [("adamp", "beta1"), ("adamp", "eps"), ("sgdp", "momentum")]
)
def test_callables_are_refused_where_optax_takes_no_schedule(kind, arg):
    name = OPTAX_NAMES.get(arg, arg)
    with pytest.raises(
        ValueError, match=rf"^{name} must be .*, got <function .* of type function$"
    ):
        build(kind, {**valid(kind), arg: lambda count: 0.5})


def test_injected_hyperparameters_are_checked_at_init_and_traced_at_update():
    p = params()
    bad = optax.inject_hyperparams(adamp_jax.adamp, static_args=("channel_axis", "mask"))
    with pytest.raises(
        ValueError, match=r"^b1 must be a finite number in \[0, 1\), got Array\(1\."
    ):
        bad(learning_rate=0.1, b1=1.0).init(p)
    opt = bad(learning_rate=0.1, b1=0.9)
    state = opt.init(p)
    updates, _ = jax.jit(opt.update)(p, state, p)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


@pytest.mark.parametrize("kind", FACTORIES)
@pytest.mark.parametrize("dtype", DTYPE_ROWS)
def test_parameters_of_undefined_dtype_are_refused_at_init(kind, dtype):
    tree = {"dense": {"kernel": jnp.ones((3, 2), dtype=dtype)}, "bias": jnp.ones(2)}
    who = f"scale_by_{kind}"
    expected = re.escape(dtype_message(who, "the leaf ['dense']['kernel']", dtype))
    opt = build(kind, valid(kind))
    with pytest.raises(ValueError, match=f"^{expected}$"):
        opt.init(tree)
    with pytest.raises(ValueError, match=f"^{expected}"):  # jit appends a traceback note
        jax.jit(opt.init)(tree)


@pytest.mark.parametrize("kind", FACTORIES)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_none_gradient_leaf_is_named(kind, jit):
    p = params()
    opt = build(kind, valid(kind))
    update = jax.jit(opt.update) if jit else opt.update
    expected = (
        f"scale_by_{kind}.update got None as the gradient of the leaf ['kernel']: pass an "
        "array for every parameter, or leave the parameter out of the optimizer with "
        "optax.masked or optax.multi_transform"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):  # jit: a note follows
        update({"kernel": None, "bias": jnp.ones(4)}, opt.init(p), p)


@pytest.mark.parametrize("kind", FACTORIES)
def test_masked_out_leaf_needs_no_gradient(kind):
    """The documented way to give a leaf no gradient: optax.masked (MaskedNode, not None)."""
    p = params()
    opt = optax.masked(build(kind, valid(kind)), {"kernel": True, "bias": False})
    grads = jax.tree.map(jnp.ones_like, p)
    updates, _ = opt.update(grads, opt.init(p), p)
    np.testing.assert_array_equal(updates["bias"], grads["bias"])  # passed through untouched
