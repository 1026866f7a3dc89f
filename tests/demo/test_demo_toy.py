"""The 2-D toy: its convergence measure, its runs against an independent loop, the project page."""

from __future__ import annotations

import numpy as np
import pytest

from demo.toy2d import (
    CONVERGED_DEG,
    PROJECT_PAGE_NORMS,
    TARGET_ANGLE_DEG,
    TOY_LR,
    TOY_STEPS,
    settled_step,
    toy_runs,
)

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


def heavy_ball_norms(momentum: float, *, lr: float, steps: int, angle_deg: float) -> float:
    """The toy written out independently of adamp_core: SGD with PyTorch's momentum convention.

    Loss -cos(w, w*) with w* at angle_deg from w0 = (1, 0); its gradient is
    -(u* - cos(w, w*) * w/||w||) / ||w||, with u* = w*/||w*||.
    """
    theta = np.radians(angle_deg)
    target_unit = np.array([np.cos(theta), np.sin(theta)])
    w, buffer = np.array([1.0, 0.0]), np.zeros(2)
    for _ in range(steps):
        norm = np.linalg.norm(w)
        cos = w @ target_unit / norm
        grad = -(target_unit - cos * w / norm) / norm
        buffer = momentum * buffer + grad
        w = w - lr * buffer
    return float(np.linalg.norm(w))


@pytest.fixture(scope="module")
def runs():
    return {r.name: r for r in toy_runs()}


@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.99])
def test_unprojected_runs_are_sgd_with_momentum(runs, momentum):
    # The demo runs SGDP with delta = 0 as its SGD; float64 on both sides, only the
    # order of operations differs, so they agree far below the printed digits.
    name = "SGD" if momentum == 0 else f"SGD momentum {momentum:g}"
    expected = heavy_ball_norms(momentum, lr=TOY_LR, steps=TOY_STEPS, angle_deg=TARGET_ANGLE_DEG)
    assert runs[name].norms[-1] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("momentum", sorted(PROJECT_PAGE_NORMS))
def test_toy_reproduces_the_project_page(runs, momentum):
    # The page gives two decimals and not its start angle; between 177 and 179.5 degrees
    # the 0.99 run ends between 27.86 and 27.90, hence 0.03 (3 units of the last digit).
    assert runs[f"SGD momentum {momentum:g}"].norms[-1] == pytest.approx(
        PROJECT_PAGE_NORMS[momentum], abs=0.03
    )


def test_sgdp_keeps_the_norm_near_one_and_settles_first(runs):
    sgdp = runs["SGDP momentum 0.9"]
    assert sgdp.norms.max() < 1.2 < runs["SGD momentum 0.9"].norms[-1]
    others = [r.steps_to_converge for name, r in runs.items() if name != sgdp.name]
    assert all(s is None or s > sgdp.steps_to_converge for s in others)
