"""The projection that removes the radial component of an update.

Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights", ICLR 2021 (arXiv:2006.08217), Algorithms 1-2 and
Eq. (12), as implemented by the authors' ``adamp`` 0.3.0.

Symbols -> arguments: w -> ``param``, ∇f(w) -> ``grad``, p -> ``update``
(the optimizer's direction before the learning rate), δ -> ``delta``,
ε -> ``eps``.

A tensor is looked at through two *views*, tried in order:

- the channel view: one row per output channel (the axis ``channel_axis``),
  holding every other axis flattened; rows have length d = size / channels;
- the layer view: the whole tensor as one row of length d = size.

For a view with rows x_i (of ∇f(w)) and y_i (of w)::

    cos_i = | Σ (x_i / max(||x_i||, ε)) · (y_i / max(||y_i||, ε)) |

which is ``abs(torch.nn.functional.cosine_similarity(x, y, eps=ε))`` as of
current PyTorch (norms clamped *separately*, vectors normalised before the
dot product). If max_i cos_i < δ / sqrt(d), the weight is taken as
scale-invariant in that view and each row of the update loses its radial part::

    ŵ_i = y_i / (||y_i|| + ε)                  (ε *added* to the norm)
    p_i ← p_i - ŵ_i · Σ (ŵ_i · p_i)

and weight decay is scaled by ``wd_ratio``. If neither view passes, the update
is returned unchanged with ratio 1. Tensors with fewer than two dimensions are
never projected. A zero gradient gives cos = 0 and so always projects; a zero
weight projects as a no-op. All sums are correctly rounded (``math.fsum``).
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import numpy as np

from adamp_core._exact import row_norms, row_sums

__all__ = [
    "Branch",
    "Projection",
    "channel_rows",
    "cosine_similarity",
    "from_rows",
    "normalise_channel_axis",
    "projection",
    "remove_radial",
    "view_rows",
]


class Branch(enum.IntEnum):
    """Which view the projection fired on. The integer codes are shared by every backend."""

    NONE = 0
    CHANNEL = 1
    LAYER = 2


class Projection(NamedTuple):
    """Result of :func:`projection`."""

    update: np.ndarray  # the update with its radial part removed (or unchanged)
    wd_ratio: float  # factor applied to weight decay: wd_ratio if projected, else 1
    branch: Branch


def channel_rows(x: np.ndarray, channel_axis: int) -> np.ndarray:
    """The channel view: shape (channels, size // channels), channels from ``channel_axis``."""
    moved = np.moveaxis(x, channel_axis, 0)
    return moved.reshape(moved.shape[0], -1)


def view_rows(x: np.ndarray, branch: Branch, channel_axis: int) -> np.ndarray:
    """Rows of ``x`` in the channel view or the layer view (one row)."""
    return channel_rows(x, channel_axis) if branch is Branch.CHANNEL else x.reshape(1, -1)


def from_rows(
    rows: np.ndarray, shape: tuple[int, ...], branch: Branch, channel_axis: int
) -> np.ndarray:
    """The inverse of :func:`view_rows`: ``rows`` back in a tensor of ``shape``."""
    if branch is Branch.LAYER:
        return rows.reshape(shape)
    channel_axis %= len(shape)
    moved_shape = (shape[channel_axis], *shape[:channel_axis], *shape[channel_axis + 1 :])
    return np.moveaxis(rows.reshape(moved_shape), 0, channel_axis)


def cosine_similarity(x_rows: np.ndarray, y_rows: np.ndarray, eps: float) -> np.ndarray:
    """|cos| between matching rows, norms clamped separately below at ``eps``."""
    x_unit = x_rows / np.maximum(row_norms(x_rows), eps)[:, None]
    y_unit = y_rows / np.maximum(row_norms(y_rows), eps)[:, None]
    return np.abs(row_sums(x_unit * y_unit))


def remove_radial(param_rows: np.ndarray, update_rows: np.ndarray, eps: float) -> np.ndarray:
    """Subtract from each update row its component along the matching weight row."""
    unit = param_rows / (row_norms(param_rows) + eps)[:, None]
    return update_rows - unit * row_sums(unit * update_rows)[:, None]


def _is_scale_invariant(grad_rows, param_rows, delta: float, eps: float) -> bool:
    threshold = delta / math.sqrt(param_rows.shape[1])
    return bool(np.max(cosine_similarity(grad_rows, param_rows, eps)) < threshold)


def projection(
    param: np.ndarray,
    grad: np.ndarray,
    update: np.ndarray,
    *,
    delta: float,
    wd_ratio: float,
    eps: float,
    channel_axis: int = 0,
) -> Projection:
    """Project ``update`` for ``param`` if the weight looks scale-invariant.

    Args:
      param: the weight w before this step's decay and update.
      grad: the gradient ∇f(w) of this step (not the momentum).
      update: the direction to project (Adam's m̂/denominator, SGD's buffer).
      delta: δ, the cosine threshold is δ / sqrt(row length).
      wd_ratio: weight-decay factor returned when the projection fires.
      eps: ε of both the cosine clamp and the unit-vector denominator.
      channel_axis: axis of output channels: 0 in PyTorch layout, -1 in
        Keras and Flax layout.

    Returns:
      ``Projection(update, wd_ratio, branch)``, branch NONE, CHANNEL or LAYER.
    """
    param, grad, update = (np.asarray(a, dtype=np.float64) for a in (param, grad, update))
    if param.ndim < 2 or param.size == 0:
        return Projection(update, 1.0, Branch.NONE)
    channel_axis = normalise_channel_axis(channel_axis, param.ndim)
    for branch in (Branch.CHANNEL, Branch.LAYER):
        param_rows = view_rows(param, branch, channel_axis)
        if _is_scale_invariant(view_rows(grad, branch, channel_axis), param_rows, delta, eps):
            rows = remove_radial(param_rows, view_rows(update, branch, channel_axis), eps)
            return Projection(
                from_rows(rows, param.shape, branch, channel_axis), float(wd_ratio), branch
            )
    return Projection(update, 1.0, Branch.NONE)


def normalise_channel_axis(axis: object, ndim: int, where: str = "") -> int:
    """``axis`` of an ``ndim``-D tensor as an index in [0, ndim), or a ValueError.

    Every backend resolves its channel axes here, so the message is the same
    everywhere; ``where`` names the tensor (a tree path, a variable path).
    """
    if (
        isinstance(axis, bool)
        or not isinstance(axis, (int, np.integer))
        or not -ndim <= axis < ndim
    ):
        subject = f"channel_axis for {where}" if where else "channel_axis"
        raise ValueError(
            f"{subject} must be an integer in [-{ndim}, {ndim}) for a {ndim}-D parameter, "
            f"got {axis!r}"
        )
    return int(axis) % ndim
