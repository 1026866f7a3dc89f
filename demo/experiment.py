"""What the demonstration trains, shared by every backend.

A small convolutional network with batch normalisation on scikit-learn's 8x8
digits (shipped with scikit-learn, no download). Its convolution weights are
followed by BatchNorm, so they are scale-invariant: exactly the weights AdamP
and SGDP are for. Each optimizer pair differs only in the projection:

- SGD vs SGDP: momentum 0.9, no weight decay. With weight decay 0 and
  dampening 0, SGDP without the projection *is* SGD with momentum.
- AdamW vs AdamP: the same decoupled weight decay; AdamW is AdamP without the
  projection (torch and optax add ε after the bias correction, as AdamP does).

The baselines are each framework's own optimizers, so two Keras details differ
from an exact ablation: Keras's AdamW adds ε before the bias correction, so its
denominator is (sqrt(v) + ε)/sqrt(1-β₂ᵗ) instead of sqrt(v)/sqrt(1-β₂ᵗ) + ε (a
relative change of ε·(1 - sqrt(1-β₂ᵗ))/sqrt(v), negligible unless the gradients
are within a few orders of magnitude of ε), and
Keras's SGD keeps lr inside its velocity, so a learning-rate change between
epochs reaches it one momentum horizon later than it reaches SGDP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CHANNELS = (16, 32, 32)  # three conv + BatchNorm + ReLU blocks
NUM_CLASSES = 10


@dataclass(frozen=True)
class OptimizerSpec:
    name: str  # "SGD", "SGDP", "AdamW", "AdamP"
    family: str  # "sgd" (effective step lr/||w||^2) or "adam" (lr/||w||)
    projected: bool
    lr: float
    weight_decay: float
    momentum: float = 0.9


OPTIMIZERS = (
    OptimizerSpec("SGD", "sgd", False, lr=0.1, weight_decay=0.0),
    OptimizerSpec("SGDP", "sgd", True, lr=0.1, weight_decay=0.0),
    OptimizerSpec("AdamW", "adam", False, lr=3e-3, weight_decay=1e-2),
    OptimizerSpec("AdamP", "adam", True, lr=3e-3, weight_decay=1e-2),
)


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int = 64
    seed: int = 0

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """Cosine decay over the epochs, the same for every optimizer."""
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))


@dataclass
class Digits:
    x_train: np.ndarray  # (n, 8, 8, 1) float32 in [0, 1], channels last
    y_train: np.ndarray  # (n,) int
    x_test: np.ndarray
    y_test: np.ndarray

    def batches(self, epoch: int, schedule: Schedule):
        """Shuffled mini-batches, the same order for every optimizer and backend."""
        order = np.random.default_rng((schedule.seed, epoch)).permutation(len(self.y_train))
        for start in range(0, len(order) - schedule.batch_size + 1, schedule.batch_size):
            idx = order[start : start + schedule.batch_size]
            yield self.x_train[idx], self.y_train[idx]


def load_digits(seed: int = 0) -> Digits:
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    split = int(0.75 * len(y))
    train, test = order[:split], order[split:]
    return Digits(x[train], y[train], x[test], y[test])


@dataclass
class History:
    """What one training run records, per epoch."""

    optimizer: str
    layer_names: list[str]
    weight_norms: list[list[float]] = field(default_factory=list)  # [epoch][layer]
    effective_steps: list[list[float]] = field(default_factory=list)  # [epoch][layer]
    projected_fraction: list[float] = field(default_factory=list)  # share of conv layers
    test_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)

    def record(self, spec: OptimizerSpec, lr: float, norms, projected, accuracy, loss) -> None:
        power = 2 if spec.family == "sgd" else 1
        self.weight_norms.append([float(n) for n in norms])
        self.effective_steps.append([lr / float(n) ** power for n in norms])
        self.projected_fraction.append(float(projected))
        self.test_accuracy.append(float(accuracy))
        self.train_loss.append(float(loss))
