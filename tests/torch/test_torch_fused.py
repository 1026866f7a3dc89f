"""fused=True: refusals, GradScaler's grad_scale/found_inf, checkpoints across the three
paths and adamp 0.3.0, and no recompilation once compiled; each on both CPU
implementations (the multi-tensor kernel and Inductor's per-tensor kernels).

The fused path's numbers against the reference are checked with the other paths in
test_torch_reference.py (foreach="fused" there). Compiling costs seconds per
(dtype, flags) variant, so these tests use float64 and the few variants that the
reference tests compile anyway (the on-disk Inductor cache serves later runs).
"""

from __future__ import annotations

import copy
import io
import itertools
import re

import adamp
import adamp_torch
import pytest
import torch
from adamp_torch import _fused

from benchmarks.bench_torch import top_level_call_names

F64 = torch.float64


@pytest.fixture(autouse=True, params=["cpu-kernel", "inductor"])
def fused_implementation(request, monkeypatch):
    """Every test runs on both CPU implementations of the fused step: the multi-tensor
    kernel and Inductor's per-tensor kernels (the code CUDA runs)."""
    monkeypatch.setattr(_fused, "CPU_KERNEL", request.param == "cpu-kernel")
    return request.param


CLASSES = [adamp_torch.AdamP, adamp_torch.SGDP]
KWARGS = {
    adamp_torch.AdamP: dict(lr=0.1, weight_decay=0.1),
    adamp_torch.SGDP: dict(lr=0.1, momentum=0.9, weight_decay=0.1),
}
PATHS = {"foreach": dict(foreach=True), "single": dict(foreach=False), "fused": dict(fused=True)}
SHAPES = ((4, 3), (5,), (2, 3, 2, 2), (1, 6), (6, 1))


def params64(seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, dtype=F64, generator=gen)) for s in shapes]


def random_grads(params, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = scale * torch.randn(p.shape, dtype=p.dtype, generator=gen)


def run(opt, ps, seeds):
    for s in seeds:
        random_grads(ps, s)
        opt.step()


# ---------------------------------------------------------------- refusals

REFUSED = [
    (
        dict(foreach=True, fused=True),
        ValueError,
        "foreach and fused cannot both be True; pick one",
    ),
    (dict(fused=1), ValueError, "fused must be True or False, got 1"),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("kwargs", "error", "message"), REFUSED)
def test_fused_option_refusals(cls, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        cls(params64(), lr=0.1, **kwargs)


def test_fused_must_be_the_same_in_every_group():
    a, b = params64(1), params64(2)
    message = "fused must be the same in every parameter group of AdamP: the constructor has "
    with pytest.raises(
        ValueError, match=re.escape(message + "fused=False, a group has fused=True")
    ):
        adamp_torch.AdamP([{"params": a}, {"params": b, "fused": True}], lr=0.1)
    with pytest.raises(
        ValueError, match=re.escape(message + "fused=True, a group has fused=False")
    ):
        adamp_torch.AdamP([{"params": a}, {"params": b, "fused": False}], lr=0.1, fused=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_fused_refuses_unsupported_dtype_and_device(cls):
    ints = torch.zeros(3, 3, dtype=torch.int32)
    with pytest.raises(
        ValueError, match=re.escape("got one of dtype torch.int32; use fused=False")
    ):
        cls([ints], lr=0.1, fused=True)
    meta = torch.nn.Parameter(torch.empty(3, 3, device="meta"))
    message = "(fused=True) runs on CPU and CUDA parameters, got one on meta; use fused=False"
    with pytest.raises(ValueError, match=re.escape(message)):
        cls([meta], lr=0.1, fused=True)


def test_fused_without_a_cpp_compiler_names_the_working_path(monkeypatch):
    monkeypatch.setattr(_fused, "_cpp_compiler", lambda: None)
    message = (
        "AdamP(fused=True) on the CPU needs a C++ compiler (the step is compiled C++ there), "
        "and none was found: install g++ or set CXX; or use fused=False"
    )
    with pytest.raises(RuntimeError, match=re.escape(message)):
        adamp_torch.AdamP(params64(), fused=True)


# ---------------------------------------------------------------- GradScaler protocol


@pytest.mark.parametrize("cls", CLASSES)
def test_grad_scale_and_found_inf_as_torch_fused_optimizers_take_them(cls):
    """grad_scale divides the gradients inside the step; found_inf skips it entirely:
    parameters, state, step counters and branch codes stay as they were."""
    assert cls(params64(), lr=0.1, fused=True)._step_supports_amp_scaling
    assert not cls(params64(), lr=0.1)._step_supports_amp_scaling
    ours, ref = params64(), params64()
    opt, ref_opt = cls(ours, fused=True, **KWARGS[cls]), cls(ref, **KWARGS[cls])
    run(opt, ours, [0])
    run(ref_opt, ref, [0])
    state_before = copy.deepcopy(opt.state_dict())
    params_before = [p.detach().clone() for p in ours]
    opt.grad_scale, opt.found_inf = torch.tensor(1024.0), torch.tensor(1.0)
    random_grads(ours, 1, scale=1024.0)
    opt.step()
    for p, b in zip(ours, params_before, strict=True):
        assert torch.equal(p, b)
    after = opt.state_dict()["state"]
    for key, value in state_before["state"].items():
        for name, tensor in value.items():
            assert torch.equal(after[key][name], tensor), name
    # the same gradients, scaled by 2^10 (exact), with found_inf = 0: an ordinary step
    opt.found_inf = torch.tensor(0.0)
    opt.step()
    run(ref_opt, ref, [1])
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    if cls is adamp_torch.AdamP:
        assert all(float(opt.state[p]["step"]) == 2 for p in ours)


# ---------------------------------------------------------------- checkpoints


def _saved(opt) -> dict:
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("source", "target"), list(itertools.permutations(PATHS, 2)))
def test_checkpoint_moves_between_paths(cls, source, target):
    """Two steps on one path, save (weights_only load), two more on another path: the
    same as four steps on the first (float64, 1e-13), with the same state keys."""
    ps = params64()
    opt = cls(ps, **PATHS[source], **KWARGS[cls])
    run(opt, ps, [0, 1])
    saved = _saved(opt)
    ps2 = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt2 = cls(ps2, **PATHS[target], **KWARGS[cls])
    opt2.load_state_dict(saved)
    assert opt2.projection_branches() == dict(
        zip(ps2, opt.projection_branches().values(), strict=True)
    )
    run(opt, ps, [2, 3])
    run(opt2, ps2, [2, 3])
    for x, y in zip(ps, ps2, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)
    for p, q in zip(ps, ps2, strict=True):
        assert opt.state[p].keys() == opt2.state[q].keys()
        for key, value in opt.state[p].items():
            assert value.shape == opt2.state[q][key].shape, key


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (adamp_torch.AdamP, adamp.AdamP, dict(lr=0.1, weight_decay=0.1)),
        (adamp_torch.SGDP, adamp.SGDP, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ],
)
def test_authors_checkpoint_loads_into_fused_and_fused_into_authors(ours, theirs, kwargs):
    """adamp 0.3.0 → fused: continues as the authors' code does. fused → adamp 0.3.0:
    their state is ours without ``projection``, with ``step`` an int (a float32
    tensor step would make their bias corrections float32) and their SGDP's buffer
    under ``momentum``."""
    ps_a = params64()
    opt_a = theirs(ps_a, **kwargs)
    run(opt_a, ps_a, [0, 1])
    ps_b = [torch.nn.Parameter(p.detach().clone()) for p in ps_a]
    opt_b = ours(ps_b, fused=True, **kwargs)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    run(opt_a, ps_a, [2, 3])
    run(opt_b, ps_b, [2, 3])
    for x, y in zip(ps_a, ps_b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)
    back = _saved(opt_b)
    for state in back["state"].values():
        state.pop("projection")
        if "step" in state:
            state["step"] = int(state["step"])
        if "momentum_buffer" in state:
            state["momentum"] = state.pop("momentum_buffer")
    ps_c = [torch.nn.Parameter(p.detach().clone()) for p in ps_b]
    opt_c = theirs(ps_c, **kwargs)
    opt_c.load_state_dict(back)
    run(opt_b, ps_b, [4, 5])
    run(opt_c, ps_c, [4, 5])
    for x, y in zip(ps_b, ps_c, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- compilation


@pytest.mark.parametrize("cls", CLASSES)
def test_no_recompilation_after_step_2(cls):
    """After two steps, new shapes (size-1 axes included), a changing learning rate
    (a scheduler on a tensor lr, then float values) and changing sets of parameters
    with gradients reuse the compiled kernels: recompiling raises."""
    ps = params64()
    opt = (
        cls(ps, fused=True, lr=torch.tensor(0.1, dtype=F64), momentum=0.9)
        if cls is adamp_torch.SGDP
        else cls(ps, fused=True, lr=torch.tensor(0.1, dtype=F64))
    )
    run(opt, ps, [0, 1])
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for seed in range(2, 6):
            random_grads(ps, seed)
            for i in range(len(ps)):
                if (i + seed) % 3 == 0:
                    ps[i].grad = None
            opt.step()
            sched.step()
        others = params64(7, shapes=((7, 2, 3), (1, 1), (9,), (3, 1, 1, 1), (2, 8)))
        extra = dict(momentum=0.9) if cls is adamp_torch.SGDP else {}
        opt2 = cls(others, fused=True, lr=0.05, **extra)
        for lr in (0.05, 0.02, 0.3):
            opt2.param_groups[0]["lr"] = lr
            random_grads(others, int(lr * 100))
            opt2.step()
    assert all(torch.isfinite(p).all() for p in ps + others)


@pytest.mark.parametrize("cls", CLASSES)
def test_deepcopy_keeps_the_fused_protocol(cls):
    """A deep copy (or unpickled optimizer) still takes GradScaler's grad_scale/found_inf."""
    opt = cls(params64(), lr=0.1, fused=True)
    assert copy.deepcopy(opt)._step_supports_amp_scaling


# ---------------------------------------------------------------- calls per step


@pytest.mark.parametrize("cls", CLASSES)
def test_cpu_kernel_calls_do_not_grow_with_the_tensors(cls, fused_implementation):
    """One kernel call per bucket, and the same operators around it, for 2 or 40 tensors."""
    if fused_implementation != "cpu-kernel":
        pytest.skip("Inductor's path makes one compiled call per projected tensor")
    counts = []
    for n in (1, 20):
        ps = params64(n, shapes=((6, 2, 3), (6,)) * n)
        opt = cls(ps, fused=True, **KWARGS[cls])
        run(opt, ps, [0])
        random_grads(ps, 1)
        counts.append(top_level_call_names(opt))
    assert counts[0] == counts[1]
    assert counts[0][f"adamp_torch::{cls.__name__.lower()}_cpu_kernel"] == 1
