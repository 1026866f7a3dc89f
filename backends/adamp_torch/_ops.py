"""Elementwise list operations, as ``torch._foreach_*`` calls or as a per-tensor loop.

The multi-tensor (foreach) path and the single-tensor path run the same update
code and differ only in which of these two implementations they pass; the
loop runs the same kernels one tensor at a time, so both paths agree in
float64. Scalars that vary per tensor are lists of 0-dim tensors, which
broadcast in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Tensors = Sequence[Tensor]


class ForeachOps:
    """Multi-tensor: one ``torch._foreach_*`` call per operation."""

    @staticmethod
    def neg(xs: Tensors) -> list[Tensor]:
        return list(torch._foreach_neg(xs))

    @staticmethod
    def add_scalar_(xs: Tensors, value: float) -> None:
        torch._foreach_add_(xs, value)

    @staticmethod
    def add_(xs: Tensors, ys: Tensors, alpha: float = 1.0) -> None:
        torch._foreach_add_(xs, ys, alpha=alpha)

    @staticmethod
    def add(xs: Tensors, ys: Tensors, alpha: float = 1.0) -> list[Tensor]:
        return list(torch._foreach_add(xs, ys, alpha=alpha))

    @staticmethod
    def mul_(xs: Tensors, factors: float | Tensors) -> None:
        torch._foreach_mul_(xs, factors)

    @staticmethod
    def lerp_(xs: Tensors, ys: Tensors, weight: float) -> None:
        torch._foreach_lerp_(xs, ys, weight)

    @staticmethod
    def lerp(xs: Tensors, ys: Tensors, weight: float) -> list[Tensor]:
        return list(torch._foreach_lerp(xs, ys, weight))

    @staticmethod
    def addcmul_(xs: Tensors, ys: Tensors, zs: Tensors, value: float = 1.0) -> None:
        torch._foreach_addcmul_(xs, ys, zs, value=value)

    @staticmethod
    def sqrt(xs: Tensors) -> list[Tensor]:
        return list(torch._foreach_sqrt(xs))

    @staticmethod
    def div(xs: Tensors, ys: Tensors) -> list[Tensor]:
        return list(torch._foreach_div(xs, ys))

    @staticmethod
    def div_(xs: Tensors, divisors: Tensors) -> None:
        torch._foreach_div_(xs, divisors)

    @staticmethod
    def copy_(xs: Tensors, ys: Tensors) -> None:
        torch._foreach_copy_(xs, ys)


def _pairs(xs: Tensors, factors: float | Tensors):
    if isinstance(factors, (int, float)):
        return ((x, factors) for x in xs)
    return zip(xs, factors, strict=True)


class LoopOps:
    """Single-tensor: the same operations, one tensor at a time."""

    @staticmethod
    def neg(xs: Tensors) -> list[Tensor]:
        return [torch.neg(x) for x in xs]

    @staticmethod
    def add_scalar_(xs: Tensors, value: float) -> None:
        for x in xs:
            x.add_(value)

    @staticmethod
    def add_(xs: Tensors, ys: Tensors, alpha: float = 1.0) -> None:
        for x, y in zip(xs, ys, strict=True):
            x.add_(y, alpha=alpha)

    @staticmethod
    def add(xs: Tensors, ys: Tensors, alpha: float = 1.0) -> list[Tensor]:
        return [torch.add(x, y, alpha=alpha) for x, y in zip(xs, ys, strict=True)]

    @staticmethod
    def mul_(xs: Tensors, factors: float | Tensors) -> None:
        for x, f in _pairs(xs, factors):
            x.mul_(f)

    @staticmethod
    def lerp_(xs: Tensors, ys: Tensors, weight: float) -> None:
        for x, y in zip(xs, ys, strict=True):
            x.lerp_(y, weight)

    @staticmethod
    def lerp(xs: Tensors, ys: Tensors, weight: float) -> list[Tensor]:
        return [torch.lerp(x, y, weight) for x, y in zip(xs, ys, strict=True)]

    @staticmethod
    def addcmul_(xs: Tensors, ys: Tensors, zs: Tensors, value: float = 1.0) -> None:
        for x, y, z in zip(xs, ys, zs, strict=True):
            x.addcmul_(y, z, value=value)

    @staticmethod
    def sqrt(xs: Tensors) -> list[Tensor]:
        return [torch.sqrt(x) for x in xs]

    @staticmethod
    def div(xs: Tensors, ys: Tensors) -> list[Tensor]:
        return [torch.div(x, y) for x, y in zip(xs, ys, strict=True)]

    @staticmethod
    def div_(xs: Tensors, divisors: Tensors) -> None:
        for x, d in zip(xs, divisors, strict=True):
            x.div_(d)

    @staticmethod
    def copy_(xs: Tensors, ys: Tensors) -> None:
        for x, y in zip(xs, ys, strict=True):
            x.copy_(y)
