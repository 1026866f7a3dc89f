"""AdamP for PyTorch: a drop-in, faster replacement for the authors' ``adamp.AdamP``.

Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217). Per parameter w with
gradient g, t counting this parameter's steps::

    m ← β₁m + (1-β₁)g ; v ← β₂v + (1-β₂)g²
    u = m / (sqrt(v)/sqrt(1-β₂ᵗ) + ε)        (Nesterov: (β₁m + (1-β₁)g) / ...)
    (u, r) = projection(w, g, u)              (w.ndim > 1; else r = 1)
    w ← w·(1 - lr·λ·r) - (lr/(1-β₁ᵗ))·u

``projection`` removes the radial part of u for weights that look
scale-invariant (see :mod:`adamp_torch._projection`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adamp_core import UNCHECKED, validate_adamp
from adamp_torch._base import (
    ProjectedOptimizer,
    as_floats,
    check_lr,
    check_options,
    check_tensor_free,
)
from adamp_torch._functional import Bucket, adamp_update
from adamp_torch._fused import adamp_fused

__all__ = ["AdamP"]

_NAMES = {"beta1": "betas[0]", "beta2": "betas[1]"}
_NUMBERS = ("betas", "eps", "weight_decay", "delta", "wd_ratio")
_TENSOR_NAMES = {("betas", 0): "betas[0]", ("betas", 1): "betas[1]"}


class AdamP(ProjectedOptimizer):
    """AdamP with the arguments and defaults of ``adamp`` 0.3.0, plus torch.optim's extras.

    Args:
      params: parameters or parameter groups.
      lr: learning rate (a float, or a 0-dim tensor for ``torch.compile``).
      betas: (β₁, β₂), each in [0, 1).
      eps: ε > 0 of the Adam denominator, the cosine clamp and the unit vectors.
      weight_decay: decoupled decay λ >= 0 (w ← w·(1 - lr·λ·r)).
      delta: δ >= 0, the cosine threshold is δ / sqrt(row length).
      wd_ratio: r in [0, 1], the decay factor for projected weights.
      nesterov: Nesterov momentum in the numerator.
      foreach: True: multi-tensor (``torch._foreach_*``) path; False: single-tensor path
        (elementwise work one tensor at a time, temporaries in a reused buffer); None:
        multi-tensor off the CPU, single-tensor on the CPU. Both give the same result.
      maximize: ascend instead of descend.
      capturable: keep the step counters on the parameters' device, for CUDA graphs.
      fused: compute the step with Inductor-generated kernels (C++ on the CPU, Triton on
        CUDA; compiled on the first step); takes GradScaler's ``grad_scale``/``found_inf``.
        See docs/torch.md for when it pays off.

    State per parameter: ``step`` (0-dim float32 tensor), ``exp_avg``, ``exp_avg_sq``,
    and ``projection`` (0-dim int64 tensor: the adamp_core.Branch code of the last step).
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        nesterov: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        fused: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            delta=delta,
            wd_ratio=wd_ratio,
            nesterov=nesterov,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_tensor_free(group, _NUMBERS, _TENSOR_NAMES)
        check_lr(group["lr"])  # a number or a 0-d tensor
        validate_adamp(
            lr=UNCHECKED,
            beta1=betas[0],
            beta2=betas[1],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            delta=group["delta"],
            wd_ratio=group["wd_ratio"],
            nesterov=group["nesterov"],
            names=_NAMES,
        )
        check_options(group)
        as_floats(group, ("lr", *_NUMBERS))

    def _init_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        device = p.device if group["capturable"] or group["fused"] else "cpu"
        state["step"] = torch.zeros((), dtype=torch.float32, device=device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _upgrade_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        super()._upgrade_state(p, state, group)
        step = state.get("step")
        device = p.device if group["capturable"] or group["fused"] else "cpu"
        if step is not None and not isinstance(step, Tensor):  # adamp 0.3.0 keeps an int
            state["step"] = torch.tensor(float(step), dtype=torch.float32, device=device)
        elif step is not None:
            state["step"] = step.to(device=device, dtype=torch.float32)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group's options as the update functions' keyword arguments."""
        beta1, beta2 = group["betas"]
        return dict(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            delta=group["delta"],
            wd_ratio=group["wd_ratio"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            cache=self._cache,
        )

    def _update(self, bucket: Bucket, group: dict[str, Any], foreach: bool) -> None:
        adamp_update(bucket, foreach=foreach, **self._hyperparameters(group))

    def _update_fused(self, bucket: Bucket, group: dict[str, Any], scaling: dict) -> None:
        adamp_fused(bucket, **self._hyperparameters(group), **scaling)
