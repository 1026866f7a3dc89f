"""adamp_torch as a torch.optim optimizer: validation, state, schedulers, AMP, diagnostics."""

from __future__ import annotations

import copy
import inspect
import io
import re

import adamp
import adamp_torch
import numpy as np
import pytest
import torch
from gradients import make_gradient
from reference_runs import reference_run
from torch_helpers import float32_bounds

import adamp_core

F64 = torch.float64


def params64(seed=0, shapes=((4, 3), (5,), (2, 3, 2, 2))):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, dtype=F64, generator=gen)) for s in shapes]


def random_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, dtype=p.dtype, generator=gen)


# ---------------------------------------------------------------- drop-in signature


def _described(parameters):
    return [(p.name, p.kind, p.default, type(p.default)) for p in parameters]


@pytest.mark.parametrize(
    ("ours", "theirs"), [(adamp_torch.AdamP, adamp.AdamP), (adamp_torch.SGDP, adamp.SGDP)]
)
def test_signature_extends_the_authors(ours, theirs):
    """adamp 0.3.0's parameters come first, in its order, of the same kind, with the
    same defaults (value and type; SGDP's lr is torch's ``required``); ours add only
    keyword-only ones, so every call of theirs binds the same way to ours."""
    mine = list(inspect.signature(ours.__init__).parameters.values())
    authors = list(inspect.signature(theirs.__init__).parameters.values())
    assert _described(mine[: len(authors)]) == _described(authors)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in mine[len(authors) :])


# ---------------------------------------------------------------- validation

ADAMP_BAD = [
    (dict(lr=-1.0), "lr must be a finite number >= 0, got -1.0"),
    (dict(lr=float("nan")), "lr must be a finite number >= 0, got nan"),
    (dict(lr=torch.tensor(-0.5)), "lr must be a finite number >= 0, got -0.5"),
    (dict(lr=torch.ones(2)), "lr must be a float or a 1-element floating tensor"),
    (dict(betas=(1.0, 0.999)), "betas[0] must be a finite number in [0, 1), got 1.0"),
    (dict(betas=(0.9, -0.1)), "betas[1] must be a finite number in [0, 1), got -0.1"),
    (dict(betas=0.9), "betas must be a pair (beta1, beta2), got 0.9"),
    (dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),
    (dict(weight_decay=-1e-2), "weight_decay must be a finite number >= 0, got -0.01"),
    (dict(delta=-0.1), "delta must be a finite number >= 0, got -0.1"),
    (dict(wd_ratio=1.5), "wd_ratio must be a finite number in [0, 1], got 1.5"),
    (dict(nesterov=1), "nesterov must be True or False, got 1"),
    (dict(foreach="yes"), "foreach must be True or False, got 'yes'"),
    (dict(maximize=None), "maximize must be True or False, got None"),
    (dict(capturable=0), "capturable must be True or False, got 0"),
]
SGDP_BAD = [
    (dict(lr=-0.1), "lr must be a finite number >= 0, got -0.1"),
    (dict(momentum=1.0), "momentum must be a finite number in [0, 1), got 1.0"),
    (dict(dampening=1.5), "dampening must be a finite number in [0, 1], got 1.5"),
    (dict(eps=-1.0), "eps must be a finite number > 0, got -1.0"),
    (dict(weight_decay=float("inf")), "weight_decay must be a finite number >= 0, got inf"),
    (dict(delta="0.1"), "delta must be a finite number >= 0, got '0.1'"),
    (dict(wd_ratio=-0.1), "wd_ratio must be a finite number in [0, 1], got -0.1"),
    (dict(nesterov="no"), "nesterov must be True or False, got 'no'"),
    (dict(project_buffer=1), "project_buffer must be True or False, got 1"),
    (dict(foreach=2), "foreach must be True or False, got 2"),
    (dict(maximize="x"), "maximize must be True or False, got 'x'"),
    (dict(capturable=None), "capturable must be True or False, got None"),
]


@pytest.mark.parametrize(("kwargs", "message"), ADAMP_BAD)
def test_adamp_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        adamp_torch.AdamP(params64(), **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), SGDP_BAD)
def test_sgdp_validation_messages(kwargs, message):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        adamp_torch.SGDP(params64(), **kwargs)


def test_sgdp_lr_required_but_per_group_lr_accepted():
    with pytest.raises(ValueError, match=re.escape("lr is required by SGDP")):
        adamp_torch.SGDP(params64())
    opt = adamp_torch.SGDP([{"params": params64(), "lr": 0.1}])
    assert opt.param_groups[0]["lr"] == 0.1


def test_bad_param_group_is_rejected_and_not_added():
    opt = adamp_torch.AdamP(params64(0))
    with pytest.raises(ValueError, match=re.escape("wd_ratio must be")):
        opt.add_param_group({"params": params64(1), "wd_ratio": 2.0})
    assert len(opt.param_groups) == 1


def _coo_embedding():
    emb = torch.nn.Embedding(5, 4, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    return emb.weight


def _compressed(layout):
    """A parameter of ``layout`` with a gradient of that layout (torch allows no other
    pairing for the compressed layouts)."""

    def make():
        convert = {
            torch.sparse_csr: lambda t: t.to_sparse_csr(),
            torch.sparse_csc: lambda t: t.to_sparse_csc(),
            torch.sparse_bsr: lambda t: t.to_sparse_bsr((2, 2)),
            torch.sparse_bsc: lambda t: t.to_sparse_bsc((2, 2)),
        }[layout]
        p = torch.nn.Parameter(convert(torch.randn(4, 4)))
        p.grad = convert(torch.randn(4, 4))
        return p

    return make


SPARSE = [
    (torch.sparse_coo, _coo_embedding),
    *(
        (layout, _compressed(layout))
        for layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)
    ),
]


@pytest.mark.filterwarnings("ignore:Sparse (CSR|CSC|BSR|BSC) tensor support is in beta")
@pytest.mark.parametrize(("layout", "make"), SPARSE)
@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
@pytest.mark.parametrize("groups", ["one group", "two groups"])
def test_sparse_gradients_are_rejected(cls, layout, make, groups):
    """Every sparse layout gets the same error, naming the layout, before any parameter
    steps or any state is created, also when a dense parameter comes first (in the same
    group or in an earlier one)."""
    dense = torch.nn.Parameter(torch.randn(3, 2))
    dense.grad = torch.randn(3, 2)
    before = dense.detach().clone()
    param = make()
    assert param.grad.layout is layout
    params = [dense, param] if groups == "one group" else [{"params": [dense]}, {"params": [param]}]
    opt = cls(params, lr=0.1)
    message = f"{cls.__name__} does not support sparse gradients, got one of layout {layout}"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        opt.step()
    assert not opt.state
    assert torch.equal(dense, before)


# ---------------------------------------------------------------- optimizer protocol


@pytest.mark.parametrize("foreach", [True, False, "fused"])
def test_param_groups_use_their_own_hyperparameters(foreach):
    a, b = params64(1), params64(2)
    path = dict(fused=True) if foreach == "fused" else dict(foreach=foreach)
    joint = adamp_torch.AdamP(
        [{"params": a}, {"params": b, "lr": 0.3, "weight_decay": 0.2, "nesterov": True}],
        lr=0.1,
        **path,
    )
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    sep = [
        adamp_torch.AdamP(a2, lr=0.1),
        adamp_torch.AdamP(b2, lr=0.3, weight_decay=0.2, nesterov=True),
    ]
    for t in range(3):
        random_grads(a + b, t)
        random_grads(a2 + b2, t)
        joint.step()
        for o in sep:
            o.step()
    for x, y in zip(a + b, a2 + b2, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-15)


def test_closure_is_called_with_grad_enabled_and_loss_returned():
    w = torch.nn.Parameter(torch.randn(3, 4, dtype=F64))
    opt = adamp_torch.AdamP([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() > 0
    assert float(opt.state[w]["step"]) == 1


@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
def test_none_gradient_skips_the_parameter(cls):
    ps = params64()
    opt = cls(ps, lr=0.1)
    before = ps[1].detach().clone()
    random_grads(ps, 0)
    ps[1].grad = None
    opt.step()
    assert len(opt.state[ps[1]]) == 0
    torch.testing.assert_close(ps[1].detach(), before, rtol=0, atol=0)
    assert opt.projection_branches()[ps[1]] is adamp_core.Branch.NONE
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    opt.step()  # nothing has a gradient: a no-op


def test_step_hooks_run():
    ps = params64()
    opt = adamp_torch.SGDP(ps, lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    random_grads(ps, 0)
    opt.step()
    assert calls == ["pre", "post"]


@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
def test_deepcopy_is_independent(cls):
    ps = params64()
    opt = cls(ps, lr=0.1, momentum=0.9) if cls is adamp_torch.SGDP else cls(ps, lr=0.1)
    random_grads(ps, 0)
    opt.step()
    ps2, opt2 = copy.deepcopy((ps, opt))
    for step_ps, step_opt in ((ps, opt), (ps2, opt2)):
        random_grads(step_ps, 1)
        step_opt.step()
    for x, y in zip(ps, ps2, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    random_grads(ps2, 2)
    opt2.step()
    assert not torch.equal(ps[0], ps2[0])


# ---------------------------------------------------------------- checkpoints


def _run(opt, ps, seeds):
    for s in seeds:
        random_grads(ps, s)
        opt.step()


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (adamp_torch.AdamP, adamp.AdamP, dict(lr=0.1, weight_decay=0.1)),
        (adamp_torch.SGDP, adamp.SGDP, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ],
)
@pytest.mark.parametrize("foreach", [True, False])
def test_authors_checkpoint_loads_and_continues(ours, theirs, kwargs, foreach):
    ps_a = params64()
    opt_a = theirs(ps_a, **kwargs)
    _run(opt_a, ps_a, [0, 1])
    saved = copy.deepcopy(opt_a.state_dict())
    ps_b = [torch.nn.Parameter(p.detach().clone()) for p in ps_a]
    _run(opt_a, ps_a, [2, 3])
    opt_b = ours(ps_b, foreach=foreach, **kwargs)
    opt_b.load_state_dict(saved)
    _run(opt_b, ps_b, [2, 3])
    for x, y in zip(ps_a, ps_b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
@pytest.mark.parametrize("foreach", [True, False])
def test_own_checkpoint_loads_with_weights_only(cls, foreach):
    ps = params64()
    opt = cls(ps, lr=0.1, foreach=foreach)
    _run(opt, ps, [0, 1])
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    ps2 = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt2 = cls(ps2, lr=0.1, foreach=foreach)
    opt2.load_state_dict(loaded)
    assert opt2.projection_branches() == {
        q: b for q, b in zip(ps2, opt.projection_branches().values(), strict=True)
    }
    assert all(opt2.state[q]["projection"].dtype == torch.int64 for q in ps2)
    _run(opt, ps, [2])
    _run(opt2, ps2, [2])
    for x, y in zip(ps, ps2, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


# ---------------------------------------------------------------- schedulers and AMP


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (adamp_torch.AdamP, adamp.AdamP, dict(lr=0.1, weight_decay=0.1)),
        (adamp_torch.SGDP, adamp.SGDP, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ],
)
def test_one_cycle_with_cycle_momentum_matches_authors(ours, theirs, kwargs):
    """OneCycleLR cycles betas[0] (AdamP) or momentum (SGDP); both codes read them each step."""
    runs = []
    for cls in (ours, theirs):
        ps = params64()
        opt = cls(ps, **kwargs)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.5, total_steps=6, cycle_momentum=True
        )
        seen = set()
        for t in range(5):
            random_grads(ps, t)
            opt.step()
            sched.step()
            group = opt.param_groups[0]
            seen.add(group["betas"][0] if "betas" in group else group["momentum"])
        assert len(seen) > 2
        runs.append(ps)
    for x, y in zip(*runs, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)


def _small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3),
        torch.nn.BatchNorm2d(6),
        torch.nn.Flatten(),
        torch.nn.Linear(54, 4),
    )


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
def test_grad_scaler_with_autocast_matches_reference_on_unscaled_grads(cls, amp_dtype, fused):
    """Four GradScaler + autocast steps, the second with an inf gradient, against
    adamp_core stepping float64 copies of the initial weights with the scaled
    gradients divided by the scale by hand (exact: a power of two) and that step
    skipped. The scaler must unscale before our step (fused: hand us grad_scale and
    found_inf), skip it on inf and halve its scale; float32 parameters, so within the
    float32 rounding bound."""
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    model = _small_model()
    start = [p.detach().double().numpy() for p in model.parameters()]
    opt = cls(model.parameters(), lr=0.05, weight_decay=0.1, fused=fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=100)
    unscaled, scales = [], []
    for t in range(4):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=amp_dtype):
            loss = model(x).float().square().mean()
        scaler.scale(loss).backward()
        if t == 1:
            next(model.parameters()).grad[0, 0, 0, 0] = float("inf")
        else:
            scale = scaler.get_scale()
            unscaled.append([p.grad.double().numpy() / scale for p in model.parameters()])
        scales.append(scaler.get_scale())
        scaler.step(opt)
        scaler.update()
    assert scales == [2.0**10, 2.0**10, 2.0**9, 2.0**9]
    name = cls.__name__.lower()
    history = reference_run(name, start, unscaled, lr=0.05, weight_decay=0.1).history
    params = list(model.parameters())
    for p, ref, bound in zip(params, history[-1], float32_bounds(history), strict=True):
        assert p.dtype == torch.float32
        np.testing.assert_allclose(p.detach().double().numpy(), ref, rtol=0, atol=bound)
    if cls is adamp_torch.AdamP:
        assert all(float(opt.state[p]["step"]) == 3 for p in params)


# ---------------------------------------------------------------- diagnostics


@pytest.mark.parametrize("cls", [adamp_torch.AdamP, adamp_torch.SGDP])
@pytest.mark.parametrize("foreach", [True, False])
def test_projection_branches_report_each_branch(cls, foreach):
    rng = np.random.default_rng(0)
    shapes = [(4, 6), (3, 2, 2, 2), (5, 7), (6,), (1, 1)]
    kinds = ["channel_orthogonal", "layer_orthogonal", "random", "random", "zero"]
    arrays = [rng.normal(size=s) for s in shapes]
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    never = torch.nn.Parameter(torch.zeros(3, 3, dtype=F64))
    opt = cls([*ps, never], lr=0.1, foreach=foreach)
    assert set(opt.projection_branches().values()) == {adamp_core.Branch.NONE}
    grads = [
        make_gradient(k, rng.normal(size=a.shape), a) for k, a in zip(kinds, arrays, strict=True)
    ]
    for p, g in zip(ps, grads, strict=True):
        p.grad = torch.tensor(g)
    opt.step()
    expected = [
        adamp_core.projection(a, g, g, delta=0.1, wd_ratio=0.1, eps=1e-8).branch
        for a, g in zip(arrays, grads, strict=True)
    ]
    assert expected[:3] == [adamp_core.Branch.CHANNEL, adamp_core.Branch.LAYER, 0]
    branches = opt.projection_branches()
    assert [branches[p] for p in ps] == expected
    assert branches[never] is adamp_core.Branch.NONE
    code = opt.state[ps[0]]["projection"]
    assert code.dim() == 0 and code.dtype == torch.int64 and code.device == ps[0].device


def test_zero_lr_zero_grad_step_changes_nothing():
    """The state-creating step of distributed checkpointing: lr = 0 and zero gradients."""
    for cls in (adamp_torch.AdamP, adamp_torch.SGDP):
        for foreach in (True, False):
            ps = params64()
            ps.append(torch.nn.Parameter(torch.zeros(3, 2, dtype=F64)))
            before = [p.detach().clone() for p in ps]
            opt = cls(ps, lr=0.0, weight_decay=0.1, foreach=foreach)
            for p in ps:
                p.grad = torch.zeros_like(p)
            opt.step()
            for p, b in zip(ps, before, strict=True):
                assert torch.equal(p, b)
