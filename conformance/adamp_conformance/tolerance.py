"""Dtypes, rounding to them, and the tolerance policy.

The reference computes in float64 and, for a lower-precision case, rounds the
parameters to the case dtype after every step, as an implementation that stores
its parameters in that dtype must. Errors are measured per tensor and step and
*normalised* by the tolerance, so a value <= 1 passes:

- update (u_t = p_t - p_{t-1}, the step actually taken):
  ``max|u - u_ref| / (rtol_update * max|u_ref| + ulp_factor * unit * max(|p_t|, |p_{t-1}|))``,
  elementwise in |p|.
  The first term is the arithmetic of one step (moments, square root,
  division, the projection's dot products); the second is the rounding of the
  stored parameter, which both the implementation and the reference do, twice
  at most per step in the implementation (decay, then update). Checking the
  update itself matters: with lr << |p| a parameter-relative check would hide
  a wrong update.
- parameter: ``max|p - p_ref| / sum_{s <= t} (update tolerance of step s)``: a
  parameter's error is the sum of the errors of the updates so far.
- state (moments, momentum buffer, when the adapter exposes it):
  ``max|s - s_ref| / (rtol_state * max|s_ref|)``.
- projection branch (when exposed): must be equal, no tolerance.

Per dtype (unit = unit roundoff: 2^-53, 2^-24, 2^-11, 2^-8):

- float64: rtol 1e-9. A float64 implementation differs from the correctly
  rounded reference by summation order and libm only, about d * 2^-53 ~ 1e-14
  for rows of d <= 64; 1e-9 leaves five orders of headroom yet sits far below
  every flagged difference (the generator demands >= VISIBILITY x tolerance).
- float32: rtol 1e-4. About ten float32 operations per element plus dot
  products over d <= 64 terms give <= (10 + 64) * 2^-24 ~ 5e-6 per step, and
  moments in float32 drift by t * 2^-24 over t <= 30 steps; 1e-4 is 20x that.
- float16: rtol 2e-2 (~40 units of 2^-11), short horizons only: moments,
  square root and division each round to 11 bits and the moments carry it.
- bfloat16: rtol 1e-1 (~25 units of 2^-8), short horizons only, same reason
  with 8 bits; bfloat16 cases use learning rates large enough that a step is
  many units of the parameter's last place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DTYPES",
    "SHORT",
    "VISIBILITY",
    "Tolerance",
    "round_to",
    "storage_dtype",
    "tolerance_for",
]

DTYPES = ("float64", "float32", "float16", "bfloat16")
SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}

# A flagged variant must move some normalised error to at least this many tolerances.
VISIBILITY = 4.0


@dataclass(frozen=True)
class Tolerance:
    """The tolerance of one dtype; see the module docstring for the formulas."""

    dtype: str
    unit: float  # unit roundoff of the dtype
    rtol_update: float
    rtol_state: float
    ulp_factor: float = 4.0  # roundings of the stored parameter per step, both sides
    branch_margin: float = 0.05  # relative distance of cos from its threshold, generator check

    def as_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "unit_roundoff": self.unit,
            "rtol_update": self.rtol_update,
            "rtol_state": self.rtol_state,
            "ulp_factor": self.ulp_factor,
            "param": "sum of the update tolerances of the steps so far",
            "branch": "exact",
        }


_TOLERANCES = {
    "float64": Tolerance("float64", 2.0**-53, 1e-9, 1e-9, branch_margin=0.05),
    "float32": Tolerance("float32", 2.0**-24, 1e-4, 1e-4, branch_margin=0.05),
    "float16": Tolerance("float16", 2.0**-11, 2e-2, 2e-2, branch_margin=0.25),
    "bfloat16": Tolerance("bfloat16", 2.0**-8, 1e-1, 1e-1, branch_margin=0.5),
}


def tolerance_for(dtype: str) -> Tolerance:
    try:
        return _TOLERANCES[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}") from None


def storage_dtype(dtype: str) -> type:
    """NumPy dtype that holds values of ``dtype`` exactly (bfloat16 and float16 in float32)."""
    return np.float64 if dtype == "float64" else np.float32


def _round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest, ties to even) through float32, as frameworks do."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = rounded.astype(np.uint32).view(np.float32)
    nonfinite = ~np.isfinite(np.asarray(x, dtype=np.float32))
    return np.where(nonfinite, np.asarray(x, dtype=np.float32), out)


def round_to(x, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype``, returned as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype == "float32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _round_bfloat16(x).astype(np.float64)
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
