"""The bad-input table every backend is tested against (grow it with each case found).

A row is (id, value, message tail): the value goes into one numeric
hyperparameter at a time, and the backend must refuse it at construction with
``"<its name for the argument> must be <rule>, got <tail>"``, the same words in
every backend. ``RULES`` gives <rule> per argument (the ranges of the paper's
symbols, written out here independently of adamp_core). ``DTYPE_ROWS`` are
parameter dtypes the algorithm does not define, refused with ``dtype_message``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np
import pytest

NONNEG = "a finite number >= 0"
POSITIVE = "a finite number > 0"
UNIT_OPEN = "a finite number in [0, 1)"
UNIT_CLOSED = "a finite number in [0, 1]"

# canonical argument -> its rule
RULES = {
    "lr": NONNEG,
    "beta1": UNIT_OPEN,
    "beta2": UNIT_OPEN,
    "momentum": UNIT_OPEN,
    "dampening": UNIT_CLOSED,
    "eps": POSITIVE,
    "weight_decay": NONNEG,
    "delta": NONNEG,
    "wd_ratio": UNIT_CLOSED,
}
ADAMP_ARGS = ("lr", "beta1", "beta2", "eps", "weight_decay", "delta", "wd_ratio")
SGDP_ARGS = ("lr", "momentum", "dampening", "eps", "weight_decay", "delta", "wd_ratio")

_HUGE = "1" + "0" * 36 + " ... " + "0" * 37  # repr(10**400) cut to 80 characters

# (id, value, message tail after "got ") -- bad for every argument
VALUE_ROWS = [
    ("string", "0.1", "'0.1' of type str"),
    ("string-negative", "-3", "'-3' of type str"),
    ("None", None, "None of type NoneType"),
    ("tuple", (0.9, 0.999), "(0.9, 0.999) of type tuple"),
    ("list", [0.1], "[0.1] of type list"),
    ("bool", True, "True of type bool"),
    ("bool-false", False, "False of type bool"),
    ("complex", 0.1 + 0j, "(0.1+0j) of type complex"),
    ("Fraction", Fraction(1, 10), "Fraction(1, 10) of type Fraction"),
    ("numpy-vector", np.array([0.1, 0.2]), "array([0.1, 0.2]) of type ndarray"),
    ("numpy-bool", np.array(True), "array(True) of type ndarray"),
    ("nan", math.nan, "nan"),
    ("inf", math.inf, "inf"),
    ("-inf", -math.inf, "-inf"),
    ("huge-int", 10**400, _HUGE),
    ("negative", -1.0, "-1.0"),
    ("numpy-0d-negative", np.array(-1.0), "array(-1.)"),
    ("numpy-scalar-negative", np.float32(-1.0), "np.float32(-1.0)"),
]

# a value in range for each argument, and the same value as a 0-d NumPy array
VALID = {
    "lr": 0.05,
    "beta1": 0.8,
    "beta2": 0.99,
    "momentum": 0.8,
    "dampening": 0.1,
    "eps": 1e-6,
    "weight_decay": 0.1,
    "delta": 0.2,
    "wd_ratio": 0.5,
}

DTYPE_ROWS = ["complex64", "int32", "bool"]


def message(name: str, canonical: str, tail: str) -> str:
    return f"{name} must be {RULES[canonical]}, got {tail}"


def dtype_message(who: str, what: str, dtype: str) -> str:
    return (
        f"{who} supports real floating-point parameters only, got {what} of dtype {dtype}; "
        "leave it out of the optimizer (for a complex parameter, optimise a real view of it)"
    )


def cases(args: tuple[str, ...]) -> list:
    """pytest.param-ready tuples (canonical argument, value, tail) with readable ids."""
    return [
        (arg, value, tail, f"{arg}-{row_id}") for arg in args for row_id, value, tail in VALUE_ROWS
    ]


def bad_rows(
    args_by_kind: Mapping[str, Sequence[str]], keep: Callable[[str, object], bool] | None = None
) -> list:
    """``pytest.param(kind, arg, value, tail)`` per optimizer kind, argument and bad value
    (those ``keep(arg, value)`` accepts), with ids ``<kind>-<arg>-<row id>``."""
    return [
        pytest.param(kind, arg, value, tail, id=f"{kind}-{row_id}")
        for kind, args in args_by_kind.items()
        for arg, value, tail, row_id in cases(args)
        if keep is None or keep(arg, value)
    ]


def refusal(name: str, canonical: str, tail: str) -> str:
    """:func:`message` as an anchored pattern for ``pytest.raises(match=...)``."""
    return f"^{re.escape(message(name, canonical, tail))}$"


def float32_forms(values: Mapping[str, float], wrap: Callable) -> tuple[dict, dict]:
    """``values`` rounded to float32, as Python floats and as ``wrap`` makes them (a 0-d
    array or tensor): two spellings of the same numbers, which must step alike."""
    return (
        {k: float(np.float32(v)) for k, v in values.items()},
        {k: wrap(np.float32(v)) for k, v in values.items()},
    )
