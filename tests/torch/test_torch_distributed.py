"""DDP and FSDP2 (fully_shard, DTensor Shard(0)) equal one process: 2 gloo ranks on the CPU.

The model makes every branch fire: a row-normalised linear layer is scale-invariant
per output channel (channel branch), a bias-free linear layer followed by an
affine-free LayerNorm is invariant only as a whole (layer branch), and a plain
linear head is neither. Their first dimensions (5, 3, 1) do not divide by 2, so
under FSDP2 the shards are uneven and one is empty; the channel maxima and the
layer sums must be reduced across ranks to match the single process.
"""

from __future__ import annotations

import re

import adamp_torch
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import adamp_core

WORLD = 2
STEPS = 3
CASES = [
    ("AdamP", dict(lr=0.05, weight_decay=0.1)),
    ("SGDP", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
]


class RowNormLinear(nn.Module):
    """y = x Ŵᵀ with each row of W normalised: invariant to each row's scale."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in, dtype=torch.float64))

    def forward(self, x):
        return x @ (self.weight / self.weight.norm(dim=1, keepdim=True)).t()


class LayerInvariant(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=False, dtype=torch.float64)

    def forward(self, x):
        return nn.functional.layer_norm(self.linear(x), (self.linear.out_features,))


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        RowNormLinear(6, 5),
        nn.Tanh(),
        LayerInvariant(5, 3),
        nn.Tanh(),
        nn.Linear(3, 1, dtype=torch.float64),
    )


def data():
    gen = torch.Generator().manual_seed(1)
    return (
        torch.randn(STEPS, 8, 6, generator=gen, dtype=torch.float64),
        torch.randn(STEPS, 8, 1, generator=gen, dtype=torch.float64),
    )


def train(model, opt, xs, ys):
    for x, y in zip(xs, ys, strict=True):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def single_process(name, kwargs):
    model = make_model()
    opt = getattr(adamp_torch, name)(model.parameters(), **kwargs)
    xs, ys = data()
    train(model, opt, xs, ys)
    branches = list(opt.projection_branches().values())
    return [p.detach().clone() for p in model.parameters()], branches


def _full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _worker(rank: int, rendezvous: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=WORLD)
    try:
        xs, ys = data()
        half = slice(rank * 4, (rank + 1) * 4)
        for name, kwargs in CASES:
            expected, expected_branches = single_process(name, kwargs)
            cls = getattr(adamp_torch, name)
            # DDP: gradients averaged over the two halves of the batch
            ddp = DistributedDataParallel(make_model())
            opt = cls(ddp.parameters(), **kwargs)
            train(ddp, opt, xs[:, half], ys[:, half])
            for p, e in zip(ddp.parameters(), expected, strict=True):
                torch.testing.assert_close(p.detach(), e, rtol=0, atol=1e-12)
            assert list(opt.projection_branches().values()) == expected_branches
            # FSDP2: every parameter a DTensor sharded on axis 0 (the fused path too)
            mesh = init_device_mesh("cpu", (WORLD,))
            for path in (dict(), dict(fused=True)):
                model = make_model()
                for layer in (model[0], model[2], model[4]):
                    fully_shard(layer, mesh=mesh)
                fully_shard(model, mesh=mesh)
                opt = cls(model.parameters(), **kwargs, **path)
                local_rows = [p.to_local().shape[0] for p in model.parameters() if p.ndim > 1]
                assert 0 in local_rows or rank == 0, local_rows  # rank 1 holds an empty shard
                train(model, opt, xs[:, half], ys[:, half])
                for p, e in zip(model.parameters(), expected, strict=True):
                    torch.testing.assert_close(_full(p.detach()), e, rtol=0, atol=1e-12)
                assert list(opt.projection_branches().values()) == expected_branches
            # the state-creating step of distributed checkpointing changes nothing
            fresh = cls(model.parameters(), **{**kwargs, "lr": 0.0})
            before = [_full(p.detach()).clone() for p in model.parameters()]
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            fresh.step()
            for p, b in zip(model.parameters(), before, strict=True):
                assert torch.equal(_full(p.detach()), b)
        # a placement other than Shard(0) / Replicate is refused, not silently mis-reduced
        from torch.distributed.tensor import Shard, distribute_tensor

        mesh = init_device_mesh("cpu", (WORLD,))
        weight = nn.Parameter(distribute_tensor(torch.randn(4, 4), mesh, [Shard(1)]))
        weight.grad = distribute_tensor(torch.randn(4, 4), mesh, [Shard(1)])
        with pytest.raises(NotImplementedError, match=re.escape("Shard(0)")):
            adamp_torch.AdamP([weight]).step()
    finally:
        dist.destroy_process_group()


def test_single_process_run_exercises_every_branch():
    for name, kwargs in CASES:
        _, branches = single_process(name, kwargs)
        assert set(branches) == set(adamp_core.Branch), (name, branches)


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_ddp_and_fsdp2_equal_single_process(tmp_path):
    # a file rendezvous: no port to race for with other test runs on the machine
    mp.spawn(_worker, args=(f"file://{tmp_path / 'rendezvous'}",), nprocs=WORLD, join=True)
