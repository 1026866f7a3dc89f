"""A bank of deliberately broken implementations, to prove the suite catches them.

Each entry is an adapter with one known mistake and the flags whose cases must
catch it. Most are a :mod:`variants` switch run through ``VariantStepper``;
``wrong_channel_axis`` is a channels-last implementation that takes channel
rows along axis 0 (a PyTorch port applied to Keras/Flax kernels); the last
three misbehave as adapters (raise, NaN, wrong shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adamp_conformance.adapters import CHANNELS_FIRST, CHANNELS_LAST, Adapter, Problem
from adamp_conformance.flags import Flag
from adamp_conformance.variants import OFFICIAL, VARIANTS, Variant, VariantStepper

__all__ = ["BROKEN", "Broken", "variant_adapter"]


def variant_adapter(
    name: str, variant: Variant, layout: str = CHANNELS_FIRST, channel_axis: int | None = None
) -> Adapter:
    """An adapter stepping with ``variant`` (float64 arithmetic, parameters rounded to dtype)."""

    def factory(problem: Problem) -> VariantStepper:
        return VariantStepper(
            problem.optimizer,
            problem.groups,
            problem.group_of,
            problem.params,
            problem.dtype,
            variant,
            channel_axis=channel_axis,
        )

    return Adapter(
        name=name,
        factory=factory,
        layout=layout,
        description=f"broken on purpose: {variant.description}",
    )


class _Misbehaving(VariantStepper):
    mode = ""

    def step(self, grads):
        params = super().step(grads)
        if self._count == 2 and self.mode == "raises":
            raise RuntimeError("deliberate failure")
        if self.mode == "nan":
            return [np.full_like(p, np.nan) if i == 0 else p for i, p in enumerate(params)]
        if self.mode == "wrong_shape":
            return [p.reshape(-1) if p.ndim > 1 else p for p in params]
        return params


def _misbehaving(mode: str) -> Adapter:
    def factory(problem: Problem):
        stepper = _Misbehaving(
            problem.optimizer,
            problem.groups,
            problem.group_of,
            problem.params,
            problem.dtype,
            OFFICIAL,
        )
        stepper.mode = mode
        return stepper

    return Adapter(name=f"broken-{mode}", factory=factory, description=f"misbehaves: {mode}")


@dataclass(frozen=True)
class Broken:
    adapter: Adapter
    flags: frozenset[Flag]  # each must have at least one failing case
    variant: str | None  # the deviation the runner should name


def _v(name: str, variant: str, *flags: Flag) -> tuple[str, Broken]:
    return name, Broken(
        variant_adapter(f"broken-{name}", VARIANTS[variant]), frozenset(flags), variant
    )


BROKEN: dict[str, Broken] = dict(
    [
        _v("eps_moved", "eps_inside_bias_correction", Flag.EPS_PLACEMENT),
        _v("bias_correction_off_by_one", "bias_correction_off_by_one", Flag.BIAS_CORRECTION),
        _v("wd_ratio_ignored", "wd_ratio_ignored", Flag.WD_RATIO),
        _v("projection_skipped", "no_projection", Flag.PROJ_CHANNEL, Flag.PROJ_LAYER),
        _v("views_swapped", "views_swapped", Flag.PROJ_CHANNEL),
        _v("wrong_nesterov", "nesterov_wrong_form", Flag.NESTEROV),
        _v(
            "sgdp_decay_without_division", "sgdp_decay_without_momentum_division", Flag.WEIGHT_DECAY
        ),
        _v("decay_with_step_size", "decay_uses_step_size", Flag.WEIGHT_DECAY),
        _v("signed_cosine", "cos_without_abs", Flag.NO_PROJ),
        _v("projects_1d", "project_1d", Flag.NO_PROJ_1D),
        _v("torch_sgd_dampening", "dampening_skipped_on_first_step", Flag.DAMPENING),
        _v("buffer_not_projected", "sgdp_buffer_not_projected", Flag.SGDP_BUFFER),
        _v("naive_cosine", "cos_naive", Flag.ZERO_GRAD),
        _v("unit_without_eps", "unit_without_eps", Flag.ZERO_WEIGHT),
        _v("cosine_plus_eps", "cos_plus_eps", Flag.COS_EPS),
        _v("groups_ignored", "groups_ignored", Flag.MULTI_GROUP),
        _v("per_group_step", "per_group_step_counter", Flag.PER_PARAM_STEP),
    ]
)
BROKEN["wrong_channel_axis"] = Broken(
    variant_adapter("broken-wrong_channel_axis", OFFICIAL, CHANNELS_LAST, channel_axis=0),
    frozenset({Flag.CHANNEL_AXIS}),
    "channel_axis_first_of_channels_last",
)
for _mode in ("raises", "nan", "wrong_shape"):
    BROKEN[_mode] = Broken(_misbehaving(_mode), frozenset(), None)


def eps_moved() -> Adapter:
    """``adamp-conformance run --adapter adamp_conformance.broken:eps_moved`` (a demo)."""
    return BROKEN["eps_moved"].adapter
