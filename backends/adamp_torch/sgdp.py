"""SGDP for PyTorch: a drop-in, faster replacement for the authors' ``adamp.SGDP``.

Heo et al., ICLR 2021 (arXiv:2006.08217), Algorithm 1. Per parameter w with
gradient g::

    b ← μb + (1-τ)g                          (τ applies on step 1 too)
    d = g + μb (Nesterov) or b
    (d, r) = projection(w, g, d)             (w.ndim > 1; else r = 1)
    w ← w·(1 - lr·λ·r/(1-μ)) - lr·d

With ``project_buffer=True`` (the authors' behaviour) and no Nesterov, the
stored buffer b is replaced by its projection d; with False it is kept
unprojected (timm's and pytorch_optimizer's behaviour).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import required

from adamp_core import UNCHECKED, check_bool, validate_sgdp
from adamp_torch._base import (
    ProjectedOptimizer,
    as_floats,
    check_lr,
    check_options,
    check_tensor_free,
)
from adamp_torch._functional import Bucket, sgdp_update
from adamp_torch._fused import sgdp_fused

__all__ = ["SGDP"]

_NUMBERS = ("momentum", "dampening", "weight_decay", "eps", "delta", "wd_ratio")


class SGDP(ProjectedOptimizer):
    """SGDP with the arguments and defaults of ``adamp`` 0.3.0, plus torch.optim's extras.

    Args:
      params: parameters or parameter groups.
      lr: learning rate, required (a float, or a 0-dim tensor for ``torch.compile``).
      momentum: μ in [0, 1); dampening: τ in [0, 1]; nesterov: Nesterov momentum.
      weight_decay: decoupled decay λ >= 0 (w ← w·(1 - lr·λ·r/(1-μ))).
      eps, delta, wd_ratio: as in :class:`adamp_torch.AdamP`.
      project_buffer: keep the projected momentum buffer (the authors' code) or not.
      foreach, maximize, capturable, fused: as in :class:`adamp_torch.AdamP`.

    State per parameter: ``momentum_buffer`` and ``projection`` (0-dim int64 tensor,
    the adamp_core.Branch code of the last step). A checkpoint of ``adamp.SGDP``
    (buffer under ``momentum``) loads and continues.
    """

    _state_keys = ("momentum_buffer",)
    _fallback = "SGD with decoupled weight decay"

    def __init__(
        self,
        params,
        lr: float | Tensor = required,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        eps: float = 1e-8,
        delta: float = 0.1,
        wd_ratio: float = 0.1,
        *,
        project_buffer: bool = True,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        fused: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            eps=eps,
            delta=delta,
            wd_ratio=wd_ratio,
            project_buffer=project_buffer,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _extra_defaults(self) -> dict[str, Any]:
        return {**super()._extra_defaults(), "project_buffer": True}

    def _validate(self, group: dict[str, Any]) -> None:
        check_tensor_free(group, _NUMBERS, {})
        check_lr(group["lr"])  # a number or a 0-d tensor
        validate_sgdp(
            lr=UNCHECKED,
            momentum=group["momentum"],
            dampening=group["dampening"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            delta=group["delta"],
            wd_ratio=group["wd_ratio"],
            nesterov=group["nesterov"],
        )
        check_bool("project_buffer", group["project_buffer"])
        check_options(group)
        as_floats(group, ("lr", *_NUMBERS))

    def _init_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _upgrade_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        super()._upgrade_state(p, state, group)
        if "momentum" in state and "momentum_buffer" not in state:  # adamp 0.3.0's key
            state["momentum_buffer"] = state.pop("momentum")

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group's options as the update functions' keyword arguments."""
        return dict(
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            eps=group["eps"],
            delta=group["delta"],
            wd_ratio=group["wd_ratio"],
            project_buffer=group["project_buffer"],
            maximize=group["maximize"],
            cache=self._cache,
        )

    def _update(self, bucket: Bucket, group: dict[str, Any], foreach: bool) -> None:
        sgdp_update(bucket, foreach=foreach, **self._hyperparameters(group))

    def _update_fused(self, bucket: Bucket, group: dict[str, Any], scaling: dict) -> None:
        sgdp_fused(bucket, **self._hyperparameters(group), **scaling)
