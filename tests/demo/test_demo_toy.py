"""The toy's convergence measure: the step from which the angle stays below the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from demo.toy2d import CONVERGED_DEG, settled_step

LOW, HIGH = CONVERGED_DEG / 2, CONVERGED_DEG * 2


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        pytest.param([LOW, LOW], 1, id="below-from-the-first-step"),
        pytest.param([HIGH, HIGH, LOW], 3, id="settles-on-the-last-step"),
        pytest.param([HIGH, LOW, HIGH, LOW, LOW], 4, id="a-dip-and-rebound-does-not-count"),
        pytest.param([LOW, HIGH], None, id="ends-above"),
        pytest.param([HIGH, CONVERGED_DEG, LOW], 3, id="the-threshold-itself-is-not-below"),
    ],
)
def test_settled_step(angles, expected):
    assert settled_step(np.array(angles)) == expected
