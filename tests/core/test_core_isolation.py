"""Importing the reference pulls in no deep-learning framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "flax", "optax")


def test_import_adamp_core_loads_no_framework():
    code = (
        "import sys, adamp_core, adamp_core.multi, adamp_core.validation\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"adamp_core imported {out.stdout.strip()}"
