"""The Keras optimizer features around the AdamP/SGDP step, against the reference.

Learning-rate schedules and callables, gradient clipping (clipnorm, clipvalue,
global_clipnorm), EMA, gradient accumulation, LossScaleOptimizer and the
mixed_float16 policy, bfloat16 variables, argument validation and config
serialisation. Runs on whichever Keras backend KERAS_BACKEND names.
"""

from __future__ import annotations

import re

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
    make_variables,
    steered,
    to_numpy,
)

from adamp_core import Branch

SHAPES = [(3, 3, 2, 4), (5, 3), (3,)]


def _grads(params, rng, step):
    kinds = ["channel_orthogonal", "radial", "layer_only"]
    return [
        steered(kinds[(step + i) % 3], p, rng) if p.ndim > 1 else rng.standard_normal(p.shape)
        for i, p in enumerate(params)
    ]


def _tensors(grads, dtype="float32"):
    return [keras.ops.convert_to_tensor(np.asarray(g, dtype=dtype)) for g in grads]


def _assert_close(variables, params, rtol=F32_RTOL, atol=F32_ATOL):
    for v, p in zip(variables, params, strict=True):
        np.testing.assert_allclose(to_numpy(v).astype(np.float64), p, rtol=rtol, atol=atol)


@pytest.mark.parametrize("form", ["schedule", "callable"])
def test_learning_rate_schedule_and_callable(form):
    params, variables = make_variables(SHAPES)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5)
    learning_rate = schedule if form == "schedule" else (lambda: 0.03)
    optimizer = adamp_keras.AdamP(learning_rate=learning_rate, weight_decay=0.1)
    reference = keras_reference(params, "adamp", weight_decay=0.1)
    rng = np.random.default_rng(1)
    for step in range(3):
        grads = _grads(reference.params, rng, step)
        optimizer.apply(_tensors(grads), variables)
        lr = 0.05 * 0.5**step if form == "schedule" else 0.03
        reference.step(grads, lr=lr)
        _assert_close(variables, reference.params)


def _clip(grads, mode, value):
    if mode == "clipnorm":
        return [g * value / max(np.linalg.norm(g), value) for g in grads]
    if mode == "clipvalue":
        return [np.clip(g, -value, value) for g in grads]
    total = np.sqrt(sum(np.sum(g * g) for g in grads))
    return [g * value / max(total, value) for g in grads]


@pytest.mark.parametrize("mode", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_gradient_clipping(mode):
    params, variables = make_variables(SHAPES, seed=2)
    optimizer = adamp_keras.SGDP(learning_rate=0.05, momentum=0.9, weight_decay=0.1, **{mode: 0.5})
    reference = keras_reference(params, "sgdp", lr=0.05, momentum=0.9, weight_decay=0.1)
    rng = np.random.default_rng(3)
    for step in range(3):
        grads = _grads(reference.params, rng, step)
        optimizer.apply(_tensors(grads), variables)
        reference.step(_clip(grads, mode, 0.5))
        _assert_close(variables, reference.params)


def test_ema_tracks_the_reference_trajectory():
    """average = w after step 1, then 0.9·average + 0.1·w; finalize writes it to the model."""
    params, variables = make_variables(SHAPES, seed=4)
    optimizer = adamp_keras.AdamP(learning_rate=0.05, use_ema=True, ema_momentum=0.9)
    reference = keras_reference(params, "adamp", lr=0.05)
    rng = np.random.default_rng(5)
    average = None
    for step in range(3):
        grads = _grads(reference.params, rng, step)
        optimizer.apply(_tensors(grads), variables)
        reference.step(grads)
        if average is None:
            average = [p.copy() for p in reference.params]
        else:
            average = [0.9 * a + 0.1 * p for a, p in zip(average, reference.params, strict=True)]
    _assert_close(variables, reference.params)
    optimizer.finalize_variable_values(variables)
    _assert_close(variables, average)


def test_gradient_accumulation_equals_one_step_with_the_mean_gradient():
    params, variables = make_variables(SHAPES, seed=6)
    optimizer = adamp_keras.AdamP(
        learning_rate=0.05, weight_decay=0.2, gradient_accumulation_steps=2
    )
    reference = keras_reference(params, "adamp", lr=0.05, weight_decay=0.2)
    rng = np.random.default_rng(7)
    for step in range(2):
        first = _grads(reference.params, rng, step)
        second = _grads(reference.params, rng, step)
        optimizer.apply(_tensors(first), variables)
        _assert_close(variables, reference.params)  # nothing moves between updates
        optimizer.apply(_tensors(second), variables)
        reference.step([(a + b) / 2 for a, b in zip(first, second, strict=True)])
        _assert_close(variables, reference.params)
        branches = optimizer.projection_branches()
        assert [branches[v.path] for v in variables] == reference.branches


def _stateless_apply(optimizer, grads, variables):
    """The JAX way (Keras: "LossScaleOptimizer must use stateless_apply with JAX")."""
    if not optimizer.built:  # LossScaleOptimizer.build adds its variables again each call
        optimizer.build(variables)
    new_values, new_state = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    for v, value in zip([*variables, *optimizer.variables], [*new_values, *new_state], strict=True):
        v.assign(value)


def _loss_scale_apply(optimizer, grads, variables):
    if keras.backend.backend() == "jax":
        _stateless_apply(optimizer, grads, variables)
    else:
        optimizer.apply(grads, variables)


# SGDP's step is linear in g; AdamP's is nearly invariant to the scale of g unless
# epsilon is comparable to |g| (~1 here), so it runs with epsilon = 0.1
LOSS_SCALE_CASES = {
    "sgdp": (
        lambda: adamp_keras.SGDP(learning_rate=0.05, momentum=0.9, weight_decay=0.1),
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
    ),
    "adamp": (
        lambda: adamp_keras.AdamP(learning_rate=0.05, weight_decay=0.1, epsilon=0.1),
        {"lr": 0.05, "weight_decay": 0.1, "eps": 0.1},
    ),
}


@pytest.mark.parametrize("name", list(LOSS_SCALE_CASES))
def test_loss_scale_optimizer_unscales_before_the_step(name):
    """The wrapped optimizer must step on g, not on the scaled 1024·g; the reference run
    on 1024·g shows that skipping the unscaling would move w by far more than the
    tolerance. Scaling and unscaling by 2¹⁰ are exact in float32 (no overflow or
    underflow at |g| ~ 1), so the wrapped step sees exactly g: float32 tolerance."""
    make, hyper = LOSS_SCALE_CASES[name]
    params, variables = make_variables(SHAPES, seed=8)
    inner = make()
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0)
    reference = keras_reference(params, name, **hyper)
    scaled_reference = keras_reference(params, name, **hyper)  # what a missing unscale computes
    rng = np.random.default_rng(9)
    for step in range(2):
        grads = _grads(reference.params, rng, step)
        _loss_scale_apply(optimizer, _tensors([1024.0 * g for g in grads]), variables)
        reference.step(grads)
        scaled_reference.step([1024.0 * g for g in grads])
        _assert_close(variables, reference.params)
    missed = max(
        np.max(np.abs(a - b))
        for a, b in zip(reference.params, scaled_reference.params, strict=True)
    )
    assert missed > 1000 * F32_ATOL
    branches = inner.projection_branches()
    assert [branches[v.path] for v in variables] == reference.branches
    assert int(to_numpy(inner.iterations)) == 2


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_loss_scale_optimizer_skips_a_step_with_non_finite_gradients(bad):
    """A gradient with inf or nan: the step is skipped (weights, the wrapped optimizer's
    state and its iterations unchanged), the loss scale halves, and the next finite step
    continues the reference trajectory unscaled by the new scale."""
    make, hyper = LOSS_SCALE_CASES["sgdp"]
    params, variables = make_variables(SHAPES, seed=12)
    inner = make()
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=1024.0)
    reference = keras_reference(params, "sgdp", **hyper)
    rng = np.random.default_rng(13)
    grads = _grads(reference.params, rng, 0)
    _loss_scale_apply(optimizer, _tensors([1024.0 * g for g in grads]), variables)
    reference.step(grads)
    before = [to_numpy(v) for v in [*variables, *inner.variables]]

    poisoned = [1024.0 * g for g in _grads(reference.params, rng, 1)]
    poisoned[1][0, 0] = bad
    _loss_scale_apply(optimizer, _tensors(poisoned), variables)
    after = [to_numpy(v) for v in [*variables, *inner.variables]]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(to_numpy(inner.iterations)) == 1
    assert float(to_numpy(optimizer.dynamic_scale)) == 512.0

    grads = _grads(reference.params, rng, 2)
    _loss_scale_apply(optimizer, _tensors([512.0 * g for g in grads]), variables)
    reference.step(grads)
    _assert_close(variables, reference.params)
    assert int(to_numpy(inner.iterations)) == 2


class RecordingAdamP(adamp_keras.AdamP):
    """AdamP that keeps, in optimizer variables, the gradient each variable's last step got
    (so that it can be read after a compiled fit step on every backend)."""

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.recorded = self.add_optimizer_variables(variables, "recorded_gradient")

    def update_step(self, gradient, variable, learning_rate):
        self.assign(self.recorded[self._get_variable_index(variable)], gradient)
        super().update_step(gradient, variable, learning_rate)


def _conv_bn(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = conv_bn_model(head_dtype="float32")
        optimizer = RecordingAdamP(learning_rate=0.01, weight_decay=0.01)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    finally:
        keras.config.set_dtype_policy(previous)
    return model, optimizer


def test_mixed_float16_fit_matches_reference_on_the_float32_weights():
    """Under mixed_float16 compile() wraps the optimizer in a LossScaleOptimizer and the
    layers compute in float16 on float32 master weights. Each fit() step is compared with
    the reference stepping the master weights on the (unscaled) gradient the step got:
    both are float32 and float16 rounding lives only in that shared gradient, so the
    float32 tolerance applies. The first gradient is also compared with the
    float32-policy gradient at the same weights, which checks the unscaling inside fit:
    a missing (or doubled) unscale is off by the loss scale, 2¹⁵. The float16 compute
    (unit roundoff 2⁻¹¹ = 4.9e-4) moves it by a norm-wise relative 3e-4 or less for
    batch norm and the head on every backend; the conv kernel's gradient, a sum of
    32·8·8 = 2048 products of float16-rounded terms from which batch norm's backward
    has cancelled the mean and radial parts, is off by 8e-4 (tensorflow), 5e-3 (jax)
    and 6.4e-2 (torch, eager: each op rounds its output to float16). Checked at 0.2:
    3x the worst measured, 1e-5 of the failure."""
    model, optimizer = _conv_bn("mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    kernel = model.get_layer("conv").kernel
    assert keras.backend.standardize_dtype(kernel.dtype) == "float32"
    x, y = digits_like(n=32)
    initial = model.get_weights()
    trainable = model.trainable_variables
    reference = keras_reference(
        [to_numpy(w) for w in trainable], "adamp", lr=0.01, weight_decay=0.01
    )
    for step in range(3):
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        assert int(to_numpy(optimizer.iterations)) == step + 1  # no step was skipped
        grads = [to_numpy(r).astype(np.float64) for r in optimizer.recorded]
        if step == 0:
            first = grads
        reference.step(grads)
        _assert_close(trainable, reference.params)
        branches = optimizer.projection_branches()
        assert [branches[v.path] for v in trainable] == reference.branches
        assert branches[kernel.path] is Branch.CHANNEL

    float32_model, float32_optimizer = _conv_bn("float32")
    float32_model.set_weights(initial)
    float32_model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for mixed, exact in zip(first, float32_optimizer.recorded, strict=True):
        exact = to_numpy(exact).astype(np.float64)
        assert np.linalg.norm(mixed - exact) <= 0.2 * np.linalg.norm(exact)


@pytest.mark.parametrize("cls", ["adamp", "sgdp"])
def test_bfloat16_variables(cls):
    """bfloat16 variables and state; the step is computed in float32 and rounded once.

    Tolerance: bfloat16 has an 8-bit significand, unit roundoff u = 2⁻⁸. Each of the
    3 steps rounds w (relative u) and the stored moments (relative u, entering the
    update of size lr = 0.05 only), so |error| <= 3u·|w| + small: rtol = 3·2⁻⁸ (1.2%),
    while a wrong term moves w by ~lr = 5%.
    """
    params, variables = make_variables(SHAPES, seed=10, dtype="bfloat16")
    if cls == "adamp":
        optimizer = adamp_keras.AdamP(learning_rate=0.05, weight_decay=0.2)
    else:
        optimizer = adamp_keras.SGDP(learning_rate=0.05, momentum=0.9, weight_decay=0.2)
    hyper = {"adamp": {}, "sgdp": {"momentum": 0.9}}[cls]
    reference = keras_reference(params, cls, lr=0.05, weight_decay=0.2, **hyper)
    rng = np.random.default_rng(11)
    for step in range(3):
        grads = _grads(reference.params, rng, step)
        optimizer.apply(_tensors(grads, "float32"), variables)
        reference.step(grads)
    _assert_close(variables, reference.params, rtol=3 * 2.0**-8, atol=1e-3)
    states = [v for v in optimizer.variables if "exp_avg" in v.name or "buffer" in v.name]
    assert states
    assert {keras.backend.standardize_dtype(v.dtype) for v in states} == {"bfloat16"}


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (adamp_keras.AdamP, {"learning_rate": -1.0}, "learning_rate"),
        (adamp_keras.AdamP, {"beta_1": 1.0}, "beta_1"),
        (adamp_keras.AdamP, {"beta_2": -0.1}, "beta_2"),
        (adamp_keras.AdamP, {"epsilon": 0.0}, "epsilon"),
        (adamp_keras.AdamP, {"weight_decay": -1e-4}, "weight_decay"),
        (adamp_keras.AdamP, {"delta": float("nan")}, "delta"),
        (adamp_keras.AdamP, {"wd_ratio": 1.5}, "wd_ratio"),
        (adamp_keras.AdamP, {"nesterov": 1}, "nesterov"),
        (adamp_keras.AdamP, {"channel_axis": "last"}, "channel_axis"),
        (adamp_keras.SGDP, {"momentum": 1.0}, "momentum"),
        (adamp_keras.SGDP, {"dampening": 2.0}, "dampening"),
        (adamp_keras.SGDP, {"learning_rate": float("inf")}, "learning_rate"),
        (adamp_keras.SGDP, {"project_buffer": "yes"}, "project_buffer"),
        (adamp_keras.SGDP, {"channel_axis": {"kernel": 1.5}}, "channel_axis"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(cls, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        cls(**kwargs)


def test_channel_axis_out_of_range_is_reported_at_build():
    _, variables = make_variables([(4, 3)])
    optimizer = adamp_keras.AdamP(channel_axis=2)
    message = (
        f"channel_axis for {variables[0].path!r} must be an integer in [-2, 2) for a 2-D "
        "parameter, got 2"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        optimizer.build(variables)


def test_base_keyword_arguments_pass_through():
    optimizer = adamp_keras.SGDP(
        learning_rate=0.1,
        name="my_sgdp",
        clipnorm=1.0,
        use_ema=True,
        ema_momentum=0.5,
        ema_overwrite_frequency=3,
        loss_scale_factor=2.0,
        gradient_accumulation_steps=4,
    )
    config = optimizer.get_config()
    expected = {
        "name": "my_sgdp",
        "clipnorm": 1.0,
        "use_ema": True,
        "ema_momentum": 0.5,
        "ema_overwrite_frequency": 3,
        "loss_scale_factor": 2.0,
        "gradient_accumulation_steps": 4,
    }
    assert {k: config[k] for k in expected} == expected
    with pytest.raises(ValueError, match="not recognized"):
        adamp_keras.AdamP(no_such_argument=1)


@pytest.mark.parametrize(
    "optimizer",
    [
        adamp_keras.AdamP(
            learning_rate=0.02,
            beta_1=0.8,
            beta_2=0.99,
            epsilon=1e-6,
            weight_decay=0.3,
            delta=0.2,
            wd_ratio=0.5,
            nesterov=True,
            channel_axis={"custom": 0},
            global_clipnorm=2.0,
        ),
        adamp_keras.SGDP(
            learning_rate=keras.optimizers.schedules.CosineDecay(0.1, 100),
            momentum=0.9,
            dampening=0.1,
            nesterov=False,
            weight_decay=1e-4,
            project_buffer=False,
            channel_axis=None,
        ),
    ],
    ids=["adamp", "sgdp"],
)
def test_config_round_trips_without_custom_objects(optimizer):
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == f"adamp_keras>{type(optimizer).__name__}"
    restored = keras.optimizers.deserialize(serialized)
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


def test_defaults_are_the_papers():
    adamp = adamp_keras.AdamP().get_config()
    assert {k: adamp[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon")} == {
        "learning_rate": float(np.float32(0.001)),  # held in a float32 variable
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-8,
    }
    sgdp = adamp_keras.SGDP().get_config()
    assert (sgdp["momentum"], sgdp["dampening"], sgdp["project_buffer"]) == (0.0, 0.0, True)
    for config in (adamp, sgdp):
        assert (config["delta"], config["wd_ratio"], config["channel_axis"]) == (0.1, 0.1, -1)
        assert config["weight_decay"] is None


def test_embedding_fit_with_sparse_gradients():
    """An Embedding table's gradient is sparse on TensorFlow (IndexedSlices); the update
    densifies it. The table (vocab, dim) is projected per column like any 2-D kernel."""
    model = _embedding_model()
    optimizer = adamp_keras.AdamP(learning_rate=0.01, weight_decay=0.1)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (16, 4)).astype("int32"), rng.integers(0, 3, 16)
    table = to_numpy(model.get_layer("embed").embeddings)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = to_numpy(model.get_layer("embed").embeddings)
    unused = np.setdiff1d(np.arange(20), x)
    assert unused.size and np.all(np.isfinite(after))
    # rows never looked up get no gradient but still decay (decoupled decay is dense)
    assert not np.array_equal(after[unused], table[unused])


def _embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(20, 6, name="embed"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3),
        ]
    )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="only TensorFlow hands the optimizer sparse (IndexedSlices) gradients",
)
def test_embedding_sparse_gradient_matches_reference():
    """fit() on TensorFlow, where the Embedding gradient reaches the optimizer as
    IndexedSlices with repeated indices, against the reference stepping on the dense
    gradient that tf.convert_to_tensor makes of the same slices (duplicates summed),
    taken with a GradientTape at the weights before each step. float32 tolerance: the
    rows hold sums of at most 16 lookups."""
    import tensorflow as tf

    model = _embedding_model()
    optimizer = adamp_keras.AdamP(learning_rate=0.01, weight_decay=0.1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (16, 4)).astype("int32"), rng.integers(0, 3, 16)
    assert len(np.unique(x)) < x.size  # repeated indices: the scatter must sum them
    reference = keras_reference([to_numpy(w) for w in model.trainable_weights], "adamp", lr=0.01,
                          weight_decay=0.1)  # fmt: skip
    for _ in range(3):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_weights)
        assert isinstance(grads[0], tf.IndexedSlices)
        reference.step([tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads])
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        _assert_close(model.trainable_weights, reference.params)
    branches = optimizer.projection_branches()
    assert [branches[w.path] for w in model.trainable_weights] == reference.branches
