"""The demonstration with PyTorch: torch.optim.SGD / AdamW vs adamp_torch.SGDP / AdamP."""

from __future__ import annotations

import adamp_torch
import numpy as np
import torch
from torch import nn

from adamp_core import Branch
from demo.experiment import CHANNELS, NUM_CLASSES, Digits, History, OptimizerSpec, Schedule

NAME = "torch"


def toy_optimizer(weight: np.ndarray, *, lr: float, momentum: float, delta: float):
    """An SGDP stepping a (1, 2) weight, one output channel in PyTorch layout."""
    param = nn.Parameter(torch.tensor(weight, dtype=torch.float64))
    optimizer = adamp_torch.SGDP([param], lr=lr, momentum=momentum, delta=delta)

    def step(grad: np.ndarray) -> np.ndarray:
        param.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
        return param.detach().numpy().copy()

    return step


TOY_LAYOUT = "channels_first"
PROJECTED_SAMPLING = "every training step"


def build_model() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 1
    for i, out_channels in enumerate(CHANNELS):
        stride = 1 if i == 0 else 2
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        ]
        in_channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, NUM_CLASSES)]
    return nn.Sequential(*layers)


def make_optimizer(spec: OptimizerSpec, params):
    if spec.family == "sgd":
        cls = adamp_torch.SGDP if spec.projected else torch.optim.SGD
        return cls(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    cls = adamp_torch.AdamP if spec.projected else torch.optim.AdamW
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay)


def to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def train(spec: OptimizerSpec, digits: Digits, schedule: Schedule, progress) -> History:
    # One thread: this 8x8 conv net gains nothing from more, its numbers then do not
    # depend on the machine's core count, and on a loaded machine extra threads only
    # contend (1 epoch of each optimizer at load ~12 on 2 cores: 60 s with 1, 156 s with 2).
    torch.set_num_threads(1)
    torch.manual_seed(schedule.seed)
    model = build_model()
    conv_weights = [(n, p) for n, p in model.named_parameters() if p.ndim == 4]
    history = History(spec.name, [n for n, _ in conv_weights])
    optimizer = make_optimizer(spec, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    x_test, y_test = to_nchw(digits.x_test), torch.from_numpy(digits.y_test)
    for epoch in range(schedule.epochs):
        lr = schedule.lr_at(spec.lr, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        losses, fired = [], []
        for xb, yb in digits.batches(epoch, schedule):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(to_nchw(xb)), torch.from_numpy(yb))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if spec.projected:
                branches = optimizer.projection_branches()
                fired.append(np.mean([branches[p] != Branch.NONE for _, p in conv_weights]))
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        norms = [p.detach().norm().item() for _, p in conv_weights]
        history.record(spec, lr, norms, np.mean(fired) if fired else 0.0, accuracy, np.mean(losses))
        progress()
    return history
