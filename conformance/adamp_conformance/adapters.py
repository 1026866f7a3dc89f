"""The adapter protocol a third party implements, and helpers for common frameworks.

An :class:`Adapter` names an implementation and holds a ``factory``. For each
case the runner calls ``factory(problem)`` with a :class:`Problem` (optimizer,
hyperparameters per group under the canonical names below, initial parameters
already in the adapter's ``layout`` and rounded to ``problem.dtype``) and gets
back a *stepper*::

    class Stepper(Protocol):
        def step(self, grads: list[np.ndarray | None]) -> list[np.ndarray]: ...
        # optional capabilities, detected by presence:
        def state(self) -> list[dict[str, np.ndarray]]: ...  # exp_avg, exp_avg_sq, step
                                                             # or momentum_buffer
        def branches(self) -> list[int]: ...  # adamp_core.Branch of each parameter's last step

``step`` receives one gradient per parameter (None: no gradient this step;
only for adapters with ``none_grads=True``) in the adapter's layout and returns
the new parameters (any array-like; converted with ``np.asarray``).

Canonical hyperparameters: AdamP ``lr, beta1, beta2, eps, weight_decay, delta,
wd_ratio, nesterov``; SGDP ``lr, momentum, dampening, weight_decay, nesterov,
eps, delta, wd_ratio, project_buffer``; numbers are handed over as Python
floats. ``rename`` maps them to a framework's names and is merged key by key
over each helper's defaults; a value of the form ``("betas", 0)`` puts the value
at that index of a tuple argument, None leaves it out. ``fixed`` lists
behaviours an API cannot be asked to change, for any hyperparameter (e.g.
``{"project_buffer": True}`` for an SGDP without that argument): the argument
is not passed, and a case asking for another value is *unsupported*.

Layouts: ``channels_first`` (PyTorch: Linear (out, in), Conv (out, in, kh, kw))
and ``channels_last`` (Keras, Flax: Dense (in, out), Conv (kh, kw, in, out)).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from adamp_conformance.tolerance import DTYPES

__all__ = [
    "CHANNELS_FIRST",
    "CHANNELS_LAST",
    "Adapter",
    "Problem",
    "Stepper",
    "from_layout",
    "keras_adapter",
    "optax_adapter",
    "package_version",
    "to_layout",
    "torch_adapter",
    "translate",
]

CHANNELS_FIRST = "channels_first"
CHANNELS_LAST = "channels_last"


def _perm(ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim)) if ndim < 2 else (*range(2, ndim), 1, 0)


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """PyTorch layout -> ``layout`` ((O, I, *k) -> (*k, I, O) for channels_last)."""
    if x is None or layout == CHANNELS_FIRST:
        return x
    return np.ascontiguousarray(np.transpose(x, _perm(x.ndim)))


def from_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Inverse of :func:`to_layout`."""
    if x is None or layout == CHANNELS_FIRST:
        return x
    return np.ascontiguousarray(np.transpose(x, np.argsort(_perm(x.ndim))))


@dataclass(frozen=True)
class Problem:
    """What a factory receives for one case."""

    optimizer: str  # "adamp" or "sgdp"
    groups: list[dict]  # canonical hyperparameters of each group
    group_of: list[int]  # group index of each parameter
    params: list[np.ndarray]  # initial parameters, float64 holding dtype values, in ``layout``
    dtype: str  # "float64", "float32", "float16" or "bfloat16"
    layout: str
    names: list[str]

    @property
    def channel_axis(self) -> int:
        return 0 if self.layout == CHANNELS_FIRST else -1


@runtime_checkable
class Stepper(Protocol):
    def step(self, grads: list[np.ndarray | None]) -> list[Any]: ...


@dataclass
class Adapter:
    """An implementation under test."""

    name: str
    factory: Callable[[Problem], Stepper]
    layout: str = CHANNELS_FIRST
    optimizers: tuple[str, ...] = ("adamp", "sgdp")
    dtypes: tuple[str, ...] = DTYPES
    none_grads: bool = True  # can a step leave a parameter without gradient?
    fixed: dict = field(default_factory=dict)
    versions: Callable[[], dict] | dict = field(default_factory=dict)
    description: str = ""

    def unsupported(self, optimizer: str, dtype: str, groups: Sequence[dict], needs_none: bool):
        """Why a case cannot be expressed through this adapter, or None."""
        if optimizer not in self.optimizers:
            return f"{self.name} has no {optimizer}"
        if dtype not in self.dtypes:
            return f"{self.name} does not run {dtype}"
        if needs_none and not self.none_grads:
            return f"{self.name} cannot leave a parameter without gradient"
        for group in groups:
            for key, value in self.fixed.items():
                if key in group and group[key] != value:
                    return f"{self.name} cannot be given {key}={group[key]!r}"
        return None

    def version_info(self) -> dict:
        info = self.versions() if callable(self.versions) else dict(self.versions)
        return {k: v for k, v in info.items() if v is not None}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def as_float(value):
    """A numeric hyperparameter as a Python float (booleans stay booleans).

    Case files store binary fractions such as ``2**20`` as JSON integers;
    frameworks such as Keras reject an integer learning rate.
    """
    if isinstance(value, (int, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    return value


def translate(hp: dict, rename: dict | None = None, fixed: dict | None = None) -> dict:
    """Canonical hyperparameters -> framework keyword arguments, every number a float.

    ``rename`` maps a canonical name to an argument name, to ``(name, index)``
    (a tuple argument) or to None (not passed); unlisted names pass unchanged.
    Keys in ``fixed`` are never passed.
    """
    rename = rename or {}
    out: dict = {}
    for key, value in hp.items():
        value = as_float(value)
        if fixed and key in fixed:
            continue
        target = rename.get(key, key)
        if target is None:
            continue
        if isinstance(target, tuple):
            name, index = target
            current = list(out.get(name, ()))
            current.extend([None] * (index + 1 - len(current)))
            current[index] = value
            out[name] = tuple(current)
        else:
            out[target] = value
    return out


# ------------------------------------------------------------------------- PyTorch

TORCH_RENAME = {"beta1": ("betas", 0), "beta2": ("betas", 1)}


class _TorchStepper:
    channels_last = False  # hand 4-D weights and gradients over in torch.channels_last memory

    def __init__(self, problem: Problem, classes: dict, rename, fixed, extra) -> None:
        import torch

        self.torch = torch
        dtype = getattr(torch, problem.dtype)
        self.params = [
            torch.nn.Parameter(self._memory(torch.tensor(p, dtype=torch.float64).to(dtype)))
            for p in problem.params
        ]
        groups = []
        for gi, hp in enumerate(problem.groups):
            members = [p for p, g in zip(self.params, problem.group_of, strict=True) if g == gi]
            if members:
                groups.append({"params": members, **translate(hp, rename, fixed)})
        cls = classes[problem.optimizer]
        self.opt = cls(groups, **extra)
        self.dtype = dtype

    def _memory(self, t):
        if self.channels_last and t.dim() == 4:
            return t.contiguous(memory_format=self.torch.channels_last)
        return t

    def step(self, grads):
        torch = self.torch
        for p, g in zip(self.params, grads, strict=True):
            p.grad = (
                None
                if g is None
                else self._memory(torch.tensor(g, dtype=torch.float64).to(self.dtype))
            )
        self.opt.step()
        return [p.detach().to(torch.float64).cpu().numpy().copy() for p in self.params]

    def state(self):
        out = []
        for p in self.params:
            st = self.opt.state.get(p, {})
            d = {}
            for key in ("exp_avg", "exp_avg_sq", "momentum_buffer", "step"):
                if key in st and st[key] is not None:
                    value = st[key]
                    if isinstance(value, self.torch.Tensor):
                        value = value.detach().to(self.torch.float64).cpu().numpy().copy()
                    d[key] = value
            out.append(d)
        return out


class _TorchBranchStepper(_TorchStepper):
    def branches(self):
        found = self.opt.projection_branches()
        return [int(found.get(p, 0)) for p in self.params]


def torch_adapter(
    name: str,
    *,
    adamp: Callable | None = None,
    sgdp: Callable | None = None,
    rename: dict | None = None,
    fixed: dict | None = None,
    extra: dict | None = None,
    state: bool = True,
    branches: bool = False,
    dtypes: tuple[str, ...] = DTYPES,
    versions: Callable[[], dict] | dict | None = None,
    description: str = "",
    channels_last_memory: bool = False,
) -> Adapter:
    """Wrap ``torch.optim`` optimizer classes (channels-first layout).

    ``rename`` is merged over betas=(beta1, beta2); ``extra`` is passed to every
    constructor; ``branches=True`` reads ``optimizer.projection_branches()``;
    ``channels_last_memory=True`` stores 4-D weights and gradients in
    ``torch.channels_last`` memory format (same values, other strides).
    """
    classes = {k: v for k, v in (("adamp", adamp), ("sgdp", sgdp)) if v is not None}
    rename = {**TORCH_RENAME, **(rename or {})}
    fixed = dict(fixed or {})
    extra = dict(extra or {})
    base = _TorchBranchStepper if branches else _TorchStepper
    if channels_last_memory:
        base = type(f"{base.__name__}ChannelsLast", (base,), {"channels_last": True})

    def factory(problem: Problem):
        stepper = base(problem, classes, rename, fixed, extra)
        if not state:
            stepper.state = None  # type: ignore[assignment]
        return stepper

    return Adapter(
        name=name,
        factory=factory,
        layout=CHANNELS_FIRST,
        optimizers=tuple(classes),
        dtypes=dtypes,
        none_grads=True,
        fixed=fixed,
        versions=versions if versions is not None else {"torch": package_version("torch")},
        description=description,
    )


# --------------------------------------------------------------------------- optax

OPTAX_RENAME = {"lr": "learning_rate", "beta1": "b1", "beta2": "b2"}


class _OptaxStepper:
    def __init__(self, problem: Problem, makers: dict, rename, fixed, extra, branches_fn):
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp, self.optax = jax, jnp, optax
        self.x64 = problem.dtype == "float64"
        self.branches_fn = branches_fn
        with self._precision():
            self.dtype = getattr(jnp, problem.dtype)
            self.params = [jnp.asarray(p, dtype=self.dtype) for p in problem.params]
            self.members = [
                [i for i, g in enumerate(problem.group_of) if g == gi]
                for gi in range(len(problem.groups))
            ]
            make = makers[problem.optimizer]
            self.txs = [make(**translate(hp, rename, fixed), **extra) for hp in problem.groups]
            self.states = [
                tx.init([self.params[i] for i in idx])
                for tx, idx in zip(self.txs, self.members, strict=True)
            ]

    def _precision(self):
        return self.jax.enable_x64(self.x64)

    def step(self, grads):
        if any(g is None for g in grads):
            raise ValueError("optax cannot leave a parameter without gradient")
        jnp, optax = self.jnp, self.optax
        with self._precision():
            for k, (tx, idx) in enumerate(zip(self.txs, self.members, strict=True)):
                ps = [self.params[i] for i in idx]
                gs = [jnp.asarray(grads[i], dtype=self.dtype) for i in idx]
                updates, self.states[k] = tx.update(gs, self.states[k], ps)
                for i, p in zip(idx, optax.apply_updates(ps, updates), strict=True):
                    self.params[i] = p
            return [np.asarray(p, dtype=np.float64) for p in self.params]

    def branches(self):
        out = [0] * len(self.params)
        for state, idx in zip(self.states, self.members, strict=True):
            for i, b in zip(idx, self.branches_fn(state), strict=True):
                out[i] = int(b)
        return out


def optax_adapter(
    name: str,
    *,
    adamp: Callable | None = None,
    sgdp: Callable | None = None,
    rename: dict | None = None,
    fixed: dict | None = None,
    extra: dict | None = None,
    branches: Callable | None = None,
    layout: str = CHANNELS_LAST,
    dtypes: tuple[str, ...] = DTYPES,
    versions: Callable[[], dict] | dict | None = None,
    description: str = "",
) -> Adapter:
    """Wrap functions returning an optax ``GradientTransformation`` (one per group).

    ``rename`` is merged over lr -> learning_rate, beta1 -> b1, beta2 -> b2.

    ``branches(opt_state) -> list of Branch`` (one per parameter of the group)
    enables the branch check. Float64 cases run under ``jax.enable_x64``.
    """
    makers = {k: v for k, v in (("adamp", adamp), ("sgdp", sgdp)) if v is not None}
    rename = {**OPTAX_RENAME, **(rename or {})}
    fixed = dict(fixed or {})
    extra = dict(extra or {})

    def factory(problem: Problem):
        stepper = _OptaxStepper(problem, makers, rename, fixed, extra, branches)
        if branches is None:
            stepper.branches = None  # type: ignore[assignment]
        return stepper

    return Adapter(
        name=name,
        factory=factory,
        layout=layout,
        optimizers=tuple(makers),
        dtypes=dtypes,
        none_grads=False,
        fixed=fixed,
        versions=versions
        if versions is not None
        else {"jax": package_version("jax"), "optax": package_version("optax")},
        description=description,
    )


# --------------------------------------------------------------------------- Keras

KERAS_RENAME = {"lr": "learning_rate", "beta1": "beta_1", "beta2": "beta_2", "eps": "epsilon"}


class _KerasStepper:
    def __init__(self, problem: Problem, classes: dict, rename, fixed, extra) -> None:
        import keras

        self.keras = keras
        self.vars = [
            keras.Variable(
                p.astype(np.float32 if problem.dtype != "float64" else np.float64),
                dtype=problem.dtype,
                name=f"{n}_{i}",
            )
            for i, (p, n) in enumerate(zip(problem.params, problem.names, strict=True))
        ]
        self.members = [
            [i for i, g in enumerate(problem.group_of) if g == gi]
            for gi in range(len(problem.groups))
        ]
        cls = classes[problem.optimizer]
        self.opts = []
        for hp in problem.groups:
            kwargs = translate(hp, rename, fixed)
            self.opts.append(cls(**kwargs, **extra))
        for opt, idx in zip(self.opts, self.members, strict=True):
            opt.build([self.vars[i] for i in idx])
        self.dtype = problem.dtype

    def step(self, grads):
        for opt, idx in zip(self.opts, self.members, strict=True):
            pairs = [
                (
                    self.keras.ops.convert_to_tensor(grads[i].astype(np.float64), self.dtype),
                    self.vars[i],
                )
                for i in idx
                if grads[i] is not None
            ]
            if pairs:
                opt.apply_gradients(pairs)
        ops = self.keras.ops
        return [np.asarray(ops.convert_to_numpy(v.value), dtype=np.float64) for v in self.vars]


class _KerasBranchStepper(_KerasStepper):
    def branches(self):
        out = [0] * len(self.vars)
        for opt, idx in zip(self.opts, self.members, strict=True):
            found = opt.projection_branches()
            for i in idx:
                out[i] = int(found.get(self.vars[i].path, 0))
        return out


def keras_adapter(
    name: str,
    *,
    adamp: Callable | None = None,
    sgdp: Callable | None = None,
    rename: dict | None = None,
    fixed: dict | None = None,
    extra: dict | None = None,
    branches: bool = False,
    dtypes: tuple[str, ...] = DTYPES,
    versions: Callable[[], dict] | dict | None = None,
    description: str = "",
) -> Adapter:
    """Wrap Keras 3 optimizer classes (channels-last layout), one optimizer per group.

    ``rename`` is merged over lr -> learning_rate, beta1 -> beta_1, beta2 -> beta_2,
    eps -> epsilon; every number arrives as a Python float (``weight_decay=0.0``
    included).

    ``branches=True`` reads ``optimizer.projection_branches()`` keyed by variable path.
    """
    classes = {k: v for k, v in (("adamp", adamp), ("sgdp", sgdp)) if v is not None}
    rename = {**KERAS_RENAME, **(rename or {})}
    fixed = dict(fixed or {})
    extra = dict(extra or {})
    base = _KerasBranchStepper if branches else _KerasStepper

    def keras_versions():
        import keras

        backend = keras.backend.backend()
        return {
            "keras": package_version("keras"),
            "keras_backend": backend,
            backend: package_version(
                {"tensorflow": "tensorflow", "jax": "jax"}.get(backend, backend)
            ),
        }

    return Adapter(
        name=name,
        factory=lambda problem: base(problem, classes, rename, fixed, extra),
        layout=CHANNELS_LAST,
        optimizers=tuple(classes),
        dtypes=dtypes,
        none_grads=True,
        fixed=fixed,
        versions=versions if versions is not None else keras_versions,
        description=description,
    )


def load_object(spec: str) -> Any:
    """``"module:attribute"`` -> the attribute (an Adapter or a function returning one)."""
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
