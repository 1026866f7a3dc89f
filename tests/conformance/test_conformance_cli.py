"""The command line and the pytest plugin."""

import json
import os
import subprocess
import sys

import pytest
from adamp_conformance.cli import main


def test_list(capsys):
    assert main(["list", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "adamp-weight-decay-bf16" in out
    assert "-f32" not in out


def test_run_reference_writes_report(tmp_path, capsys):
    report = tmp_path / "r.json"
    assert (
        main(["run", "--adapter", "reference", "--dtype", "float32", "--report", str(report)]) == 0
    )
    data = json.loads(report.read_text())
    assert data["suite_version"] and len(data["case_set_hash"]) == 64
    assert data["adapter"]["versions"]["adamp_core"]
    case = data["cases"][0]
    for key in (
        "status",
        "first_failing_step",
        "max_param_err",
        "max_update_err",
        "tolerance",
        "branch_mismatches",
        "deviations",
    ):
        assert key in case
    assert data["summary"]["passed"] is True
    assert "reference: " in capsys.readouterr().out


def test_run_broken_exits_1_and_names_deviation(tmp_path, capsys):
    report = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--adapter",
            "adamp_conformance.broken:eps_moved",
            "--dtype",
            "float64",
            "--optimizer",
            "adamp",
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert code == 1
    data = json.loads(report.read_text())
    assert "eps_inside_bias_correction" in data["summary"]["deviations"]
    assert "EPS_PLACEMENT" in data["summary"]["failing_flags"]


def test_adapter_that_raises_fails_its_cases_and_the_report_is_written(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "raising_adapter.py").write_text(
        "from adamp_conformance.broken import BROKEN\n"
        "def adapter():\n"
        "    return BROKEN['raises'].adapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "r.json"
    argv = ["run", "--adapter", "raising_adapter:adapter", "--dtype", "float64"]
    assert main([*argv, "--optimizer", "sgdp", "--report", str(report), "--quiet"]) == 1
    data = json.loads(report.read_text())
    statuses = {case["status"] for case in data["cases"]}
    assert data["cases"] and statuses <= {"error", "unsupported"}, statuses
    assert "error" in statuses
    assert data["summary"]["passed"] is False


def test_unknown_adapter_exits_2(capsys):
    assert main(["run", "--adapter", "no-such-adapter"]) == 2


def _pytest(tmp_path, *args):
    (tmp_path / "test_empty.py").write_text("def test_nothing():\n    pass\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "adamp_conformance.pytest_plugin",
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_pytest_plugin_with_skip_and_xfail_lists(tmp_path):
    ids = tmp_path / "xfail.txt"
    ids.write_text("# known\nadamp-eps-placement\n")
    proc = _pytest(
        tmp_path,
        "--adamp-adapter=adamp_conformance.broken:eps_moved",
        "--adamp-dtype=float32",
        f"--adamp-xfail=@{ids}",
        "--adamp-skip=sgdp-channel",
        f"--adamp-report={tmp_path / 'r.json'}",
    )
    tail = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 xfailed" in tail and "skipped" in tail and "failed" in tail, tail
    assert "deviation: eps_inside_bias_correction" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["passed"] is False


def test_pytest_plugin_xfail_case_that_passes_fails_the_run(tmp_path):
    proc = _pytest(
        tmp_path,
        "--adamp-adapter=reference",
        "--adamp-dtype=float64",
        "--adamp-xfail=adamp-eps-placement",
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "passes but is in the xfail list" in proc.stdout


def test_pytest_plugin_reference_passes(tmp_path):
    proc = _pytest(tmp_path, "--adamp-adapter=reference", "--adamp-dtype=bfloat16")
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_run_explains_its_columns(capsys):
    assert main(["run", "--adapter", "reference", "--case", "adamp-channel-f64"]) == 0
    out = capsys.readouterr().out
    for column in ("status", "step", "param", "update", "state", "br", "explanation"):
        assert f"\n  {column}" in out, column
    assert "a|b = the case cannot tell a from b" in out


def test_adapters_lists_every_builtin_with_its_usability(capsys):
    from adamp_conformance.builtin import BUILTIN

    assert main(["adapters", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(BUILTIN)
    usable = {r["name"]: r for r in rows}
    assert usable["reference"]["usable"] and usable["reference-channels-last"]["usable"]
    assert all(r["reason"] for r in rows if not r["usable"])


def test_adapters_reports_a_missing_package(monkeypatch):
    import importlib.util

    from adamp_conformance import builtin

    real = importlib.util.find_spec
    monkeypatch.setattr(
        builtin.importlib.util, "find_spec", lambda m: None if m == "optax" else real(m)
    )
    assert builtin.availability("adamp_jax") == "not installed: optax"
    assert builtin.availability("reference", build=True) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--case", "no-such-case"],
        ["--case", "adamp-eps-squared", "--dtype", "float64"],  # float16-only case
        ["--optimizer", "sgdp", "--case", "adamp-channel"],
        ["--case", "adamp-channel", "--case", "typo"],  # one unknown id among known ones
    ],
)
def test_a_selection_that_selects_nothing_exits_2(argv, capsys):
    assert main(["run", "--adapter", "reference", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adamp-conformance: ") and len(err.strip().splitlines()) == 1
    assert main(["list", *argv]) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:adapter", "cannot import 'no_such_module_xyz'"),
        ("adamp_conformance.broken:no_such", "has no attribute 'no_such'"),
        ("adamp_conformance.broken:BROKEN", "is a dict, not an Adapter"),
        ("adamp_conformance.broken:variant_adapter", "calling it raised TypeError"),
        ("adamp_conformance.broken:", "expected module:attribute"),
    ],
)
def test_a_bad_module_attribute_is_one_line_and_exit_2(spec, message, capsys):
    assert main(["run", "--adapter", spec]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err, err


def test_commands_are_registered_for_extension():
    from adamp_conformance.cli import COMMANDS, Command, build_parser, register

    called = []
    register("echo-test", Command("test", lambda p: p.add_argument("--x"), called.append))
    try:
        assert main(["echo-test", "--x", "1"]) is None and called[0].x == "1"
        assert "echo-test" in build_parser().format_help()
    finally:
        del COMMANDS["echo-test"]


def test_public_api_at_top_level_imports_no_framework():
    code = (
        "import sys, adamp_conformance as c\n"
        "assert callable(c.run_suite) and callable(c.diagnose) and callable(c.keras_adapter)\n"
        "assert c.Adapter and c.Problem and c.torch_adapter and c.optax_adapter\n"
        "print(sorted(m for m in ('torch', 'keras', 'jax', 'tensorflow') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
