"""What AdamP and SGDP share: parameter checks, bucketing, state and diagnostics."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import required

from adamp_core import Branch, check_bool, check_in_range, check_param_dtype
from adamp_torch._cache import BoundedCache
from adamp_torch._functional import Bucket
from adamp_torch._fused import check_fused_group

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # a torch build without distributed support
    DTensor = None


def local(t: Tensor) -> Tensor:
    """The tensor this rank holds: a DTensor's local shard, any other tensor itself."""
    if DTensor is not None and isinstance(t, DTensor):
        return t.to_local()
    return t


def shard_groups(p: Tensor, name: str) -> tuple:
    """Process groups across which ``p``'s first axis is sharded (empty unless a DTensor)."""
    if DTensor is None or not isinstance(p, DTensor):
        return ()
    groups = []
    for dim, placement in enumerate(p.placements):
        if placement.is_shard(0):
            groups.append(p.device_mesh.get_group(dim))
        elif not placement.is_replicate():
            raise NotImplementedError(
                f"{name} supports DTensor parameters sharded on axis 0 (Shard(0), as FSDP2's "
                f"fully_shard does) or replicated, got placements {p.placements}"
            )
    return tuple(groups)


FLAT_PARAM_WARNING = (
    "{name} was given an FSDP FlatParameter (FullyShardedDataParallel with "
    "use_orig_params=False, its default): it sees every wrapped layer as one 1-D tensor, "
    "so the projection never fires and {name} behaves like {fallback}. Wrap the model with "
    "use_orig_params=True, or use FSDP2 (torch.distributed.fsdp.fully_shard)."
)


def is_flat_param(p: Tensor) -> bool:
    """True for an FSDP1 FlatParameter (several parameters flattened into one 1-D tensor)."""
    return bool(getattr(p, "_is_flat_param", False))


def check_tensor_free(group: dict[str, Any], keys: tuple[str, ...], names: dict) -> None:
    """Only lr may be a tensor: the other hyperparameters enter Python arithmetic."""
    for key in keys:
        values = group[key] if isinstance(group[key], (tuple, list)) else (group[key],)
        for i, value in enumerate(values):
            if isinstance(value, Tensor):
                name = names.get((key, i), key)
                raise ValueError(
                    f"{name} must be a Python float, not a tensor (only lr may be a "
                    f"tensor), got {value!r}"
                )


def as_floats(group: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Store validated numbers as Python floats (a NumPy 0-d array or scalar, a Python
    int), the type the update's arithmetic and torch.pow expect; a tensor lr stays."""
    for key in keys:
        value = group[key]
        if isinstance(value, (tuple, list)):
            group[key] = type(value)(float(v) for v in value)
        elif not isinstance(value, Tensor):
            group[key] = float(value)


def check_lr(lr: object) -> None:
    """lr is a number or a 0-dim real floating tensor, finite and >= 0."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1 or not lr.is_floating_point():
            raise ValueError(f"lr must be a float or a 1-element floating tensor, got {lr!r}")
        check_in_range("lr", float(lr.detach().cpu()), ">=0")
    else:
        check_in_range("lr", lr, ">=0")


def check_options(group: dict) -> None:
    if group["foreach"] is not None:
        check_bool("foreach", group["foreach"])
    check_bool("maximize", group["maximize"])
    check_bool("capturable", group["capturable"])
    check_bool("fused", group["fused"])
    if group["fused"] and group["foreach"]:
        raise ValueError("foreach and fused cannot both be True; pick one")


class ProjectedOptimizer(Optimizer):
    """Base class: subclasses define ``_validate``, ``_init_state``, ``_update``."""

    _state_keys: tuple[str, ...] = ()

    _fallback = "AdamW"  # what the optimizer is without the projection, for warnings

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self._cache = BoundedCache()
        self._warned_flat = False
        super().__init__(params, defaults)
        # GradScaler then hands grad_scale and found_inf to step() (as torch's fused optimizers)
        self._step_supports_amp_scaling = bool(defaults.get("fused"))

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._cache = BoundedCache()
        self._warned_flat = False
        self._step_supports_amp_scaling = bool(self.defaults.get("fused"))
        for group in self.param_groups:
            for key, value in self._extra_defaults().items():
                group.setdefault(key, value)
            for p in group["params"]:
                if self.state.get(p):
                    self._upgrade_state(p, self.state[p], group)

    def _upgrade_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        """Bring a loaded state (ours, or the authors' ``adamp`` 0.3.0) to the current form."""
        code = state.get("projection")
        if code is None:
            state["projection"] = torch.zeros((), dtype=torch.int64, device=p.device)
        elif code.dtype != torch.int64:  # load_state_dict casts tensors to the param's dtype
            state["projection"] = code.to(torch.int64)

    def _extra_defaults(self) -> dict[str, Any]:
        return {"foreach": None, "maximize": False, "capturable": False, "fused": False}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.defaults.get("lr") is required and "lr" not in param_group:
            raise ValueError(
                f"lr is required by {type(self).__name__}: pass lr=<a number >= 0> to the "
                "constructor or set 'lr' in every parameter group"
            )
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._validate(group)
            if group["fused"] or self.defaults.get("fused"):
                check_fused_group(group, self.defaults, type(self).__name__)
            for p in group["params"]:
                check_param_dtype(type(self).__name__, p.dtype)
        except (ValueError, NotImplementedError):
            self.param_groups.pop()
            raise
        self._warn_flat_params(group)

    def _warn_flat_params(self, group: dict[str, Any]) -> None:
        """Warn once per optimizer: a FlatParameter silently turns the projection off."""
        if not self._warned_flat and any(is_flat_param(p) for p in group["params"]):
            self._warned_flat = True
            name = type(self).__name__
            message = FLAT_PARAM_WARNING.format(name=name, fallback=self._fallback)
            warnings.warn(message, UserWarning, stacklevel=3)

    def _validate(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _init_state(self, p: Tensor, state: dict, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update(self, bucket: Bucket, group: dict[str, Any], foreach: bool) -> None:
        raise NotImplementedError

    def _update_fused(self, bucket: Bucket, group: dict[str, Any], scaling: dict) -> None:
        raise NotImplementedError

    def _buckets(self, group: dict[str, Any]) -> list[Bucket]:
        """Parameters with a gradient, grouped by (device, dtype, sharding); ndim > 1 first."""
        name = type(self).__name__
        found: dict[tuple, tuple[list, list]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                self._init_state(p, state, group)
                state["projection"] = torch.zeros((), dtype=torch.int64, device=p.device)
            groups = shard_groups(p, name)
            key = (p.device, p.dtype, groups)
            projected, plain = found.setdefault(key, ([], []))
            (projected if p.ndim > 1 and math.prod(p.shape) > 0 else plain).append(p)
        buckets = []
        for (_, _, groups), (projected, plain) in found.items():
            bucket = Bucket(groups=groups, n_projected=len(projected))
            bucket.state = {k: [] for k in self._state_keys}
            for p in projected + plain:
                state = self.state[p]
                bucket.params.append(local(p))
                bucket.grads.append(local(p.grad))
                bucket.shapes.append(p.shape)
                bucket.branches.append(state["projection"])
                for k in self._state_keys:
                    value = state[k]
                    bucket.state[k].append(value if k == "step" else local(value))
            buckets.append(bucket)
        return buckets

    @torch.no_grad()
    def step(self, closure=None):
        """One optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_dense_gradients()
        scaling = {k: getattr(self, k, None) for k in ("grad_scale", "found_inf")}
        buckets = [(group, self._buckets(group)) for group in self.param_groups]
        self._cache.fit(sum(len(b) for _, b in buckets))
        for group, group_buckets in buckets:
            for bucket in group_buckets:
                if group["fused"]:
                    self._update_fused(bucket, group, scaling)
                else:
                    self._update(bucket, group, _use_foreach(group["foreach"], bucket.params[0]))
        return loss

    def _check_dense_gradients(self) -> None:
        """Refuse a sparse gradient before any group steps or any state is created."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.layout != torch.strided:  # COO, CSR, ...
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients, got one "
                        f"of layout {p.grad.layout}; use a dense gradient (grad.to_dense())"
                    )

    def projection_branches(self) -> dict[Tensor, Branch]:
        """Which branch each parameter's last step took (NONE if it never stepped).

        Reads the device-side codes back, so it synchronises; the step does not.
        """
        result = {}
        for group in self.param_groups:
            for p in group["params"]:
                code = self.state[p].get("projection") if p in self.state else None
                result[p] = Branch.NONE if code is None else Branch(int(code))
        return result


def _use_foreach(foreach: bool | None, like: Tensor) -> bool:
    """``foreach=None`` picks the multi-tensor path off the CPU only.

    On the CPU the single-tensor path is faster: its temporaries are one tensor
    large and reused (in cache, no page faults), where the multi-tensor path
    allocates whole lists of them (torch.optim also defaults to it on the CPU).
    """
    return foreach if foreach is not None else like.device.type != "cpu"
