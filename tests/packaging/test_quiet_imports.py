"""Entry points quiet TensorFlow's CUDA start-up errors on machines without an NVIDIA driver."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from adamp_core import _quiet


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("driver_present", "preset", "expected"),
    [
        pytest.param(False, None, "3", id="no-driver-sets-3"),
        pytest.param(False, "0", "0", id="an-explicit-setting-wins"),
        pytest.param(True, None, None, id="with-a-driver-nothing-changes"),
    ],
)
def test_quiet_tensorflow_without_gpu(monkeypatch, tmp_path, driver_present, preset, expected):
    driver = tmp_path / "version"
    if driver_present:
        driver.write_text("NVRM version: test\n")
    monkeypatch.setattr(_quiet, "NVIDIA_DRIVER", driver)
    if preset is not None:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", preset)
    _quiet.quiet_tensorflow_without_gpu()
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == expected


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
@pytest.mark.skipif(_quiet.NVIDIA_DRIVER.exists(), reason="a GPU machine: cuInit succeeds")
def test_tensorflow_import_has_no_cuinit_error():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = (
        "from adamp_core._quiet import quiet_tensorflow_without_gpu\n"
        "quiet_tensorflow_without_gpu()\n"
        "import tensorflow as tf\n"
        "print(float(tf.constant(1.0) + 1.0))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.0"
    assert "cuInit" not in result.stderr
