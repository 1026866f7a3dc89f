"""torch.compile(fullgraph=True) and, when a GPU is present, host-sync and CUDA-graph checks.

fullgraph=True fails on any graph break, and a Python ``if`` on a tensor value
(``.item()``, ``bool(t)``) is a graph break: compiling the whole step is the CPU
proof that the step has no value-dependent host branching.
"""

from __future__ import annotations

import copy

import adamp_torch
import numpy as np
import pytest
import torch
from gradients import make_gradient

from adamp_core import Branch

CASES = [
    (adamp_torch.AdamP, dict(weight_decay=0.1)),
    (adamp_torch.SGDP, dict(momentum=0.9, weight_decay=0.1)),
]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _params(device="cpu", dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (4,)]
    return [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype).to(device)) for s in shapes
    ]


def _grads(params, t):
    gen = torch.Generator().manual_seed(100 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)


# >1-D weights and the gradient kind each gets, rotating by step, so that every weight
# takes the CHANNEL, LAYER and NONE branch in turn within the one compiled graph
STEERED_SHAPES = [(4, 3), (3, 2, 2), (5, 4), (4,)]
ROTATION = ("channel_orthogonal", "layer_orthogonal", "random")
STEPS = 6


def _steered_grads(params, t):
    """Gradients made orthogonal to each weight row (CHANNEL), to the whole weight
    (LAYER) or left random (NONE), from the current weights."""
    rng = np.random.default_rng(100 + t)
    for i, p in enumerate(params):
        kind = ROTATION[(i + t) % len(ROTATION)]
        w = p.detach().numpy()
        p.grad = torch.tensor(make_gradient(kind, rng.normal(size=w.shape), w))


def _run(cls, kwargs, foreach, compiled):
    """STEPS steps with a tensor lr and OneCycleLR; with ``compiled``, every step after
    the first two must reuse a graph (error_on_recompile). Returns (params, branches
    of the >1-D weights per step)."""
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
        for s in STEERED_SHAPES
    ]
    opt = cls(params, lr=torch.tensor(0.05, dtype=torch.float64), foreach=foreach, **kwargs)
    step = torch.compile(opt.step, fullgraph=True) if compiled else opt.step
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=STEPS + 1, cycle_momentum=False
    )
    seen = []
    for t in range(STEPS):
        _steered_grads(params, t)
        with torch._dynamo.config.patch(error_on_recompile=compiled and t >= 2):
            step()
        sched.step()
        branches = opt.projection_branches()
        seen.append([branches[p] for p in params if p.ndim > 1])
    return params, seen


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_compiled_step_fullgraph_no_recompiles_matches_eager(cls, kwargs, foreach):
    """Tensor lr + an LR scheduler: one graph for the first step (state creation), one
    for the rest, then no recompilation on any later step, while the weights take
    every branch in turn; parameters and branches equal eager (float64, 1e-12)."""
    torch._dynamo.reset()
    eager, eager_seen = _run(cls, kwargs, foreach, compiled=False)
    comp, comp_seen = _run(cls, kwargs, foreach, compiled=True)
    for a, b in zip(eager, comp, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert comp_seen == eager_seen
    # in the steps under error_on_recompile, each weight took all three branches
    for column in zip(*comp_seen[2:], strict=True):
        assert set(column) == set(Branch)


def _path(foreach) -> dict:
    return dict(fused=True) if foreach == "fused" else dict(foreach=foreach)


def _compile_fused(cls, kwargs, dtype) -> None:
    """Compile the fused kernels on CUDA first: compiling (autotuning) may synchronise."""
    tiny = [torch.nn.Parameter(torch.ones(s, device="cuda", dtype=dtype)) for s in ((3, 2), (2,))]
    for p in tiny:
        p.grad = torch.ones_like(p)
    cls(tiny, lr=0.05, fused=True, **kwargs).step()
    torch.cuda.synchronize()


@cuda
@pytest.mark.parametrize("foreach", [True, False, "fused"])
@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_cuda_step_makes_no_host_sync_and_matches_cpu(cls, kwargs, foreach):
    cpu = _params()
    gpu = [torch.nn.Parameter(p.detach().cuda()) for p in cpu]
    if foreach == "fused":
        _compile_fused(cls, kwargs, cpu[0].dtype)
    opt_cpu = cls(cpu, lr=0.05, **kwargs)
    opt_gpu = cls(gpu, lr=torch.tensor(0.05, device="cuda"), **_path(foreach), **kwargs)
    for t in range(3):
        _grads(cpu, t)
        _grads(gpu, t)
        opt_cpu.step()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            opt_gpu.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for a, b in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-12)


@cuda
@pytest.mark.parametrize("foreach", [True, "fused"])
@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_cuda_graph_capture_with_capturable(cls, kwargs, foreach):
    params = _params("cuda", torch.float32)
    ref_params = copy.deepcopy(params)
    lr = torch.tensor(0.05, device="cuda")
    opt = cls(params, lr=lr, capturable=True, **_path(foreach), **kwargs)
    ref = cls(ref_params, lr=0.05, **kwargs)
    grads = [torch.zeros_like(p) for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    # warm up on a side stream (state creation, caches), then capture one step
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        _grads(ref_params, 0)
        for g, r in zip(grads, ref_params, strict=True):
            g.copy_(r.grad)
        opt.step()
        ref.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for t in range(1, 4):
        _grads(ref_params, t)
        for g, r in zip(grads, ref_params, strict=True):
            g.copy_(r.grad)
        graph.replay()
        ref.step()
    torch.cuda.synchronize()
    for a, b in zip(params, ref_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(opt.state[p]["step"].device.type == "cuda" for p in params)
