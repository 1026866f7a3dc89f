"""Generating, checking, writing and loading the golden files.

``python -m adamp_conformance.golden`` regenerates ``golden/`` from
:mod:`adamp_conformance.cases` with the reference ``adamp_core``: one NPZ per
case (all its dtypes) and ``golden/manifest.json`` (metadata, the case-set
hash). The generator refuses a case whose flagged behaviour would hide within
tolerance or whose projection decisions sit near the threshold.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

import adamp_core
from adamp_conformance.cases import CASES, Case, make_grad, make_init
from adamp_conformance.compare import compare
from adamp_conformance.tolerance import (
    SHORT,
    VISIBILITY,
    round_to,
    storage_dtype,
    tolerance_for,
)
from adamp_conformance.variants import OFFICIAL, VARIANTS, Trajectory, simulate

__all__ = [
    "GOLDEN_DIR",
    "SUITE_VERSION",
    "GoldenCase",
    "build",
    "check",
    "load_all",
    "write_all",
]

SUITE_VERSION = "1.0.0"
GOLDEN_DIR = Path(__file__).parent / "golden"
DTYPE_SEED = {"float64": 0, "float32": 1, "float16": 2, "bfloat16": 3}


@dataclass
class GoldenCase:
    """One case in one dtype: its data and the reference trajectory (PyTorch layout)."""

    id: str  # e.g. "adamp-channel-f32"
    case_id: str  # e.g. "adamp-channel"
    optimizer: str
    description: str
    flags: list[str]
    dtype: str
    groups: list[dict]
    group_of: list[int]
    names: list[str]
    shapes: list[tuple[int, ...]]
    grads: list[list[np.ndarray | None]]  # [t][i]
    reference: Trajectory
    meta: dict
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # variant trajectories

    @property
    def steps(self) -> int:
        return len(self.grads)

    @property
    def needs_none_grad(self) -> bool:
        return any(g is None for step in self.grads for g in step)


def build(case: Case, dtype: str) -> GoldenCase:
    """Run the reference on ``case`` in ``dtype``: recorded gradients and expected trajectory."""
    # RandomState: NumPy freezes its streams (Generator streams may change between versions)
    rng = np.random.RandomState([case.seed, DTYPE_SEED[dtype]])
    groups = case.group_hyper(dtype)
    group_of = [spec.group for spec in case.params]
    specs = case.param_specs(dtype)
    params = [round_to(make_init(spec, rng), dtype) for spec in specs]
    states = adamp_core.init_states(case.optimizer, params)
    hyperparams = [{**groups[k], "channel_axis": 0} for k in group_of]
    traj = Trajectory(params=[list(params)], states=[], branches=None)
    branches, all_grads = [], []
    for t in range(case.horizon(dtype)):
        grads = []
        for spec, p in zip(specs, params, strict=True):
            g = make_grad(spec, p, t, rng)
            grads.append(None if g is None else round_to(g, dtype))
        stepped = adamp_core.step_params(case.optimizer, params, grads, states, hyperparams)
        params = [round_to(p, dtype) for p in stepped.params]
        states = stepped.states
        all_grads.append(grads)
        branches.append([int(b) for b in stepped.branches])
        traj.params.append(list(params))
        traj.states.append([s._asdict() for s in states])
    traj.branches = np.array(branches, dtype=np.int64).reshape(len(branches), len(params))
    meta = {
        "id": f"{case.id}-{SHORT[dtype]}",
        "case_id": case.id,
        "optimizer": case.optimizer,
        "description": case.description,
        "flags": [f.value for f in case.flags],
        "dtype": dtype,
        "steps": case.horizon(dtype),
        "layout": "channels_first",
        "channel_axis": 0,
        "groups": groups,
        "params": [{"name": s.name, "shape": list(s.shape), "group": s.group} for s in case.params],
        "exposes": list(case.exposed_variants(dtype)),
        "tolerance": tolerance_for(dtype).as_dict(),
    }
    return GoldenCase(
        id=meta["id"],
        case_id=case.id,
        optimizer=case.optimizer,
        description=case.description,
        flags=meta["flags"],
        dtype=dtype,
        groups=groups,
        group_of=group_of,
        names=[s.name for s in case.params],
        shapes=[tuple(s.shape) for s in case.params],
        grads=all_grads,
        reference=traj,
        meta=meta,
    )


def simulate_case(golden: GoldenCase, variant=OFFICIAL) -> Trajectory:
    return simulate(
        golden.optimizer,
        golden.groups,
        golden.group_of,
        golden.reference.params[0],
        golden.grads,
        golden.dtype,
        variant,
    )


def branch_margins(golden: GoldenCase) -> float:
    """Smallest relative distance |cos_max / threshold - 1| over every decision taken."""
    worst = math.inf
    for t, grads in enumerate(golden.grads):
        for i, g in enumerate(grads):
            p = golden.reference.params[t][i]
            if g is None or p.ndim < 2:
                continue
            hp = golden.groups[golden.group_of[i]]
            for branch in (adamp_core.Branch.CHANNEL, adamp_core.Branch.LAYER):
                pr = adamp_core.view_rows(p, branch, 0)
                cos = adamp_core.cosine_similarity(
                    adamp_core.view_rows(g, branch, 0), pr, hp["eps"]
                )
                threshold = hp["delta"] / math.sqrt(pr.shape[1])
                worst = min(worst, abs(float(np.max(cos)) / threshold - 1.0))
                if float(np.max(cos)) < threshold:
                    break
    return worst


def check(golden: GoldenCase) -> dict:
    """The generator's acceptance checks; returns {"problems": [...], "visibility": {...}}."""
    tol = tolerance_for(golden.dtype)
    problems = []
    for t, params in enumerate(golden.reference.params):
        if not all(np.all(np.isfinite(p)) for p in params):
            problems.append(f"non-finite reference parameter at step {t}")
    margin = branch_margins(golden)
    if margin < tol.branch_margin:
        problems.append(
            f"a projection decision is {margin:.3g} from its threshold (< {tol.branch_margin})"
        )
    sanity = compare(simulate_case(golden), golden.reference, tol, check_branches=True)
    if not sanity.passed or sanity.max_update_err > 0.05 or sanity.max_param_err > 0.05:
        problems.append(f"variant engine disagrees with the reference: {sanity.messages}")
    visibility = {}
    for name in golden.meta["exposes"]:
        result = compare(simulate_case(golden, VARIANTS[name]), golden.reference, tol)
        seen = max(result.max_param_err, result.max_update_err)
        visibility[name] = seen if math.isfinite(seen) else "inf"
        if not seen >= VISIBILITY:
            problems.append(f"variant {name} moves the trajectory by only {seen:.3g} x tolerance")
    return {"problems": problems, "visibility": visibility, "branch_margin": margin}


# ----------------------------------------------------------------------------- files


def _arrays(golden: GoldenCase) -> dict[str, np.ndarray]:
    prefix = SHORT[golden.dtype]
    store = storage_dtype(golden.dtype)
    arrays = {f"{prefix}/branches": golden.reference.branches.astype(np.int8)}
    for i, name in enumerate(golden.names):
        key = f"{prefix}/{name}"
        arrays[f"{key}/params"] = np.stack([p[i] for p in golden.reference.params]).astype(store)
        arrays[f"{key}/grad_present"] = np.array([g[i] is not None for g in golden.grads])
        arrays[f"{key}/grads"] = np.stack(
            [np.zeros(golden.shapes[i]) if g[i] is None else g[i] for g in golden.grads]
        ).astype(store)
        for key_name in golden.reference.states[0][i]:
            values = np.stack([s[i][key_name] for s in golden.reference.states])
            arrays[f"{key}/{key_name}"] = values if key_name == "step" else values.astype(store)
    return arrays


def array_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def build_all(cases=CASES) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Every case in every dtype: (manifest, {case_id: arrays})."""
    entries, files = [], {}
    for case in cases:
        arrays = {}
        for dtype in case.dtypes:
            golden = build(case, dtype)
            arrays.update(_arrays(golden))
            entries.append(golden.meta)
        files[case.id] = arrays
    digests = {cid: array_digest(a) for cid, a in files.items()}
    body = json.dumps({"cases": entries, "digests": digests}, sort_keys=True)
    manifest = {
        "suite_version": SUITE_VERSION,
        "case_set_hash": hashlib.sha256(body.encode()).hexdigest(),
        "digests": digests,
        "cases": entries,
    }
    return manifest, files


def write_all(directory: Path = GOLDEN_DIR) -> dict:
    manifest, files = build_all()
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.npz"):
        old.unlink()
    for case_id, arrays in files.items():
        np.savez_compressed(directory / f"{case_id}.npz", **arrays)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


@cache
def load_manifest(directory: Path = GOLDEN_DIR) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _load_arrays(directory: Path, case_id: str) -> dict[str, np.ndarray]:
    with np.load(directory / f"{case_id}.npz") as data:
        return {k: data[k] for k in data.files}


def from_arrays(meta: dict, arrays: dict[str, np.ndarray]) -> GoldenCase:
    prefix = SHORT[meta["dtype"]]
    names = [p["name"] for p in meta["params"]]
    steps = meta["steps"]
    params = [
        [arrays[f"{prefix}/{n}/params"][t].astype(np.float64) for n in names]
        for t in range(steps + 1)
    ]
    grads = []
    for t in range(steps):
        row = []
        for n in names:
            present = bool(arrays[f"{prefix}/{n}/grad_present"][t])
            row.append(arrays[f"{prefix}/{n}/grads"][t].astype(np.float64) if present else None)
        grads.append(row)
    fields = (
        ("step", "exp_avg", "exp_avg_sq") if meta["optimizer"] == "adamp" else ("momentum_buffer",)
    )
    states = [
        [
            {
                f: (
                    int(arrays[f"{prefix}/{n}/{f}"][t])
                    if f == "step"
                    else arrays[f"{prefix}/{n}/{f}"][t].astype(np.float64)
                )
                for f in fields
            }
            for n in names
        ]
        for t in range(steps)
    ]
    traj = Trajectory(params, states, arrays[f"{prefix}/branches"].astype(np.int64))
    return GoldenCase(
        id=meta["id"],
        case_id=meta["case_id"],
        optimizer=meta["optimizer"],
        description=meta["description"],
        flags=list(meta["flags"]),
        dtype=meta["dtype"],
        groups=[dict(g) for g in meta["groups"]],
        group_of=[p["group"] for p in meta["params"]],
        names=names,
        shapes=[tuple(p["shape"]) for p in meta["params"]],
        grads=grads,
        reference=traj,
        meta=meta,
    )


@cache
def load_all(directory: Path = GOLDEN_DIR) -> tuple[GoldenCase, ...]:
    """Every golden case in the committed files, in manifest order."""
    manifest = load_manifest(directory)
    arrays = {}
    out = []
    for meta in manifest["cases"]:
        cid = meta["case_id"]
        if cid not in arrays:
            arrays[cid] = _load_arrays(directory, cid)
        out.append(from_arrays(meta, arrays[cid]))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    """Check every case, then write the golden files; exit 1 if any case is rejected."""
    argv = sys.argv[1:] if argv is None else argv
    rejected = 0
    for case in CASES:
        for dtype in case.dtypes:
            golden = build(case, dtype)
            result = check(golden)
            vis = ", ".join(
                f"{k}={v if isinstance(v, str) else f'{v:.3g}'}"
                for k, v in result["visibility"].items()
            )
            status = "REJECTED" if result["problems"] else "ok"
            print(f"{golden.id:32s} {status:8s} margin={result['branch_margin']:.3g} {vis}")
            for problem in result["problems"]:
                print(f"    {problem}")
            rejected += bool(result["problems"])
    if rejected and "--force" not in argv:
        print(f"{rejected} case(s) rejected; golden files not written")
        return 1
    manifest = write_all()
    size = sum(f.stat().st_size for f in GOLDEN_DIR.iterdir())
    print(
        f"wrote {len(manifest['cases'])} cases, {size / 1e6:.2f} MB, "
        f"case-set hash {manifest['case_set_hash'][:16]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
