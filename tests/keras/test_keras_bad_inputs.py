"""adamp_keras against the shared bad-input table (tests/support/bad_inputs.py), plus
what only Keras has: learning-rate schedules, Keras variables and build-time dtypes.
Runs on the backend KERAS_BACKEND selects."""

from __future__ import annotations

import re

import adamp_keras
import bad_inputs
import keras
import numpy as np
import pytest
from bad_inputs import ADAMP_ARGS, DTYPE_ROWS, SGDP_ARGS, VALID, bad_rows, dtype_message, refusal
from keras import ops

KERAS_NAMES = {"lr": "learning_rate", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}
CLASSES = {"AdamP": (adamp_keras.AdamP, ADAMP_ARGS), "SGDP": (adamp_keras.SGDP, SGDP_ARGS)}
# weight_decay=None is Keras's "no decay", not a bad value
ALL = bad_rows(
    {name: args for name, (_, args) in CLASSES.items()},
    keep=lambda arg, value: not (arg == "weight_decay" and value is None),
)


def build(cls_name: str, values: dict):
    return CLASSES[cls_name][0](**{KERAS_NAMES.get(k, k): v for k, v in values.items()})


def valid(cls_name: str) -> dict:
    return {arg: VALID[arg] for arg in CLASSES[cls_name][1]}


def run(opt, steps: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    variables = [
        keras.Variable(rng.normal(size=(3, 4)).astype("float32"), name="kernel"),
        keras.Variable(rng.normal(size=(4,)).astype("float32"), name="bias"),
    ]
    for _ in range(steps):
        grads = [
            ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32")) for v in variables
        ]
        opt.apply_gradients(zip(grads, variables, strict=True))
    return [ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize(("cls_name", "arg", "value", "tail"), ALL)
def test_bad_hyperparameter_is_refused_with_its_name(cls_name, arg, value, tail):
    with pytest.raises(ValueError, match=refusal(KERAS_NAMES.get(arg, arg), arg, tail)):
        build(cls_name, {**valid(cls_name), arg: value})


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize(
    "wrap", [np.array, np.float32, ops.convert_to_tensor], ids=["np-0d", "np-f32", "backend-0d"]
)
def test_scalar_arrays_are_accepted_as_their_value(cls_name, wrap):
    as_floats, wrapped = bad_inputs.float32_forms(valid(cls_name), wrap)
    for g, e in zip(run(build(cls_name, wrapped)), run(build(cls_name, as_floats)), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_schedules_and_callables_are_accepted_for_learning_rate(cls_name):
    lr = VALID["lr"]
    expected = run(build(cls_name, valid(cls_name)))
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=10, decay_rate=1.0)
    for learning_rate in (schedule, lambda: lr):
        got = run(build(cls_name, {**valid(cls_name), "lr": learning_rate}))
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-6)  # lr as a float32 variable vs computed


def test_keras_variable_learning_rate_is_checked():
    with pytest.raises(ValueError, match=r"^learning_rate must be a finite number >= 0, got"):
        adamp_keras.AdamP(learning_rate=keras.Variable(-0.1))
    adamp_keras.AdamP(learning_rate=keras.Variable(0.1))


@pytest.mark.parametrize(("cls_name", "arg"), [("AdamP", "beta1"), ("SGDP", "momentum")])
def test_callables_are_refused_where_only_numbers_are_used(cls_name, arg):
    name = KERAS_NAMES.get(arg, arg)
    with pytest.raises(
        ValueError, match=rf"^{name} must be .*, got <function .* of type function$"
    ):
        build(cls_name, {**valid(cls_name), arg: lambda: 0.5})


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize("dtype", DTYPE_ROWS)
def test_variables_of_undefined_dtype_are_refused_at_build(cls_name, dtype):
    # not trainable: Keras on torch refuses a trainable integer variable itself
    bad = keras.Variable(np.zeros((3, 2), dtype=dtype), dtype=dtype, trainable=False, name="w")
    good = keras.Variable(np.zeros(2, dtype="float32"), name="b")
    opt = build(cls_name, valid(cls_name))
    expected = re.escape(dtype_message(cls_name, "the variable 'w'", dtype))
    with pytest.raises(ValueError, match=f"^{expected}$"):
        opt.build([good, bad])
    assert not opt.built
