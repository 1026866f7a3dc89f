"""Writing the golden cases as language-neutral files, and reading them back.

``adamp-conformance export OUT_DIR`` writes, for each selected case, a JSON
description (``<id>.json``) and its arrays (``<id>.bin``: float64,
little-endian, C order, concatenated), plus ``index.json`` listing them. A
JSON array reference ``{"offset": bytes, "shape": [...]}`` points into the
case's ``.bin``. Every value of every dtype is exactly representable in
float64, so the arrays round-trip bit for bit; hyperparameters are JSON numbers
in shortest round-trip form, repeated as hex-float strings (``float.hex``).
The format is described field by field in docs/porting.md and by the JSON
Schema in ``schema/`` (shipped with the package).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adamp_conformance.adapters import CHANNELS_FIRST, CHANNELS_LAST, from_layout, to_layout
from adamp_conformance.golden import SUITE_VERSION, GoldenCase, load_manifest
from adamp_conformance.variants import Trajectory
from adamp_core import Branch

__all__ = [
    "CASE_FORMAT",
    "FORMAT_VERSION",
    "INDEX_FORMAT",
    "LAYOUTS",
    "SCHEMA_DIR",
    "ArrayWriter",
    "FormatError",
    "export_cases",
    "load_exported",
    "read_array",
    "state_fields",
]

INDEX_FORMAT = "adamp-conformance-cases"
CASE_FORMAT = "adamp-conformance-case"
FORMAT_VERSION = 1
LAYOUTS = (CHANNELS_FIRST, CHANNELS_LAST)
SCHEMA_DIR = Path(__file__).parent / "schema"
_F8 = np.dtype("<f8")


class FormatError(ValueError):
    """A file that does not follow the documented format (the message names the field)."""


def state_fields(optimizer: str) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq") if optimizer == "adamp" else ("momentum_buffer",)


class ArrayWriter:
    """Concatenates float64 arrays into one little-endian blob; ``add`` returns the reference."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, array) -> dict:
        a = np.asarray(array, dtype=_F8)  # (ascontiguousarray would make a 0-d array 1-d)
        ref = {"offset": self._size, "shape": list(a.shape)}
        self._chunks.append(a.tobytes(order="C"))
        self._size += a.nbytes
        return ref

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


def read_array(blob: bytes, ref, where: str) -> np.ndarray:
    """The array ``ref`` points to in ``blob`` (float64 little-endian), checked."""
    if not isinstance(ref, dict) or not isinstance(ref.get("offset"), int):
        raise FormatError(f"{where}: expected {{'offset': int, 'shape': [int, ...]}}, got {ref!r}")
    shape = ref.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise FormatError(f"{where}.shape must be a list of non-negative integers, got {shape!r}")
    offset, count = ref["offset"], int(np.prod(shape, dtype=np.int64))
    end = offset + 8 * count
    if offset < 0 or offset % 8 or end > len(blob):
        raise FormatError(
            f"{where}: bytes [{offset}, {end}) are outside the {len(blob)}-byte data file "
            "or not 8-byte aligned"
        )
    return np.frombuffer(blob, dtype=_F8, count=count, offset=offset).reshape(shape).copy()


def _hex_hyper(group: dict) -> dict:
    return {k: float(v).hex() for k, v in group.items() if isinstance(v, float)}


def _case_document(golden: GoldenCase, layout: str, writer: ArrayWriter) -> dict:
    ref, steps = golden.reference, golden.steps
    params = []
    for i, (name, shape) in enumerate(zip(golden.names, golden.shapes, strict=True)):
        grads = [g[i] for g in golden.grads]
        zeros = np.zeros(shape)
        expected = {
            "params": writer.add(
                np.stack([to_layout(ref.params[t][i], layout) for t in range(1, steps + 1)])
            ),
            "state": {
                key: writer.add(np.stack([to_layout(s[i][key], layout) for s in ref.states]))
                for key in state_fields(golden.optimizer)
            },
            "branch": [int(b) for b in ref.branches[:, i]],
        }
        if golden.optimizer == "adamp":
            expected["state"]["step"] = [int(s[i]["step"]) for s in ref.states]
        params.append(
            {
                "name": name,
                "group": golden.group_of[i],
                "shape": list(to_layout(zeros, layout).shape),
                "initial": writer.add(to_layout(ref.params[0][i], layout)),
                "grad_present": [g is not None for g in grads],
                "grads": writer.add(
                    np.stack([to_layout(zeros if g is None else g, layout) for g in grads])
                ),
                "expected": expected,
            }
        )
    return {
        "format": CASE_FORMAT,
        "format_version": FORMAT_VERSION,
        "id": golden.id,
        "case_id": golden.case_id,
        "optimizer": golden.optimizer,
        "description": golden.description,
        "flags": list(golden.flags),
        "exposes": list(golden.meta.get("exposes", ())),
        "dtype": golden.dtype,
        "layout": layout,
        "channel_axis": 0 if layout == CHANNELS_FIRST else -1,
        "steps": steps,
        "groups": [dict(g) for g in golden.groups],
        "groups_hex": [_hex_hyper(g) for g in golden.groups],
        "tolerance": golden.meta["tolerance"],
        "data": f"{golden.id}.bin",
        "params": params,
    }


def export_cases(cases: Sequence[GoldenCase], out_dir: Path, layout: str = CHANNELS_FIRST) -> dict:
    """Write ``cases`` in ``layout`` under ``out_dir``; returns the index written."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for golden in cases:
        writer = ArrayWriter()
        doc = _case_document(golden, layout, writer)
        blob = writer.getvalue()
        (out_dir / doc["data"]).write_bytes(blob)
        (out_dir / f"{golden.id}.json").write_text(json.dumps(doc, indent=1) + "\n")
        entries.append(
            {
                "id": golden.id,
                "file": f"{golden.id}.json",
                "data": doc["data"],
                "data_sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
    index = {
        "format": INDEX_FORMAT,
        "format_version": FORMAT_VERSION,
        "suite_version": SUITE_VERSION,
        "case_set_hash": load_manifest()["case_set_hash"],
        "layout": layout,
        "array_encoding": "float64 little-endian, C order",
        "branch_codes": {b.name.lower(): int(b) for b in Branch},
        "cases": entries,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


# ----------------------------------------------------------------------------- reading


def _load_json(path: Path, kind: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable JSON {kind} file: {exc}") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: a {kind} file must hold a JSON object")
    return doc


def _check_format(doc: dict, expected: str, path: Path) -> None:
    if doc.get("format") != expected or doc.get("format_version") != FORMAT_VERSION:
        raise FormatError(
            f"{path}: format must be {expected!r} version {FORMAT_VERSION}, "
            f"got {doc.get('format')!r} version {doc.get('format_version')!r}"
        )


def _golden_from_document(doc: dict, blob: bytes) -> GoldenCase:
    layout, steps, optimizer = doc["layout"], doc["steps"], doc["optimizer"]
    n = len(doc["params"])
    params0, grads = [], [[None] * n for _ in range(steps)]
    expected = [[None] * n for _ in range(steps)]
    states = [[{} for _ in range(n)] for _ in range(steps)]
    branches = np.zeros((steps, n), dtype=np.int64)
    for i, spec in enumerate(doc["params"]):
        where = f"{doc['id']}.params[{i}]"
        params0.append(from_layout(read_array(blob, spec["initial"], f"{where}.initial"), layout))
        g = read_array(blob, spec["grads"], f"{where}.grads")
        p = read_array(blob, spec["expected"]["params"], f"{where}.expected.params")
        st = {
            key: read_array(blob, spec["expected"]["state"][key], f"{where}.expected.state.{key}")
            for key in state_fields(optimizer)
        }
        for t in range(steps):
            grads[t][i] = from_layout(g[t], layout) if spec["grad_present"][t] else None
            expected[t][i] = from_layout(p[t], layout)
            states[t][i] = {key: from_layout(st[key][t], layout) for key in st}
            if optimizer == "adamp":
                states[t][i]["step"] = int(spec["expected"]["state"]["step"][t])
            branches[t, i] = int(spec["expected"]["branch"][t])
    reference = Trajectory([params0, *expected], states, branches)
    meta = {k: v for k, v in doc.items() if k not in ("params", "groups_hex", "format")}
    meta["params"] = [
        {
            "name": s["name"],
            "shape": list(from_layout(np.zeros(s["shape"]), layout).shape),
            "group": s["group"],
        }
        for s in doc["params"]
    ]
    return GoldenCase(
        id=doc["id"],
        case_id=doc["case_id"],
        optimizer=optimizer,
        description=doc["description"],
        flags=list(doc["flags"]),
        dtype=doc["dtype"],
        groups=[dict(g) for g in doc["groups"]],
        group_of=[s["group"] for s in doc["params"]],
        names=[s["name"] for s in doc["params"]],
        shapes=[tuple(m["shape"]) for m in meta["params"]],
        grads=grads,
        reference=reference,
        meta=meta,
    )


def load_exported(directory: Path) -> tuple[dict, list[GoldenCase]]:
    """The index and the cases of an export directory (PyTorch layout in memory)."""
    directory = Path(directory)
    index = _load_json(directory / "index.json", "index")
    _check_format(index, INDEX_FORMAT, directory / "index.json")
    cases = []
    for entry in index["cases"]:
        path = directory / entry["file"]
        doc = _load_json(path, "case")
        _check_format(doc, CASE_FORMAT, path)
        blob = (directory / doc["data"]).read_bytes()
        if hashlib.sha256(blob).hexdigest() != entry["data_sha256"]:
            raise FormatError(f"{directory / doc['data']}: SHA-256 differs from index.json")
        try:
            cases.append(_golden_from_document(doc, blob))
        except (KeyError, IndexError, TypeError) as exc:
            raise FormatError(f"{path}: missing or malformed field {exc}") from None
    return index, cases
