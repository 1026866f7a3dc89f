"""Projection diagnostics: which branch the projection took, per parameter.

``ScaleByAdamPState.branch`` / ``ScaleBySGDPState.branch`` hold, for every
leaf, an int32 scalar on device: the ``adamp_core.Branch`` code of the last
step (0 NONE, 1 CHANNEL, 2 LAYER; NONE before the first step). Writing it costs
no host synchronisation; :func:`projection_branches` reads it (and syncs) only
when called.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from adamp_core import Branch
from adamp_jax.adamp import ScaleByAdamPState
from adamp_jax.sgdp import ScaleBySGDPState

__all__ = ["find_projection_state", "projection_branches"]

_STATES = (ScaleByAdamPState, ScaleBySGDPState)


def find_projection_state(opt_state: Any) -> ScaleByAdamPState | ScaleBySGDPState:
    """The first AdamP/SGDP state found depth-first inside ``opt_state``.

    Looks through chains (tuples), wrapper states (NamedTuples such as those of
    ``inject_hyperparams``, ``MultiSteps``, ``apply_if_finite``, ``masked``),
    lists and dicts.
    """
    stack = [opt_state]
    while stack:
        node = stack.pop()
        if isinstance(node, _STATES):
            return node
        if isinstance(node, (tuple, list)):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
    raise ValueError("opt_state holds no scale_by_adamp or scale_by_sgdp state")


def _is_variable(node) -> bool:
    """Flax NNX wraps state arrays in Variables (``nnx.Optimizer.opt_state``)."""
    return type(node).__name__.endswith("Variable") and hasattr(node, "get_value")


def _to_branch(code) -> Branch | np.ndarray:
    if _is_variable(code):
        code = code.get_value()
    code = np.asarray(code)
    return Branch(int(code)) if code.ndim == 0 else code.astype(np.int32)


def projection_branches(opt_state: Any) -> Any:
    """Pytree (like params) of ``adamp_core.Branch``: the last step's projection branch.

    Leaves that never stepped report ``Branch.NONE``. Under ``vmap``ped states
    (a leading batch axis) a leaf is an int32 NumPy array of codes instead.
    This call transfers the codes to the host; the training step itself never does.
    For a Flax ``nnx.Optimizer``, pass ``optimizer.opt_state``: the result is an
    ``nnx.State`` of Branch values (its Variables unwrapped).
    """
    return jax.tree.map(_to_branch, find_projection_state(opt_state).branch, is_leaf=_is_variable)
