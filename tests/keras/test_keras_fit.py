"""``model.compile(optimizer=AdamP())`` + ``fit`` with jit_compile off and on.

Runs once per Keras backend (the Makefile sets KERAS_BACKEND). A linear model
with an analytic gradient checks fit() against the reference step by step, under
losses that make the projection fire in the channel view, in the layer view, or
not at all; a conv net with batch normalisation checks that the projection fires
on its scale-invariant kernels inside a compiled train step.
"""

from __future__ import annotations

import adamp_keras
import keras
import numpy as np
import pytest
from keras_helpers import (
    F32_ATOL,
    F32_RTOL,
    conv_bn_model,
    digits_like,
    keras_reference,
    to_numpy,
)

from adamp_core import Branch

JIT = [pytest.param(False, id="eager"), pytest.param(True, id="jit")]


def _linear_data(n=16, d_in=5, d_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d_in)), rng.standard_normal((n, d_out))


def _column_cosine(y_true, y_pred):
    """-mean_j cos(y_pred[:, j], y_true[:, j]), each output column over the batch: invariant
    to scaling any one column of a bias-free kernel, so every column of its gradient is
    orthogonal to that column of the kernel."""
    dot = keras.ops.sum(y_true * y_pred, axis=0)
    norms = keras.ops.norm(y_true, axis=0) * keras.ops.norm(y_pred, axis=0)
    return -keras.ops.mean(dot / norms)


def _cosine_rows(y, t, axis):
    """d/dy of -mean cos(y, t) along ``axis`` (the other axis indexes the cosines)."""
    norm_y = np.linalg.norm(y, axis=axis, keepdims=True)
    t_unit = t / np.linalg.norm(t, axis=axis, keepdims=True)
    dot = np.sum(y * t_unit, axis=axis, keepdims=True)
    return -(t_unit / norm_y - dot * y / norm_y**3) / y.shape[1 - axis]


def _loss_grads(loss, params, x, y):
    """The analytic gradient of ``loss`` for the Dense layer's (kernel[, bias])."""
    if loss == "mse":  # mean((xW + b - y)²) over every entry (Keras's MeanSquaredError)
        kernel, bias = params
        residual = x @ kernel + bias - y
        scale = 2.0 / residual.size
        return [scale * x.T @ residual, scale * residual.sum(0)]
    (kernel,) = params
    # cosine_similarity: per sample (over the outputs), invariant to scaling the whole
    # kernel, so the gradient is orthogonal to the kernel as a whole: the layer view
    axis = 0 if loss == "column_cosine" else 1
    return [x.T @ _cosine_rows(x @ kernel, y, axis)]


LOSSES = {
    "mse": ("mse", Branch.NONE),
    "column_cosine": (_column_cosine, Branch.CHANNEL),
    "cosine_similarity": ("cosine_similarity", Branch.LAYER),
}


class _BranchesEachBatch(keras.callbacks.Callback):
    """Reads the diagnostics in the middle of fit(), as a user's callback would."""

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer, self.seen = optimizer, []

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()  # Keras's JAX trainer detaches values in fit()
        self.seen.append(self.optimizer.projection_branches())


@pytest.mark.parametrize("jit_compile", JIT)
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize(
    ("name", "kwargs", "hyper"),
    [
        ("adamp", {"learning_rate": 0.05, "weight_decay": 0.2}, {"lr": 0.05, "weight_decay": 0.2}),
        (
            "sgdp",
            {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        ),
    ],
)
def test_fit_matches_reference(name, kwargs, hyper, loss, jit_compile):
    """fit() of a Dense layer, step by step against the reference on the analytic
    gradient, with the projection firing inside the compiled train step: a loss that is
    scale-invariant per output column (CHANNEL) or in the whole kernel (LAYER), and MSE
    (NONE, with a bias). The branch is checked after every batch."""
    x, y = _linear_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=loss == "mse")])
    optimizer = (adamp_keras.AdamP if name == "adamp" else adamp_keras.SGDP)(**kwargs)
    keras_loss, branch = LOSSES[loss]
    model.compile(optimizer=optimizer, loss=keras_loss, jit_compile=jit_compile)
    reference = keras_reference([to_numpy(w) for w in model.weights], name, **hyper)
    callback = _BranchesEachBatch(optimizer)
    steps = 3
    model.fit(
        x.astype("float32"),
        y.astype("float32"),
        batch_size=16,
        epochs=steps,
        verbose=0,
        callbacks=[callback],
    )
    kernel = model.layers[0].kernel.path
    for seen in callback.seen:
        reference.step(_loss_grads(loss, reference.params, x, y))
        assert reference.branches[0] is branch
        assert seen[kernel] is branch
    assert len(callback.seen) == steps
    for w, ref in zip(model.weights, reference.params, strict=True):
        np.testing.assert_allclose(to_numpy(w), ref, rtol=F32_RTOL, atol=F32_ATOL)


def _fit_conv_bn(cls, jit_compile):
    x, y = digits_like()
    model = conv_bn_model()
    optimizer = cls(learning_rate=0.01, weight_decay=0.01)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    return model, optimizer


def _check_projection_fired(model, optimizer):
    """A conv kernel followed by batch norm is scale-invariant per output channel: the
    gradient is orthogonal to every filter (up to batch norm's epsilon), so the channel
    view fires on it; 1-D variables are never projected."""
    branches = optimizer.projection_branches()
    assert branches[model.get_layer("conv").kernel.path] is Branch.CHANNEL
    one_d = [w.path for w in model.trainable_weights if len(w.shape) == 1]
    assert len(one_d) == 3
    assert all(branches[path] is Branch.NONE for path in one_d)


def test_adamp_fit_conv_bn_eager_and_jit():
    """AdamP on a conv net with batch norm: the compiled and the eager train step agree
    and both project the conv kernel. Tolerance: XLA / torch.compile reorder float32
    reductions (u = 6e-8, conv sums of 9-72 terms); four Adam steps of lr 0.01 keep the
    difference below 1e-6, checked at 1e-5."""
    initial = [to_numpy(w) for w in conv_bn_model().trainable_weights]
    weights = {}
    for jit_compile in (False, True):
        model, optimizer = _fit_conv_bn(adamp_keras.AdamP, jit_compile)
        _check_projection_fired(model, optimizer)
        weights[jit_compile] = [to_numpy(w) for w in model.trainable_weights]
    for start, eager, jitted in zip(initial, weights[False], weights[True], strict=True):
        assert not np.allclose(start, eager)
        np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)


def test_sgdp_fit_conv_bn_projects():
    """SGDP in fit() on the same net (its compiled path, with the projection firing, is
    checked against the reference in test_fit_matches_reference)."""
    model, optimizer = _fit_conv_bn(adamp_keras.SGDP, jit_compile=False)
    _check_projection_fired(model, optimizer)


def test_projection_branches_inside_fit():
    """Diagnostics are readable from a callback after every batch, on every backend."""
    x, y = digits_like()
    model = conv_bn_model()
    optimizer = adamp_keras.AdamP(learning_rate=0.01)
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    callback = _BranchesEachBatch(optimizer)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    kernel = model.get_layer("conv").kernel.path
    assert len(callback.seen) == -(-len(x) // 16)
    assert all(seen[kernel] is Branch.CHANNEL for seen in callback.seen)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="only the JAX trainer detaches values in fit()"
)
def test_projection_branches_inside_jax_fit_without_sync_says_what_to_do():
    class Unsynced(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            optimizer.projection_branches()

    x, y = digits_like()
    model = conv_bn_model()
    optimizer = adamp_keras.AdamP(learning_rate=0.01)
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with pytest.raises(RuntimeError, match=r"call self\.model\.jax_state_sync\(\) first"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[Unsynced()])


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the step is inspected as a JAX program"
)
@pytest.mark.parametrize("name", ["AdamP", "SGDP"])
def test_jitted_step_with_diagnostics_has_no_host_callback(name):
    """The branch codes are optimizer variables written inside the step: the traced
    step (what fit() compiles) contains no callback to the host, and the code it
    writes is the one read afterwards. (A Python branch on a value would already fail
    to trace; a transfer guard proves nothing on the CPU, where it never fires.)"""
    import jax

    model = conv_bn_model()
    optimizer = getattr(adamp_keras, name)(learning_rate=0.01)
    variables = model.trainable_variables
    optimizer.build(variables)
    # zero gradients: cos = 0 in every row, so the kernel must report CHANNEL
    grads = [jax.numpy.zeros_like(v.value) for v in variables]
    state = [v.value for v in optimizer.variables]
    values = [v.value for v in variables]
    jaxpr = jax.make_jaxpr(optimizer.stateless_apply)(state, grads, values)
    primitives = {eqn.primitive.name for eqn in _all_equations(jaxpr.jaxpr)}
    # debug_callback, debug_print, pure_callback, io_callback: each runs Python on the host
    assert not {p for p in primitives if "callback" in p or "print" in p}, primitives
    new_values, new_state = jax.jit(optimizer.stateless_apply)(state, grads, values)
    for v, value in zip([*variables, *optimizer.variables], [*new_values, *new_state], strict=True):
        v.assign(value)
    assert optimizer.projection_branches()[model.get_layer("conv").kernel.path] is Branch.CHANNEL


def _all_equations(jaxpr):
    """Every equation of a jaxpr, including those of its sub-jaxprs (jit, cond, ...)."""
    from jax.extend.core import jaxprs_in_params

    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jaxprs_in_params(eqn.params):
            yield from _all_equations(sub)
