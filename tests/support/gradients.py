"""Gradients that steer the projection into a chosen branch, in any layout (test helper).

One name per kind, in every test suite (``channel_axis``: the weight's output axis):

- ``random``: the raw draw as it is; ``zero``: zeros;
- ``channel_orthogonal``: each output-channel row orthogonal to the weight's row
  (cos = 0): the channel view fires;
- ``layer_orthogonal``: orthogonal to the weight as a whole: the layer view fires
  unless the channel view fires first;
- ``layer_only``: orthogonal to the weight as a whole but radial in one channel:
  the channel view fails and only the layer view fires;
- ``radial``: the weight plus 0.3 times the raw draw: no view fires.

A weight with fewer than two dimensions is never projected: every kind but
``zero`` and ``radial`` leaves its raw draw as it is.
"""

from __future__ import annotations

import numpy as np

from adamp_core import channel_rows

KINDS = ("random", "channel_orthogonal", "layer_orthogonal", "zero")


def orthogonal_rows(rows: np.ndarray, weight_rows: np.ndarray) -> np.ndarray:
    """Each row of ``rows`` without its component along the matching row of ``weight_rows``."""
    norms_sq = np.sum(weight_rows * weight_rows, axis=1, keepdims=True)
    coeff = np.sum(rows * weight_rows, axis=1, keepdims=True) / np.where(norms_sq > 0, norms_sq, 1)
    return rows - coeff * weight_rows


def channel_orthogonal(raw: np.ndarray, weight: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    moved = np.moveaxis(raw, channel_axis, 0)
    rows = orthogonal_rows(channel_rows(raw, channel_axis), channel_rows(weight, channel_axis))
    return np.moveaxis(rows.reshape(moved.shape), 0, channel_axis)


def layer_orthogonal(raw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return orthogonal_rows(raw.reshape(1, -1), weight.reshape(1, -1)).reshape(raw.shape)


def layer_only(raw: np.ndarray, weight: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    """Channel 0 gets w_0 added and channel 1 loses as much along w_1: the sum stays
    orthogonal to w while channel 0 is radial."""
    g = np.moveaxis(channel_orthogonal(raw, weight, channel_axis), channel_axis, 0).copy()
    w = np.moveaxis(weight, channel_axis, 0)
    g[0] += w[0]
    g[1] -= (w[0].ravel() @ w[0].ravel()) / (w[1].ravel() @ w[1].ravel()) * w[1]
    return np.moveaxis(g, 0, channel_axis)


def make_gradient(kind: str, raw: np.ndarray, weight: np.ndarray, channel_axis: int = 0):
    """The gradient of ``kind`` (see the module docstring) built from ``raw``."""
    if kind == "zero":
        return np.zeros_like(raw)
    if kind == "radial":
        return weight + 0.3 * raw
    if kind == "random" or weight.ndim < 2:
        return raw
    if kind == "channel_orthogonal":
        return channel_orthogonal(raw, weight, channel_axis)
    if kind == "layer_orthogonal":
        return layer_orthogonal(raw, weight)
    if kind == "layer_only":
        return layer_only(raw, weight, channel_axis)
    raise ValueError(f"unknown gradient kind {kind!r}")
