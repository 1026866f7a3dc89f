"""Running an adapter over the golden cases, naming deviations, writing the report.

An adapter that raises, returns NaN, the wrong number of arrays or the wrong
shape fails that case (status ``error`` or ``fail``); the run goes on.
When a case fails, the runner re-runs the reference with each known variant
(:mod:`adamp_conformance.variants`), then with pairs of the variants that change
this case, and names those whose trajectory the adapter follows within
tolerance.
"""

from __future__ import annotations

import itertools
import platform
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from adamp_conformance.adapters import Adapter, Problem, from_layout, to_layout
from adamp_conformance.compare import Comparison, compare
from adamp_conformance.golden import (
    SUITE_VERSION,
    GoldenCase,
    load_all,
    load_manifest,
    simulate_case,
)
from adamp_conformance.tolerance import tolerance_for
from adamp_conformance.variants import Trajectory, combine, variants_for

__all__ = ["CaseResult", "run_case", "run_suite", "select_cases", "suite_report"]


@dataclass
class CaseResult:
    id: str
    case_id: str
    optimizer: str
    dtype: str
    flags: list[str]
    status: str  # pass, fail, error, unsupported, skip
    reason: str = ""
    comparison: Comparison | None = None
    deviations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    def as_dict(self) -> dict:
        out = {
            "id": self.id,
            "case_id": self.case_id,
            "optimizer": self.optimizer,
            "dtype": self.dtype,
            "flags": self.flags,
            "status": self.status,
            "reason": self.reason,
            "deviations": self.deviations,
            "tolerance": tolerance_for(self.dtype).as_dict(),
            "seconds": round(self.seconds, 4),
        }
        if self.comparison is not None:
            out.update(self.comparison.as_dict())
        return out


def select_cases(
    cases: Iterable[GoldenCase] | None = None,
    *,
    dtypes: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> list[GoldenCase]:
    chosen = []
    for case in load_all() if cases is None else cases:
        if dtypes and case.dtype not in dtypes:
            continue
        if optimizers and case.optimizer not in optimizers:
            continue
        if ids and case.id not in ids and case.case_id not in ids:
            continue
        chosen.append(case)
    return chosen


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy().copy()
    return np.asarray(x, dtype=np.float64)


def _run_adapter(adapter: Adapter, golden: GoldenCase) -> tuple[Trajectory, str, bool, bool]:
    """Step the adapter through the case; returns (trajectory, error, has_state, has_branches)."""
    layout = adapter.layout
    problem = Problem(
        optimizer=golden.optimizer,
        groups=[dict(g) for g in golden.groups],
        group_of=list(golden.group_of),
        params=[to_layout(p.copy(), layout) for p in golden.reference.params[0]],
        dtype=golden.dtype,
        layout=layout,
        names=list(golden.names),
    )
    traj = Trajectory(params=[list(golden.reference.params[0])], states=[], branches=None)
    branches = []
    stepper = adapter.factory(problem)
    has_state = callable(getattr(stepper, "state", None))
    has_branches = callable(getattr(stepper, "branches", None))
    error = ""
    for t, grads in enumerate(golden.grads, start=1):
        try:
            out = stepper.step([to_layout(g, layout) for g in grads])
            out = list(out)
            if len(out) != len(grads):
                raise ValueError(f"returned {len(out)} parameters, expected {len(grads)}")
            params = []
            for name, shape, p in zip(golden.names, golden.shapes, out, strict=True):
                p = _as_array(p)
                expected = to_layout(np.zeros(shape), layout).shape
                if p.shape != expected:
                    raise ValueError(f"{name}: returned shape {p.shape}, expected {expected}")
                params.append(from_layout(p, layout))
            traj.params.append(params)
            if has_state:
                traj.states.append(
                    [
                        {
                            k: (
                                from_layout(_as_array(v), layout)
                                if k != "step"
                                else int(_as_array(v))
                            )
                            for k, v in st.items()
                        }
                        for st in stepper.state()
                    ]
                )
            if has_branches:
                branches.append([int(b) for b in stepper.branches()])
        except Exception as exc:  # the adapter's failure is this case's failure
            error = f"step {t}: {type(exc).__name__}: {exc}"
            break
    if has_branches and branches:
        traj.branches = np.array(branches, dtype=np.int64)
        if len(branches) < golden.steps:  # pad so the comparison sees every row
            pad = np.full((golden.steps - len(branches), len(golden.names)), -1)
            traj.branches = np.vstack([traj.branches, pad])
    return traj, error, has_state, has_branches and bool(branches)


def _variant_trajectory(golden: GoldenCase, variant) -> Trajectory:
    cache = golden.cache
    if variant.name not in cache:
        cache[variant.name] = simulate_case(golden, variant)
    return cache[variant.name]


def name_deviations(golden: GoldenCase, traj: Trajectory, has_branches: bool) -> list[str]:
    """Known variants (or pairs of them) whose trajectory ``traj`` follows within tolerance."""
    tol = tolerance_for(golden.dtype)
    candidates = variants_for(golden.optimizer)
    found, changing = [], []
    for variant in candidates:
        expected = _variant_trajectory(golden, variant)
        if compare(expected, golden.reference, tol).passed:
            continue  # this variant does not change this case
        changing.append(variant)
        if compare(traj, expected, tol, check_branches=has_branches).passed:
            found.append(variant.name)
    if found:
        # several variants can coincide on one case; prefer those the case was built to expose
        preferred = [name for name in found if name in golden.meta.get("exposes", ())]
        return preferred or found
    for a, b in itertools.combinations(changing, 2):
        both = combine(a, b)
        if compare(
            traj, _variant_trajectory(golden, both), tol, check_branches=has_branches
        ).passed:
            found.append(both.name)
    return found


def run_case(adapter: Adapter, golden: GoldenCase, *, name_variants: bool = True) -> CaseResult:
    result = CaseResult(
        id=golden.id,
        case_id=golden.case_id,
        optimizer=golden.optimizer,
        dtype=golden.dtype,
        flags=list(golden.flags),
        status="pass",
    )
    reason = adapter.unsupported(
        golden.optimizer, golden.dtype, golden.groups, golden.needs_none_grad
    )
    if reason:
        result.status, result.reason = "unsupported", reason
        return result
    start = time.perf_counter()
    try:
        traj, error, has_state, has_branches = _run_adapter(adapter, golden)
    except Exception as exc:
        result.status = "error"
        result.reason = f"factory: {type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        tb = traceback.format_exc(limit=3)
        result.comparison = Comparison(passed=False, first_failing_step=0, messages=[tb[-2000:]])
        return result
    tol = tolerance_for(golden.dtype)
    cmp = compare(
        traj,
        golden.reference,
        tol,
        names=golden.names,
        check_state=has_state,
        check_branches=has_branches,
    )
    result.comparison = cmp
    if error:
        result.status, result.reason = "error", error
    elif not cmp.passed:
        result.status = "fail"
        result.reason = cmp.messages[0] if cmp.messages else ""
    if result.failed and name_variants and len(traj.params) == golden.steps + 1:
        result.deviations = name_deviations(golden, traj, has_branches)
    result.seconds = time.perf_counter() - start
    return result


def run_suite(
    adapter: Adapter,
    cases: Sequence[GoldenCase] | None = None,
    *,
    skip: Sequence[str] = (),
    progress=None,
) -> list[CaseResult]:
    results = []
    for golden in select_cases() if cases is None else cases:
        if golden.id in skip or golden.case_id in skip:
            results.append(
                CaseResult(
                    golden.id,
                    golden.case_id,
                    golden.optimizer,
                    golden.dtype,
                    list(golden.flags),
                    "skip",
                    "in the skip list",
                )
            )
        else:
            results.append(run_case(adapter, golden))
        if progress is not None:
            progress(results[-1])
    return results


def suite_report(adapter: Adapter, results: Sequence[CaseResult], **extra) -> dict:
    manifest = load_manifest()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    deviations = sorted({d for r in results for d in r.deviations})
    return {
        "suite_version": SUITE_VERSION,
        "case_set_hash": manifest["case_set_hash"],
        "adapter": {
            "name": adapter.name,
            "layout": adapter.layout,
            "description": adapter.description,
            "versions": adapter.version_info(),
        },
        "platform": {"python": platform.python_version(), "numpy": np.__version__},
        "summary": {
            "cases": len(results),
            **counts,
            "passed": all(not r.failed for r in results),
            "deviations": deviations,
            "failing_flags": sorted({f for r in results if r.failed for f in r.flags}),
        },
        **extra,
        "cases": [r.as_dict() for r in results],
    }


def format_table(results: Sequence[CaseResult]) -> str:
    def num(x):
        if x is None:
            return "-"
        return f"{x:.2g}" if np.isfinite(x) else str(x)

    header = (
        f"{'case':34s} {'status':11s} {'step':>4s} {'param':>7s} {'update':>7s} {'state':>7s} "
        f"{'br':>3s}  deviations / reason"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        c = r.comparison
        step = "" if c is None or c.first_failing_step is None else str(c.first_failing_step)
        extra = ", ".join(r.deviations) if r.deviations else r.reason
        lines.append(
            f"{r.id:34s} {r.status:11s} {step:>4s} "
            f"{num(c.max_param_err if c else None):>7s} {num(c.max_update_err if c else None):>7s} "
            f"{num(c.max_state_err if c else None):>7s} "
            f"{(len(c.branch_mismatches) if c else 0):>3d}  {extra[:90]}"
        )
    return "\n".join(lines)
