"""adamp_conformance: a golden-vector conformance suite for AdamP/SGDP implementations.

It checks any implementation (this project's backends, public ports, your own)
against the reference ``adamp_core`` on 106 committed cases (38 case specs x
dtypes), and says where and why an implementation departs:

- :class:`Adapter` wraps an implementation: a factory taking a :class:`Problem`
  (optimizer, hyperparameters per group, initial parameters in the adapter's
  layout, dtype) and returning a stepper (``step``, optionally ``state`` and
  ``branches``). :func:`torch_adapter`, :func:`keras_adapter` and
  :func:`optax_adapter` build one from optimizer classes or optax functions;
  :func:`get_adapter` returns a built-in one (``reference``, ``adamp_torch``,
  ``adamp_jax``, ``adamp_keras``, ``adamp``, ``timm``, ...) or loads
  ``module:attribute``.
- :func:`run_suite` runs an adapter over the golden cases (:func:`select_cases`
  picks some) and returns one :class:`CaseResult` per case; :func:`suite_report`
  turns them into the JSON report; :func:`format_table` into text.
- :func:`diagnose` names the known variants (:data:`VARIANTS`, 30 ways to
  implement AdamP/SGDP differently) an observed trajectory follows on a case,
  reports names a case cannot tell apart as one ambiguous finding, and
  localises what no variant explains (first failing step and tensor, the
  intermediate quantity that departs first, the nearest variant).
- :mod:`adamp_conformance.broken` (21 deliberately broken adapters) and
  :mod:`adamp_conformance.ports` (a bank of NumPy ports with mistakes seen in
  public ports, in both layouts) prove the suite catches and names them.
- The ``adamp-conformance`` command (:mod:`adamp_conformance.cli`) and a pytest
  plugin (:mod:`adamp_conformance.pytest_plugin`) run it from a shell or a CI.

See docs/conformance.md.
"""

import importlib

# Public name -> the module defining it. Imported on first use, so that
# ``python -m adamp_conformance.golden`` and the CLI start without loading everything.
_EXPORTS = {
    "adamp_conformance.adapters": (
        "CHANNELS_FIRST", "CHANNELS_LAST", "Adapter", "Problem", "Stepper", "from_layout",
        "keras_adapter", "optax_adapter", "to_layout", "torch_adapter", "translate",
    ),
    "adamp_conformance.builtin": ("Unavailable", "get_adapter"),
    "adamp_conformance.diagnosis": ("Diagnosis", "Finding", "diagnose", "localise"),
    "adamp_conformance.flags": ("Flag",),
    "adamp_conformance.golden": ("GoldenCase", "load_all"),
    "adamp_conformance.runner": (
        "CaseResult", "format_table", "run_case", "run_suite", "select_cases", "suite_report",
    ),
    "adamp_conformance.variants": ("VARIANTS", "Trajectory", "Variant"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'adamp_conformance' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


__all__ = [
    "CHANNELS_FIRST",
    "CHANNELS_LAST",
    "VARIANTS",
    "Adapter",
    "CaseResult",
    "Diagnosis",
    "Finding",
    "Flag",
    "GoldenCase",
    "Problem",
    "Stepper",
    "Trajectory",
    "Unavailable",
    "Variant",
    "diagnose",
    "format_table",
    "from_layout",
    "get_adapter",
    "keras_adapter",
    "load_all",
    "localise",
    "optax_adapter",
    "run_case",
    "run_suite",
    "select_cases",
    "suite_report",
    "to_layout",
    "torch_adapter",
    "translate",
]
