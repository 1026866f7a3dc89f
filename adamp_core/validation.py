"""Hyperparameter checks shared by the reference and every backend.

Each backend passes its own argument names (``lr`` or ``learning_rate``,
``betas[0]`` or ``beta_1`` or ``b1``) so the message names what the user typed,
while the ranges and the wording live here once. Every failure is a
``ValueError`` of the form ``"<name> must be <rule>, got <value!r>"``.

Values that are not plain numbers (tensors, schedules, callables) are the
backend's business: it calls ``check_*`` on the Python numbers it has.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

__all__ = [
    "check_bool",
    "check_in_range",
    "validate_adamp",
    "validate_sgdp",
]

# rule name -> (test on a finite float, wording)
_RULES = {
    ">=0": (lambda x: x >= 0.0, "a finite number >= 0"),
    ">0": (lambda x: x > 0.0, "a finite number > 0"),
    "[0,1)": (lambda x: 0.0 <= x < 1.0, "a finite number in [0, 1)"),
    "[0,1]": (lambda x: 0.0 <= x <= 1.0, "a finite number in [0, 1]"),
}


def check_in_range(name: str, value: object, rule: str) -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` and the rule.

    ``rule`` is one of ``">=0"``, ``">0"``, ``"[0,1)"``, ``"[0,1]"``. Booleans,
    strings, NaN and infinities are rejected.
    """
    test, wording = _RULES[rule]
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not math.isfinite(float(value)) or not test(float(value)):
        raise ValueError(f"{name} must be {wording}, got {value!r}")
    return float(value)


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

    Ranges: lr >= 0; 0 <= beta1, beta2 < 1; eps > 0; weight_decay >= 0;
    delta >= 0; 0 <= wd_ratio <= 1; all finite; nesterov a bool.
    """
    check_in_range(_name(names, "lr"), lr, ">=0")
    check_in_range(_name(names, "beta1"), beta1, "[0,1)")
    check_in_range(_name(names, "beta2"), beta2, "[0,1)")
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

    Ranges: lr >= 0; 0 <= momentum < 1 (SGDP divides the decay by 1 - momentum);
    0 <= dampening <= 1; eps > 0; weight_decay >= 0; delta >= 0;
    0 <= wd_ratio <= 1; all finite; nesterov a bool. Unlike torch.optim.SGD,
    Nesterov with dampening or zero momentum is allowed, as the authors' code
    allows it.
    """
    check_in_range(_name(names, "lr"), lr, ">=0")
    check_in_range(_name(names, "momentum"), momentum, "[0,1)")
    check_in_range(_name(names, "dampening"), dampening, "[0,1]")
    _check_shared(eps, weight_decay, delta, wd_ratio, nesterov, names)


def _check_shared(eps, weight_decay, delta, wd_ratio, nesterov, names) -> None:
    check_in_range(_name(names, "eps"), eps, ">0")
    check_in_range(_name(names, "weight_decay"), weight_decay, ">=0")
    check_in_range(_name(names, "delta"), delta, ">=0")
    check_in_range(_name(names, "wd_ratio"), wd_ratio, "[0,1]")
    check_bool(_name(names, "nesterov"), nesterov)
