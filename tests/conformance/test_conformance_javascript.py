"""The worked JavaScript port (examples/javascript): export, run it on Node, grade it.

The port must pass every case in both layouts; a copy with eps moved inside the
bias correction must be caught and named; its rounding to float32/float16/bfloat16
must equal the reference's bit for bit. Skipped where `node` is not installed.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from adamp_conformance.cli import main
from adamp_conformance.export import SCHEMA_DIR
from adamp_conformance.runner import select_cases
from adamp_conformance.tolerance import round_to

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "javascript"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the JavaScript port example cannot run"
)
CORRECT = "numerator / (Math.sqrt(v[k]) / Math.sqrt(bc2) + eps)"
EPS_INSIDE = "numerator / ((Math.sqrt(v[k]) + eps) / Math.sqrt(bc2))"


def _node(port_dir: Path, cases: Path, results: Path, *extra: str) -> None:
    subprocess.run(
        [NODE, str(port_dir / "run_cases.js"), str(cases), str(results), *extra],
        check=True,
        timeout=120,
        capture_output=True,
    )


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_javascript_port_passes_every_case(tmp_path, layout):
    cases, results, report = tmp_path / "cases", tmp_path / "results", tmp_path / "report.json"
    assert main(["export", str(cases), "--layout", layout]) == 0
    _node(EXAMPLE, cases, results)
    assert main(["grade", "--cases", str(cases), "--results", str(results),
                 "--report", str(report), "--quiet"]) == 0  # fmt: skip
    data = json.loads(report.read_text())
    assert data["summary"]["cases"] == data["summary"]["pass"] == len(select_cases())
    assert data["adapter"]["name"] == "adamp-js-example"
    assert data["adapter"]["versions"]["node"]
    # what the port wrote follows the published schema, state and branches included
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads((SCHEMA_DIR / "result.schema.json").read_text())
    for path in results.glob("*-f64.json"):
        doc = json.loads(path.read_text())
        jsonschema.validate(doc, schema)
        assert all("branch" in p and p["state"] for p in doc["params"])
    jsonschema.validate(
        json.loads((results / "implementation.json").read_text()),
        json.loads((SCHEMA_DIR / "implementation.schema.json").read_text()),
    )
    assert all(c["max_state_err"] is not None for c in data["cases"])


def test_broken_javascript_copy_is_caught_and_named(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(EXAMPLE, broken)
    source = (broken / "adamp.js").read_text()
    assert source.count(CORRECT) == 1
    (broken / "adamp.js").write_text(source.replace(CORRECT, EPS_INSIDE))
    cases, results, report = tmp_path / "cases", tmp_path / "results", tmp_path / "report.json"
    assert main(["export", str(cases), "--case", "adamp-eps-placement"]) == 0
    _node(broken, cases, results, "--case", "adamp-eps-placement")
    assert main(["grade", "--cases", str(cases), "--results", str(results),
                 "--report", str(report), "--quiet"]) == 1  # fmt: skip
    data = json.loads(report.read_text())
    assert [(c["id"], c["status"], c["first_failing_step"]) for c in data["cases"]] == [
        (c.id, "fail", 1) for c in select_cases(ids=["adamp-eps-placement"])
    ]
    assert data["summary"]["deviations"] == ["eps_inside_bias_correction"]
    assert data["summary"]["failing_flags"] == ["EPS_PLACEMENT"]


def _midpoints(values: np.ndarray, dtype) -> np.ndarray:
    """Exact halfway points between consecutive values of ``dtype`` (ties to round)."""
    low = values[np.abs(values) < np.finfo(dtype).max / 2].astype(dtype)
    high = np.nextafter(low, dtype(np.inf))
    return (low.astype(np.float64) + high.astype(np.float64)) / 2


def test_javascript_rounding_matches_the_reference(tmp_path):
    """dtypes.js rounds like the reference, bit for bit, ties and range ends included."""
    rng = np.random.default_rng(0)
    magnitudes = np.exp2(rng.uniform(-30, 20, 2000)) * rng.choice([-1.0, 1.0], 2000)
    bits = magnitudes[1000:1500].astype(np.float32).view(np.uint32)
    bf16_ties = ((bits & 0xFFFF0000) | 0x8000).view(np.float32).astype(np.float64)
    values = np.concatenate(
        [
            magnitudes,
            _midpoints(magnitudes[:500], np.float16),
            _midpoints(magnitudes[500:1000], np.float32),
            bf16_ties,
            [0.0, -0.0, 65504.0, 65519.99, 65520.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 1e-30],
            [3e38, 3.4e38, -3.4e38, 1e300],
        ]
    )
    (tmp_path / "in.json").write_text(json.dumps(values.tolist()))
    script = (
        f"import {{ rounder }} from {json.dumps((EXAMPLE / 'dtypes.js').as_uri())};"
        "import { readFileSync } from 'node:fs';"
        "const xs = JSON.parse(readFileSync(process.argv[1], 'utf8'));"
        "const out = {};"
        "for (const d of ['float64', 'float32', 'float16', 'bfloat16'])"
        "  out[d] = xs.map((x) => { const y = rounder(d)(x);"
        "    return Number.isFinite(y) ? (Object.is(y, -0) ? '-0' : y) : String(y); });"
        "console.log(JSON.stringify(out));"
    )
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script, str(tmp_path / "in.json")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    got = json.loads(done.stdout)
    for dtype, rounded in got.items():
        js = np.array([float(x) for x in rounded])
        with np.errstate(over="ignore"):
            want = round_to(values, dtype)
        assert np.array_equal(js, want), dtype
        assert np.array_equal(np.signbit(js), np.signbit(want)), dtype
