"""The 2-D toy from the AdamP project page, run with the NumPy reference.

A weight w in R^2 starts at ||w|| = 1 and minimises the scale-invariant loss
f(w) = -cos(w, w*). Its gradient is orthogonal to w, so each plain step grows
||w||; momentum grows it much faster, and the effective step size lr/||w||^2
collapses. SGDP removes the radial part of each step and keeps ||w|| near 1.

The weight is held as a (1, 2) array, one "channel" of two entries, so the
reference's projection sees a 2-D tensor, exactly as a linear layer's row.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from adamp_core import sgdp_init, sgdp_step

TARGET_ANGLE_DEG = 135.0  # angle between w0 and w*
CONVERGED_DEG = 1.0  # "converged" once the angle to w* is below this


class ToyRun(NamedTuple):
    name: str
    norms: np.ndarray  # ||w|| after each step
    angles_deg: np.ndarray  # angle(w, w*) after each step
    steps_to_converge: int | None  # first step with angle < CONVERGED_DEG


def loss_grad(w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of -cos(w, w*): -(u* - cos * ŵ) / ||w||, orthogonal to w."""
    norm = math.sqrt(float(np.sum(w * w)))
    w_unit, t_unit = w / norm, target / math.sqrt(float(np.sum(target * target)))
    cos = float(np.sum(w_unit * t_unit))
    return -(t_unit - cos * w_unit) / norm


def angle_deg(w: np.ndarray, target: np.ndarray) -> float:
    cos = float(np.sum(w * target)) / math.sqrt(float(np.sum(w * w) * np.sum(target * target)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def run_toy(name: str, *, lr: float, momentum: float, delta: float, steps: int) -> ToyRun:
    """Run SGD-type steps on the toy; delta = 0 turns the projection off (plain SGD)."""
    theta = math.radians(TARGET_ANGLE_DEG)
    target = np.array([[math.cos(theta), math.sin(theta)]])
    w = np.array([[1.0, 0.0]])
    state = sgdp_init(w)
    norms, angles = [], []
    for _ in range(steps):
        result = sgdp_step(w, loss_grad(w, target), state, lr=lr, momentum=momentum, delta=delta)
        w, state = result.param, result.state
        norms.append(math.sqrt(float(np.sum(w * w))))
        angles.append(angle_deg(w, target))
    angles_arr = np.array(angles)
    below = np.flatnonzero(angles_arr < CONVERGED_DEG)
    converged = int(below[0]) + 1 if below.size else None
    return ToyRun(name, np.array(norms), angles_arr, converged)


def toy_runs(steps: int = 3000, lr: float = 0.01) -> list[ToyRun]:
    """Plain SGD, momentum SGD (0.9, 0.99) and SGDP (momentum 0.9)."""
    return [
        run_toy("SGD", lr=lr, momentum=0.0, delta=0.0, steps=steps),
        run_toy("SGD momentum 0.9", lr=lr, momentum=0.9, delta=0.0, steps=steps),
        run_toy("SGD momentum 0.99", lr=lr, momentum=0.99, delta=0.0, steps=steps),
        run_toy("SGDP momentum 0.9", lr=lr, momentum=0.9, delta=0.1, steps=steps),
    ]
