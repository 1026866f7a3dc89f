"""The backend-specific steps against the generic ``keras.ops`` step, and optimizer strings.

On torch, float32/float64 variables step together in ``torch._foreach`` ops
(``adamp_keras._torch``); on JAX each variable steps through ``adamp_jax``'s leaf
function (``adamp_keras._jax``). Both must take the steps the generic
``keras.ops`` code takes (itself checked against the reference in
test_keras_reference.py), on every branch, with weight decay (and a variable
excluded from it), a channel axis other than the last, 1-D and zero-size
variables. TensorFlow runs the generic code only. Runs on whichever Keras
backend KERAS_BACKEND names.
"""

from __future__ import annotations

import adamp_keras
import keras
import numpy as np
import pytest
from adamp_keras._base import ProjectedOptimizer
from keras_helpers import (
    BACKEND,
    F32_ATOL,
    F32_RTOL,
    make_variables,
    steered,
    to_numpy,
)

# conv kernel, dense kernel, a kernel with channels on axis 0, bias, zero-size kernel
SHAPES = [(3, 3, 2, 4), (5, 3), (4, 6), (3,), (0, 3)]
CHANNEL_AXIS = {"w2": 0}
CONFIGS = [
    ("adamp", {}),
    ("adamp", {"nesterov": True}),
    ("sgdp", {"momentum": 0.9}),
    ("sgdp", {"momentum": 0.9, "nesterov": True}),
    ("sgdp", {"momentum": 0.9, "project_buffer": False, "dampening": 0.1}),
    ("sgdp", {"momentum": 0.0}),
]


def _optimizer(algorithm, kwargs):
    cls = adamp_keras.AdamP if algorithm == "adamp" else adamp_keras.SGDP
    lr = 0.01 if algorithm == "adamp" else 0.05
    return cls(learning_rate=lr, weight_decay=0.1, channel_axis=CHANNEL_AXIS, **kwargs)


def _grads(params, step):
    rng = np.random.default_rng(step)
    kinds = ["channel_orthogonal", "radial", "layer_only"]
    grads = []
    for i, p in enumerate(params):
        if p.ndim < 2 or p.size == 0:
            grads.append(rng.standard_normal(p.shape))
            continue
        kind = kinds[(step + i) % 3]
        axis = CHANNEL_AXIS.get(f"w{i}", -1)
        grads.append(steered(kind, p, rng, axis))
    return grads


def _run(algorithm, kwargs, steps=3):
    """Variables, optimizer variables and branch codes after ``steps`` steps."""
    params, variables = make_variables(SHAPES, seed=1)
    opt = _optimizer(algorithm, kwargs)
    opt.build(variables)
    opt.exclude_from_weight_decay(var_names=["w1"])
    branches = []
    for step in range(steps):
        grads = [
            keras.ops.convert_to_tensor(np.asarray(g, "float32")) for g in _grads(params, step)
        ]
        opt.apply(grads, variables)
        params = [to_numpy(v).astype(np.float64) for v in variables]
        branches.append(opt.projection_branches())
    return params, [to_numpy(v) for v in opt.variables], branches


def _generic_only(monkeypatch):
    """Make the optimizers take the generic keras.ops step on this backend."""
    monkeypatch.setattr(ProjectedOptimizer, "_jax_steps", lambda self: None)
    monkeypatch.setattr(
        ProjectedOptimizer,
        "_backend_update_step",
        keras.optimizers.Optimizer._backend_update_step,
    )


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow runs the generic step only")
@pytest.mark.parametrize(("algorithm", "kwargs"), CONFIGS)
def test_backend_step_matches_the_generic_step(algorithm, kwargs, monkeypatch):
    fast = _run(algorithm, kwargs)
    with monkeypatch.context() as patch:
        _generic_only(patch)
        generic = _run(algorithm, kwargs)
    for ours, theirs in zip(fast[0] + fast[1], generic[0] + generic[1], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=F32_RTOL, atol=F32_ATOL)
    assert fast[2] == generic[2]
    # the gradients made every branch happen on the projected kernels
    codes = {int(b) for step in fast[2] for b in step.values()}
    assert codes == {0, 1, 2}


@pytest.mark.skipif(BACKEND != "torch", reason="the multi-tensor step is the torch backend's")
@pytest.mark.parametrize("algorithm", ["adamp", "sgdp"])
def test_torch_steps_float32_variables_without_update_step(algorithm, monkeypatch):
    def refuse(self, gradient, variable, learning_rate):
        raise AssertionError(f"update_step called for {variable.path}")

    # _inputs opens the generic update_step (patching update_step itself would
    # make the class look like a subclass that overrides it)
    monkeypatch.setattr(ProjectedOptimizer, "_inputs", refuse)
    params, _, _ = _run(algorithm, {"momentum": 0.9} if algorithm == "sgdp" else {}, steps=1)
    assert not np.allclose(params[0], make_variables(SHAPES, seed=1)[0][0])


@pytest.mark.skipif(BACKEND != "torch", reason="the multi-tensor step is the torch backend's")
@pytest.mark.parametrize(
    ("rows", "channels", "fold"),
    [(4608, 512, 8), (18, 4, 2), (147, 64, 1), (64, 3072, 2), (1, 5, 1)],
    ids=["resnet-kernel", "small", "odd-rows", "wide", "one-row"],
)
def test_torch_channel_sums_fold_rows_into_columns_exactly(rows, channels, fold):
    """The per-channel sums over a folded ``(rows/k, k·channels)`` product are the
    plain column sums (float64: only the summation order differs)."""
    import torch
    from adamp_keras import _torch

    class Holder:  # the workspace cache lives in the optimizer's __dict__
        pass

    rng = np.random.default_rng(0)
    w, g, u = (torch.from_numpy(rng.standard_normal((rows, channels))) for _ in range(3))
    assert _torch._fold(rows, channels) == fold
    got = _torch._channel_stats(Holder(), w, g, u).numpy()
    w, g, u = w.numpy(), g.numpy(), u.numpy()
    products = [g * g, w * w, g * w, w * u]
    want = np.stack([p.sum(0) for p in products])
    # a sum of n terms in any order is within n·2⁻⁵³·Σ|terms| of the exact sum
    # (float64); both sides are such sums, so they differ by at most twice that
    bound = 2 * (rows + 1) * 2.0**-53 * np.stack([np.abs(p).sum(0) for p in products])
    assert np.all(np.abs(got - want) <= bound)


@pytest.mark.skipif(BACKEND != "jax", reason="adamp_jax's step is the JAX backend's")
def test_jax_backend_uses_the_adamp_jax_leaf_steps(monkeypatch):
    from adamp_jax import _steps

    calls = []
    for name in ("adamp_leaf_step", "sgdp_leaf_step"):
        original = getattr(_steps, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(_steps, name, counting)
    _run("adamp", {}, steps=1)
    _run("sgdp", {"momentum": 0.9}, steps=1)
    assert calls == ["adamp_leaf_step"] * len(SHAPES) + ["sgdp_leaf_step"] * len(SHAPES)


@pytest.mark.parametrize(
    ("identifier", "cls"),
    [("adamp", "AdamP"), ("AdamP", "AdamP"), ("sgdp", "SGDP"), ("SGDP", "SGDP")],
)
def test_compile_accepts_the_optimizer_name(identifier, cls):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=identifier, loss="mse")
    assert type(model.optimizer) is getattr(adamp_keras, cls)
    x = np.ones((8, 4), "float32")
    before = to_numpy(model.layers[0].kernel)
    model.fit(x, np.zeros((8, 3), "float32"), epochs=1, verbose=0)
    assert not np.allclose(to_numpy(model.layers[0].kernel), before)
    # the saved name stays the registered one, so files load without the aliases
    assert keras.optimizers.serialize(model.optimizer)["registered_name"] == f"adamp_keras>{cls}"


@pytest.mark.parametrize("algorithm", ["adamp", "sgdp"])
def test_a_subclass_overriding_update_step_gets_it_called_per_variable(algorithm):
    cls = adamp_keras.AdamP if algorithm == "adamp" else adamp_keras.SGDP

    class Counting(cls):
        calls = 0

        def update_step(self, gradient, variable, learning_rate):
            Counting.calls += 1
            super().update_step(gradient, variable, learning_rate)

    _, variables = make_variables(SHAPES, seed=1)
    grads = [keras.ops.ones(v.shape) for v in variables]
    Counting(learning_rate=0.01).apply(grads, variables)
    assert Counting.calls == len(SHAPES)
