"""Quiet TensorFlow's start-up errors on machines with no NVIDIA driver.

TensorFlow's Linux wheel tries to initialise CUDA on import and logs
``failed call to cuInit`` at ERROR level wherever no driver is installed, i.e.
on every CPU-only machine. Entry points (the demo, the conformance CLI, the
test suite) call this before anything imports TensorFlow; the library never
does, and an explicit ``TF_CPP_MIN_LOG_LEVEL`` is left alone. With a driver
present nothing changes, so real CUDA errors still show.
"""

from __future__ import annotations

import os
from pathlib import Path

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def quiet_tensorflow_without_gpu() -> None:
    if not NVIDIA_DRIVER.exists():
        # 3 filters TensorFlow's C++ INFO, WARNING and ERROR logs; Python errors still raise.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
