"""Checks of the demonstration's output, shared by tests/demo and tests/keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(backend: str, out: Path, env: dict | None = None) -> dict:
    subprocess.run(
        [sys.executable, "-m", "demo", "--quick", "--backend", backend, "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    for name in ("toy.png", "training.png", "summary.md", "results.json"):
        assert (out / name).stat().st_size > 0, name
    return json.loads((out / "results.json").read_text())


def check_paper_ordering(results: dict) -> None:
    toy = {row["optimizer"]: row for row in results["toy"]["summary"]}
    # The project page's final norms (tests/demo/test_demo_toy.py justifies the tolerance).
    for row in results["toy"]["summary"]:
        if row["project_page_norm"] is not None:
            assert abs(row["final_norm"] - row["project_page_norm"]) <= 0.03, row
    # Momentum inflates the norm, more momentum more so; the projection prevents it.
    assert toy["SGD momentum 0.99"]["final_norm"] > 10 * toy["SGDP momentum 0.9"]["final_norm"]
    assert toy["SGD momentum 0.9"]["final_norm"] > 1.5 * toy["SGDP momentum 0.9"]["final_norm"]
    assert toy["SGDP momentum 0.9"]["final_norm"] < 1.2
    norms = [toy[name]["final_norm"] for name in ("SGD", "SGD momentum 0.9", "SGD momentum 0.99")]
    assert norms == sorted(norms), norms
    fastest = min(toy.values(), key=lambda r: r["steps_to_converge"] or 10**9)
    assert fastest["optimizer"] == "SGDP momentum 0.9"
    train = {row["optimizer"]: row for row in results["training"]["summary"]}
    for base, projected in (("SGD", "SGDP"), ("AdamW", "AdamP")):
        assert train[base]["final_mean_weight_norm"] > train[projected]["final_mean_weight_norm"]
        assert train[projected]["mean_effective_step"] > train[base]["mean_effective_step"]
        assert train[projected]["mean_projected_fraction"] > 0.5  # conv weights before BN
        assert train[projected]["final_test_accuracy"] > 0.8
