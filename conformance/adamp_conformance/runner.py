"""Running an adapter over the golden cases, naming deviations, writing the report.

An adapter that raises, returns NaN, the wrong number of arrays or the wrong
shape fails that case (status ``error`` or ``fail``); the run goes on.
When a case fails, :func:`adamp_conformance.diagnosis.diagnose` names the known
variants (or pairs) the adapter follows within tolerance, or localises the
first departure. When a wrong channel axis is named, :func:`run_suite` re-runs
the failing cases with the layout swapped and reports what remains.
"""

from __future__ import annotations

import dataclasses
import platform
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from adamp_conformance.adapters import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    Adapter,
    Problem,
    as_float,
    from_layout,
    to_layout,
)
from adamp_conformance.compare import Comparison, compare
from adamp_conformance.diagnosis import diagnose
from adamp_conformance.golden import SUITE_VERSION, GoldenCase, load_all, load_manifest
from adamp_conformance.tolerance import tolerance_for
from adamp_conformance.variants import Trajectory

__all__ = [
    "CaseResult",
    "EmptySelection",
    "name_deviations",
    "run_case",
    "run_suite",
    "select_cases",
    "suite_report",
]

AXIS_VARIANTS = ("channel_axis_last", "channel_axis_first_of_channels_last")


class EmptySelection(ValueError):
    """A case selection that matches no golden case."""


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
    deviations: list[str] = field(default_factory=list)  # one label per finding
    findings: list[dict] = field(default_factory=list)
    localisation: dict | None = None  # where an unexplained failure departs first
    nearest: dict | None = None  # the closest variant and its distance
    layout_swapped: CaseResult | None = None  # the re-run with the other layout
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
            "findings": self.findings,
            "localisation": self.localisation,
            "nearest_variant": self.nearest,
            "tolerance": tolerance_for(self.dtype).as_dict(),
            "seconds": round(self.seconds, 4),
        }
        if self.comparison is not None:
            out.update(self.comparison.as_dict())
        if self.layout_swapped is not None:
            swapped = self.layout_swapped
            out["layout_swapped"] = {
                "status": swapped.status,
                "reason": swapped.reason,
                "deviations": swapped.deviations,
                "findings": swapped.findings,
                "localisation": swapped.localisation,
                "nearest_variant": swapped.nearest,
            }
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
    if not chosen and (dtypes or optimizers or ids):
        raise EmptySelection(
            f"no case matches --dtype {list(dtypes or [])} --optimizer {list(optimizers or [])} "
            f"--case {list(ids or [])}; see `adamp-conformance list`"
        )
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
        groups=[{k: as_float(v) for k, v in g.items()} for g in golden.groups],
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


def name_deviations(golden: GoldenCase, traj: Trajectory, has_branches: bool) -> list[str]:
    """The labels of the findings :func:`~adamp_conformance.diagnosis.diagnose` makes."""
    return diagnose(golden, traj, has_branches=has_branches).deviations


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
        found = diagnose(golden, traj, has_state=has_state, has_branches=has_branches)
        result.deviations = found.deviations
        result.findings = [f.as_dict() for f in found.findings]
        result.localisation, result.nearest = found.localisation, found.nearest
    result.seconds = time.perf_counter() - start
    return result


def run_suite(
    adapter: Adapter,
    cases: Sequence[GoldenCase] | None = None,
    *,
    skip: Sequence[str] = (),
    progress=None,
    swap_layout: bool = True,
) -> list[CaseResult]:
    """Run ``adapter`` on ``cases`` (default: every golden case), one result per case.

    With ``swap_layout`` (default), once a wrong channel axis is named on some
    case, every failing case is re-run with the adapter's layout swapped and the
    result attached as ``CaseResult.layout_swapped``, so the deviations the axis
    hides are named too.
    """
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
    if swap_layout and axis_named(results):
        rerun_with_layout_swapped(adapter, results, cases)
    return results


def axis_named(results: Sequence[CaseResult]) -> bool:
    """Whether a wrong channel axis explains some failing case: every name of one of its
    findings (alone, in a pair, or the two axis variants a 2-D case cannot tell apart)
    involves an axis variant."""
    return any(
        all(set(name.split("+")) & set(AXIS_VARIANTS) for name in finding["names"])
        for r in results
        for finding in r.findings
    )


def swapped(adapter: Adapter) -> Adapter:
    """The same adapter declared with the other layout."""
    other = CHANNELS_LAST if adapter.layout == CHANNELS_FIRST else CHANNELS_FIRST
    return dataclasses.replace(adapter, name=f"{adapter.name} (layout {other})", layout=other)


def rerun_with_layout_swapped(adapter, results, cases=None) -> None:
    """Re-run every failing case with the layout swapped; attach the result to each case."""
    by_id = {c.id: c for c in (select_cases() if cases is None else cases)}
    other = swapped(adapter)
    for r in results:
        if r.failed and r.id in by_id:
            r.layout_swapped = run_case(other, by_id[r.id])


def suite_report(adapter: Adapter, results: Sequence[CaseResult], **extra) -> dict:
    manifest = load_manifest()
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    deviations = sorted({d for r in results for d in r.deviations})
    swapped_runs = [r.layout_swapped for r in results if r.layout_swapped is not None]
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
            "unexplained": sorted(r.id for r in results if r.failed and not r.deviations),
            "after_layout_swap": None
            if not swapped_runs
            else {
                "layout": swapped(adapter).layout,
                "rerun": len(swapped_runs),
                "pass": sum(s.status == "pass" for s in swapped_runs),
                "deviations": sorted({d for s in swapped_runs for d in s.deviations}),
                "unexplained": sorted(s.id for s in swapped_runs if s.failed and not s.deviations),
            },
        },
        **extra,
        "cases": [r.as_dict() for r in results],
    }


COLUMNS = """columns:
  case      golden case id (<case>-<f64|f32|f16|bf16>)
  status    pass, fail (outside tolerance), error (the adapter raised or returned a wrong
            shape/count), unsupported (the adapter cannot express the case), skip
  step      first failing step (1-based)
  param     largest parameter error, in tolerances (<= 1 passes)
  update    largest error of the step taken (p_t - p_t-1), in tolerances
  state     largest moment / momentum-buffer error, in tolerances ('-': state not exposed)
  br        projection-branch mismatches (only when the adapter exposes branches)
  explanation
            the named deviation(s): a|b = the case cannot tell a from b; a+b = both at once;
            '?' = no known variant: the first failing step/tensor, the first intermediate
            quantity that departs, and the nearest variant with its distance (in tolerances);
            'swapped:' = the re-run with the other layout after a wrong channel axis was named"""


def _explanation(r: CaseResult) -> str:
    if r.deviations:
        text = ", ".join(r.deviations)
    elif r.localisation:
        loc = r.localisation
        text = f"? step {loc['step']} {loc['tensor']}: {loc['quantity']}"
        if r.nearest:
            distance = r.nearest["distance"]
            distance = f"{distance:.2g}" if isinstance(distance, float) else distance
            text += f" (nearest {r.nearest['variant']}, {distance})"
    else:
        text = r.reason
    if r.layout_swapped is not None:
        other = r.layout_swapped
        text += f"; swapped: {other.status} {_explanation(other) if other.failed else ''}"
    return text.strip()


def format_table(results: Sequence[CaseResult]) -> str:
    def num(x):
        if x is None:
            return "-"
        return f"{x:.2g}" if np.isfinite(x) else str(x)

    header = (
        f"{'case':34s} {'status':11s} {'step':>4s} {'param':>7s} {'update':>7s} {'state':>7s} "
        f"{'br':>3s}  explanation"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        c = r.comparison
        step = "" if c is None or c.first_failing_step is None else str(c.first_failing_step)
        lines.append(
            f"{r.id:34s} {r.status:11s} {step:>4s} "
            f"{num(c.max_param_err if c else None):>7s} {num(c.max_update_err if c else None):>7s} "
            f"{num(c.max_state_err if c else None):>7s} "
            f"{(len(c.branch_mismatches) if c else 0):>3d}  {_explanation(r)[:140]}"
        )
    return "\n".join(lines)
