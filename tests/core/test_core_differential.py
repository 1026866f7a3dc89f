"""The reference against the authors' ``adamp`` 0.3.0, in float64.

A seeded sweep of random configurations (shapes 1-D to 4-D with size-1
dimensions, magnitudes from 1e-6 to 1e6, random hyperparameters, Nesterov and
weight decay on and off), each run for 20 to 30 steps with gradients that steer
the projection into every branch. Parameters and optimizer state are compared
after every step: max relative error (inf-norm, per tensor) <= 1e-12. The
sweep must cover every branch, on weights of two or more dimensions, for both
optimizers.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from gradients import KINDS, make_gradient

import adamp_core
from adamp_core import Branch

adamp = pytest.importorskip("adamp", reason="adamp 0.3.0 is a test dependency")
torch = pytest.importorskip("torch", reason="adamp 0.3.0 needs torch")

CONFIGS_PER_OPTIMIZER = 150
MAX_RELATIVE_ERROR = 1e-12


def random_shape(rng: np.random.Generator) -> tuple[int, ...]:
    ndim = int(rng.integers(1, 5))
    return tuple(int(rng.choice([1, 2, 3, 5, 8])) for _ in range(ndim))


def random_adamp_hyperparams(rng):
    return {
        "lr": float(10 ** rng.uniform(-4, -1)),
        "beta1": float(rng.choice([0.0, 0.5, 0.9])),
        "beta2": float(rng.choice([0.9, 0.99, 0.999])),
        "eps": float(rng.choice([1e-8, 1e-6, 1e-3])),
        "weight_decay": float(rng.choice([0.0, 0.0, 1e-2, 0.5])),
        "delta": float(rng.choice([0.0, 0.1, 0.5])),
        "wd_ratio": float(rng.choice([0.0, 0.1, 1.0])),
        "nesterov": bool(rng.integers(2)),
    }


def random_sgdp_hyperparams(rng):
    return {
        "lr": float(10 ** rng.uniform(-3, 0)),
        "momentum": float(rng.choice([0.0, 0.5, 0.9, 0.99])),
        "dampening": float(rng.choice([0.0, 0.0, 0.1, 1.0])),
        "weight_decay": float(rng.choice([0.0, 0.0, 1e-3, 0.1])),
        "nesterov": bool(rng.integers(2)),
        "eps": float(rng.choice([1e-8, 1e-6])),
        "delta": float(rng.choice([0.0, 0.1, 0.5])),
        "wd_ratio": float(rng.choice([0.0, 0.1, 1.0])),
    }


def official_optimizer(name, param, hp):
    if name == "adamp":
        betas = (hp["beta1"], hp["beta2"])
        rest = {k: v for k, v in hp.items() if k not in ("beta1", "beta2")}
        return adamp.AdamP([param], betas=betas, **rest)
    return adamp.SGDP([param], **hp)


def official_state(name, state):
    if name == "adamp":
        return {"exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg_sq"]}
    return {"momentum_buffer": state["momentum"]}


def reference_state(state):
    return {k: v for k, v in state._asdict().items() if k != "step"}


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Inf-norm error relative to the inf-norm of the authors' tensor; inf if either
    holds a NaN or an infinity (``max`` would silently drop a NaN)."""
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))):
        return math.inf
    scale = float(np.max(np.abs(theirs), initial=0.0))
    diff = float(np.max(np.abs(ours - theirs), initial=0.0))
    return diff / scale if scale > 0 else diff


def run_config(name: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    hp = random_adamp_hyperparams(rng) if name == "adamp" else random_sgdp_hyperparams(rng)
    shape = random_shape(rng)
    magnitude = 10.0 ** int(rng.choice([-6, -3, 0, 3, 6]))
    steps = int(rng.integers(20, 31))
    param = rng.standard_normal(shape) * magnitude
    torch_param = torch.nn.Parameter(torch.tensor(param, dtype=torch.float64))
    optimizer = official_optimizer(name, torch_param, hp)
    step, state = (
        (adamp_core.adamp_step, adamp_core.adamp_init(param))
        if name == "adamp"
        else (adamp_core.sgdp_step, adamp_core.sgdp_init(param))
    )
    worst, branches = 0.0, collections.Counter()
    for _ in range(steps):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        grad = make_gradient(kind, rng.standard_normal(shape) * magnitude, param)
        torch_param.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
        result = step(param, grad, state, **hp)
        param, state = result.param, result.state
        if param.ndim > 1:  # 1-D parameters are NONE by rule; count the decisions
            branches[result.branch] += 1
        theirs = {"param": torch_param.detach().numpy()}
        theirs.update(
            {k: v.numpy() for k, v in official_state(name, optimizer.state[torch_param]).items()}
        )
        ours = {"param": param, **reference_state(state)}
        for key, value in theirs.items():
            worst = max(worst, relative_error(ours[key], value))
    return {
        "seed": seed,
        "shape": shape,
        "hp": hp,
        "steps": steps,
        "error": worst,
        "branches": branches,
    }


@pytest.fixture(scope="module", params=["adamp", "sgdp"])
def sweep(request):
    name = request.param
    return name, [run_config(name, seed) for seed in range(CONFIGS_PER_OPTIMIZER)]


def test_reference_matches_authors_code(sweep):
    name, results = sweep
    worst = max(results, key=lambda r: r["error"])
    total_steps = sum(r["steps"] for r in results)
    print(
        f"\n{name}: {len(results)} configs, {total_steps} steps, "
        f"max relative error {worst['error']:.3e}"
    )
    assert worst["error"] <= MAX_RELATIVE_ERROR, worst


def test_sweep_covers_every_branch(sweep):
    name, results = sweep
    steps_per_branch = sum((r["branches"] for r in results), collections.Counter())
    print(f"\n{name}: steps per branch { ({b.name: n for b, n in steps_per_branch.items()}) }")
    expected = {Branch.NONE, Branch.CHANNEL, Branch.LAYER}
    assert set(steps_per_branch) == expected, (name, steps_per_branch)


def test_sweep_covers_nesterov_and_weight_decay(sweep):
    _, results = sweep
    combos = {(r["hp"]["nesterov"], r["hp"]["weight_decay"] > 0) for r in results}
    assert combos == {(False, False), (False, True), (True, False), (True, True)}
    assert {len(r["shape"]) for r in results} == {1, 2, 3, 4}
    assert any(1 in r["shape"] for r in results)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        pytest.param([1.0, 2.0], [1.0, 2.0], 0.0, id="equal"),
        pytest.param([1.0, 2.5], [1.0, 2.0], 0.25, id="relative-to-the-largest"),
        pytest.param([np.nan, 2.0], [1.0, 2.0], math.inf, id="nan-in-ours"),
        pytest.param([1.0, 2.0], [1.0, np.inf], math.inf, id="inf-in-theirs"),
    ],
)
def test_relative_error_does_not_drop_non_finite_values(ours, theirs, expected):
    assert relative_error(np.array(ours), np.array(theirs)) == expected
