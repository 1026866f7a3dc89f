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

from adamp_conformance.adapters import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    Adapter,
    Problem,
    Stepper,
    from_layout,
    keras_adapter,
    optax_adapter,
    to_layout,
    torch_adapter,
    translate,
)
from adamp_conformance.builtin import Unavailable, get_adapter
from adamp_conformance.diagnosis import Diagnosis, Finding, diagnose, localise
from adamp_conformance.flags import Flag
from adamp_conformance.golden import GoldenCase, load_all
from adamp_conformance.runner import (
    CaseResult,
    format_table,
    run_case,
    run_suite,
    select_cases,
    suite_report,
)
from adamp_conformance.variants import VARIANTS, Trajectory, Variant

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
