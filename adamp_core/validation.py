"""Hyperparameter checks shared by the reference and every backend.

Each backend passes its own argument names (``lr`` or ``learning_rate``,
``betas[0]`` or ``beta_1`` or ``b1``) so the message names what the user typed,
while the ranges and the wording live here once. Every failure is a
``ValueError``: ``"<name> must be <rule>, got <value!r>"`` for a number out of
range (NaN and infinities included), and ``"<name> must be <rule>, got <value!r>
of type <type>"`` for a value that is not a real number at all (a string, a
sequence, None, a bool, a complex number, a Fraction, an array of more than one
element).

Accepted numbers: Python ``int`` and ``float``, NumPy integer and floating
scalars, and concrete 0-d real arrays of any framework (anything with
``shape == ()``, a real dtype and ``__float__``), checked by their value.
Schedules, callables and traced values are the backend's business: it decides
which arguments may be one and passes :data:`UNCHECKED` for them (or for an
argument it checks itself) to ``validate_*``, which checks the rest.

:func:`check_param_dtype` gives every backend the same refusal of parameters
the algorithm does not define (complex, integer, bool).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

__all__ = [
    "UNCHECKED",
    "check_bool",
    "check_in_range",
    "check_param_dtype",
    "validate_adamp",
    "validate_sgdp",
]


class _Unchecked:
    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED = _Unchecked()
"""An argument of ``validate_adamp`` / ``validate_sgdp`` not checked there: a schedule,
a traced value, or one the backend checks itself."""

# rule name -> (test on a finite float, wording)
_RULES = {
    ">=0": (lambda x: x >= 0.0, "a finite number >= 0"),
    ">0": (lambda x: x > 0.0, "a finite number > 0"),
    "[0,1)": (lambda x: 0.0 <= x < 1.0, "a finite number in [0, 1)"),
    "[0,1]": (lambda x: 0.0 <= x <= 1.0, "a finite number in [0, 1]"),
}


# dtype names (NumPy, JAX, Keras, ``torch.<name>``) of real numbers and of floating point
_REAL_DTYPE = re.compile(r"(b?float|u?int)\d*\w*")
_FLOAT_DTYPE = re.compile(r"b?float\d*\w*")


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut in the middle when longer than ``limit`` (10**400 has 401 digits)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def _real_value(value: object) -> float | None:
    """``value`` as a float if it is a real number (possibly inf/NaN), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return float(value)
        except OverflowError:  # an int beyond float range: not a finite number
            return math.inf
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or tuple(shape) != () or not _REAL_DTYPE.fullmatch(dtype_name(dtype)):
        return None
    try:
        return float(value)  # a concrete 0-d array or tensor
    except (TypeError, ValueError):  # a symbolic or traced one
        return None


def dtype_name(dtype: object) -> str:
    """``"float32"`` for NumPy, JAX, TensorFlow, Keras and torch dtypes alike."""
    return str(getattr(dtype, "name", dtype)).removeprefix("torch.")


def check_in_range(name: str, value: object, rule: str) -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` and the rule.

    ``rule`` is one of ``">=0"``, ``">0"``, ``"[0,1)"``, ``"[0,1]"``. See the
    module docstring for the values accepted; NaN and infinities are rejected.
    """
    test, wording = _RULES[rule]
    number = _real_value(value)
    if number is None:
        kind = type(value).__name__
        raise ValueError(f"{name} must be {wording}, got {short_repr(value)} of type {kind}")
    if not math.isfinite(number) or not test(number):
        raise ValueError(f"{name} must be {wording}, got {short_repr(value)}")
    return number


def check_param_dtype(who: str, dtype: object, what: str = "a parameter") -> None:
    """Refuse a parameter whose dtype is not real floating point, naming it.

    AdamP and SGDP are defined for real parameters: for complex ones the
    second moment and the cosine need |g|² and Re<w, g>, which no backend
    computes; integer and bool parameters cannot take a fractional step.
    ``dtype`` is any framework's dtype (its ``str`` is used); ``what`` names
    the parameter (a tree path or a variable name) when the backend knows it.
    """
    name = dtype_name(dtype)
    if not _FLOAT_DTYPE.fullmatch(name):
        raise ValueError(
            f"{who} supports real floating-point parameters only, got {what} of dtype "
            f"{name}; leave it out of the optimizer (for a complex parameter, optimise a "
            "real view of it)"
        )


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _name(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def validate_adamp(
    *,
    lr: object,
    beta1: object,
    beta2: object,
    eps: object,
    weight_decay: object,
    delta: object,
    wd_ratio: object,
    nesterov: object = False,
    names: Mapping[str, str] | None = None,
) -> None:
    """Check AdamP hyperparameters; ``names`` maps these keys to the caller's names.

    An argument given as :data:`UNCHECKED` is not checked.

    Ranges: lr >= 0; 0 <= beta1, beta2 < 1; eps > 0; weight_decay >= 0;
    delta >= 0; 0 <= wd_ratio <= 1; all finite; nesterov a bool.
    """
    _check(names, "lr", lr, ">=0")
    _check(names, "beta1", beta1, "[0,1)")
    _check(names, "beta2", beta2, "[0,1)")
    _check_shared(eps, weight_decay, delta, wd_ratio, nesterov, names)


def validate_sgdp(
    *,
    lr: object,
    momentum: object,
    dampening: object,
    eps: object,
    weight_decay: object,
    delta: object,
    wd_ratio: object,
    nesterov: object = False,
    names: Mapping[str, str] | None = None,
) -> None:
    """Check SGDP hyperparameters; ``names`` maps these keys to the caller's names.

    An argument given as :data:`UNCHECKED` is not checked.

    Ranges: lr >= 0; 0 <= momentum < 1 (SGDP divides the decay by 1 - momentum);
    0 <= dampening <= 1; eps > 0; weight_decay >= 0; delta >= 0;
    0 <= wd_ratio <= 1; all finite; nesterov a bool. Unlike torch.optim.SGD,
    Nesterov with dampening or zero momentum is allowed, as the authors' code
    allows it.
    """
    _check(names, "lr", lr, ">=0")
    _check(names, "momentum", momentum, "[0,1)")
    _check(names, "dampening", dampening, "[0,1]")
    _check_shared(eps, weight_decay, delta, wd_ratio, nesterov, names)


def _check(names, key: str, value: object, rule: str) -> None:
    if value is not UNCHECKED:
        check_in_range(_name(names, key), value, rule)


def _check_shared(eps, weight_decay, delta, wd_ratio, nesterov, names) -> None:
    _check(names, "eps", eps, ">0")
    _check(names, "weight_decay", weight_decay, ">=0")
    _check(names, "delta", delta, ">=0")
    _check(names, "wd_ratio", wd_ratio, "[0,1]")
    if nesterov is not UNCHECKED:
        check_bool(_name(names, "nesterov"), nesterov)
