"""``python -m demo --quick`` runs end to end and shows the paper's ordering.

Keras is exercised in tests/keras/test_keras_demo.py, once per Keras backend.
"""

from __future__ import annotations

import pytest
from demo_checks import check_paper_ordering, run_demo


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_quick_demo(backend, tmp_path):
    check_paper_ordering(run_demo(backend, tmp_path))
