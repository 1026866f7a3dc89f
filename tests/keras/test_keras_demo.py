"""``python -m demo --quick --backend keras`` on this process's Keras backend."""

from __future__ import annotations

import os

import keras
from demo_checks import check_paper_ordering, run_demo


def test_quick_demo_on_this_keras_backend(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    results = run_demo("keras", tmp_path, env=env)
    check_paper_ordering(results)
