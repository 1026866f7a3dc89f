"""`adamp-conformance export` and `grade`: exact round trip, the shipped schema, and grading
results written in the documented format (here by a Python stand-in for a port)."""

import json
from pathlib import Path

import numpy as np
import pytest
from adamp_conformance.adapters import from_layout, to_layout
from adamp_conformance.broken import variant_adapter
from adamp_conformance.cli import main
from adamp_conformance.export import (
    SCHEMA_DIR,
    ArrayWriter,
    export_cases,
    load_exported,
    read_array,
)
from adamp_conformance.grade import grade
from adamp_conformance.runner import run_case, select_cases
from adamp_conformance.variants import OFFICIAL, VARIANTS, VariantStepper
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = ("channels_first", "channels_last")


@pytest.fixture(scope="module", params=LAYOUTS)
def exported(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"cases-{request.param}")
    export_cases(select_cases(), out, request.param)
    return out


def _same(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def test_export_round_trips_bit_for_bit(exported):
    _, back = load_exported(exported)
    golden = select_cases()
    assert [c.id for c in back] == [c.id for c in golden]
    for want, got in zip(golden, back, strict=True):
        assert (got.optimizer, got.dtype, got.groups, got.group_of, got.names, got.shapes) == (
            want.optimizer,
            want.dtype,
            want.groups,
            want.group_of,
            want.names,
            want.shapes,
        )
        for t in range(want.steps + 1):
            assert all(map(_same, want.reference.params[t], got.reference.params[t]))
        for g_want, g_got in zip(want.grads, got.grads, strict=True):
            for a, b in zip(g_want, g_got, strict=True):
                assert (a is None and b is None) or _same(a, b)
        for s_want, s_got in zip(want.reference.states, got.reference.states, strict=True):
            for a, b in zip(s_want, s_got, strict=True):
                assert a.keys() == b.keys()
                assert all(a[k] == b[k] if k == "step" else _same(a[k], b[k]) for k in a)
        assert np.array_equal(want.reference.branches, got.reference.branches)


def test_export_stores_tensors_in_its_layout(exported):
    index = json.loads((exported / "index.json").read_text())
    doc = json.loads((exported / "adamp-channel-axis-f64.json").read_text())
    conv = doc["params"][0]
    assert conv["name"] == "conv"
    expected_shape = [6, 2, 3, 1] if index["layout"] == "channels_first" else [3, 1, 2, 6]
    assert conv["shape"] == expected_shape
    assert doc["channel_axis"] == (0 if index["layout"] == "channels_first" else -1)
    blob = (exported / doc["data"]).read_bytes()
    initial = read_array(blob, conv["initial"], "initial")
    golden = select_cases(ids=["adamp-channel-axis-f64"])[0]
    assert _same(initial, to_layout(golden.reference.params[0][0], index["layout"]))
    assert [float.fromhex(v) for v in doc["groups_hex"][0].values()] == [
        v for v in doc["groups"][0].values() if isinstance(v, float)
    ]


@given(
    st.lists(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)),
        max_size=4,
    )
)
def test_array_references_round_trip_every_float64(arrays):
    """NaN payloads, infinities, -0 and subnormals come back bit for bit."""
    writer = ArrayWriter()
    refs = [writer.add(a) for a in arrays]
    blob = writer.getvalue()
    for a, ref in zip(arrays, refs, strict=True):
        back = read_array(blob, ref, "x")
        assert back.shape == a.shape and back.tobytes() == a.tobytes()


def _validator(name):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads((SCHEMA_DIR / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_validates_the_export(exported):
    index_doc = json.loads((exported / "index.json").read_text())
    _validator("index.schema.json").validate(index_doc)
    case = _validator("case.schema.json")
    for entry in index_doc["cases"]:
        case.validate(json.loads((exported / entry["file"]).read_text()))


def test_schema_rejects_a_malformed_case(exported):
    validator = _validator("case.schema.json")
    doc = json.loads((exported / "sgdp-channel-f32.json").read_text())
    doc["params"][0]["initial"]["offset"] = 3  # not a float64 boundary
    del doc["steps"]
    errors = {e.message for e in validator.iter_errors(doc)}
    assert "'steps' is a required property" in errors
    assert "3 is not a multiple of 8" in errors


def test_schemas_ship_as_package_data():
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    package_data = next(line for line in lines if line.startswith("adamp_conformance = ["))
    assert '"schema/*.json"' in package_data
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == {
        "index.schema.json",
        "case.schema.json",
        "result.schema.json",
        "implementation.schema.json",
    }


# ------------------------------------------------------------------------ grading


def _run_port(cases_dir, results_dir, variant=OFFICIAL, ids=None, stop_after=None):
    """A Python stand-in for a port: reads the exported files only, writes results files."""
    results_dir.mkdir(parents=True, exist_ok=True)
    index = json.loads((cases_dir / "index.json").read_text())
    layout = index["layout"]
    for entry in index["cases"]:
        doc = json.loads((cases_dir / entry["file"]).read_text())
        if ids and doc["id"] not in ids:
            continue
        blob = (cases_dir / doc["data"]).read_bytes()
        specs = doc["params"]
        initial = [from_layout(read_array(blob, p["initial"], ""), layout) for p in specs]
        grads = [read_array(blob, p["grads"], "") for p in specs]
        stepper = VariantStepper(
            doc["optimizer"], doc["groups"], [p["group"] for p in specs], initial, doc["dtype"],
            variant,
        )  # fmt: skip
        trace = []
        steps = doc["steps"] if stop_after is None else stop_after
        for t in range(steps):
            step_grads = [
                from_layout(g[t], layout) if p["grad_present"][t] else None
                for p, g in zip(specs, grads, strict=True)
            ]
            params = stepper.step(step_grads)
            trace.append((params, stepper.state(), stepper.branches()))
        writer, out = ArrayWriter(), []
        for i, p in enumerate(specs):
            shape = [steps, *p["shape"]]

            def stack(values, shape=shape, writer=writer):
                return writer.add(np.stack([to_layout(v, layout) for v in values]).reshape(shape))

            state = {
                k: stack([s[i][k] for _, s, _ in trace]) for k in trace[0][1][i] if k != "step"
            }
            if doc["optimizer"] == "adamp":
                state["step"] = [int(s[i]["step"]) for _, s, _ in trace]
            out.append(
                {
                    "name": p["name"],
                    "values": stack([ps[i] for ps, _, _ in trace]),
                    "state": state,
                    "branch": [b[i] for _, _, b in trace],
                }
            )
        result = {
            "format": "adamp-conformance-result",
            "format_version": 1,
            "id": doc["id"],
            "status": "ran",
            "data": f"{doc['id']}.bin",
            "params": out,
        }
        (results_dir / f"{doc['id']}.json").write_text(json.dumps(result))
        (results_dir / result["data"]).write_bytes(writer.getvalue())


def _by_id(results):
    return {r.id: r for r in results}


def test_grade_passes_a_correct_port_and_validates_its_results(exported, tmp_path):
    ids = ["adamp-per-param-step-f64", "sgdp-channel-bf16", "adamp-multi-group-f16"]
    _run_port(exported, tmp_path, ids=ids)
    report, results = grade(exported, tmp_path, ids=ids)
    assert [r.status for r in results] == ["pass"] * 3
    assert all(r.comparison.max_state_err is not None for r in results)  # state was graded
    assert report["summary"]["passed"] is True
    assert (
        report["case_set_hash"]
        == json.loads((exported / "index.json").read_text())["case_set_hash"]
    )
    for path in tmp_path.glob("*.json"):
        _validator("result.schema.json").validate(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("variant", "case_id"),
    [
        ("eps_inside_bias_correction", "adamp-eps-placement-f64"),
        ("views_swapped", "sgdp-channel-f32"),
        ("channel_axis_last", "adamp-channel-axis-f32"),
    ],
)
def test_grade_reports_what_run_reports(exported, tmp_path, variant, case_id):
    """Statuses, first failing step, errors and deviation names equal those of `run`."""
    _run_port(exported, tmp_path, VARIANTS[variant], ids=[case_id])
    _, results = grade(exported, tmp_path, ids=[case_id])
    graded = results[0].as_dict()
    golden = select_cases(ids=[case_id])[0]
    ran = run_case(variant_adapter("v", VARIANTS[variant]), golden).as_dict()
    assert graded["status"] == "fail" and variant in graded["deviations"]
    for key in ("status", "first_failing_step", "deviations", "branch_mismatches", "reason"):
        assert graded[key] == ran[key], key
    for key in ("max_param_err", "max_update_err", "max_state_err"):
        assert graded[key] == pytest.approx(ran[key], rel=1e-6), key


def _result_doc(results_dir, case_id):
    return json.loads((results_dir / f"{case_id}.json").read_text())


def test_partial_results_are_graded_per_case(exported, tmp_path):
    ids = ["adamp-channel-f64", "adamp-layer-f64", "adamp-long-f64", "sgdp-layer-f64"]
    _run_port(exported, tmp_path, ids=ids[:2])
    _run_port(exported, tmp_path, ids=["adamp-long-f64"], stop_after=7)  # a step missing
    unsupported = {
        "format": "adamp-conformance-result",
        "format_version": 1,
        "id": "adamp-layer-f64",
        "status": "unsupported",
        "reason": "no float64 on this device",
    }
    (tmp_path / "adamp-layer-f64.json").write_text(json.dumps(unsupported))
    # sgdp-layer-f64: no results file at all
    _, results = grade(exported, tmp_path, ids=ids)
    r = _by_id(results)
    assert r["adamp-channel-f64"].status == "pass"
    assert (r["adamp-layer-f64"].status, r["adamp-layer-f64"].reason) == (
        "unsupported",
        "no float64 on this device",
    )
    long = r["adamp-long-f64"]
    assert long.status == "error"
    assert long.reason == "step 8: MissingStep: the results stop after step 7 of 30"
    assert long.comparison.first_failing_step == 8
    assert (r["sgdp-layer-f64"].status, r["sgdp-layer-f64"].reason) == (
        "skip",
        "no results file sgdp-layer-f64.json",
    )


def test_port_errors_and_malformed_results_fail_that_case_only(exported, tmp_path):
    ids = ["adamp-channel-f32", "adamp-layer-f32", "sgdp-channel-f32", "sgdp-layer-f32"]
    _run_port(exported, tmp_path, ids=ids)
    doc = _result_doc(tmp_path, "adamp-layer-f32")
    doc["params"][1]["values"]["offset"] = 10**9
    (tmp_path / "adamp-layer-f32.json").write_text(json.dumps(doc))
    doc = _result_doc(tmp_path, "sgdp-channel-f32")
    doc["params"][0]["values"]["shape"] = [10, 12, 4]  # the wrong shape
    (tmp_path / "sgdp-channel-f32.json").write_text(json.dumps(doc))
    (tmp_path / "sgdp-layer-f32.json").write_text(
        json.dumps(
            {
                "format": "adamp-conformance-result",
                "format_version": 1,
                "id": "sgdp-layer-f32",
                "status": "ran",
                "error": "TypeError: x is undefined",
            }
        )
    )
    _, results = grade(exported, tmp_path, ids=ids)
    r = _by_id(results)
    assert r["adamp-channel-f32"].status == "pass"
    assert r["adamp-layer-f32"].status == "error"
    assert r["adamp-layer-f32"].reason.startswith(
        "adamp-layer-f32.json: params[1].values: bytes [1000000000, "
    )
    shape = "[10, 4, 3, 2, 2]" if "first" in exported.name else "[10, 2, 2, 3, 4]"
    assert r["sgdp-channel-f32"].reason == (
        f"sgdp-channel-f32.json: params[0].values must have shape [steps, "
        f"{shape[5:-1]}], got [10, 12, 4]"
    )
    assert r["sgdp-layer-f32"].status == "error"
    assert r["sgdp-layer-f32"].reason == "step 1: PortError: TypeError: x is undefined"


def test_grade_cli_exit_codes_and_report(exported, tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    ids = ["sgdp-dampening-f64"]
    _run_port(exported, good, ids=ids)
    _run_port(exported, bad, VARIANTS["dampening_skipped_on_first_step"], ids=ids)
    base = ["grade", "--cases", str(exported), "--case", "sgdp-dampening-f64"]
    assert main([*base, "--results", str(good)]) == 0
    report = tmp_path / "r.json"
    assert main([*base, "--results", str(bad), "--report", str(report), "--quiet"]) == 1
    data = json.loads(report.read_text())
    assert data["adapter"]["name"] == "bad"  # no implementation.json: the directory's name
    assert data["summary"]["deviations"] == ["dampening_skipped_on_first_step"]
    assert data["summary"]["failing_flags"] == ["DAMPENING"]
    assert main([*base, "--results", str(tmp_path / "absent")]) == 2
    assert "absent: no such results directory" in capsys.readouterr().err
    assert main(["grade", "--cases", str(tmp_path), "--results", str(good)]) == 2
    assert "index.json: no such index file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*base, "--results", str(tmp_path / "empty")]) == 2
    assert "empty: no results file for any of the 1 cases" in capsys.readouterr().err
    selection = ["--cases", str(exported), "--case", "no-such-case", "--results", str(good)]
    assert main(["grade", *selection]) == 2
    assert "no exported case matches the selection" in capsys.readouterr().err


def test_export_cli(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--dtype", "bfloat16", "--layout", "channels_last"]) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["layout"] == "channels_last"
    bf16 = [c.id for c in select_cases(dtypes=["bfloat16"])]
    assert [c["id"] for c in index["cases"]] == bf16 and all(i.endswith("-bf16") for i in bf16)
    assert f"exported {len(bf16)} cases (channels_last)" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "none"), "--case", "no-such-case"]) == 2
    assert "no case matches" in capsys.readouterr().err
