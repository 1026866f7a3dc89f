"""The demonstration with Keras 3: keras SGD / AdamW vs adamp_keras.SGDP / AdamP.

``model.compile(optimizer=AdamP())`` and ``fit``, on whichever Keras backend
KERAS_BACKEND names (tensorflow unless set).
"""

from __future__ import annotations

import adamp_keras
import keras
import numpy as np

from adamp_core import Branch
from demo.experiment import CHANNELS, NUM_CLASSES, Digits, History, OptimizerSpec, Schedule

NAME = "keras"
TOY_LAYOUT = "channels_last"
# The demo runs each epoch as one fit() call and reads the projection after it.
PROJECTED_SAMPLING = "the last training step of each epoch"


def toy_optimizer(weight: np.ndarray, *, lr: float, momentum: float, delta: float):
    """adamp_keras.SGDP stepping a (2, 1) variable: one output channel, Keras layout."""
    variable = keras.Variable(weight.astype("float32"), name="w")
    optimizer = adamp_keras.SGDP(learning_rate=lr, momentum=momentum, delta=delta)
    optimizer.build([variable])

    def step(grad: np.ndarray) -> np.ndarray:
        optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], [variable])
        return keras.ops.convert_to_numpy(variable).astype(np.float64)

    return step


def build_model() -> keras.Sequential:
    layers: list = [keras.Input((8, 8, 1))]
    for i, channels in enumerate(CHANNELS):
        layers += [
            keras.layers.Conv2D(
                channels,
                3,
                strides=1 if i == 0 else 2,
                padding="same",
                use_bias=False,
                name=f"conv{i}",
            ),
            keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
            keras.layers.ReLU(),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(NUM_CLASSES)]
    return keras.Sequential(layers)


def make_optimizer(spec: OptimizerSpec):
    if spec.family == "sgd":
        if spec.projected:
            return adamp_keras.SGDP(learning_rate=spec.lr, momentum=spec.momentum)
        return keras.optimizers.SGD(learning_rate=spec.lr, momentum=spec.momentum)
    if spec.projected:
        return adamp_keras.AdamP(learning_rate=spec.lr, weight_decay=spec.weight_decay)
    return keras.optimizers.AdamW(
        learning_rate=spec.lr, weight_decay=spec.weight_decay, epsilon=1e-8
    )


def projected_fraction(optimizer, kernels) -> float:
    branches = optimizer.projection_branches()
    return float(np.mean([branches[k.path] != Branch.NONE for k in kernels]))


def train(spec: OptimizerSpec, digits: Digits, schedule: Schedule, progress) -> History:
    keras.utils.set_random_seed(schedule.seed)
    model = build_model()
    kernels = [layer.kernel for layer in model.layers if layer.name.startswith("conv")]
    history = History(spec.name, [k.path for k in kernels])
    optimizer = make_optimizer(spec)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    for epoch in range(schedule.epochs):
        lr = schedule.lr_at(spec.lr, epoch)
        optimizer.learning_rate = lr
        batches = list(digits.batches(epoch, schedule))
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        fit = model.fit(
            x,
            y,
            batch_size=schedule.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        # Read after fit: on the JAX backend, fit keeps variables stateless mid-epoch,
        # so this samples the epoch's last step rather than every step.
        fired = projected_fraction(optimizer, kernels) if spec.projected else 0.0
        _, accuracy = model.evaluate(digits.x_test, digits.y_test, verbose=0)
        norms = [float(np.linalg.norm(keras.ops.convert_to_numpy(k))) for k in kernels]
        history.record(
            spec,
            lr,
            norms,
            fired,
            accuracy,
            fit.history["loss"][0],
        )
        progress()
    return history
