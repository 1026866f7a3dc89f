"""Gradient generators that steer the projection into each branch (test helper)."""

from __future__ import annotations

import numpy as np

from adamp_core import channel_rows


def remove_row_components(rows: np.ndarray, weight_rows: np.ndarray) -> np.ndarray:
    """Make each row of ``rows`` orthogonal to the matching row of ``weight_rows``."""
    norms_sq = np.sum(weight_rows * weight_rows, axis=1, keepdims=True)
    coeff = np.sum(rows * weight_rows, axis=1, keepdims=True) / np.where(norms_sq > 0, norms_sq, 1)
    return rows - coeff * weight_rows


def channel_orthogonal(raw: np.ndarray, weight: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    """A gradient orthogonal to every output channel of ``weight``: the channel branch fires."""
    moved = np.moveaxis(raw, channel_axis, 0)
    rows = remove_row_components(
        channel_rows(raw, channel_axis), channel_rows(weight, channel_axis)
    )
    return np.moveaxis(rows.reshape(moved.shape), 0, channel_axis)


def layer_orthogonal(raw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A gradient orthogonal to ``weight`` as a whole: the layer branch, unless channels pass."""
    return remove_row_components(raw.reshape(1, -1), weight.reshape(1, -1)).reshape(raw.shape)


GRADIENT_KINDS = ("random", "channel_orthogonal", "layer_orthogonal", "zero")


def make_gradient(kind: str, raw: np.ndarray, weight: np.ndarray, channel_axis: int = 0):
    if kind == "random" or weight.ndim < 2:
        return raw if kind != "zero" else np.zeros_like(raw)
    if kind == "channel_orthogonal":
        return channel_orthogonal(raw, weight, channel_axis)
    if kind == "layer_orthogonal":
        return layer_orthogonal(raw, weight)
    return np.zeros_like(raw)
