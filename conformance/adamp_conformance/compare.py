"""Comparing a trajectory with the expected one under a dtype's tolerance.

See :mod:`adamp_conformance.tolerance` for the formulas. Errors are reported
normalised (1.0 = exactly at tolerance) and raw (largest absolute difference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adamp_conformance.tolerance import Tolerance
from adamp_conformance.variants import Trajectory

__all__ = ["Comparison", "compare"]

_TINY = 1e-300


@dataclass
class Comparison:
    passed: bool = True
    first_failing_step: int | None = None  # 1-based step
    first_failing_tensor: str | None = None  # the first tensor failing on that step
    max_param_err: float = 0.0  # normalised
    max_update_err: float = 0.0
    max_state_err: float | None = None
    max_param_abs: float = 0.0
    max_update_abs: float = 0.0
    branch_mismatches: list[dict] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def fail(self, step: int, message: str, tensor: str | None = None) -> None:
        if self.passed or step < (self.first_failing_step or step + 1):
            self.first_failing_step, self.first_failing_tensor = step, tensor
        self.passed = False
        if len(self.messages) < 8:
            self.messages.append(f"step {step}: {message}")

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "first_failing_step": self.first_failing_step,
            "first_failing_tensor": self.first_failing_tensor,
            "max_param_err": _finite_or_str(self.max_param_err),
            "max_update_err": _finite_or_str(self.max_update_err),
            "max_state_err": None
            if self.max_state_err is None
            else _finite_or_str(self.max_state_err),
            "max_param_abs": _finite_or_str(self.max_param_abs),
            "max_update_abs": _finite_or_str(self.max_update_abs),
            "branch_mismatches": self.branch_mismatches,
            "messages": self.messages,
        }


def _finite_or_str(x: float):
    return float(x) if np.isfinite(x) else str(x)


def _maxabs(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b, with 0 where both are NaN or the same infinity (a variant that produces NaN
    matches only NaN)."""
    if a.shape != b.shape:
        return np.full(b.shape, np.inf)
    return np.where((np.isnan(a) & np.isnan(b)) | (a == b), 0.0, a - b)


def _err(diff: np.ndarray) -> float:
    if diff.size == 0:
        return 0.0
    if not np.all(np.isfinite(diff)):
        return float("inf")
    return float(np.max(np.abs(diff)))


def compare(
    actual: Trajectory,
    expected: Trajectory,
    tol: Tolerance,
    *,
    names: list[str] | None = None,
    check_state: bool = False,
    check_branches: bool = False,
    stop_early: bool = False,
) -> Comparison:
    """Compare ``actual`` with ``expected`` step by step (both in the same layout).

    ``stop_early``: return after the first failing step (the maxima then cover
    only the steps so far); for a pass/fail answer.
    """
    out = Comparison()
    steps = len(expected.params) - 1
    n = len(expected.params[0])
    names = names or [f"param{i}" for i in range(n)]
    cum_update = [0.0] * n
    cum_round: list[np.ndarray | float] = [0.0] * n
    if check_state:
        out.max_state_err = 0.0
    for t in range(1, steps + 1):
        if t >= len(actual.params):
            out.fail(t, "no parameters returned")
            break
        for i in range(n):
            p_ref, p_prev_ref = expected.params[t][i], expected.params[t - 1][i]
            p, p_prev = actual.params[t][i], actual.params[t - 1][i]
            with np.errstate(all="ignore"):
                u_ref, u = p_ref - p_prev_ref, p - p_prev
            p_mag = np.maximum(np.abs(p_ref), np.abs(p_prev_ref))  # elementwise
            u_scale = _maxabs(u_ref)
            cum_update[i] += u_scale
            update_tol = tol.rtol_update * u_scale + tol.ulp_factor * tol.unit * p_mag
            cum_round[i] = cum_round[i] + update_tol  # a parameter error is the sum of
            param_tol = cum_round[i]  # the update errors of the steps so far
            with np.errstate(all="ignore"):
                dp, du = _diff(p, p_ref), _diff(u, u_ref)
                e_param = _err(np.where(dp == 0, 0.0, dp / np.maximum(param_tol, _TINY)))
                e_update = _err(np.where(du == 0, 0.0, du / np.maximum(update_tol, _TINY)))
            d_param, d_update = _err(dp), _err(du)
            if p.shape != p_ref.shape:
                e_param = e_update = d_param = d_update = float("inf")
            out.max_param_abs = max(out.max_param_abs, d_param)
            out.max_update_abs = max(out.max_update_abs, d_update)
            out.max_param_err = max(out.max_param_err, e_param)
            out.max_update_err = max(out.max_update_err, e_update)
            if not e_param <= 1.0:
                out.fail(t, f"{names[i]}: parameter error {e_param:.3g} x tolerance", names[i])
            if not e_update <= 1.0:
                out.fail(t, f"{names[i]}: update error {e_update:.3g} x tolerance", names[i])
            if check_state and actual.states is not None and t - 1 < len(actual.states):
                e_state = _state_err(actual.states[t - 1][i], expected.states[t - 1][i], tol)
                out.max_state_err = max(out.max_state_err, e_state)
                if not e_state <= 1.0:
                    out.fail(t, f"{names[i]}: state error {e_state:.3g} x tolerance", names[i])
            if check_branches and actual.branches is not None:
                got, want = int(actual.branches[t - 1, i]), int(expected.branches[t - 1, i])
                if got != want:
                    out.branch_mismatches.append(
                        {"step": t, "param": names[i], "expected": want, "got": got}
                    )
                    out.fail(t, f"{names[i]}: branch {got}, expected {want}", names[i])
        if stop_early and not out.passed:
            break
    return out


def _state_err(got: dict, want: dict, tol: Tolerance) -> float:
    worst = 0.0
    for key, ref in want.items():
        if key == "step" or key not in got:
            continue
        value = np.asarray(got[key], dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if value.shape != ref.shape:
            return float("inf")
        scale = tol.rtol_state * _maxabs(ref)
        worst = max(worst, _err(value - ref) / max(scale, _TINY))
    if "step" in want and "step" in got and int(got["step"]) != int(want["step"]):
        return float("inf")
    return worst
