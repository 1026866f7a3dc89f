"""Behaviour flags: what a conformance case exercises, and what must catch a mistake.

Every case carries the flags of the behaviours it makes visible. For each flag
there are named variants (:mod:`adamp_conformance.variants`): plausible ways to
get that behaviour wrong. The generator only accepts a case if each variant its
flags name changes the trajectory by several times the tolerance, so a failing
case points at its flags.
"""

from __future__ import annotations

import enum

__all__ = ["FLAG_VARIANTS", "Flag"]


class Flag(str, enum.Enum):
    """A behaviour a case exercises; the value is the stable spelling used in files."""

    EPS_PLACEMENT = "EPS_PLACEMENT"  # eps added after dividing sqrt(v) by sqrt(1 - beta2^t)
    BIAS_CORRECTION = "BIAS_CORRECTION"  # 1 - beta^t with t counted from 1
    PROJ_CHANNEL = "PROJ_CHANNEL"  # the channel view fires (and is tried before the layer view)
    PROJ_LAYER = "PROJ_LAYER"  # the channel view fails, the layer view fires
    NO_PROJ = "NO_PROJ"  # a >1-D weight with a (negatively) aligned gradient is not projected
    NO_PROJ_1D = "NO_PROJ_1D"  # 1-D parameters are never projected
    CHANNEL_AXIS = "CHANNEL_AXIS"  # rows are output channels, whatever the layout
    WD_RATIO = "WD_RATIO"  # weight decay of projected weights is scaled by wd_ratio
    WEIGHT_DECAY = "WEIGHT_DECAY"  # decoupled decay: lr (AdamP), lr / (1 - momentum) (SGDP)
    NESTEROV = "NESTEROV"  # the Nesterov direction
    DAMPENING = "DAMPENING"  # dampening applies on the first SGDP step too
    SGDP_BUFFER = "SGDP_BUFFER"  # the stored SGDP buffer is the projected one (no Nesterov)
    ZERO_GRAD = "ZERO_GRAD"  # a zero gradient has cosine 0: projected, wd_ratio applies
    ZERO_WEIGHT = "ZERO_WEIGHT"  # a zero weight row: unit vector 0 / (0 + eps), no NaN
    COS_EPS = "COS_EPS"  # norms clamped separately at eps in the cosine
    MULTI_GROUP = "MULTI_GROUP"  # each parameter group uses its own hyperparameters
    PER_PARAM_STEP = "PER_PARAM_STEP"  # a parameter without gradient does not advance its count
    COS_OPERAND = "COS_OPERAND"  # the cosine test takes the gradient, not the update or momentum
    REDUCTION_AXES = "REDUCTION_AXES"  # view statistics over every axis but the output one
    SCALAR_PRECISION = "SCALAR_PRECISION"  # hyperparameters and bias corrections in float64
    EPS_SQUARED = "EPS_SQUARED"  # eps clamps norms, never eps^2 (which float16 flushes to 0)
    THRESHOLD = "THRESHOLD"  # the threshold is delta / sqrt(row length)
    DECOUPLED_DECAY = "DECOUPLED_DECAY"  # weight decay is decoupled, not added to the gradient


# The variants each flag must expose, by optimizer. A case may narrow this with ``expose``.
FLAG_VARIANTS: dict[Flag, dict[str, tuple[str, ...]]] = {
    Flag.EPS_PLACEMENT: {"adamp": ("eps_inside_bias_correction",)},
    Flag.BIAS_CORRECTION: {"adamp": ("bias_correction_off_by_one",)},
    Flag.PROJ_CHANNEL: {
        "adamp": ("no_projection", "views_swapped"),
        "sgdp": ("no_projection", "views_swapped"),
    },
    Flag.PROJ_LAYER: {"adamp": ("no_projection",), "sgdp": ("no_projection",)},
    Flag.NO_PROJ: {"adamp": ("cos_without_abs",), "sgdp": ("cos_without_abs",)},
    Flag.NO_PROJ_1D: {"adamp": ("project_1d",), "sgdp": ("project_1d",)},
    Flag.CHANNEL_AXIS: {
        "adamp": ("channel_axis_last", "channel_axis_first_of_channels_last"),
        "sgdp": ("channel_axis_last", "channel_axis_first_of_channels_last"),
    },
    Flag.WD_RATIO: {"adamp": ("wd_ratio_ignored",), "sgdp": ("wd_ratio_ignored",)},
    Flag.WEIGHT_DECAY: {
        "adamp": ("decay_uses_step_size",),
        "sgdp": ("sgdp_decay_without_momentum_division",),
    },
    Flag.NESTEROV: {
        "adamp": ("nesterov_ignored", "nesterov_wrong_form"),
        "sgdp": ("nesterov_ignored", "nesterov_wrong_form"),
    },
    Flag.DAMPENING: {"sgdp": ("dampening_skipped_on_first_step",)},
    Flag.SGDP_BUFFER: {"sgdp": ("sgdp_buffer_not_projected",)},
    Flag.ZERO_GRAD: {"adamp": ("cos_naive",), "sgdp": ("cos_naive",)},
    Flag.ZERO_WEIGHT: {"adamp": ("unit_without_eps",), "sgdp": ("unit_without_eps",)},
    Flag.COS_EPS: {"adamp": ("cos_plus_eps",), "sgdp": ("cos_plus_eps",)},
    Flag.MULTI_GROUP: {"adamp": ("groups_ignored",), "sgdp": ("groups_ignored",)},
    Flag.PER_PARAM_STEP: {"adamp": ("per_group_step_counter",)},
    Flag.COS_OPERAND: {
        "adamp": ("cos_against_update", "cos_against_momentum"),
        "sgdp": ("cos_against_update", "cos_against_momentum"),
    },
    Flag.REDUCTION_AXES: {"adamp": ("one_axis_reduction",), "sgdp": ("one_axis_reduction",)},
    Flag.SCALAR_PRECISION: {
        "adamp": ("hyperparameters_float32",),
        "sgdp": ("hyperparameters_float32",),
    },
    Flag.EPS_SQUARED: {"adamp": ("eps_squared_underflow",), "sgdp": ("eps_squared_underflow",)},
    Flag.THRESHOLD: {
        "adamp": ("threshold_without_sqrt_dim",),
        "sgdp": ("threshold_without_sqrt_dim",),
    },
    Flag.DECOUPLED_DECAY: {"adamp": ("coupled_weight_decay",), "sgdp": ("coupled_weight_decay",)},
}
