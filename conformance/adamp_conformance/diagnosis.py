"""Naming why a trajectory departs from the reference, or localising where it does.

:func:`diagnose` is the entry point: given a golden case and the trajectory an
implementation produced on it (PyTorch layout, float64), it returns a
:class:`Diagnosis`:

- ``findings``: the known variants (:mod:`adamp_conformance.variants`), or pairs
  of them, whose trajectory the implementation follows within tolerance. Names
  that the case cannot tell apart (their trajectories coincide on it) form *one*
  finding marked ambiguous, e.g. ``channel_axis_last|channel_axis_first_of_channels_last``
  on 2-D weights.
- ``localisation``, when no variant explains the trajectory: the first failing
  step and tensor, and the first intermediate quantity of that step that departs
  from the reference trace (see :func:`localise`).
- ``nearest``: the variant closest to the trajectory and its distance (the
  largest normalised error against that variant's trajectory; 1.0 = within
  tolerance).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from adamp_conformance.compare import compare
from adamp_conformance.golden import GoldenCase, simulate_case
from adamp_conformance.tolerance import tolerance_for
from adamp_conformance.variants import (
    OFFICIAL,
    Trajectory,
    Variant,
    combine,
    project,
    variants_for,
)
from adamp_core import Branch

__all__ = ["PAIR_CANDIDATES", "PAIR_DTYPES", "Diagnosis", "Finding", "diagnose", "localise"]

# Pairs are tried among this many variants nearest to the trajectory (not all pairs:
# their number grows quadratically with the variants that change a case).
PAIR_CANDIDATES = 8
PAIR_DTYPES = ("float64", "float32")


@dataclass
class Finding:
    """One explanation: a variant, or a pair ``a+b``; several names when ambiguous."""

    names: list[str]

    @property
    def ambiguous(self) -> bool:
        return len(self.names) > 1

    @property
    def label(self) -> str:
        return "|".join(self.names)

    def as_dict(self) -> dict:
        return {"names": self.names, "ambiguous": self.ambiguous}


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    localisation: dict | None = None
    nearest: dict | None = None  # {"variant": name, "distance": normalised error}

    @property
    def deviations(self) -> list[str]:
        return [f.label for f in self.findings]

    def as_dict(self) -> dict:
        return {
            "findings": [f.as_dict() for f in self.findings],
            "localisation": self.localisation,
            "nearest": self.nearest,
        }


def _trajectory(golden: GoldenCase, variant: Variant) -> Trajectory:
    if variant.name not in golden.cache:
        golden.cache[variant.name] = simulate_case(golden, variant)
    return golden.cache[variant.name]


def _changes(golden: GoldenCase, variant: Variant) -> bool:
    """Whether the variant moves this case's trajectory beyond tolerance (cached)."""
    key = f"changes:{variant.name}"
    if key not in golden.cache:
        tol = tolerance_for(golden.dtype)
        golden.cache[key] = not compare(
            _trajectory(golden, variant), golden.reference, tol, check_state=True,
            check_branches=True,
        ).passed  # fmt: skip
    return golden.cache[key]


def _follows(traj: Trajectory, expected: Trajectory, tol, has_state: bool, has_branches: bool):
    return compare(traj, expected, tol, check_state=has_state, check_branches=has_branches,
                   stop_early=True).passed  # fmt: skip


def _distance(traj: Trajectory, expected: Trajectory, tol, has_state: bool, has_branches: bool):
    cmp = compare(traj, expected, tol, check_state=has_state, check_branches=has_branches)
    if cmp.passed:
        return 0.0
    worst = max(cmp.max_param_err, cmp.max_update_err, cmp.max_state_err or 0.0)
    return worst if worst > 1.0 else 1.0 + len(cmp.branch_mismatches)  # branches only


def _group(golden: GoldenCase, names: list[str]) -> list[Finding]:
    """The matching names as one finding (ambiguous when several), case-exposed ones first:
    the case cannot tell them apart, so none is dropped."""
    exposed = set(golden.meta.get("exposes", ()))
    preferred = [n for n in names if set(n.split("+")) <= exposed]
    return [Finding(preferred + [n for n in names if n not in preferred])]


def diagnose(
    golden: GoldenCase, traj: Trajectory, *, has_state: bool = False, has_branches: bool = False
) -> Diagnosis:
    """Name the variants ``traj`` follows on ``golden``, or localise its first departure."""
    tol = tolerance_for(golden.dtype)
    changing = [v for v in variants_for(golden.optimizer) if _changes(golden, v)]
    out = Diagnosis()
    # the state decides only where the parameters and branches pass (a state-only failure):
    # elsewhere an exposed state downstream of a decision (a projected SGDP buffer) would
    # hide a variant that the parameters follow
    params_pass = compare(traj, golden.reference, tol, check_branches=has_branches).passed
    follow_state = has_state and params_pass
    found = [
        v.name
        for v in changing
        if _follows(traj, _trajectory(golden, v), tol, follow_state, has_branches)
    ]
    if found:
        out.findings = _group(golden, found)
        return out
    distances = {
        v.name: _distance(traj, _trajectory(golden, v), tol, follow_state, has_branches)
        for v in changing
    }
    if distances:
        name = min(distances, key=distances.get)
        out.nearest = {"variant": name, "distance": _finite(distances[name])}
    # pairs only where the tolerance is tight: 3-4 steps at 8-11 bits fit too many pairs
    tried = PAIR_CANDIDATES if golden.dtype in PAIR_DTYPES else 0
    nearest = {v.name for v in sorted(changing, key=lambda v: distances[v.name])[:tried]}
    pairs = []  # named in the registry's order, whatever the distances
    for a, b in itertools.combinations([v for v in changing if v.name in nearest], 2):
        both = combine(a, b)
        if _follows(traj, _trajectory(golden, both), tol, follow_state, has_branches):
            pairs.append(both.name)
    if pairs:
        out.findings = _group(golden, pairs)
        return out
    out.localisation = localise(golden, traj, has_state=has_state)
    return out


def _finite(x: float):
    return float(x) if math.isfinite(x) else str(x)


# ----------------------------------------------------------------------------- localising


def _first_failure(golden: GoldenCase, traj: Trajectory, has_state: bool):
    cmp = compare(traj, golden.reference, tolerance_for(golden.dtype), names=golden.names,
                  check_state=has_state)  # fmt: skip
    if cmp.passed or cmp.first_failing_tensor is None:
        return None
    return cmp.first_failing_step, golden.names.index(cmp.first_failing_tensor)


def _reference_step(golden: GoldenCase, t: int, i: int) -> dict:
    """The reference's intermediate quantities of tensor ``i`` at 1-based step ``t``."""
    hp = golden.groups[golden.group_of[i]]
    p = golden.reference.params[t - 1][i]
    g = golden.grads[t - 1][i]
    prev = golden.reference.states[t - 2][i] if t >= 2 else None
    q: dict = {"p": p, "g": g}
    if golden.optimizer == "adamp":
        b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
        step = (prev["step"] if prev else 0) + 1
        m = b1 * (prev["exp_avg"] if prev else 0.0) + (1 - b1) * g
        v = b2 * (prev["exp_avg_sq"] if prev else 0.0) + (1 - b2) * g * g
        bc1, bc2 = 1 - b1**step, 1 - b2**step
        num = b1 * m + (1 - b1) * g if hp["nesterov"] else m
        q["direction"] = num / (np.sqrt(v) / math.sqrt(bc2) + eps)
        q["state"] = {"exp_avg": m, "exp_avg_sq": v}
        q["step_size"] = hp["lr"] / bc1
        q["decay_scale"] = hp["lr"] * hp["weight_decay"]
    else:
        mu = hp["momentum"]
        buf = mu * (prev["momentum_buffer"] if prev else 0.0) + (1 - hp["dampening"]) * g
        q["direction"] = g + mu * buf if hp["nesterov"] else buf
        q["state"] = {"momentum_buffer": buf}
        q["step_size"] = hp["lr"]
        q["decay_scale"] = hp["lr"] * hp["weight_decay"] / (1 - mu)
    # the update under each projection decision: none, channel view, layer view
    q["by_branch"] = {}
    for name, views in (("none", ()), ("channel", ("channel",)), ("layer", ("layer",))):
        d, ratio, _ = project(p, g, q["direction"], delta=-1.0 if not views else math.inf,
                              eps=hp["eps"], wd_ratio=hp["wd_ratio"],
                              variant=replace(OFFICIAL, views=views))  # fmt: skip
        q["by_branch"][name] = (d, ratio)
    _, _, branch = project(p, g, q["direction"], delta=hp["delta"], eps=hp["eps"],
                           wd_ratio=hp["wd_ratio"], variant=OFFICIAL)  # fmt: skip
    q["branch"] = {Branch.NONE: "none", Branch.CHANNEL: "channel", Branch.LAYER: "layer"}[branch]
    return q


def _fit(u: np.ndarray, p: np.ndarray, d: np.ndarray) -> tuple[float, float, float]:
    """Least squares u ~ -c p - s d: (c, s, relative residual)."""
    basis = np.stack([-p.ravel(), -d.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(basis, u.ravel(), rcond=None)
    resid = np.linalg.norm(basis @ coef - u.ravel()) / max(np.linalg.norm(u), 1e-300)
    return float(coef[0]), float(coef[1]), float(resid)


def _moments_departure(golden: GoldenCase, traj: Trajectory, t: int, i: int) -> str:
    """The moment that departs at step t, among those computed before the projection."""
    if not traj.states or len(traj.states) < t:
        return ""
    hp = golden.groups[golden.group_of[i]]
    keys = ("exp_avg", "exp_avg_sq")
    if golden.optimizer == "sgdp":  # a projected buffer is downstream of the decision
        projected = hp.get("project_buffer", True) and not hp["nesterov"]
        keys = () if projected else ("momentum_buffer",)
    got, want = traj.states[t - 1][i], golden.reference.states[t - 1][i]
    for key in keys:
        if key in got:
            ref = np.asarray(want[key])
            err = np.max(np.abs(np.asarray(got[key]) - ref)) / max(np.max(np.abs(ref)), 1e-300)
            if not err <= tolerance_for(golden.dtype).rtol_state:
                return f"{key} off by {err:.3g} relative"
    return ""


def localise(golden: GoldenCase, traj: Trajectory, *, has_state: bool = False) -> dict | None:
    """Where ``traj`` first departs, and which intermediate quantity departs first.

    At the first failing step ``t`` and tensor, the reference's step is rebuilt
    from its state before ``t``; the quantities are checked in the order the
    algorithm computes them: ``moments`` (only if the adapter exposes its state),
    then the observed update is fitted as ``-c p - s D`` for the update D of each
    projection decision (none, channel view, layer view). A good fit with another
    decision than the reference's names the ``cosine decision``; with the same
    decision, a wrong ``c`` names the ``decay factor`` and a wrong ``s`` the
    ``step size``. No good fit: if the observed update has the reference's
    projection (no radial component along its view) the ``direction`` before
    projection departs, else the ``projected update``.
    """
    first = _first_failure(golden, traj, has_state)
    if first is None:
        return None
    t, i = first
    tol = tolerance_for(golden.dtype)
    out = {"step": t, "tensor": golden.names[i]}
    if len(traj.params) <= t:
        return {**out, "quantity": "no parameters returned", "detail": ""}
    p_prev, p_new = traj.params[t - 1][i], traj.params[t][i]
    u = p_new - p_prev
    if not np.all(np.isfinite(u)):
        return {**out, "quantity": "non-finite update", "detail": "NaN or inf in the parameter"}
    if golden.grads[t - 1][i] is None:
        return {**out, "quantity": "update without gradient",
                "detail": "the parameter moved on a step without gradient"}  # fmt: skip
    q = _reference_step(golden, t, i)
    moments = _moments_departure(golden, traj, t, i) if has_state else None
    if moments:
        return {**out, "quantity": "moments", "detail": moments}
    good = 10 * tol.rtol_update  # a fit this close explains the update's shape
    fits = {name: (*_fit(u, q["p"], d), ratio) for name, (d, ratio) in q["by_branch"].items()}
    best = min(fits, key=lambda k: fits[k][2])
    ref = q["branch"]
    if fits[ref][2] < good:  # the reference's decision explains the update's shape
        c, s, _, ratio = fits[ref]
        c_ref = q["decay_scale"] * ratio
        u_max = np.max(np.abs(u))  # a coefficient departs if it moves the update visibly
        if abs(c - c_ref) * np.max(np.abs(q["p"])) > tol.rtol_update * u_max:
            detail = f"decay factor 1 - {c:.10g}, reference 1 - {c_ref:.10g}"
            return {**out, "quantity": "decay factor", "detail": detail}
        detail = f"step size {s:.10g}, reference {q['step_size']:.10g}"
        return {**out, "quantity": "step size", "detail": detail}
    if fits[best][2] < good:
        detail = f"the update follows the {best} decision; the reference's is {ref}"
        return {**out, "quantity": "cosine decision", "detail": detail}
    if ref != "none":
        c_ref = q["decay_scale"] * fits[ref][3]
        step_part = u + c_ref * q["p"]  # the update without the reference's decay
        tangent, _, _ = project(q["p"], q["g"], step_part, delta=math.inf, eps=1e-300,
                                wd_ratio=1.0, variant=replace(OFFICIAL, views=(ref,)))  # fmt: skip
        radial = np.linalg.norm(step_part - tangent) / max(np.linalg.norm(step_part), 1e-300)
        if radial > good:
            detail = (f"{radial:.3g} of the update is radial in the {ref} view, which the "
                      f"reference projects out")  # fmt: skip
            return {**out, "quantity": "projected update", "detail": detail}
    detail = (f"best fit with the {best} decision leaves {fits[best][2]:.3g} of the update "
              "unexplained")  # fmt: skip
    return {**out, "quantity": "direction", "detail": detail}
