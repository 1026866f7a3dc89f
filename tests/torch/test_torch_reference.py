"""adamp_torch against the NumPy reference (adamp_core) and the authors' adamp 0.3.0.

float64 runs must agree to 1e-12: the reference is exact to ~1e-16 and each
step here does O(10) roundings of O(1) quantities (|w| ~ 1, |update| <= a few),
so a handful of steps stays near 1e-15; 1e-12 leaves room without hiding a
wrong formula (a wrong eps placement or decay is >= 1e-9 at these values).
"""

from __future__ import annotations

import itertools

import adamp
import adamp_torch
import numpy as np
import pytest
import torch
from adamp_torch import _fused
from gradients import KINDS, make_gradient
from reference_runs import reference_run
from torch_helpers import float32_bounds, set_grads, torch_params

import adamp_core

SHAPES = [(3,), (1,), (4, 5), (1, 6), (6, 1), (3, 2, 2, 2), (2, 1, 3, 1), (5, 3, 1, 1), (2, 3, 4)]
STEPS = 4
ATOL64 = 1e-12

ADAMP_CONFIGS = [
    dict(lr=0.05),
    dict(lr=0.05, nesterov=True),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.1, nesterov=True),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3, delta=0.2, wd_ratio=0.5),
]
SGDP_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.9, weight_decay=0.1),
    dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
    dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.2, delta=0.2, wd_ratio=0.3),
]


def problem(seed: int, steps: int = STEPS, none_every: int = 0):
    """Random parameters and, per step, gradients of every kind (all branches fire)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(SHAPES))
    params = [rng.normal(size=SHAPES[i]) for i in order]
    grads_per_step = []
    for t in range(steps):
        grads = []
        for i, p in enumerate(params):
            kind = KINDS[(i + t + seed) % len(KINDS)]
            g = make_gradient(kind, rng.normal(size=p.shape), p)
            grads.append(None if none_every and (i + t) % none_every == 0 else g)
        grads_per_step.append(grads)
    return params, grads_per_step


def core_hyper(kind: str, config: dict) -> dict:
    hyper = dict(config)
    if kind == "adamp" and "betas" in hyper:
        hyper["beta1"], hyper["beta2"] = hyper.pop("betas")
    return hyper


# the paths: foreach=True (multi-tensor), False (single-tensor), "fused" (fused=True: the
# CPU's multi-tensor kernel) and "fused-inductor" (fused=True through Inductor's per-tensor
# kernels, the code CUDA runs)
PATHS = [True, False, "fused", "fused-inductor"]


@pytest.fixture(autouse=True)
def fused_implementation(request, monkeypatch):
    """``foreach="fused-inductor"`` runs the fused path without the CPU kernel."""
    params = getattr(request.node, "callspec", None)
    if params is not None and params.params.get("foreach") == "fused-inductor":
        monkeypatch.setattr(_fused, "CPU_KERNEL", False)


def path_kwargs(kwargs: dict) -> dict:
    """``foreach="fused"`` (or "fused-inductor") in a test's parameters means ``fused=True``."""
    if kwargs.get("foreach") in ("fused", "fused-inductor"):
        return {**kwargs, "foreach": None, "fused": True}
    return kwargs


def run_torch(cls, params, grads_per_step, dtype=torch.float64, **kwargs):
    kwargs = path_kwargs(kwargs)
    tensors = torch_params(params, dtype)
    opt = cls(tensors, **kwargs)
    for grads in grads_per_step:
        # the reference steps on the weights before each step; set grads from the problem
        set_grads(tensors, grads, dtype)
        opt.step()
    return tensors, opt


def assert_state_close(kind, opt, tensors, states, atol):
    for p, ref in zip(tensors, states, strict=True):
        state = opt.state[p]
        if kind == "adamp":
            if ref.step == 0:
                assert not state
                continue
            assert float(state["step"]) == ref.step
            np.testing.assert_allclose(state["exp_avg"].double().numpy(), ref.exp_avg, atol=atol)
            np.testing.assert_allclose(
                state["exp_avg_sq"].double().numpy(), ref.exp_avg_sq, atol=atol
            )
        elif state:
            np.testing.assert_allclose(
                state["momentum_buffer"].double().numpy(), ref.momentum_buffer, atol=atol
            )


CASES = [("adamp", c) for c in ADAMP_CONFIGS] + [("sgdp", c) for c in SGDP_CONFIGS]
CLASSES = {"adamp": adamp_torch.AdamP, "sgdp": adamp_torch.SGDP}
AUTHORS = {"adamp": adamp.AdamP, "sgdp": adamp.SGDP}


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize(("kind", "config"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_core_float64(kind, config, foreach, seed):
    params, grads_per_step = problem(seed, none_every=5 if seed else 0)
    tensors, opt = run_torch(CLASSES[kind], params, grads_per_step, foreach=foreach, **config)
    reference = reference_run(kind, params, grads_per_step, **core_hyper(kind, config))
    for p, ref in zip(tensors, reference.params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=0, atol=ATOL64)
    assert_state_close(kind, opt, tensors, reference.states, ATOL64)
    branches = opt.projection_branches()
    assert [branches[p] for p in tensors] == reference.branches


@pytest.mark.parametrize(("kind", "config"), CASES)
def test_matches_authors_adamp_float64(kind, config):
    params, grads_per_step = problem(2)
    tensors, opt = run_torch(CLASSES[kind], params, grads_per_step, **config)
    theirs = torch_params(params)
    their_opt = AUTHORS[kind](theirs, **config)
    for grads in grads_per_step:
        set_grads(theirs, grads)
        their_opt.step()
    for ours, p in zip(tensors, theirs, strict=True):
        torch.testing.assert_close(ours, p, rtol=0, atol=ATOL64)
        key = "exp_avg" if kind == "adamp" else "momentum"
        ours_key = "exp_avg" if kind == "adamp" else "momentum_buffer"
        torch.testing.assert_close(
            opt.state[ours][ours_key], their_opt.state[p][key], rtol=0, atol=ATOL64
        )


# every argument positional, none at its default: setting any one of them back to its
# default changes the 4 steps below by >= 1e-6 (checked), far above ATOL64
POSITIONAL = [
    ("adamp", (0.02, (0.8, 0.99), 1e-6, 0.3, 0.2, 0.5, True)),
    ("sgdp", (0.05, 0.8, 0.3, 0.2, True, 1e-6, 0.2, 0.5)),
]


def _positional_run(cls, params, grads_per_step, args):
    tensors = torch_params(params)
    opt = cls(tensors, *args)
    for grads in grads_per_step:
        set_grads(tensors, grads)
        opt.step()
    return tensors


@pytest.mark.parametrize(("kind", "args"), POSITIONAL)
def test_all_positional_arguments_match_authors(kind, args):
    """Constructed with every argument positional, ours steps like adamp 0.3.0 given
    the same call (float64, 1e-12): a parameter out of order, or a different one in
    its place, would bind another value and step differently."""
    params, grads_per_step = problem(9)
    ours = _positional_run(CLASSES[kind], params, grads_per_step, args)
    theirs = _positional_run(AUTHORS[kind], params, grads_per_step, args)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=ATOL64)


@pytest.mark.parametrize(("kind", "config"), CASES)
def test_foreach_equals_single_tensor_float64(kind, config):
    params, grads_per_step = problem(3)
    multi, _ = run_torch(CLASSES[kind], params, grads_per_step, foreach=True, **config)
    single, _ = run_torch(CLASSES[kind], params, grads_per_step, foreach=False, **config)
    for a, b in zip(multi, single, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


MIXED = (torch.float32, torch.float64, torch.bfloat16)


def _mixed_run(cls, arrays, grads_per_step, dtypes, keep, **kwargs):
    """Step the parameters ``keep`` (indices), each in its own dtype, in one optimizer."""
    tensors = [torch.nn.Parameter(torch.tensor(arrays[i]).to(dtypes[i])) for i in keep]
    opt = cls(tensors, **kwargs)
    for grads in grads_per_step:
        for t, i in zip(tensors, keep, strict=True):
            t.grad = torch.tensor(grads[i]).to(dtypes[i])
        opt.step()
    return tensors


@pytest.mark.parametrize(("kind", "config"), [CASES[3], CASES[8]])
def test_mixed_dtypes_foreach_and_single_tensor(kind, config):
    """float32, float64 and bfloat16 parameters in one list (inputs rounded to each
    dtype). Both paths bucket by dtype, so each dtype steps bit for bit as it does
    alone; float64 is within ATOL64 and float32 within its rounding bound of the
    reference, on both paths. bfloat16: the paths round intermediates to bfloat16 at
    different points, so w may differ in its last bit each step: at most one
    bfloat16 ulp (2^-7 relative) of max|w| per step (measured: one ulp)."""
    arrays, grads_per_step = problem(10)
    dtypes = [MIXED[i % len(MIXED)] for i in range(len(arrays))]

    def rounded(values):
        return [torch.tensor(a).to(d).double().numpy() for a, d in zip(values, dtypes, strict=True)]

    arrays, grads_per_step = rounded(arrays), [rounded(grads) for grads in grads_per_step]
    every = range(len(arrays))
    paths = {
        foreach: _mixed_run(
            CLASSES[kind], arrays, grads_per_step, dtypes, every, foreach=foreach, **config
        )
        for foreach in (True, False)
    }
    for dtype, foreach in itertools.product(MIXED, paths):
        keep = [i for i in every if dtypes[i] is dtype]
        alone = _mixed_run(
            CLASSES[kind], arrays, grads_per_step, dtypes, keep, foreach=foreach, **config
        )
        for i, p in zip(keep, alone, strict=True):
            assert torch.equal(paths[foreach][i], p)
    history = reference_run(kind, arrays, grads_per_step, **core_hyper(kind, config)).history
    bounds32 = float32_bounds(history)
    for i, (multi, single) in enumerate(zip(paths[True], paths[False], strict=True)):
        multi, single = multi.detach().double().numpy(), single.detach().double().numpy()
        if dtypes[i] is torch.bfloat16:
            top = max(np.abs(w[i]).max() for w in history)
            ulp = 2.0 ** (np.floor(np.log2(top)) - 7)
            np.testing.assert_allclose(multi, single, rtol=0, atol=STEPS * ulp)
            continue
        bound = ATOL64 if dtypes[i] is torch.float64 else bounds32[i]
        for result in (multi, single):
            np.testing.assert_allclose(result, history[-1][i], rtol=0, atol=bound)


@pytest.mark.parametrize("grad_scale", [1.0, 1e-3])
@pytest.mark.parametrize(("kind", "config"), [CASES[3], CASES[4], CASES[-2]])
@pytest.mark.parametrize("foreach", PATHS)
def test_float32_close_to_reference(kind, config, foreach, grad_scale):
    """float32 against the float64 reference from the same (float32-rounded) inputs,
    within the rounding bound of :func:`torch_helpers.float32_bounds` (16 roundings
    per step of the trajectory's own magnitudes).

    With |g| ~ 1e-3, eps = 1e-8 is visible in Adam's denominator: an eps placed
    before the bias correction, (sqrt(v) + eps)/sqrt(1-β₂ᵗ) (pytorch_optimizer's),
    changes u by up to 30·eps/|g| relative and fails this bound by a factor of 450
    or more (checked by mutating ``adamp_update``); with |g| ~ 1 it fails only the
    eps = 1e-6 configuration (3x the bound; 0.5x with eps = 1e-8).
    """
    params, grads_per_step = problem(4)
    params = [p.astype(np.float32).astype(np.float64) for p in params]
    grads_per_step = [
        [(g * grad_scale).astype(np.float32).astype(np.float64) for g in grads]
        for grads in grads_per_step
    ]
    tensors, _ = run_torch(
        CLASSES[kind], params, grads_per_step, dtype=torch.float32, foreach=foreach, **config
    )
    history = reference_run(kind, params, grads_per_step, **core_hyper(kind, config)).history
    for p, ref, bound in zip(tensors, history[-1], float32_bounds(history), strict=True):
        np.testing.assert_allclose(p.detach().double().numpy(), ref, rtol=0, atol=bound)


@pytest.mark.parametrize("foreach", [None, "fused", "fused-inductor"])
@pytest.mark.parametrize("kind", ["adamp", "sgdp"])
def test_maximize_is_descent_on_negated_gradient(kind, foreach):
    config = dict(ADAMP_CONFIGS[3] if kind == "adamp" else SGDP_CONFIGS[3])
    params, grads_per_step = problem(5)
    tensors, _ = run_torch(
        CLASSES[kind], params, grads_per_step, maximize=True, foreach=foreach, **config
    )
    negated = [[-g for g in grads] for grads in grads_per_step]
    reference = reference_run(kind, params, negated, **core_hyper(kind, config))
    for p, ref in zip(tensors, reference.params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=0, atol=ATOL64)


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("nesterov", [False, True])
def test_unprojected_buffer_matches_core(foreach, nesterov):
    config = dict(lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=nesterov)
    params, grads_per_step = problem(6)
    tensors, opt = run_torch(
        adamp_torch.SGDP, params, grads_per_step, project_buffer=False, foreach=foreach, **config
    )
    reference = reference_run("sgdp", params, grads_per_step, project_buffer=False, **config)
    for p, ref in zip(tensors, reference.params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=0, atol=ATOL64)
    assert_state_close("sgdp", opt, tensors, reference.states, ATOL64)


def test_every_branch_is_exercised():
    """The problems above reach all three branches on >1-D weights, size-1 axes included."""
    seen = set()
    for seed in range(4):
        params, grads_per_step = problem(seed)
        for grads in grads_per_step:
            for p, g in zip(params, grads, strict=True):
                seen.add(adamp_core.projection(p, g, g, delta=0.1, wd_ratio=0.1, eps=1e-8).branch)
    assert seen == set(adamp_core.Branch)


@pytest.mark.parametrize("foreach", [None, "fused", "fused-inductor"])
@pytest.mark.parametrize("kind", ["adamp", "sgdp"])
def test_non_contiguous_and_channels_last(kind, foreach):
    """Reductions over axes: channels_last and transposed weights step like contiguous ones."""
    config = path_kwargs(
        dict(ADAMP_CONFIGS[2] if kind == "adamp" else SGDP_CONFIGS[3], foreach=foreach)
    )
    params, grads_per_step = problem(7)
    base, _ = run_torch(CLASSES[kind], params, grads_per_step, **config)
    for layout in ("channels_last", "transposed"):
        tensors = []
        for a in params:
            t = torch.tensor(a)
            if layout == "channels_last" and t.ndim == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            elif layout == "transposed" and t.ndim == 2:
                t = t.t().contiguous().t()
            tensors.append(torch.nn.Parameter(t))
        opt = CLASSES[kind](tensors, **config)
        for grads in grads_per_step:
            set_grads(tensors, grads)
            opt.step()
        for a, b in zip(base, tensors, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize(("kind", "config"), [CASES[3], CASES[8]])
def test_16_bit_parameters_with_a_zero_weight(kind, config, dtype, foreach):
    """ε = 1e-8 underflows in 16 bits; the statistics are float32, so a zero weight
    still projects as a no-op instead of dividing 0 by 0. One step from 16-bit
    inputs, against the float64 reference: a few roundings at 16-bit unit roundoff
    of |w| + lr·|update| (|update| <= 10 for these Adam/SGD steps)."""
    rng = np.random.default_rng(8)
    arrays = [np.zeros((4, 3)), rng.normal(size=(3, 2, 2)), rng.normal(size=(5,))]
    arrays = [torch.tensor(a).to(dtype).double().numpy() for a in arrays]
    # |g| >= 0.5: (1-β₂)g² must not underflow in float16, or Adam divides by a zero
    # denominator in any 16-bit implementation (the authors' code included)
    grads = [rng.normal(size=a.shape) for a in arrays]
    grads = [np.sign(g) * (0.5 + np.abs(g)) for g in grads]
    grads = [torch.tensor(g).to(dtype).double().numpy() for g in grads]
    tensors, opt = run_torch(CLASSES[kind], arrays, [grads], dtype=dtype, foreach=foreach, **config)
    reference = reference_run(kind, arrays, [grads], **core_hyper(kind, config))
    unit = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}[dtype]
    for p, r in zip(tensors, reference.params, strict=True):
        assert torch.isfinite(p).all()
        bound = 8 * unit * (np.abs(r).max() + config["lr"] * 10)
        np.testing.assert_allclose(p.detach().double().numpy(), r, rtol=0, atol=bound)
    assert list(opt.projection_branches().values()) == reference.branches


def _float16_conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
    ).half()


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("kind", ["adamp", "sgdp"])
def test_float16_conv_net_with_default_hyperparameters(kind, foreach):
    """A float16 conv net, default hyperparameters (ε = 1e-8, which is 0 in float16):
    the step is computed in float32, so no value turns NaN/inf (computed in float16,
    AdamP made 1597 of its 2114 values non-finite at step 1), and step 1 is the
    float64 reference's step from the same float16 weights and gradients, rounded
    (a few float16 roundings of |w| + lr·|update|, |update| <= 10)."""
    model = _float16_conv_net()
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)).half()
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    config = dict(lr=1e-3) if kind == "adamp" else dict(lr=0.1, momentum=0.9)
    opt = CLASSES[kind](model.parameters(), **path_kwargs(dict(foreach=foreach)), **config)
    params = list(model.parameters())
    start = [p.detach().double().numpy() for p in params]
    for t in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x).float(), y).backward()
        if t == 0:
            grads = [p.grad.double().numpy() for p in params]
        opt.step()
        assert all(torch.isfinite(p).all() for p in params), t
        if t == 0:
            reference = reference_run(kind, start, [grads], **config)
            for p, r in zip(params, reference.params, strict=True):
                bound = 8 * 2.0**-11 * (np.abs(r).max() + config["lr"] * 10)
                np.testing.assert_allclose(p.detach().double().numpy(), r, rtol=0, atol=bound)
