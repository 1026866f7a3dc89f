"""Sharded parameters (8 fake CPU devices, NamedSharding) give single-device results.

The device count must be fixed before jax is imported, and the pytest process
imports jax already, so the check runs in a subprocess (jax_sharding_script.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("jax_sharding_script.py")


def test_sharded_training_matches_single_device_and_keeps_sharding():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SHARDING OK" in result.stdout
    assert "'conv': 1" in result.stdout  # the projection fired on the sharded conv
