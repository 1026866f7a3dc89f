"""adamp_torch against the shared bad-input table (tests/support/bad_inputs.py), plus
what only torch has: tensor hyperparameters, the bounded cache and FSDP1's FlatParameter."""

from __future__ import annotations

import random
import re
import warnings

import adamp_torch
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from bad_inputs import ADAMP_ARGS, DTYPE_ROWS, SGDP_ARGS, VALID, bad_rows, dtype_message, refusal
from torch import nn

import adamp_core

F64 = torch.float64
TORCH_NAMES = {"beta1": "betas[0]", "beta2": "betas[1]"}
CLASSES = {"AdamP": (adamp_torch.AdamP, ADAMP_ARGS), "SGDP": (adamp_torch.SGDP, SGDP_ARGS)}
ALL = bad_rows({name: args for name, (_, args) in CLASSES.items()})


def params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, dtype=F64, generator=gen)) for s in ((4, 3), (3,))]


def kwargs_with(cls_name: str, values: dict) -> dict:
    """Constructor kwargs from canonical names (beta1/beta2 go into ``betas``)."""
    kwargs = {k: v for k, v in values.items() if k not in ("beta1", "beta2")}
    if cls_name == "AdamP":
        kwargs["betas"] = (values.get("beta1", 0.9), values.get("beta2", 0.999))
    return kwargs


def valid(cls_name: str) -> dict:
    return {arg: VALID[arg] for arg in CLASSES[cls_name][1]}


@pytest.mark.parametrize(("cls_name", "arg", "value", "tail"), ALL)
def test_bad_hyperparameter_is_refused_with_its_name(cls_name, arg, value, tail):
    cls = CLASSES[cls_name][0]
    expected = refusal(TORCH_NAMES.get(arg, arg), arg, tail)
    kwargs = kwargs_with(cls_name, {**valid(cls_name), arg: value})
    with pytest.raises(ValueError, match=expected):
        cls(params(), **kwargs)
    opt = cls(params(), **kwargs_with(cls_name, valid(cls_name)))  # a later group: same check
    with pytest.raises(ValueError, match=expected):
        opt.add_param_group({"params": params(1), **kwargs})
    assert len(opt.param_groups) == 1


NOT_TENSOR = " must be a Python float, not a tensor (only lr may be a tensor), got "
LR_TYPE = "lr must be a float or a 1-element floating tensor, got "
TENSOR_ROWS = [
    ("AdamP", dict(betas=(torch.tensor(0.9), 0.999)), "betas[0]" + NOT_TENSOR + "tensor(0.9000)"),
    ("AdamP", dict(betas=(0.9, torch.tensor(0.9))), "betas[1]" + NOT_TENSOR + "tensor(0.9000)"),
    ("AdamP", dict(weight_decay=torch.tensor(0.1)), "weight_decay" + NOT_TENSOR + "tensor(0.1000)"),
    ("AdamP", dict(eps=torch.tensor(1e-8)), "eps" + NOT_TENSOR + "tensor(1.0000e-08)"),
    ("SGDP", dict(momentum=torch.tensor(0.9)), "momentum" + NOT_TENSOR + "tensor(0.9000)"),
    ("SGDP", dict(wd_ratio=torch.tensor(0.5)), "wd_ratio" + NOT_TENSOR + "tensor(0.5000)"),
    ("AdamP", dict(lr=torch.tensor(-0.5)), "lr must be a finite number >= 0, got -0.5"),
    ("SGDP", dict(lr=torch.tensor(float("nan"))), "lr must be a finite number >= 0, got nan"),
    ("AdamP", dict(lr=torch.tensor(1)), LR_TYPE + "tensor(1)"),
    ("AdamP", dict(betas=(0.9,)), "betas must be a pair (beta1, beta2), got (0.9,)"),
]  # fmt: skip


@pytest.mark.parametrize(("cls_name", "kwargs", "expected"), TENSOR_ROWS)
def test_tensor_hyperparameters(cls_name, kwargs, expected):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        CLASSES[cls_name][0](params(), **kwargs)


def run(cls_name: str, kwargs: dict, steps: int = 3) -> list[torch.Tensor]:
    ps = params()
    opt = CLASSES[cls_name][0](ps, **kwargs)
    for seed in range(steps):
        gen = torch.Generator().manual_seed(seed)
        for p in ps:
            p.grad = torch.randn(p.shape, dtype=F64, generator=gen)
        opt.step()
    return [p.detach() for p in ps]


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize("wrap", [np.array, np.float32, np.float64], ids=["0-d", "f32", "f64"])
def test_numpy_scalars_are_accepted_as_their_value(cls_name, wrap):
    as_floats = {k: float(wrap(v)) for k, v in valid(cls_name).items()}
    wrapped = {k: wrap(v) for k, v in valid(cls_name).items()}
    expected = run(cls_name, kwargs_with(cls_name, as_floats))
    for got, want in zip(run(cls_name, kwargs_with(cls_name, wrapped)), expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_tensor_lr_is_accepted_as_its_value(cls_name):
    floats = kwargs_with(cls_name, valid(cls_name))
    expected = run(cls_name, floats)
    got = run(cls_name, {**floats, "lr": torch.tensor(floats["lr"], dtype=F64)})
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-15, atol=1e-15)  # a few float64 ulps


@pytest.mark.parametrize("cls_name", CLASSES)
def test_lr_scheduler_is_accepted(cls_name):
    ps = params()
    opt = CLASSES[cls_name][0](ps, **kwargs_with(cls_name, valid(cls_name)))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == VALID["lr"] / 2


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize("dtype", DTYPE_ROWS)
def test_parameters_of_undefined_dtype_are_refused_at_construction(cls_name, dtype):
    bad = torch.zeros(3, 2, dtype=getattr(torch, dtype))
    expected = re.escape(dtype_message(cls_name, "a parameter", dtype))
    with pytest.raises(ValueError, match=f"^{expected}$"):
        CLASSES[cls_name][0]([bad], lr=0.1)
    opt = CLASSES[cls_name][0](params(), lr=0.1)
    with pytest.raises(ValueError, match=f"^{expected}$"):
        opt.add_param_group({"params": [bad]})
    assert len(opt.param_groups) == 1


# ------------------------------------------------------------------ the cache


def _churn(cls_name: str, steps: int, capacity: int | None, seed: int = 0):
    """``steps`` steps of 16 parameters, 4 random ones with a gradient each step."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    ps = [nn.Parameter(torch.randn(2 + i % 7, 3 + i % 3, generator=gen)) for i in range(16)]
    opt = CLASSES[cls_name][0](ps, lr=0.01, weight_decay=0.1)
    if capacity is not None:
        opt._cache.MIN_CAPACITY = capacity
    peak = 0
    for _ in range(steps):
        for p in ps:
            p.grad = None
        for p in rng.sample(ps, 4):
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
        peak = max(peak, len(opt._cache))
    return ps, opt, peak


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes()
    return sum(_nbytes(v) for v in value) if isinstance(value, tuple) else 0


def test_cache_stays_bounded_when_the_gradient_subset_changes():
    """The cache is the base class's, shared by AdamP and SGDP: AdamP drives it."""
    ps, opt, peak = _churn("AdamP", steps=1000, capacity=None)
    # one bucket per step (one dtype, one device): the capacity is the minimum
    assert peak <= opt._cache.MIN_CAPACITY
    largest = max(p.numel() for p in ps)
    # at most one scratch buffer (2 x the largest parameter) plus per entry the index
    # (one int64 per row of a bucket) and thresholds (2 per tensor), 4 tensors per bucket
    rows_bound = 4 * max(p.shape[0] for p in ps) * 8
    bound = 2 * largest * 4 + opt._cache.MIN_CAPACITY * max(rows_bound, 2 * 4 * 4)
    assert sum(_nbytes(v) for v in opt._cache.values()) <= bound


@pytest.mark.parametrize("cls_name", CLASSES)
def test_evicting_cache_entries_changes_no_result(cls_name):
    """A capacity of 1 rebuilds the entries at nearly every step: same parameters."""
    roomy, _, _ = _churn(cls_name, steps=50, capacity=10_000)
    tight, _, _ = _churn(cls_name, steps=50, capacity=1)
    for a, b in zip(roomy, tight, strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------- FSDP1 FlatParameter warning


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 4, bias=False), nn.LayerNorm(4, elementwise_affine=False), nn.Linear(4, 1)
    )


def _train(model, opt):
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 6, generator=gen)).square().mean().backward()
        opt.step()


def _flat_param_worker(rank: int, rendezvous: str) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=1)
    try:
        cpu = torch.device("cpu")
        for name, (cls, _) in CLASSES.items():
            kwargs = dict(lr=0.1, weight_decay=0.1)
            plain = _model()
            plain_opt = cls(plain.parameters(), **kwargs)
            _train(plain, plain_opt)
            assert adamp_core.Branch.LAYER in plain_opt.projection_branches().values()
            # FSDP1 default: one FlatParameter, one warning for two groups, no projection
            flat = FSDP(_model(), use_orig_params=False, device_id=cpu)
            (flat_param,) = list(flat.parameters())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                opt = cls([{"params": [flat_param]}], **kwargs)
                opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))]})
                opt.add_param_group(
                    {"params": [FSDP(_model(), device_id=cpu).parameters().__next__()]}
                )
            texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            ours = [t for t in texts if "FlatParameter" in t]
            assert len(ours) == 1, texts
            assert "use_orig_params=True" in ours[0] and "fully_shard" in ours[0], ours[0]
            assert ours[0].startswith(f"{name} was given an FSDP FlatParameter")
            _train(flat, opt)
            assert set(opt.projection_branches().values()) == {adamp_core.Branch.NONE}
            # use_orig_params=True: no warning, the single-process result
            orig = FSDP(_model(), use_orig_params=True, device_id=cpu)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                opt = cls(orig.parameters(), **kwargs)
            assert not [w for w in caught if "FlatParameter" in str(w.message)]
            _train(orig, opt)
            for p, q in zip(orig.parameters(), plain.parameters(), strict=True):
                torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-6)  # float32
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_fsdp1_flat_parameter_warns_once(tmp_path):
    mp.spawn(_flat_param_worker, args=(f"file://{tmp_path / 'rendezvous'}",), nprocs=1, join=True)
