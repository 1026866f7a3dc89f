"""The 2-D toy from the AdamP project page.

A weight w in R^2 starts at ||w|| = 1 and minimises the scale-invariant loss
f(w) = -cos(w, w*). Its gradient is orthogonal to w, so each plain step grows
||w||; momentum grows it much faster, and the effective step size lr/||w||^2
collapses. SGDP removes the radial part of each step and keeps ||w|| near 1.

The setting reproduces the project page's numbers (||w|| from 1 to 2.93 with
momentum 0.9 and to 27.87 with 0.99): lr = 0.02, 500 steps, PyTorch's momentum
convention (buffer = momentum * buffer + grad, no dampening), w0 at 178 degrees
from w*. It gives 2.93 and 27.89.

Every run uses one optimizer: SGDP, with δ = 0 (the projection never fires,
which with no weight decay and no dampening *is* SGD with momentum) or with
δ = 0.1. The weight is one output channel of two entries, held as a (1, 2)
array in PyTorch layout or a (2, 1) array in Keras/Flax layout, so the
projection sees it as a layer's row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from adamp_core import sgdp_init, sgdp_step

TARGET_ANGLE_DEG = 178.0  # angle between w0 and w*: nearly opposite
TOY_LR = 0.02
TOY_STEPS = 500
# ||w|| at the end, as the authors' project page reports it, by momentum.
PROJECT_PAGE_NORMS = {0.9: 2.93, 0.99: 27.87}
CONVERGED_DEG = 1.0  # "converged" once the angle to w* stays below this

# make_step(weight, lr=, momentum=, delta=) -> step(grad) -> new weight
StepFactory = Callable[..., Callable[[np.ndarray], np.ndarray]]


class ToyRun(NamedTuple):
    name: str
    momentum: float
    projected: bool
    norms: np.ndarray  # ||w|| after each step
    angles_deg: np.ndarray  # angle(w, w*) after each step
    steps_to_converge: int | None  # first step from which the angle stays < CONVERGED_DEG


TOY_CONFIGS = (  # (name, momentum, projected)
    ("SGD", 0.0, False),
    ("SGD momentum 0.9", 0.9, False),
    ("SGD momentum 0.99", 0.99, False),
    ("SGDP momentum 0.9", 0.9, True),
)


def loss_grad(w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of -cos(w, w*): -(u* - cos · ŵ) / ||w||, orthogonal to w."""
    norm = math.sqrt(float(np.sum(w * w)))
    w_unit, t_unit = w / norm, target / math.sqrt(float(np.sum(target * target)))
    cos = float(np.sum(w_unit * t_unit))
    return -(t_unit - cos * w_unit) / norm


def angle_deg(w: np.ndarray, target: np.ndarray) -> float:
    cos = float(np.sum(w * target)) / math.sqrt(float(np.sum(w * w) * np.sum(target * target)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def reference_step_factory(weight: np.ndarray, *, lr: float, momentum: float, delta: float):
    """The NumPy reference's SGDP, as a step factory (PyTorch layout)."""
    state = [weight, sgdp_init(weight)]

    def step(grad: np.ndarray) -> np.ndarray:
        result = sgdp_step(state[0], grad, state[1], lr=lr, momentum=momentum, delta=delta)
        state[:] = [result.param, result.state]
        return result.param

    return step


def run_toy(
    make_step: StepFactory,
    name: str,
    momentum: float,
    projected: bool,
    *,
    lr: float,
    steps: int,
    layout: str = "channels_first",
) -> ToyRun:
    theta = math.radians(TARGET_ANGLE_DEG)
    shape = (1, 2) if layout == "channels_first" else (2, 1)
    target = np.array([math.cos(theta), math.sin(theta)]).reshape(shape)
    w = np.array([1.0, 0.0]).reshape(shape)
    step = make_step(w, lr=lr, momentum=momentum, delta=0.1 if projected else 0.0)
    norms, angles = [], []
    for _ in range(steps):
        w = np.asarray(step(loss_grad(w, target)), dtype=np.float64).reshape(shape)
        norms.append(math.sqrt(float(np.sum(w * w))))
        angles.append(angle_deg(w, target))
    angles_arr = np.array(angles)
    return ToyRun(name, momentum, projected, np.array(norms), angles_arr, settled_step(angles_arr))


def settled_step(angles_deg: np.ndarray) -> int | None:
    """The first step (1-based) from which every angle is below CONVERGED_DEG, or None.

    Momentum overshoots: a run can dip below the threshold and swing back out, so
    the first crossing would flatter it.
    """
    above = np.flatnonzero(angles_deg >= CONVERGED_DEG)
    if above.size == 0:
        return 1
    return None if above[-1] == angles_deg.size - 1 else int(above[-1]) + 2


def toy_runs(
    make_step: StepFactory = reference_step_factory,
    *,
    steps: int = TOY_STEPS,
    lr: float = TOY_LR,
    layout: str = "channels_first",
) -> list[ToyRun]:
    """Plain SGD, momentum SGD (0.9, 0.99) and SGDP (momentum 0.9)."""
    return [
        run_toy(make_step, name, momentum, projected, lr=lr, steps=steps, layout=layout)
        for name, momentum, projected in TOY_CONFIGS
    ]
