"""Built-in adapters: the reference, this project's backends and public implementations.

Each is created on demand, so a missing framework only matters when its adapter
is asked for (:class:`Unavailable` says why). Names:

- ``reference`` / ``reference-channels-last``: ``adamp_core`` itself (NumPy);
- ``adamp_torch`` (default foreach), ``adamp_torch-foreach``, ``adamp_torch-single``,
  ``adamp_torch-fused``;
- ``adamp_jax`` (optax, channels last);
- ``adamp_keras`` (the process's KERAS_BACKEND), and ``adamp_keras-tensorflow``,
  ``adamp_keras-jax``, ``adamp_keras-torch``, which require that backend;
- ``adamp`` (the authors' 0.3.0), ``timm``, ``pytorch_optimizer``, ``torch_optimizer``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import adamp_core
from adamp_conformance.adapters import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    Adapter,
    Problem,
    keras_adapter,
    optax_adapter,
    package_version,
    torch_adapter,
)
from adamp_conformance.tolerance import DTYPES, round_to

__all__ = [
    "BUILTIN",
    "THIRD_PARTY",
    "Unavailable",
    "availability",
    "get_adapter",
    "reference_adapter",
]

THIRD_PARTY = ("adamp", "timm", "pytorch_optimizer", "torch_optimizer")


class Unavailable(RuntimeError):
    """The adapter's implementation is not installed or not usable here."""


class _CoreStepper:
    """adamp_core stepping each parameter, rounding to the case dtype (the reference)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.params = [np.asarray(p, dtype=np.float64) for p in problem.params]
        self.states = adamp_core.init_states(problem.optimizer, self.params)
        keys = adamp_core.get_optimizer(problem.optimizer).hyperparameters
        groups = [
            {k: v for k, v in group.items() if k in keys} | {"channel_axis": problem.channel_axis}
            for group in problem.groups
        ]
        self.hyperparams = [groups[k] for k in problem.group_of]
        self._branches = [0] * len(self.params)

    def step(self, grads):
        pb = self.problem
        stepped = adamp_core.step_params(
            pb.optimizer, self.params, grads, self.states, self.hyperparams
        )
        self.params = [round_to(p, pb.dtype) for p in stepped.params]
        self.states = stepped.states
        self._branches = [int(b) for b in stepped.branches]
        return list(self.params)

    def state(self):
        return [s._asdict() for s in self.states]

    def branches(self):
        return list(self._branches)


def reference_adapter(layout: str = CHANNELS_FIRST) -> Adapter:
    name = "reference" if layout == CHANNELS_FIRST else "reference-channels-last"
    return Adapter(
        name=name,
        factory=_CoreStepper,
        layout=layout,
        versions={"adamp_core": adamp_core.__version__, "numpy": np.__version__},
        description="adamp_core, the NumPy reference",
    )


def _adamp_torch(foreach: bool | str | None) -> Callable[[], Adapter]:
    def make() -> Adapter:
        import adamp_torch

        suffix = {None: "", True: "-foreach", False: "-single", "fused": "-fused"}[foreach]
        return torch_adapter(
            f"adamp_torch{suffix}",
            adamp=adamp_torch.AdamP,
            sgdp=adamp_torch.SGDP,
            extra={"fused": True} if foreach == "fused" else {"foreach": foreach},
            branches=True,
            versions=lambda: {
                "torch": package_version("torch"),
                "adamp-reference": package_version("adamp-reference"),
            },
            description="this project's PyTorch backend",
        )

    return make


def _adamp_jax() -> Adapter:
    import adamp_jax
    import jax

    def branches(state):
        return jax.tree.leaves(adamp_jax.projection_branches(state))

    return optax_adapter(
        "adamp_jax",
        adamp=adamp_jax.adamp,
        sgdp=adamp_jax.sgdp,
        branches=branches,
        description="this project's JAX/optax backend",
    )


def _adamp_keras(backend: str | None) -> Callable[[], Adapter]:
    def make() -> Adapter:
        if backend is not None:
            current = os.environ.get("KERAS_BACKEND", "tensorflow")
            if "keras" in sys.modules:
                current = sys.modules["keras"].backend.backend()
            if current != backend:
                raise Unavailable(
                    f"adamp_keras-{backend} needs KERAS_BACKEND={backend} before keras is "
                    f"imported (this process uses {current})"
                )
        import adamp_keras
        import keras

        dtypes = DTYPES
        if keras.backend.backend() == "jax":
            import jax

            if not jax.config.jax_enable_x64:  # float64 variables would silently be float32
                dtypes = tuple(d for d in DTYPES if d != "float64")
        return keras_adapter(
            f"adamp_keras-{keras.backend.backend()}",
            adamp=adamp_keras.AdamP,
            sgdp=adamp_keras.SGDP,
            branches=True,
            dtypes=dtypes,
            description="this project's Keras 3 backend",
        )

    return make


def _published(package: str, description: str) -> Callable[[], Adapter]:
    """A package exporting ``AdamP`` and ``SGDP`` torch optimizers at its top level."""

    def make() -> Adapter:
        module = importlib.import_module(package)
        return torch_adapter(
            package,
            adamp=module.AdamP,
            sgdp=module.SGDP,
            fixed={"project_buffer": True},
            versions=lambda: {package: package_version(package), "torch": package_version("torch")},
            description=description,
        )

    return make


def _load_timm_optim():
    """timm's adamp.py and sgdp.py, loaded without running ``timm/__init__``.

    ``import timm`` pulls in torchvision, which does not import beside every
    torch build. The two files only import torch (and sgdp imports
    ``.adamp``), so they are loaded from timm's installed files as modules of a
    private package; nothing is registered under the name ``timm``.
    """
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("timm is not installed")
    directory = Path(next(iter(spec.submodule_search_locations))) / "optim"
    package = "_adamp_conformance_timm_optim"
    if package not in sys.modules:
        pkg_spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
        module = importlib.util.module_from_spec(pkg_spec)
        module.__path__ = [str(directory)]
        sys.modules[package] = module
    out = []
    for name in ("adamp", "sgdp"):
        full = f"{package}.{name}"
        if full not in sys.modules:
            file_spec = importlib.util.spec_from_file_location(full, directory / f"{name}.py")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[full] = module
            file_spec.loader.exec_module(module)
        out.append(sys.modules[full])
    return out


def _timm() -> Adapter:
    adamp_mod, sgdp_mod = _load_timm_optim()
    return torch_adapter(
        "timm",
        adamp=adamp_mod.AdamP,
        sgdp=sgdp_mod.SGDP,
        fixed={"project_buffer": True},
        versions=lambda: {"timm": package_version("timm"), "torch": package_version("torch")},
        description="timm.optim.adamp / timm.optim.sgdp (files loaded without timm/__init__)",
    )


_TORCH_BUILTIN = (
    "adamp_torch",
    "adamp_torch-foreach",
    "adamp_torch-single",
    "adamp_torch-fused",
    "adamp",
    "timm",
    "pytorch_optimizer",
    "torch_optimizer",
)
BUILTIN: dict[str, Callable[[], Adapter]] = {
    "reference": lambda: reference_adapter(CHANNELS_FIRST),
    "reference-channels-last": lambda: reference_adapter(CHANNELS_LAST),
    "adamp_torch": _adamp_torch(None),
    "adamp_torch-foreach": _adamp_torch(True),
    "adamp_torch-single": _adamp_torch(False),
    "adamp_torch-fused": _adamp_torch("fused"),
    "adamp_jax": _adamp_jax,
    "adamp_keras": _adamp_keras(None),
    "adamp_keras-tensorflow": _adamp_keras("tensorflow"),
    "adamp_keras-jax": _adamp_keras("jax"),
    "adamp_keras-torch": _adamp_keras("torch"),
    "adamp": _published("adamp", "the authors' adamp (clovaai)"),
    "timm": _timm,
    "pytorch_optimizer": _published("pytorch_optimizer", "pytorch_optimizer.AdamP / SGDP"),
    "torch_optimizer": _published("torch_optimizer", "torch_optimizer.AdamP / SGDP"),
}


_CL_SUFFIX = "+channels_last"


def _channels_last_memory(adapter: Adapter) -> Adapter:
    """The same PyTorch adapter with 4-D weights in ``torch.channels_last`` memory format."""
    import dataclasses

    def factory(problem: Problem):
        stepper = adapter.factory(problem)
        torch = stepper.torch
        for p in stepper.params:
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
        stepper.channels_last = True
        return stepper

    return dataclasses.replace(
        adapter,
        name=adapter.name + _CL_SUFFIX,
        factory=factory,
        description=adapter.description + " (4-D weights in torch.channels_last memory format)",
    )


def get_adapter(spec: str | Adapter) -> Adapter:
    """A built-in name, ``module:attribute`` (an Adapter or a function returning one).

    A PyTorch built-in name followed by ``+channels_last`` hands 4-D weights and
    gradients over in ``torch.channels_last`` memory format (values unchanged).
    """
    if isinstance(spec, Adapter):
        return spec
    if spec.endswith(_CL_SUFFIX) and spec[: -len(_CL_SUFFIX)] in _TORCH_BUILTIN:
        return _channels_last_memory(get_adapter(spec[: -len(_CL_SUFFIX)]))
    if spec in BUILTIN:
        try:
            return BUILTIN[spec]()
        except ImportError as exc:
            raise Unavailable(f"adapter {spec!r} is not usable here: {exc}") from exc
    if ":" in spec:
        return _load_adapter(spec)
    known = ", ".join(BUILTIN)
    raise ValueError(f"adapter must be one of {known} or module:attribute, got {spec!r}")


def _load_adapter(spec: str) -> Adapter:
    """``module:attribute`` -> Adapter; any failure is a ValueError naming the spec."""
    from adamp_conformance.adapters import load_object

    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"adapter {spec!r}: expected module:attribute")
    try:
        obj = load_object(spec)
    except ModuleNotFoundError as exc:
        raise ValueError(f"adapter {spec!r}: cannot import {exc.name!r}") from exc
    except AttributeError:
        raise ValueError(f"adapter {spec!r}: module {module!r} has no attribute {attr!r}") from None
    except Exception as exc:  # the module itself fails to import
        raise ValueError(f"adapter {spec!r}: importing {module!r} raised {exc!r}") from exc
    if isinstance(obj, Adapter):
        return obj
    if not callable(obj):
        raise ValueError(
            f"adapter {spec!r} is a {type(obj).__name__}, not an Adapter nor a function "
            "returning one"
        )
    try:
        adapter = obj()
    except Unavailable:
        raise
    except Exception as exc:
        raise ValueError(f"adapter {spec!r}: calling it raised {exc!r}") from exc
    if not isinstance(adapter, Adapter):
        raise ValueError(f"adapter {spec!r} returned a {type(adapter).__name__}, not an Adapter")
    return adapter


_TORCH = ("torch",)
# The packages each built-in adapter imports (the Keras ones: plus their backend's).
REQUIRES: dict[str, tuple[str, ...]] = {
    "reference": (),
    "reference-channels-last": (),
    "adamp_torch": ("torch", "adamp_torch"),
    "adamp_torch-foreach": ("torch", "adamp_torch"),
    "adamp_torch-single": ("torch", "adamp_torch"),
    "adamp_torch-fused": ("torch", "adamp_torch"),
    "adamp_jax": ("jax", "optax", "adamp_jax"),
    "adamp_keras": ("keras", "adamp_keras"),
    "adamp_keras-tensorflow": ("keras", "adamp_keras", "tensorflow"),
    "adamp_keras-jax": ("keras", "adamp_keras", "jax"),
    "adamp_keras-torch": ("keras", "adamp_keras", "torch"),
    "adamp": ("adamp", *_TORCH),
    "timm": ("timm", *_TORCH),
    "pytorch_optimizer": ("pytorch_optimizer", *_TORCH),
    "torch_optimizer": ("torch_optimizer", *_TORCH),
}


def availability(name: str, *, build: bool = False) -> str | None:
    """None if the built-in adapter ``name`` is usable here, else why not.

    By default only the packages it imports are looked up (nothing is
    imported; a name missing from :data:`REQUIRES` is built); ``build=True``
    builds the adapter, importing its framework (``adamp_keras-<backend>`` is
    still checked by packages only: ``run`` picks the backend before Keras is
    imported, which one process cannot do twice).
    """
    required = list(REQUIRES.get(name, ()))
    if name == "adamp_keras":
        required.append(os.environ.get("KERAS_BACKEND", "tensorflow"))
    missing = [m for m in required if importlib.util.find_spec(m) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if name in REQUIRES and (not build or name.startswith("adamp_keras-")):
        return None
    try:
        get_adapter(name)
    except Exception as exc:  # whatever keeps it from being built is the reason
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
