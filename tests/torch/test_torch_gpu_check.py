"""benchmarks/gpu_check.py reads the JAX and Keras suites' JSON: the formats must agree.

The GPU check only runs on a CUDA machine, so a drift between what bench_jax.py /
bench_keras.py write and what gpu_check.py reads would otherwise surface there
first. These tests read the result files the suites wrote on the CPU.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.common import RESULTS_DIR
from benchmarks.gpu_check import jax_rows, keras_rows

ROW_KEYS = {"suite", "device", "model", "optimizer", "step_ms", "vs_fused"}


def _load(name: str) -> dict:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} has not been written by `python -m benchmarks --only {name}`")
    return json.loads(path.read_text())


def test_jax_rows_cover_every_result():
    payload = _load("jax")
    rows = jax_rows(payload)
    assert len(rows) == len(payload["results"]) > 0
    assert all(set(r) == ROW_KEYS and r["step_ms"] > 0 for r in rows)


def test_keras_rows_cover_step_alone_and_fit():
    payload = _load("keras")
    rows = keras_rows(payload)
    runs = payload["step_alone"] + payload["fit"]
    assert len(rows) == sum(len(r["ms_per_step"]) for r in runs) > 0
    assert all(set(r) == ROW_KEYS and r["step_ms"] > 0 for r in rows)
    # each baseline is its own reference: ratio exactly 1
    assert all(r["vs_fused"] == 1.0 for r in rows if r["optimizer"] in ("AdamW", "SGD"))
    assert {r["model"] for r in rows} >= {"resnet50", "vit_b16"}


def test_missing_suite_gives_no_rows():
    assert jax_rows(None) == [] and keras_rows(None) == []
