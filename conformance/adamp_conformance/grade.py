"""Grading trajectories that a port in any language wrote for exported cases.

``adamp-conformance grade --cases DIR --results DIR`` reads the exported cases
(:mod:`adamp_conformance.export`) and, per case, the port's ``<id>.json`` and
its float64 little-endian ``.bin`` (format in docs/porting.md and
``schema/result.schema.json``). Each recorded trajectory is replayed through an
adapter into :func:`adamp_conformance.runner.run_case`, so statuses,
tolerances, first failing step, report fields and deviation names are those of
``adamp-conformance run``. A missing results file is a ``skip``, a malformed
one an ``error``, a trajectory that stops early an ``error`` at the first
missing step; the other cases are graded regardless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adamp_conformance.adapters import Adapter, Problem, to_layout
from adamp_conformance.export import (
    FORMAT_VERSION,
    FormatError,
    load_exported,
    read_array,
    state_fields,
)
from adamp_conformance.golden import GoldenCase
from adamp_conformance.runner import (
    CaseResult,
    EmptySelection,
    run_case,
    select_cases,
    suite_report,
)

__all__ = [
    "IMPLEMENTATION_FORMAT",
    "RESULT_FORMAT",
    "MissingStep",
    "PortError",
    "grade",
    "read_result",
]

RESULT_FORMAT = "adamp-conformance-result"
IMPLEMENTATION_FORMAT = "adamp-conformance-implementation"
_STATUSES = ("ran", "unsupported", "skip")


class PortError(RuntimeError):
    """The port reported an error at this step (its ``error`` field)."""


class MissingStep(RuntimeError):
    """The results hold fewer steps than the case."""


@dataclass
class Recorded:
    """What a port wrote for one case, in the export's layout."""

    status: str  # ran, unsupported, skip
    reason: str = ""
    error: str = ""
    steps: int = 0  # steps recorded
    params: list[np.ndarray] | None = None  # per parameter, (steps, *shape)
    states: list[dict] | None = None  # per parameter: {field: (steps, *shape) or [step ints]}
    branches: list[list[int]] | None = None  # per parameter, one code per step


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise FormatError(message)


def _read_state(doc, blob: bytes, where: str, optimizer: str, values: np.ndarray) -> dict:
    _expect(isinstance(doc, dict), f"{where} must be an object")
    allowed = (
        (*state_fields(optimizer), "step") if optimizer == "adamp" else state_fields(optimizer)
    )
    state = {}
    for key, ref in doc.items():
        _expect(key in allowed, f"{where}.{key}: {optimizer} state has {', '.join(allowed)}")
        if key == "step":
            _expect(
                isinstance(ref, list) and len(ref) == len(values),
                f"{where}.step must be a list of {len(values)} integers",
            )
            state[key] = [int(s) for s in ref]
        else:
            state[key] = read_array(blob, ref, f"{where}.{key}")
            _expect(
                state[key].shape == values.shape,
                f"{where}.{key} must have the shape of values {list(values.shape)}",
            )
    return state


def _read_param(doc, blob: bytes, i: int, name: str, shape: tuple, optimizer: str):
    """(values, state or None, branch or None) of ``params[i]``, checked."""
    where = f"params[{i}]"
    _expect(isinstance(doc, dict), f"{where} must be an object")
    _expect(doc.get("name") == name, f"{where}.name must be {name!r}, got {doc.get('name')!r}")
    values = read_array(blob, doc.get("values"), f"{where}.values")
    _expect(
        values.ndim >= 1 and values.shape[1:] == shape,
        f"{where}.values must have shape [steps, {', '.join(map(str, shape))}], "
        f"got {list(values.shape)}",
    )
    state = None
    if "state" in doc:
        state = _read_state(doc["state"], blob, f"{where}.state", optimizer, values)
    branch = doc.get("branch")
    valid = isinstance(branch, list) and len(branch) == len(values)
    _expect(
        branch is None or (valid and all(b in (0, 1, 2) for b in branch)),
        f"{where}.branch must be a list of {len(values)} codes 0, 1 or 2",
    )
    return values, state, branch


def read_result(path: Path, golden: GoldenCase, layout: str) -> Recorded:
    """Read and check one results file; raises FormatError naming the field at fault."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"not a readable JSON results file: {exc}") from None
    _expect(isinstance(doc, dict), "a results file must hold a JSON object")
    _expect(
        doc.get("format") == RESULT_FORMAT and doc.get("format_version") == FORMAT_VERSION,
        f"format must be {RESULT_FORMAT!r} version {FORMAT_VERSION}",
    )
    _expect(doc.get("id") == golden.id, f"id must be {golden.id!r}, got {doc.get('id')!r}")
    status = doc.get("status")
    _expect(status in _STATUSES, f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
    if status != "ran":
        return Recorded(status, reason=str(doc.get("reason", "")))
    error = str(doc.get("error", ""))
    if "params" not in doc and error:
        return Recorded(status, error=error)  # the port failed before its first step
    _expect(isinstance(doc.get("params"), list), "params must be a list (one entry per parameter)")
    _expect(
        len(doc["params"]) == len(golden.names),
        f"params must have {len(golden.names)} entries, got {len(doc['params'])}",
    )
    _expect(isinstance(doc.get("data"), str), "data must name the results' .bin file")
    try:
        blob = (path.parent / doc["data"]).read_bytes()
    except OSError as exc:
        raise FormatError(f"data: cannot read {doc['data']}: {exc}") from None
    rec = Recorded(status, error=error, params=[], states=[], branches=[])
    for i, (name, shape) in enumerate(zip(golden.names, golden.shapes, strict=True)):
        layout_shape = to_layout(np.zeros(shape), layout).shape
        values, state, branch = _read_param(
            doc["params"][i], blob, i, name, layout_shape, golden.optimizer
        )
        rec.params.append(values)
        rec.states.append(state)
        rec.branches.append(branch)
    steps = {len(p) for p in rec.params}
    _expect(len(steps) == 1, f"every parameter must hold the same number of steps, got {steps}")
    rec.steps = steps.pop()
    _expect(rec.steps <= golden.steps, f"{rec.steps} steps recorded, the case has {golden.steps}")
    for kind in ("states", "branches"):
        given = [x is not None for x in getattr(rec, kind)]
        _expect(all(given) or not any(given), f"{kind} given for some parameters only")
        if not any(given):
            setattr(rec, kind, None)
    return rec


class _Replay:
    """A stepper that hands back what the port recorded, one step per call."""

    def __init__(self, rec: Recorded, total: int) -> None:
        self.rec, self.total, self.t = rec, total, 0

    def step(self, grads):
        if self.t >= self.rec.steps:
            if self.rec.error:
                raise PortError(self.rec.error)
            raise MissingStep(f"the results stop after step {self.rec.steps} of {self.total}")
        self.t += 1
        return [p[self.t - 1] for p in self.rec.params]


class _ReplayState(_Replay):
    def state(self):
        return [{k: v[self.t - 1] for k, v in st.items()} for st in self.rec.states]


class _ReplayBranches(_Replay):
    def branches(self):
        return [b[self.t - 1] for b in self.rec.branches]


class _ReplayBoth(_ReplayState, _ReplayBranches):
    pass


def _replay_adapter(implementation: dict, layout: str, rec: Recorded, total: int) -> Adapter:
    cls = {
        (False, False): _Replay,
        (True, False): _ReplayState,
        (False, True): _ReplayBranches,
        (True, True): _ReplayBoth,
    }[(rec.states is not None, rec.branches is not None)]

    def factory(problem: Problem):
        return cls(rec, total)

    return Adapter(
        name=implementation["name"],
        factory=factory,
        layout=layout,
        description=implementation.get("description", ""),
        versions=dict(implementation.get("versions", {})),
    )


def _plain_result(golden: GoldenCase, status: str, reason: str) -> CaseResult:
    return CaseResult(
        id=golden.id,
        case_id=golden.case_id,
        optimizer=golden.optimizer,
        dtype=golden.dtype,
        flags=list(golden.flags),
        status=status,
        reason=reason,
    )


def read_implementation(results_dir: Path) -> dict:
    """``implementation.json`` if present, else the results directory's name."""
    path = results_dir / "implementation.json"
    if not path.exists():
        return {"name": results_dir.resolve().name, "description": "", "versions": {}}
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable JSON file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != IMPLEMENTATION_FORMAT:
        raise FormatError(f"{path}: format must be {IMPLEMENTATION_FORMAT!r}")
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        raise FormatError(f"{path}: name must be a non-empty string")
    return doc


def grade_case(golden: GoldenCase, results_dir: Path, layout: str, implementation: dict):
    path = results_dir / f"{golden.id}.json"
    if not path.exists():
        return _plain_result(golden, "skip", f"no results file {path.name}")
    try:
        rec = read_result(path, golden, layout)
    except FormatError as exc:
        return _plain_result(golden, "error", f"{path.name}: {exc}")
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # a shape the checks missed
        return _plain_result(golden, "error", f"{path.name}: {type(exc).__name__}: {exc}")
    if rec.status != "ran":
        return _plain_result(golden, rec.status, rec.reason or f"the port reports {rec.status}")
    return run_case(_replay_adapter(implementation, layout, rec, golden.steps), golden)


def grade(
    cases_dir: Path,
    results_dir: Path,
    *,
    dtypes: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    progress=None,
) -> tuple[dict, list[CaseResult]]:
    """Grade every selected exported case; returns (report, results) as ``run`` does.

    Raises FormatError when the cases or the results directory cannot be used at all
    (no results file for any selected case included).
    """
    cases_dir, results_dir = Path(cases_dir), Path(results_dir)
    index, cases = load_exported(cases_dir)
    if not results_dir.is_dir():
        raise FormatError(f"{results_dir}: no such results directory")
    implementation = read_implementation(results_dir)
    layout = index["layout"]
    try:
        selected = select_cases(cases, dtypes=dtypes, optimizers=optimizers, ids=ids)
    except EmptySelection:
        selected = []
    if not selected:
        raise FormatError(f"{cases_dir}: no exported case matches the selection")
    if not any((results_dir / f"{golden.id}.json").exists() for golden in selected):
        # all-skip would pass: a port that wrote nothing must not
        raise FormatError(f"{results_dir}: no results file for any of the {len(selected)} cases")
    results = []
    for golden in selected:
        if golden.id in skip or golden.case_id in skip:
            results.append(_plain_result(golden, "skip", "in the skip list"))
        else:
            results.append(grade_case(golden, results_dir, layout, implementation))
        if progress is not None:
            progress(results[-1])
    adapter = Adapter(
        name=implementation["name"],
        factory=lambda problem: None,
        layout=layout,
        description=implementation.get("description", ""),
        versions=dict(implementation.get("versions", {})),
    )
    report = suite_report(
        adapter,
        results,
        suite_version=index["suite_version"],
        case_set_hash=index["case_set_hash"],
        graded={"cases": str(cases_dir), "results": str(results_dir), "layout": layout},
    )
    return report, results
