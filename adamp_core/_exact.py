"""Exactly rounded primitives that make the reference bit-reproducible.

Every operation in the reference is either a single IEEE-754 operation on
float64 (``+ - * /`` and ``sqrt``, which IEEE rounds correctly on every
machine) or one of the functions below. Each returns the correctly rounded
result, so its value does not depend on summation order, SIMD width, BLAS or
libm. That makes golden vectors generated on one machine identical on all.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def row_sums(rows: np.ndarray) -> np.ndarray:
    """Correctly rounded sum of each row of a 2-D float64 array (``math.fsum``)."""
    return np.array([math.fsum(row) for row in rows.tolist()], dtype=np.float64).reshape(
        rows.shape[0]
    )


def row_norms(rows: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row: ``sqrt(fsum(x * x))``, each step correctly rounded."""
    return np.sqrt(row_sums(rows * rows))


_EXACT_POWER_LIMIT = 1024
_MANTISSA_BITS = 256


def power(base: float, exponent: int) -> float:
    """``base ** exponent`` for a float base in [0, 1] and an integer exponent >= 0.

    Python's ``**`` calls the C library's ``pow``, which is not correctly
    rounded on every platform. Up to ``_EXACT_POWER_LIMIT`` the power is exact
    rational arithmetic, correctly rounded once at the end. Beyond it, exact
    numerators grow too large, so repeated squaring runs on integer mantissas
    of 256 bits with a separate binary exponent: integer arithmetic only, hence
    identical on every machine, with truncation far below float64 resolution.
    """
    if exponent <= _EXACT_POWER_LIMIT or base == 0.0:
        return float(Fraction(base) ** exponent)
    mantissa, exp2 = _truncate(*_as_mantissa_exponent(base))
    result, result_exp = 1, 0
    while exponent:
        if exponent & 1:
            result, result_exp = _truncate(result * mantissa, result_exp + exp2)
        mantissa, exp2 = _truncate(mantissa * mantissa, 2 * exp2)
        exponent >>= 1
    return float(Fraction(result) * Fraction(2) ** result_exp)


def _as_mantissa_exponent(value: float) -> tuple[int, int]:
    """Write a positive float exactly as ``m * 2**e`` with integers m, e."""
    fraction, exp2 = math.frexp(value)
    return int(fraction * (1 << 53)), exp2 - 53


def _truncate(mantissa: int, exp2: int) -> tuple[int, int]:
    """Drop low bits so the mantissa keeps at most 256 significant bits."""
    excess = mantissa.bit_length() - _MANTISSA_BITS
    if excess <= 0:
        return mantissa, exp2
    return mantissa >> excess, exp2 + excess
