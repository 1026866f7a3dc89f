"""Known variants: plausible ways to implement AdamP/SGDP differently.

Each variant re-implements one behaviour on top of ``adamp_core``'s public
pieces (``adam_direction``, ``cosine_similarity``, ``remove_radial``,
``view_rows``, ``from_rows``, ``init_states``). They serve two purposes:

- the generator re-runs every case with the variants its flags name and rejects
  a case in which a variant stays within tolerance (the flag would be blind);
- when an implementation fails a case, the runner re-runs the case with each
  variant and *names* the deviation whose trajectory the implementation follows.

The simulation computes in float64 and rounds parameters to the case dtype
after each step, exactly as the golden reference does; with
:data:`OFFICIAL` it reproduces the reference to ~1e-16 (not bit for bit: plain
NumPy sums instead of ``math.fsum``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from adamp_conformance.tolerance import round_to
from adamp_core import (
    Branch,
    adam_direction,
    cosine_similarity,
    from_rows,
    init_states,
    remove_radial,
    view_rows,
)

__all__ = [
    "OFFICIAL",
    "VARIANTS",
    "Trajectory",
    "Variant",
    "VariantStepper",
    "combine",
    "simulate",
    "variants_for",
]


@dataclass(frozen=True)
class Variant:
    """Switches away from the authors' behaviour; the defaults are the authors' behaviour."""

    name: str
    description: str
    optimizers: tuple[str, ...] = ("adamp", "sgdp")
    eps_inside: bool = False  # denom = (sqrt(v) + eps) / sqrt(1 - beta2^t)
    bias_offset: int = 0  # t + offset in both bias corrections
    decay_step_size: bool = False  # AdamP decay with lr / (1 - beta1^t) instead of lr
    views: tuple[str, ...] = ("channel", "layer")  # order of views tried; () = no projection
    channel_axis: str = "correct"  # "last" or "first_of_channels_last" (PyTorch layout)
    project_1d: bool = False  # 1-D parameters projected as one row
    wd_ratio_ignored: bool = False
    nesterov: str = "official"  # "ignored" or "wrong" (AdamP: b1 m + g; SGDP: g + mu b_old)
    project_buffer: bool | None = None  # None: the case's own setting
    sgdp_decay_no_division: bool = False  # SGDP decay lr * wd * r instead of / (1 - mu)
    dampening_first_step: bool = False  # torch.optim.SGD: buffer = g on the first step
    cosine: str = "torch"  # "old_torch", "plus_eps", "naive", "no_abs"
    unit_eps: bool = True  # unit vector p / (|p| + eps); False: p / |p|
    per_group_step: bool = False  # one step counter per group, advancing every step
    groups_ignored: bool = False  # the first group's hyperparameters for every parameter
    cos_operand: str = "grad"  # the cosine test against "update" or "momentum" instead
    one_axis: bool = False  # view statistics reduced over the input axis only
    scalar_precision: str = "float64"  # hyperparameters held in "float32" or the case "dtype"
    eps_squared: bool = False  # norms as sqrt(max(|x|^2, eps^2)), eps^2 in the case dtype
    threshold_sqrt_dim: bool = True  # False: cos < delta instead of delta / sqrt(row length)
    coupled_decay: bool = False  # L2 decay added to the gradient, no decoupled decay


OFFICIAL = Variant("official", "the authors' adamp 0.3.0 (the reference)")

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "eps_inside_bias_correction",
            "eps added before dividing by sqrt(1 - beta2^t): (sqrt(v) + eps) / sqrt(bc2) "
            "(pytorch_optimizer)",
            ("adamp",),
            eps_inside=True,
        ),
        Variant(
            "bias_correction_off_by_one",
            "bias corrections 1 - beta^(t+1): the step counted from 0",
            ("adamp",),
            bias_offset=1,
        ),
        Variant(
            "decay_uses_step_size",
            "decoupled decay multiplied by lr / (1 - beta1^t) instead of lr",
            ("adamp",),
            decay_step_size=True,
        ),
        Variant("no_projection", "the projection is never applied (plain AdamW / SGDW)", views=()),
        Variant(
            "views_swapped",
            "the layer view is tried before the channel view",
            views=("layer", "channel"),
        ),
        Variant(
            "channel_axis_last",
            "channel rows taken along the last axis of a PyTorch-layout weight "
            "(a channels-first port used on channels-last data, or the reverse)",
            channel_axis="last",
        ),
        Variant(
            "channel_axis_first_of_channels_last",
            "channel rows taken along axis 0 of the channels-last weight (a PyTorch port "
            "used on Keras/Flax kernels: rows of kernel height or input units)",
            channel_axis="first_of_channels_last",
        ),
        Variant("project_1d", "1-D parameters projected as one row", project_1d=True),
        Variant(
            "wd_ratio_ignored",
            "weight decay of projected weights not scaled by wd_ratio",
            wd_ratio_ignored=True,
        ),
        Variant("nesterov_ignored", "nesterov=True behaves as nesterov=False", nesterov="ignored"),
        Variant(
            "nesterov_wrong_form",
            "Nesterov direction b1*m + g (AdamP) or g + mu*buffer_before_update (SGDP)",
            nesterov="wrong",
        ),
        Variant(
            "sgdp_buffer_not_projected",
            "SGDP projects a copy of the momentum buffer and stores it unprojected (timm, "
            "pytorch_optimizer)",
            ("sgdp",),
            project_buffer=False,
        ),
        Variant(
            "sgdp_buffer_projected",
            "SGDP stores the projected buffer even when asked not to (project_buffer=False)",
            ("sgdp",),
            project_buffer=True,
        ),
        Variant(
            "sgdp_decay_without_momentum_division",
            "SGDP decay lr * weight_decay * r without the division by (1 - momentum)",
            ("sgdp",),
            sgdp_decay_no_division=True,
        ),
        Variant(
            "dampening_skipped_on_first_step",
            "SGDP buffer = g on the first step (torch.optim.SGD), dampening only after",
            ("sgdp",),
            dampening_first_step=True,
        ),
        Variant(
            "cos_old_torch",
            "cosine x.y / max(|x| |y|, eps) (torch < 1.12 cosine_similarity)",
            cosine="old_torch",
        ),
        Variant(
            "cos_plus_eps",
            "cosine x.y / ((|x| + eps)(|y| + eps)) (torch_optimizer)",
            cosine="plus_eps",
        ),
        Variant(
            "cos_naive",
            "cosine x.y / (|x| |y|) without eps: NaN for a zero gradient, so no projection",
            cosine="naive",
        ),
        Variant(
            "cos_without_abs",
            "signed cosine (the paper's equation): anti-aligned gradients always projected",
            cosine="no_abs",
        ),
        Variant(
            "unit_without_eps",
            "unit vector p / |p| without eps: NaN for a zero weight row",
            unit_eps=False,
        ),
        Variant(
            "per_group_step_counter",
            "one step counter per parameter group, advancing even for parameters without "
            "gradient (pytorch_optimizer; Keras and optax count globally)",
            ("adamp",),
            per_group_step=True,
        ),
        Variant(
            "groups_ignored",
            "every parameter stepped with the first group's hyperparameters",
            groups_ignored=True,
        ),
        Variant(
            "cos_against_update",
            "the cosine test takes the update direction (AdamP m / denom, SGDP the momentum "
            "direction) instead of the gradient",
            cos_operand="update",
        ),
        Variant(
            "cos_against_momentum",
            "the cosine test takes the first moment / momentum buffer instead of the gradient",
            cos_operand="momentum",
        ),
        Variant(
            "one_axis_reduction",
            "cosines and norms reduced over the input axis only (axis=1 in PyTorch layout, "
            "axis=-2 in Keras layout) instead of every axis but the output one: per kernel "
            "position for 4-D weights, and the layer view tests the same slices",
            one_axis=True,
        ),
        Variant(
            "hyperparameters_float32",
            "hyperparameters held in float32 (Keras variables, tf constants) while the "
            "weights are float64",
            scalar_precision="float32",
        ),
        Variant(
            "scalars_in_param_dtype",
            "hyperparameters and bias corrections computed in the parameter's dtype (in "
            "bfloat16 beta2 = 0.999 rounds to 1, so 1 - beta2^t = 0)",
            ("adamp",),
            scalar_precision="dtype",
        ),
        Variant(
            "eps_squared_underflow",
            "norms clamped as sqrt(max(|x|^2, eps^2)) with eps^2 in the parameter's dtype: "
            "0 in float16 for eps < 2.4e-4, so a zero gradient or weight row gives NaN",
            eps_squared=True,
        ),
        Variant(
            "threshold_without_sqrt_dim",
            "projection when max cos < delta, without the division by sqrt(row length)",
            threshold_sqrt_dim=False,
        ),
        Variant(
            "coupled_weight_decay",
            "weight decay added to the gradient (L2, Adam/SGD style) instead of decoupled",
            coupled_decay=True,
        ),
    )
}


def variants_for(optimizer: str) -> list[Variant]:
    return [v for v in VARIANTS.values() if optimizer in v.optimizers]


@dataclass
class Trajectory:
    """Parameters p_0..p_T, states and branches after each step, in PyTorch layout (float64)."""

    params: list[list[np.ndarray]]  # [t][i], t = 0..T
    states: list[list[dict[str, np.ndarray]]] | None = None  # [t - 1][i], after step t
    branches: np.ndarray | None = None  # (T, n) int, Branch codes
    extra: dict = field(default_factory=dict)


def _channel_axis(variant: Variant, ndim: int) -> int:
    if variant.channel_axis == "last":
        return ndim - 1
    if variant.channel_axis == "first_of_channels_last":
        return 2 if ndim > 2 else 1  # (O, I, *k) -> channels-last (*k, I, O): axis 0 is k or I
    return 0


def _cosine(x_rows: np.ndarray, y_rows: np.ndarray, eps: float, kind: str) -> np.ndarray:
    if kind == "torch":
        return cosine_similarity(x_rows, y_rows, eps)
    dot = np.sum(x_rows * y_rows, axis=1)
    nx = np.sqrt(np.sum(x_rows * x_rows, axis=1))
    ny = np.sqrt(np.sum(y_rows * y_rows, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "old_torch":
            return np.abs(dot / np.maximum(nx * ny, eps))
        if kind == "plus_eps":
            return np.abs(dot / ((nx + eps) * (ny + eps)))
        if kind == "naive":
            return np.abs(dot / (nx * ny))
        if kind == "no_abs":
            return dot / (np.maximum(nx, eps) * np.maximum(ny, eps))
    raise ValueError(f"unknown cosine variant {kind!r}")


def _input_axis(axis: int) -> int:
    return 1 if axis == 0 else axis - 1


def _rows(x: np.ndarray, view: str, axis: int) -> np.ndarray:
    if view == "one_axis":  # a row per (output channel, kernel position), over the inputs
        moved = np.moveaxis(x, _input_axis(axis), -1)
        return moved.reshape(-1, moved.shape[-1])
    return view_rows(x, Branch.CHANNEL if view == "channel" else Branch.LAYER, axis)


def _unrows(rows: np.ndarray, shape: tuple[int, ...], view: str, axis: int) -> np.ndarray:
    if view == "one_axis":
        k = _input_axis(axis)
        moved = (*shape[:k], *shape[k + 1 :], shape[k])
        return np.moveaxis(rows.reshape(moved), -1, k)
    return from_rows(rows, shape, Branch.CHANNEL if view == "channel" else Branch.LAYER, axis)


def _eps_squared_cosine(x_rows, y_rows, eps_sq):
    dot = np.sum(x_rows * y_rows, axis=1)
    nx = np.sqrt(np.maximum(np.sum(x_rows * x_rows, axis=1), eps_sq))
    ny = np.sqrt(np.maximum(np.sum(y_rows * y_rows, axis=1), eps_sq))
    return np.abs(dot / (nx * ny))


def project(
    p,
    g,
    u,
    *,
    delta,
    eps,
    wd_ratio,
    variant: Variant,
    axis: int | None = None,
    dtype: str = "float64",
):
    """The projection with the variant's switches; returns (update, ratio, branch).

    ``g`` is the vector the cosine test takes (the gradient, or the variant's
    operand); ``axis`` overrides the channel axis (default: the variant's rule in
    PyTorch layout); ``dtype`` is the case dtype (for eps^2 in that dtype).
    """
    if p.ndim < 2 and not variant.project_1d:
        return u, 1.0, Branch.NONE
    if p.ndim < 2:
        p, g, u2 = p.reshape(1, -1), g.reshape(1, -1), u.reshape(1, -1)
        views = ("layer",)
    else:
        u2 = u
        views = ("one_axis",) if variant.one_axis and variant.views else variant.views
    axis = _channel_axis(variant, p.ndim) if axis is None else axis % p.ndim
    eps_sq = float(round_to(eps * eps, dtype)) if variant.eps_squared else None
    for view in views:
        pr, gr = _rows(p, view, axis), _rows(g, view, axis)
        if eps_sq is None:
            cos = _cosine(gr, pr, eps, variant.cosine)
        else:
            cos = _eps_squared_cosine(gr, pr, eps_sq)
        threshold = delta / math.sqrt(pr.shape[1]) if variant.threshold_sqrt_dim else delta
        with np.errstate(invalid="ignore"):
            fired = bool(np.max(cos) < threshold)
        if fired:
            ur = _rows(u2, view, axis)
            if eps_sq is not None:
                unit = pr / np.sqrt(np.sum(pr * pr, axis=1) + eps_sq)[:, None]
                rows = ur - unit * np.sum(unit * ur, axis=1)[:, None]
            elif variant.unit_eps:
                rows = remove_radial(pr, ur, eps)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    unit = pr / np.sqrt(np.sum(pr * pr, axis=1))[:, None]
                    rows = ur - unit * np.sum(unit * ur, axis=1)[:, None]
            out = _unrows(rows, p.shape, view, axis).reshape(u.shape)
            ratio = 1.0 if variant.wd_ratio_ignored else float(wd_ratio)
            code = Branch.LAYER if view == "layer" else Branch.CHANNEL
            return out, ratio, code
    return u, 1.0, Branch.NONE


def _scalars(hp: dict, variant: Variant, dtype: str) -> dict:
    """The hyperparameters as the variant holds them (rounded to float32 or the case dtype)."""
    precision = {"float32": "float32", "dtype": dtype}.get(variant.scalar_precision)
    if precision is None:
        return hp
    return {
        k: float(round_to(v, precision)) if isinstance(v, float | int) and not isinstance(v, bool)
        else v
        for k, v in hp.items()
    }  # fmt: skip


def _scalar_rounding(variant: Variant, dtype: str):
    """Rounding of a scalar expression (bias correction, step size, decay factor) to the
    precision the variant holds scalars in; the identity for float64."""
    if variant.scalar_precision == "float64":
        return lambda x: x
    precision = dtype if variant.scalar_precision == "dtype" else "float32"
    return lambda x: float(round_to(x, precision))


def _adam_direction(m, v, g, t: int, hp: dict, variant: Variant, rnd) -> np.ndarray:
    """``adam_direction`` with the variant's switches (eps placement, Nesterov form, and the
    bias correction rounded to the precision the variant holds scalars in)."""
    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
    nesterov = hp["nesterov"] and variant.nesterov == "official"
    if hp["nesterov"] and variant.nesterov == "wrong":
        m = b1 * m + g  # the numerator itself, passed as the first moment without Nesterov
    if variant.scalar_precision == "float64":
        if variant.eps_inside:  # (sqrt(v) + eps) / sqrt(bc2) = sqrt(v) / sqrt(bc2) + eps'
            eps = eps / math.sqrt(1.0 - b2**t)
        return adam_direction(m, v, g, t, beta1=b1, beta2=b2, eps=eps, nesterov=nesterov)
    sqrt_bc2 = rnd(math.sqrt(rnd(1.0 - rnd(b2**t))))
    numerator = b1 * m + (1.0 - b1) * g if nesterov else m
    if variant.eps_inside:
        return numerator / ((np.sqrt(v) + eps) / sqrt_bc2)
    return numerator / (np.sqrt(v) / sqrt_bc2 + eps)


def _adamp(p, g, st, hp, variant: Variant, group_step: int, axis, dtype):
    b1, b2, eps, lr = hp["beta1"], hp["beta2"], hp["eps"], hp["lr"]
    step = st["step"] + 1
    t = (group_step if variant.per_group_step else step) + variant.bias_offset
    if variant.coupled_decay:
        g = g + hp["weight_decay"] * p
    m = b1 * st["exp_avg"] + (1.0 - b1) * g
    v = b2 * st["exp_avg_sq"] + (1.0 - b2) * (g * g)
    rnd = _scalar_rounding(variant, dtype)  # scalar expressions in the held precision
    bc1 = rnd(1.0 - rnd(b1**t))
    direction = _adam_direction(m, v, g, t, hp, variant, rnd)
    operand = {"grad": g, "update": direction, "momentum": m}[variant.cos_operand]
    d, ratio, branch = project(
        p,
        operand,
        direction,
        delta=hp["delta"],
        eps=eps,
        wd_ratio=hp["wd_ratio"],
        variant=variant,
        axis=axis,
        dtype=dtype,
    )
    decay_lr = lr / bc1 if variant.decay_step_size else lr
    wd = 0.0 if variant.coupled_decay else hp["weight_decay"]
    new = p * rnd(1.0 - decay_lr * wd * ratio) - rnd(lr / bc1) * d
    return new, {"step": step, "exp_avg": m, "exp_avg_sq": v}, branch


def _sgdp(p, g, st, hp, variant: Variant, first: bool, axis, dtype):
    mu, lr = hp["momentum"], hp["lr"]
    if variant.coupled_decay:
        g = g + hp["weight_decay"] * p
    old = st["momentum_buffer"]
    damp = 0.0 if (variant.dampening_first_step and first) else hp["dampening"]
    buf = mu * old + _scalar_rounding(variant, dtype)(1.0 - damp) * g
    nesterov = hp["nesterov"] and variant.nesterov != "ignored"
    # the Nesterov direction g + mu * b (the wrong form uses the buffer before this step)
    d = g + mu * (old if variant.nesterov == "wrong" else buf) if nesterov else buf
    operand = {"grad": g, "update": d, "momentum": buf}[variant.cos_operand]
    d, ratio, branch = project(
        p,
        operand,
        d,
        delta=hp["delta"],
        eps=hp["eps"],
        wd_ratio=hp["wd_ratio"],
        variant=variant,
        axis=axis,
        dtype=dtype,
    )
    keep = (
        hp.get("project_buffer", True)
        if variant.project_buffer is None
        else (variant.project_buffer)
    )
    if keep and not nesterov:
        buf = d
    divisor = 1.0 if variant.sgdp_decay_no_division else 1.0 - mu
    wd = 0.0 if variant.coupled_decay else hp["weight_decay"]
    new = p * _scalar_rounding(variant, dtype)(1.0 - lr * wd * ratio / divisor) - lr * d
    return new, {"momentum_buffer": buf}, branch


class VariantStepper:
    """Steps parameters with a variant, in float64, rounding parameters to ``dtype``.

    With ``channel_axis=None`` the variant's channel-axis rule applies to
    PyTorch-layout tensors; an integer forces that axis for every >1-D tensor.
    It has the adapter stepper interface (``step``, ``state``, ``branches``).
    """

    def __init__(
        self,
        optimizer: str,
        groups: Sequence[dict],
        group_of: Sequence[int],
        params: Sequence[np.ndarray],
        dtype: str,
        variant: Variant = OFFICIAL,
        channel_axis: int | None = None,
    ) -> None:
        self.optimizer, self.groups, self.group_of = optimizer, list(groups), list(group_of)
        self.dtype, self.variant, self.axis = dtype, variant, channel_axis
        self.params = [round_to(p, dtype) for p in params]
        self._states = [s._asdict() for s in init_states(optimizer, self.params)]
        self._first = [True] * len(self.params)
        self._branches = [int(Branch.NONE)] * len(self.params)
        self._count = 0

    def step(self, grads: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        self._count += 1
        variant = self.variant
        with np.errstate(all="ignore"):
            for i, g in enumerate(grads):
                if g is None:
                    continue
                p = self.params[i]
                hp = self.groups[0 if variant.groups_ignored else self.group_of[i]]
                hp = _scalars(hp, variant, self.dtype)
                g = np.asarray(g, dtype=np.float64)
                step = _adamp if self.optimizer == "adamp" else _sgdp
                counter = self._count if self.optimizer == "adamp" else self._first[i]
                new, st, branch = step(
                    p, g, self._states[i], hp, variant, counter, self.axis, self.dtype
                )
                if self.optimizer == "sgdp":
                    self._first[i] = False
                self.params[i] = round_to(new, self.dtype)
                self._states[i] = st
                self._branches[i] = int(branch)
        return list(self.params)

    def state(self) -> list[dict]:
        return [dict(s) for s in self._states]

    def branches(self) -> list[int]:
        return list(self._branches)


def simulate(
    optimizer: str,
    groups: Sequence[dict],
    group_of: Sequence[int],
    params: Sequence[np.ndarray],
    grads: Sequence[Sequence[np.ndarray | None]],
    dtype: str,
    variant: Variant = OFFICIAL,
) -> Trajectory:
    """Run the case data (PyTorch layout) through the variant; grads[t][i] None = no gradient."""
    stepper = VariantStepper(optimizer, groups, group_of, params, dtype, variant)
    traj = Trajectory(params=[list(stepper.params)], states=[], branches=None)
    branches = []
    for step_grads in grads:
        traj.params.append(stepper.step(step_grads))
        traj.states.append(stepper.state())
        branches.append(
            [
                b if g is not None else int(Branch.NONE)
                for b, g in zip(stepper.branches(), step_grads, strict=True)
            ]
        )
    traj.branches = np.array(branches, dtype=np.int64).reshape(len(grads), len(params))
    return traj


def combine(a: Variant, b: Variant) -> Variant:
    """Both variants' switches at once (b's wins where both set one)."""
    changes = {}
    for f in fields(Variant):
        if f.name in ("name", "description", "optimizers"):
            continue
        default = getattr(OFFICIAL, f.name)
        value = getattr(b, f.name)
        changes[f.name] = value if value != default else getattr(a, f.name)
    return replace(
        a, name=f"{a.name}+{b.name}", description=f"{a.description}; {b.description}", **changes
    )
