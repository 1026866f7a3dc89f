"""Every validation message, exactly as users see it."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import adamp_core
from adamp_core import UNCHECKED, validate_adamp, validate_sgdp

ADAMP_OK = dict(
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    delta=0.1,
    wd_ratio=0.1,
    nesterov=False,
)
SGDP_OK = dict(
    lr=0.1,
    momentum=0.9,
    dampening=0.0,
    eps=1e-8,
    weight_decay=0.0,
    delta=0.1,
    wd_ratio=0.1,
    nesterov=False,
)

NONNEG = "a finite number >= 0"
POSITIVE = "a finite number > 0"
UNIT_OPEN = "a finite number in [0, 1)"
UNIT_CLOSED = "a finite number in [0, 1]"

# (description, argument, bad value, expected message)
ADAMP_CASES = [
    ("negative lr", "lr", -1e-3, f"lr must be {NONNEG}, got -0.001"),
    ("nan lr", "lr", math.nan, f"lr must be {NONNEG}, got nan"),
    ("infinite lr", "lr", math.inf, f"lr must be {NONNEG}, got inf"),
    ("string lr", "lr", "0.1", f"lr must be {NONNEG}, got '0.1' of type str"),
    ("bool lr", "lr", True, f"lr must be {NONNEG}, got True of type bool"),
    ("beta1 = 1", "beta1", 1.0, f"beta1 must be {UNIT_OPEN}, got 1.0"),
    ("negative beta1", "beta1", -0.1, f"beta1 must be {UNIT_OPEN}, got -0.1"),
    ("beta2 = 1", "beta2", 1.0, f"beta2 must be {UNIT_OPEN}, got 1.0"),
    ("beta2 > 1", "beta2", 1.5, f"beta2 must be {UNIT_OPEN}, got 1.5"),
    ("eps = 0", "eps", 0.0, f"eps must be {POSITIVE}, got 0.0"),
    ("negative eps", "eps", -1e-8, f"eps must be {POSITIVE}, got -1e-08"),
    ("negative weight_decay", "weight_decay", -0.1, f"weight_decay must be {NONNEG}, got -0.1"),
    ("negative delta", "delta", -0.1, f"delta must be {NONNEG}, got -0.1"),
    ("wd_ratio > 1", "wd_ratio", 1.1, f"wd_ratio must be {UNIT_CLOSED}, got 1.1"),
    ("negative wd_ratio", "wd_ratio", -0.1, f"wd_ratio must be {UNIT_CLOSED}, got -0.1"),
    ("nesterov not bool", "nesterov", 1, "nesterov must be True or False, got 1"),
]

SGDP_CASES = [
    ("negative lr", "lr", -0.1, f"lr must be {NONNEG}, got -0.1"),
    ("momentum = 1", "momentum", 1.0, f"momentum must be {UNIT_OPEN}, got 1.0"),
    ("negative momentum", "momentum", -0.5, f"momentum must be {UNIT_OPEN}, got -0.5"),
    ("dampening > 1", "dampening", 1.5, f"dampening must be {UNIT_CLOSED}, got 1.5"),
    ("negative dampening", "dampening", -0.1, f"dampening must be {UNIT_CLOSED}, got -0.1"),
    ("eps = 0", "eps", 0.0, f"eps must be {POSITIVE}, got 0.0"),
    ("negative weight_decay", "weight_decay", -1.0, f"weight_decay must be {NONNEG}, got -1.0"),
    ("nan delta", "delta", math.nan, f"delta must be {NONNEG}, got nan"),
    ("wd_ratio > 1", "wd_ratio", 2, f"wd_ratio must be {UNIT_CLOSED}, got 2"),
    ("nesterov string", "nesterov", "yes", "nesterov must be True or False, got 'yes'"),
]


@pytest.mark.parametrize(
    ("description", "arg", "value", "message"), ADAMP_CASES, ids=[c[0] for c in ADAMP_CASES]
)
def test_adamp_validation_messages(description, arg, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        validate_adamp(**{**ADAMP_OK, arg: value})
    state = adamp_core.adamp_init(np.ones(3))
    kwargs = {k: v for k, v in {**ADAMP_OK, arg: value}.items()}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.adamp_step(np.ones(3), np.ones(3), state, **kwargs)


@pytest.mark.parametrize(
    ("description", "arg", "value", "message"), SGDP_CASES, ids=[c[0] for c in SGDP_CASES]
)
def test_sgdp_validation_messages(description, arg, value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        validate_sgdp(**{**SGDP_OK, arg: value})
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.sgdp_step(
            np.ones(3), np.ones(3), adamp_core.sgdp_init(np.ones(3)), **{**SGDP_OK, arg: value}
        )


def test_names_map_to_the_callers_argument_names():
    names = {"beta1": "betas[0]", "lr": "learning_rate"}
    with pytest.raises(ValueError, match=re.escape("betas[0] must be a finite number in [0, 1)")):
        validate_adamp(**{**ADAMP_OK, "beta1": 1.0}, names=names)
    with pytest.raises(ValueError, match=r"^learning_rate must be"):
        validate_adamp(**{**ADAMP_OK, "lr": -1.0}, names=names)


@pytest.mark.parametrize(
    ("value", "rule"),
    [(0, ">=0"), (1e-12, ">0"), (0.999, "[0,1)"), (1, "[0,1]"), (np.float32(0.5), "[0,1)")],
)
def test_boundary_values_are_accepted(value, rule):
    assert adamp_core.check_in_range("x", value, rule) == float(value)


def test_valid_configurations_pass():
    validate_adamp(**ADAMP_OK)
    validate_sgdp(**SGDP_OK)
    validate_sgdp(**{**SGDP_OK, "momentum": 0.0, "dampening": 1.0, "nesterov": True})


@pytest.mark.parametrize(
    ("axis", "shape"), [(2, (3, 4)), (-3, (3, 4)), (1.0, (3, 4)), (True, (3, 4))]
)
def test_channel_axis_out_of_range(axis, shape):
    message = f"channel_axis must be an integer in [-2, 2) for a 2-D parameter, got {axis!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.projection(
            np.ones(shape),
            np.ones(shape),
            np.ones(shape),
            delta=0.1,
            wd_ratio=0.1,
            eps=1e-8,
            channel_axis=axis,
        )


def test_channel_axis_message_names_the_tensor_a_backend_gives():
    message = "channel_axis for ['conv'] must be an integer in [-4, 4) for a 4-D parameter, got 4"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.normalise_channel_axis(4, 4, "['conv']")
    assert adamp_core.normalise_channel_axis(np.int64(-1), 4, "['conv']") == 3


def test_gradient_shape_mismatch():
    message = "grad shape (3, 2) does not match param shape (2, 3)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.adamp_step(np.ones((2, 3)), np.ones((3, 2)), adamp_core.adamp_init(np.ones(1)))


def test_project_buffer_must_be_bool():
    with pytest.raises(ValueError, match=r"^project_buffer must be True or False, got 'no'$"):
        adamp_core.sgdp_step(
            np.ones(2), np.ones(2), adamp_core.sgdp_init(np.ones(2)), lr=0.1, project_buffer="no"
        )


def test_step_params_length_mismatch():
    message = "params, grads, states and hyperparams must have the same length, got 1, 0, 0 and 1"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.step_params("adamp", [np.ones(2)], [], [], {"lr": 0.1})
    message = "params, grads, states and hyperparams must have the same length, got 1, 1, 1 and 2"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.step_params("sgdp", [np.ones(2)], [None], [None], [{"lr": 0.1}] * 2)


def test_unknown_optimizer_name():
    message = "optimizer must be one of 'adamp', 'sgdp', got 'adam'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.get_optimizer("adam")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        adamp_core.init_states("adam", [np.ones(2)])


def test_registry_names_each_steps_keywords():
    assert adamp_core.OPTIMIZERS["adamp"].hyperparameters == (
        "lr", "beta1", "beta2", "eps", "weight_decay", "delta", "wd_ratio", "nesterov",
        "channel_axis",
    )  # fmt: skip
    assert adamp_core.OPTIMIZERS["sgdp"].hyperparameters == (
        "lr", "momentum", "dampening", "weight_decay", "nesterov", "eps", "delta", "wd_ratio",
        "channel_axis", "project_buffer",
    )  # fmt: skip


@pytest.mark.parametrize("validate", [validate_adamp, validate_sgdp])
def test_unchecked_arguments_are_skipped_and_the_rest_still_checked(validate):
    ok = ADAMP_OK if validate is validate_adamp else SGDP_OK
    validate(**dict.fromkeys(ok, UNCHECKED))
    validate(**{**ok, "lr": UNCHECKED})
    with pytest.raises(ValueError, match=r"^eps must be a finite number > 0, got 0\.0$"):
        validate(**{**ok, "lr": UNCHECKED, "eps": 0.0})
    with pytest.raises(ValueError, match=r"^lr must be a finite number >= 0, got -1\.0$"):
        validate(**{**ok, "eps": UNCHECKED, "lr": -1.0})
