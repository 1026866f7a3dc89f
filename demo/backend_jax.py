"""The demonstration with JAX: optax.sgd / optax.adamw vs adamp_jax.sgdp / adamp_jax.adamp.

The network is plain JAX (NHWC activations, HWIO kernels: the Flax layout,
output channels last), with BatchNorm's running statistics kept beside the
parameters.
"""

from __future__ import annotations

import math

import adamp_jax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from adamp_core import Branch
from demo.experiment import CHANNELS, NUM_CLASSES, Digits, History, OptimizerSpec, Schedule

NAME = "jax"
TOY_LAYOUT = "channels_last"
PROJECTED_SAMPLING = "every training step"
BN_MOMENTUM, BN_EPS = 0.1, 1e-5


def toy_optimizer(weight: np.ndarray, *, lr: float, momentum: float, delta: float):
    """adamp_jax.sgdp stepping a (2, 1) weight: one output channel, Flax layout."""
    tx = adamp_jax.sgdp(lr, momentum=momentum, delta=delta)
    params = jnp.asarray(weight, dtype=jnp.float32)
    state = [params, tx.init(params)]

    @jax.jit
    def update(params, opt_state, grad):
        updates, opt_state = tx.update(grad, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def step(grad: np.ndarray) -> np.ndarray:
        state[:] = update(state[0], state[1], jnp.asarray(grad, dtype=jnp.float32))
        return np.asarray(state[0], dtype=np.float64)

    return step


def init_model(key):
    params, stats = {}, {}
    in_channels = 1
    for i, out_channels in enumerate(CHANNELS):
        key, sub = jax.random.split(key)
        bound = 1.0 / math.sqrt(9 * in_channels)  # PyTorch's default conv init
        params[f"conv{i}"] = {
            "kernel": jax.random.uniform(
                sub, (3, 3, in_channels, out_channels), minval=-bound, maxval=bound
            )
        }
        params[f"bn{i}"] = {"scale": jnp.ones(out_channels), "bias": jnp.zeros(out_channels)}
        stats[f"bn{i}"] = {"mean": jnp.zeros(out_channels), "var": jnp.ones(out_channels)}
        in_channels = out_channels
    key, sub = jax.random.split(key)
    bound = 1.0 / math.sqrt(in_channels)
    params["dense"] = {
        "kernel": jax.random.uniform(sub, (in_channels, NUM_CLASSES), minval=-bound, maxval=bound),
        "bias": jnp.zeros(NUM_CLASSES),
    }
    return params, stats


def forward(params, stats, x, train: bool):
    new_stats = {}
    for i in range(len(CHANNELS)):
        stride = 1 if i == 0 else 2
        x = jax.lax.conv_general_dilated(
            x,
            params[f"conv{i}"]["kernel"],
            (stride, stride),
            ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if train:
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
            old = stats[f"bn{i}"]
            new_stats[f"bn{i}"] = {
                "mean": (1 - BN_MOMENTUM) * old["mean"] + BN_MOMENTUM * mean,
                "var": (1 - BN_MOMENTUM) * old["var"] + BN_MOMENTUM * var,
            }
        else:
            mean, var = stats[f"bn{i}"]["mean"], stats[f"bn{i}"]["var"]
        bn = params[f"bn{i}"]
        x = jax.nn.relu((x - mean) / jnp.sqrt(var + BN_EPS) * bn["scale"] + bn["bias"])
    logits = x.mean(axis=(1, 2)) @ params["dense"]["kernel"] + params["dense"]["bias"]
    return logits, (new_stats if train else stats)


def make_optimizer(spec: OptimizerSpec, schedule: Schedule, steps_per_epoch: int):
    def lr(count):
        epoch = count // steps_per_epoch
        return spec.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / schedule.epochs))

    if spec.family == "sgd":
        if spec.projected:
            return adamp_jax.sgdp(lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
        return optax.sgd(lr, momentum=spec.momentum)
    if spec.projected:
        return adamp_jax.adamp(lr, weight_decay=spec.weight_decay)
    return optax.adamw(lr, weight_decay=spec.weight_decay, eps=1e-8)


def train(spec: OptimizerSpec, digits: Digits, schedule: Schedule, progress) -> History:
    params, stats = init_model(jax.random.PRNGKey(schedule.seed))
    conv_names = [f"conv{i}" for i in range(len(CHANNELS))]
    history = History(spec.name, [f"{n}/kernel" for n in conv_names])
    steps_per_epoch = len(digits.y_train) // schedule.batch_size
    tx = make_optimizer(spec, schedule, steps_per_epoch)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, stats, opt_state, x, y):
        def loss_fn(p):
            logits, new_stats = forward(p, stats, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_stats

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    @jax.jit
    def accuracy(params, stats, x, y):
        logits, _ = forward(params, stats, x, train=False)
        return (logits.argmax(-1) == y).mean()

    for epoch in range(schedule.epochs):
        losses, fired = [], []
        for xb, yb in digits.batches(epoch, schedule):
            params, stats, opt_state, loss = train_step(params, stats, opt_state, xb, yb)
            losses.append(loss)
            if spec.projected:
                branches = adamp_jax.projection_branches(opt_state)
                fired.append(np.mean([branches[n]["kernel"] != Branch.NONE for n in conv_names]))
        acc = accuracy(params, stats, digits.x_test, digits.y_test)
        norms = [float(jnp.linalg.norm(params[n]["kernel"])) for n in conv_names]
        history.record(
            spec,
            schedule.lr_at(spec.lr, epoch),
            norms,
            np.mean(fired) if fired else 0.0,
            float(acc),
            float(np.mean(np.asarray(losses))),
        )
        progress()
    return history
