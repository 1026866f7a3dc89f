"""adamp_core against the shared bad-input table (tests/support/bad_inputs.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from bad_inputs import ADAMP_ARGS, DTYPE_ROWS, SGDP_ARGS, VALID, bad_rows, dtype_message, refusal
from hypothesis import given, settings
from hypothesis import strategies as st

import adamp_core

VALIDATORS = {"adamp": adamp_core.validate_adamp, "sgdp": adamp_core.validate_sgdp}
ARGS = {"adamp": ADAMP_ARGS, "sgdp": SGDP_ARGS}
ALL = bad_rows(ARGS)


def valid_kwargs(kind: str) -> dict:
    return {arg: VALID[arg] for arg in ARGS[kind]}


def run_step(kind: str, param, grad, **kwargs):
    optimizer = adamp_core.OPTIMIZERS[kind]
    return optimizer.step(param, grad, optimizer.init(np.ones(np.shape(param))), **kwargs)


@pytest.mark.parametrize(("kind", "arg", "value", "tail"), ALL)
def test_bad_hyperparameter_is_refused_with_its_name(kind, arg, value, tail):
    expected = refusal(arg, arg, tail)
    with pytest.raises(ValueError, match=expected):
        VALIDATORS[kind](**{**valid_kwargs(kind), arg: value})
    with pytest.raises(ValueError, match=expected):
        run_step(kind, np.ones((2, 3)), np.ones((2, 3)), **{**valid_kwargs(kind), arg: value})


@pytest.mark.parametrize("kind", ["adamp", "sgdp"])
@pytest.mark.parametrize("wrap", [np.array, np.float32, np.float64], ids=["0-d", "f32", "f64"])
def test_scalar_arrays_are_accepted_as_their_value(kind, wrap):
    rng = np.random.default_rng(0)
    param, grad = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    as_floats = {k: float(wrap(v)) for k, v in valid_kwargs(kind).items()}
    wrapped = {k: wrap(v) for k, v in valid_kwargs(kind).items()}
    expected = run_step(kind, param, grad, **as_floats).param
    np.testing.assert_array_equal(run_step(kind, param, grad, **wrapped).param, expected)


@pytest.mark.parametrize("kind", ["adamp", "sgdp"])
@pytest.mark.parametrize("dtype", DTYPE_ROWS)
def test_parameters_of_undefined_dtype_are_refused(kind, dtype):
    bad = np.ones((2, 3), dtype=dtype)
    good = np.ones((2, 3))
    optimizer = adamp_core.OPTIMIZERS[kind]
    with pytest.raises(
        ValueError, match=re.escape(dtype_message(f"{kind}_init", "a parameter", dtype))
    ):
        optimizer.init(bad)
    with pytest.raises(
        ValueError, match=re.escape(dtype_message(f"{kind}_step", "a parameter", dtype))
    ):
        optimizer.step(bad, good, optimizer.init(good), lr=0.1)
    with pytest.raises(
        ValueError, match=re.escape(dtype_message(f"{kind}_step", "a gradient", dtype))
    ):
        optimizer.step(good, bad, optimizer.init(good), lr=0.1)


def test_complex_gradient_is_not_silently_made_real():
    """NumPy would drop the imaginary part with only a ComplexWarning."""
    good = np.ones(3)
    with pytest.raises(ValueError, match="got a gradient of dtype complex128"):
        adamp_core.adamp_step(good, good + 1j, adamp_core.adamp_init(good))


# ------------------------------------------------------------- properties

RULE_OF = {">=0": lambda x: x >= 0, ">0": lambda x: x > 0, "[0,1)": lambda x: 0 <= x < 1,
           "[0,1]": lambda x: 0 <= x <= 1}  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    rule=st.sampled_from(sorted(RULE_OF)),
    value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()),
    as_array=st.booleans(),
)
def test_a_real_number_is_accepted_exactly_when_finite_and_in_range(rule, value, as_array):
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    wrapped = np.array(number) if as_array else value
    if math.isfinite(number) and RULE_OF[rule](number):
        assert adamp_core.check_in_range("x", wrapped, rule) == number
    else:
        with pytest.raises(ValueError, match=r"^x must be a finite number .*, got [^ ]+"):
            adamp_core.check_in_range("x", wrapped, rule)


@settings(max_examples=100, deadline=None)
@given(
    value=st.one_of(
        st.text(), st.none(), st.booleans(), st.complex_numbers(), st.lists(st.floats())
    )
)
def test_a_non_number_is_refused_with_its_type(value):
    expected = f"x must be a finite number >= 0, got {value!r}"[:40]
    with pytest.raises(ValueError, match=re.escape(expected)) as error:
        adamp_core.check_in_range("x", value, ">=0")
    assert str(error.value).endswith(f" of type {type(value).__name__}")
