"""The case specifications: the source of truth from which the golden files are generated.

A case is one optimizer, a few parameters (shapes in PyTorch layout, channel
axis 0), hyperparameters per group, a number of steps, the dtypes it runs in
and the flags of the behaviours it exposes. Gradients are *recorded*: the
generator builds each step's gradient from the reference's current parameter
(e.g. orthogonal to each channel row, to make the weight look
scale-invariant) and stores it; an implementation under test receives the
stored gradient, so no autodiff is involved and nothing depends on the
implementation's own trajectory.

Gradient kinds (per parameter, per step), for a weight w with channel rows w_i:

- ``channel_orthogonal``: each row orthogonal to w_i (cos = 0): the channel view
  fires, and the layer view would too (it is tried second, so swapping them shows).
- ``layer_only``: row 0 has cos 0.5 with w_0 but a small norm; the other rows are
  orthogonal: the channel view fails, the layer view fires.
- ``aligned`` / ``anti``: every row at cos +0.6 / -0.6: no projection
  (a signed cosine would project ``anti``).
- ``parallel``: every row parallel to w_i with norm ``grad_scale`` (~eps): the
  cosine depends on how eps enters it.
- ``random``: i.i.d. normal; ``zero``: zeros.
- ``late_channel_orthogonal``: ``aligned`` on the first two steps,
  ``channel_orthogonal`` after (the moments keep the aligned steps while the
  gradient's cosine is 0).
- ``weak``: every row at cos 0.06: above delta / sqrt(d) for the rows here,
  below delta itself.

Every magnitude is multiplied by ``grad_scale``; ids are stable and never reused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from adamp_conformance.flags import FLAG_VARIANTS, Flag

__all__ = ["CASES", "Case", "ParamSpec", "case_by_id", "make_grad", "make_init"]

ADAMP_DEFAULTS = {
    "lr": 2**-10,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay": 0.0,
    "delta": 0.1,
    "wd_ratio": 0.1,
    "nesterov": False,
}
SGDP_DEFAULTS = {
    "lr": 2**-7,
    "momentum": 0.0,
    "dampening": 0.0,
    "weight_decay": 0.0,
    "nesterov": False,
    "eps": 1e-8,
    "delta": 0.1,
    "wd_ratio": 0.1,
    "project_buffer": True,
}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]  # PyTorch layout: output channels on axis 0
    grad: str = "channel_orthogonal"
    grad_scale: float = 1e-2
    init: str = "normal"  # "normal", "unit_rows" (rows of norm init_scale), "zero_row", "zeros"
    init_scale: float = 1.0
    group: int = 0
    none_steps: tuple[int, ...] = ()  # 0-based steps where the gradient is None
    zero_steps: tuple[int, ...] = ()  # 0-based steps where the gradient is exactly zero


@dataclass(frozen=True)
class Case:
    id: str
    optimizer: str  # "adamp" or "sgdp"
    description: str
    flags: tuple[Flag, ...]
    params: tuple[ParamSpec, ...]
    hyper: dict = field(default_factory=dict)  # overrides of the optimizer defaults
    groups: tuple[dict, ...] = ({},)  # per-group overrides on top of ``hyper``
    steps: int = 10
    dtypes: tuple[str, ...] = ("float64", "float32")
    low_steps: int = 4  # horizon in float16 / bfloat16
    low_hyper: dict = field(default_factory=dict)  # overrides in float16 / bfloat16
    seed: int = 0
    expose: tuple[str, ...] | None = None  # variants that must be visible (default: flags')
    low_expose: dict = field(default_factory=dict)  # dtype -> variants visible in that dtype
    # float16 AdamP needs (1 - beta2) g^2 above float16's normal range (6e-5): |g| >~ 0.3
    f16_grad_factor: float = 1.0
    f16_hyper: dict = field(default_factory=dict)  # overrides in float16 only

    def group_hyper(self, dtype: str) -> list[dict]:
        base = dict(ADAMP_DEFAULTS if self.optimizer == "adamp" else SGDP_DEFAULTS)
        base.update(self.hyper)
        if dtype in ("float16", "bfloat16"):
            base.update(self.low_hyper)
        if dtype == "float16":
            base.update(self.f16_hyper)
        return [{**base, **g} for g in self.groups]

    def param_specs(self, dtype: str) -> tuple[ParamSpec, ...]:
        if dtype != "float16" or self.f16_grad_factor == 1.0:
            return self.params
        return tuple(
            replace(p, grad_scale=p.grad_scale * self.f16_grad_factor) for p in self.params
        )

    def horizon(self, dtype: str) -> int:
        return self.low_steps if dtype in ("float16", "bfloat16") else self.steps

    def exposed_variants(self, dtype: str = "float64") -> tuple[str, ...]:
        if dtype in self.low_expose:
            return tuple(self.low_expose[dtype])
        if self.expose is not None:
            return self.expose
        names: list[str] = []
        for flag in self.flags:
            for name in FLAG_VARIANTS[flag].get(self.optimizer, ()):
                if name not in names:
                    names.append(name)
        return tuple(names)


def _norm(v: np.ndarray) -> float:
    """Correctly rounded Euclidean norm, so the recorded gradients are the same on every machine."""
    return math.sqrt(math.fsum((v * v).tolist()))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return math.fsum((a * b).tolist())


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(1, -1) if x.ndim < 2 else x.reshape(x.shape[0], -1)


def make_init(spec: ParamSpec, rng: np.random.RandomState) -> np.ndarray:
    x = rng.standard_normal(spec.shape)
    if spec.init == "zeros":
        return np.zeros(spec.shape)
    if spec.init == "unit_rows":
        rows = _rows(x)
        rows = rows / np.array([[_norm(r)] for r in rows])
        return (spec.init_scale * rows).reshape(spec.shape)
    x = spec.init_scale * x
    if spec.init == "zero_row":
        x[0] = 0.0
    return x


def _row_directions(p_rows, cos, rng):
    """Unit rows at cosine ``cos[i]`` with p_rows[i] (any direction when p_rows[i] is 0)."""
    out = np.empty_like(p_rows)
    for i, y in enumerate(p_rows):
        r = rng.standard_normal(y.shape[0])
        norm = _norm(y)
        if norm == 0.0:
            out[i] = r / _norm(r)
            continue
        y_hat = y / norm
        r = r - _dot(r, y_hat) * y_hat
        r = r / _norm(r)
        out[i] = cos[i] * y_hat + math.sqrt(1.0 - cos[i] ** 2) * r
    return out


def make_grad(spec: ParamSpec, param: np.ndarray, step: int, rng: np.random.RandomState):
    """The gradient of ``spec`` at 0-based ``step`` for the current parameter (None if absent)."""
    if step in spec.none_steps:
        return None
    if spec.grad == "zero" or step in spec.zero_steps:
        return np.zeros(param.shape)
    if spec.grad == "random":
        return spec.grad_scale * rng.standard_normal(param.shape)
    p_rows = _rows(param)
    n, d = p_rows.shape
    row_norm = spec.grad_scale * np.sqrt(d) * rng.uniform(0.7, 1.3, size=n)
    if spec.grad == "channel_orthogonal":
        cos = np.zeros(n)
    elif spec.grad == "layer_only":
        cos = np.zeros(n)
        cos[0] = 0.5
        row_norm[0] *= 0.02
    elif spec.grad in ("aligned", "anti"):
        cos = np.full(n, 0.6 if spec.grad == "aligned" else -0.6)
    elif spec.grad == "late_channel_orthogonal":
        cos = np.full(n, 0.6) if step < 2 else np.zeros(n)
    elif spec.grad == "weak":
        cos = np.full(n, 0.06)
    elif spec.grad == "parallel":
        cos = np.ones(n)
        row_norm = np.full(n, spec.grad_scale)
    else:
        raise ValueError(f"unknown gradient kind {spec.grad!r}")
    g = _row_directions(p_rows, cos, rng) * row_norm[:, None]
    return g.reshape(param.shape)


P = ParamSpec
CONV = (4, 3, 2, 2)  # (out, in, kh, kw): 12 elements per channel row
DENSE = (5, 6)
ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")
# Learning rates and decays are binary fractions: Keras keeps the learning rate in a float32
# variable even for float64 weights, and 0.1 in float32 is off by 1.5e-9 relative.
LOW = {"lr": 2**-4}
# float16 cannot hold eps = 1e-8 (its smallest subnormal is 6e-8): 0 / (0 + eps) would be NaN.
# float16 AdamP also needs (1 - beta2) g^2 in float16's normal range, hence beta2 = 0.9.
F16_ADAMP = {"eps": 1e-3, "beta2": 0.9}
F16_SGDP = {"eps": 1e-4}

CASES: tuple[Case, ...] = (
    # ---------------------------------------------------------------- AdamP
    Case(
        "adamp-channel",
        "adamp",
        "Conv and dense weights with gradients orthogonal to every output channel: the "
        "channel view fires; a bias is never projected.",
        (Flag.PROJ_CHANNEL, Flag.NO_PROJ_1D),
        (P("conv", CONV), P("dense", DENSE), P("bias", (5,), grad="channel_orthogonal")),
        hyper={"lr": 2**-7},
        dtypes=("float64", "float32", "float16"),
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=1,
        low_expose={"float16": ("no_projection", "views_swapped")},
    ),
    Case(
        "adamp-layer",
        "adamp",
        "One channel has an aligned gradient, so the channel view fails and the layer view fires.",
        (Flag.PROJ_LAYER,),
        (P("conv", CONV, grad="layer_only"), P("dense", DENSE, grad="layer_only")),
        hyper={"lr": 2**-7},
        dtypes=("float64", "float32"),
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=2,
    ),
    Case(
        "adamp-no-projection",
        "adamp",
        "Gradients anti-aligned with every channel (cos -0.6): no view fires; a signed "
        "cosine would project.",
        (Flag.NO_PROJ,),
        (P("conv", CONV, grad="anti"), P("dense", DENSE, grad="aligned")),
        hyper={"lr": 2**-7},
        dtypes=("float64", "float32", "float16"),
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=3,
    ),
    Case(
        "adamp-channel-axis",
        "adamp",
        "Rectangular conv and dense weights: channel rows along the output axis only.",
        (Flag.CHANNEL_AXIS, Flag.PROJ_CHANNEL),
        (P("conv", (6, 2, 3, 1)), P("dense", (3, 8))),
        hyper={"lr": 2**-7},
        seed=4,
    ),
    Case(
        "adamp-eps-placement",
        "adamp",
        "Gradients of ~1e-6: eps = 1e-8 after the bias correction of sqrt(v) changes the "
        "direction by ~1%, before it by ~30% on step 1.",
        (Flag.EPS_PLACEMENT,),
        (P("conv", CONV, grad_scale=1e-6), P("bias", (4,), grad="random", grad_scale=1e-6)),
        hyper={"lr": 2**-7},
        dtypes=("float64", "float32"),
        low_hyper=LOW,
        seed=5,
    ),
    Case(
        "adamp-bias-correction",
        "adamp",
        "Early steps with beta2 = 0.99, where 1 - beta^t changes fastest.",
        (Flag.BIAS_CORRECTION,),
        (P("dense", DENSE, grad="random"), P("bias", (6,), grad="random")),
        hyper={"lr": 2**-7, "beta2": 0.99},
        dtypes=("float64", "float32", "float16"),
        low_hyper=LOW,
        steps=8,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=6,
    ),
    Case(
        "adamp-weight-decay",
        "adamp",
        "Decoupled weight decay (lr * wd * r) with projected and unprojected weights.",
        (Flag.WD_RATIO, Flag.WEIGHT_DECAY),
        (P("conv", CONV), P("dense", DENSE, grad="aligned"), P("bias", (5,), grad="random")),
        hyper={"lr": 2**-7, "weight_decay": 0.5},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-4, "weight_decay": 2.0},
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=7,
    ),
    Case(
        "adamp-nesterov",
        "adamp",
        "Nesterov direction (b1 m + (1 - b1) g) / denom on rotating gradients.",
        (Flag.NESTEROV, Flag.PROJ_CHANNEL),
        (P("conv", CONV), P("bias", (5,), grad="random")),
        hyper={"lr": 2**-7, "nesterov": True},
        dtypes=ALL_DTYPES,
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=8,
        low_expose={"bfloat16": ("nesterov_wrong_form",)},
    ),
    Case(
        "adamp-zero-grad",
        "adamp",
        "A weight whose gradient is exactly zero on some steps: cosine 0, projected, wd_ratio.",
        (Flag.ZERO_GRAD, Flag.WD_RATIO),
        (P("conv", CONV, grad="aligned", zero_steps=(2, 3, 5)), P("dense", DENSE, grad="zero")),
        hyper={"lr": 2**-7, "weight_decay": 0.5},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-4, "weight_decay": 2.0},
        low_steps=4,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=9,
    ),
    Case(
        "adamp-zero-weight",
        "adamp",
        "A weight with an all-zero output channel, and an all-zero weight.",
        (Flag.ZERO_WEIGHT,),
        (P("conv", CONV, init="zero_row"), P("dense", DENSE, init="zeros")),
        hyper={"lr": 2**-7},
        dtypes=ALL_DTYPES,
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=10,
    ),
    Case(
        "adamp-cos-eps",
        "adamp",
        "Gradients parallel to unit-norm rows with norm eps/2: torch's cosine gives 0.5, "
        "(|x|+eps)(|y|+eps) gives 1/3; the threshold 0.42 sits between.",
        (Flag.COS_EPS,),
        (P("dense", (3, 9), grad="parallel", grad_scale=0.5e-8, init="unit_rows"),),
        hyper={"lr": 2**-10, "delta": 0.42 * 3.0},
        steps=6,
        seed=11,
    ),
    Case(
        "adamp-cos-eps-old-torch",
        "adamp",
        "As adamp-cos-eps with rows of norm 1/4: the old x.y / max(|x||y|, eps) gives 1/8.",
        (Flag.COS_EPS,),
        (
            P(
                "dense",
                (3, 9),
                grad="parallel",
                grad_scale=0.5e-8,
                init="unit_rows",
                init_scale=0.25,
            ),
        ),
        hyper={"lr": 2**-10, "delta": 0.42 * 3.0},
        steps=6,
        seed=12,
        expose=("cos_plus_eps", "cos_old_torch"),
    ),
    Case(
        "adamp-multi-group",
        "adamp",
        "Two parameter groups with different lr, betas, weight decay and wd_ratio.",
        (Flag.MULTI_GROUP,),
        (P("conv", CONV), P("dense", DENSE, group=1), P("bias", (5,), grad="random", group=1)),
        hyper={"lr": 2**-7, "weight_decay": 2**-3},
        groups=({}, {"lr": 2**-5, "beta1": 0.8, "weight_decay": 0.5, "wd_ratio": 0.5}),
        dtypes=("float64", "float32", "float16"),
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper=F16_ADAMP,
        seed=13,
    ),
    Case(
        "adamp-per-param-step",
        "adamp",
        "A parameter without gradient on the first steps keeps its own step count.",
        (Flag.PER_PARAM_STEP,),
        (
            P("conv", CONV),
            P("dense", DENSE, none_steps=(0, 1, 2)),
            P("bias", (5,), grad="random", none_steps=(0, 4)),
        ),
        hyper={"lr": 2**-7},
        seed=14,
    ),
    Case(
        "adamp-long",
        "adamp",
        "Thirty steps of every branch kind with weight decay and default hyperparameters.",
        (Flag.PROJ_CHANNEL, Flag.WD_RATIO),
        (
            P("conv", CONV),
            P("dense", DENSE, grad="layer_only"),
            P("fc", (3, 4), grad="aligned"),
            P("bias", (4,), grad="random"),
        ),
        hyper={"weight_decay": 1.0, "lr": 2**-7},
        steps=30,
        seed=15,
    ),
    # ----------------------------------------------------------------- SGDP
    Case(
        "sgdp-channel",
        "sgdp",
        "SGDP with momentum: orthogonal gradients, the channel view fires; a bias is never "
        "projected.",
        (Flag.PROJ_CHANNEL, Flag.NO_PROJ_1D),
        (
            P("conv", CONV, grad_scale=0.3),
            P("dense", DENSE, grad_scale=0.3),
            P("bias", (5,), grad="channel_orthogonal", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=21,
        low_expose={"float16": ("no_projection", "views_swapped"), "bfloat16": ()},
    ),
    Case(
        "sgdp-layer",
        "sgdp",
        "SGDP with momentum where the channel view fails and the layer view fires.",
        (Flag.PROJ_LAYER,),
        (
            P("conv", CONV, grad="layer_only", grad_scale=0.3),
            P("dense", DENSE, grad="layer_only", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        dtypes=("float64", "float32", "float16"),
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=22,
    ),
    Case(
        "sgdp-no-projection",
        "sgdp",
        "Anti-aligned and aligned gradients with momentum: nothing projected.",
        (Flag.NO_PROJ,),
        (
            P("conv", CONV, grad="anti", grad_scale=0.3),
            P("dense", DENSE, grad="aligned", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.5},
        dtypes=("float64", "float32", "float16"),
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=23,
    ),
    Case(
        "sgdp-channel-axis",
        "sgdp",
        "Rectangular weights with momentum: channel rows along the output axis only.",
        (Flag.CHANNEL_AXIS, Flag.PROJ_CHANNEL),
        (P("conv", (6, 2, 3, 1), grad_scale=0.3), P("dense", (3, 8), grad_scale=0.3)),
        hyper={"lr": 2**-3, "momentum": 0.9},
        seed=24,
    ),
    Case(
        "sgdp-momentum-buffer",
        "sgdp",
        "Momentum 0.9 without Nesterov: the stored buffer is the projected one.",
        (Flag.SGDP_BUFFER, Flag.PROJ_CHANNEL),
        (
            P("conv", CONV, grad_scale=0.3),
            P("dense", DENSE, grad_scale=0.3),
            P("bias", (5,), grad="random", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        dtypes=("float64", "float32", "float16"),
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=25,
        low_expose={"float16": ("no_projection", "views_swapped")},
    ),
    Case(
        "sgdp-unprojected-buffer",
        "sgdp",
        "project_buffer=False (timm's behaviour, as an option): the buffer stays unprojected.",
        (Flag.SGDP_BUFFER,),
        (P("conv", CONV, grad_scale=0.3), P("dense", DENSE, grad_scale=0.3)),
        hyper={"lr": 2**-3, "momentum": 0.9, "project_buffer": False},
        seed=26,
        expose=("sgdp_buffer_projected",),
    ),
    Case(
        "sgdp-nesterov",
        "sgdp",
        "Nesterov momentum g + mu * buffer, projected, with dampening 0.",
        (Flag.NESTEROV, Flag.PROJ_CHANNEL),
        (P("conv", CONV, grad_scale=0.3), P("bias", (5,), grad="random", grad_scale=0.3)),
        hyper={"lr": 2**-3, "momentum": 0.9, "nesterov": True},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=27,
        low_expose={
            "float16": ("nesterov_ignored", "nesterov_wrong_form", "no_projection"),
            "bfloat16": ("nesterov_ignored", "nesterov_wrong_form"),
        },
    ),
    Case(
        "sgdp-dampening",
        "sgdp",
        "Dampening 0.5 applied from the first step (unlike torch.optim.SGD).",
        (Flag.DAMPENING,),
        (P("conv", CONV, grad_scale=0.3), P("bias", (5,), grad="random", grad_scale=0.3)),
        hyper={"lr": 2**-3, "momentum": 0.9, "dampening": 0.5},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=28,
    ),
    Case(
        "sgdp-weight-decay",
        "sgdp",
        "Weight decay lr * wd * r / (1 - momentum) on projected and unprojected weights.",
        (Flag.WEIGHT_DECAY, Flag.WD_RATIO),
        (
            P("conv", CONV, grad_scale=0.3),
            P("dense", DENSE, grad="aligned", grad_scale=0.3),
            P("bias", (5,), grad="random", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9, "weight_decay": 2**-3},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-2, "weight_decay": 0.25},
        f16_hyper=F16_SGDP,
        seed=29,
    ),
    Case(
        "sgdp-zero-grad",
        "sgdp",
        "Zero gradients on some steps with weight decay: cosine 0, projected, wd_ratio.",
        (Flag.ZERO_GRAD, Flag.WD_RATIO),
        (
            P("conv", CONV, grad="aligned", grad_scale=0.3, zero_steps=(1, 2, 4)),
            P("dense", DENSE, grad="zero"),
        ),
        hyper={"lr": 2**-3, "momentum": 0.5, "weight_decay": 0.25},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-2, "weight_decay": 0.5},
        f16_hyper=F16_SGDP,
        seed=30,
    ),
    Case(
        "sgdp-zero-weight",
        "sgdp",
        "A weight with an all-zero output channel, and an all-zero weight.",
        (Flag.ZERO_WEIGHT,),
        (
            P("conv", CONV, init="zero_row", grad_scale=0.3),
            P("dense", DENSE, init="zeros", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=31,
    ),
    Case(
        "sgdp-cos-eps",
        "sgdp",
        "Gradients parallel to unit-norm rows with norm eps/2 (see adamp-cos-eps).",
        (Flag.COS_EPS,),
        (P("dense", (3, 9), grad="parallel", grad_scale=0.5e-8, init="unit_rows"),),
        hyper={"lr": 2**20, "delta": 0.42 * 3.0},
        steps=4,
        seed=32,
    ),
    Case(
        "sgdp-multi-group",
        "sgdp",
        "Two parameter groups with different lr, momentum, weight decay and wd_ratio.",
        (Flag.MULTI_GROUP,),
        (P("conv", CONV, grad_scale=0.3), P("dense", DENSE, grad_scale=0.3, group=1)),
        hyper={"lr": 2**-3, "momentum": 0.9, "weight_decay": 2**-3},
        groups=({}, {"lr": 2**-4, "momentum": 0.5, "weight_decay": 0.5, "wd_ratio": 0.5}),
        dtypes=ALL_DTYPES,
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=33,
    ),
    # ------------------------------------------- what public ports get wrong (both optimizers)
    Case(
        "adamp-cos-operand",
        "adamp",
        "Gradients aligned with every channel on steps 1-2, orthogonal after: the gradient's "
        "cosine fires from step 3 while the first moment and the update still carry the "
        "aligned steps.",
        (Flag.COS_OPERAND,),
        (
            P("conv", CONV, grad="late_channel_orthogonal"),
            P("dense", DENSE, grad="late_channel_orthogonal"),
            P("fc", (3, 4)),  # orthogonal throughout: projected by the moment, not by m / denom
        ),
        hyper={"lr": 2**-7},
        seed=40,
    ),
    Case(
        "sgdp-cos-operand",
        "sgdp",
        "As adamp-cos-operand with momentum 0.9: the buffer carries the aligned steps.",
        (Flag.COS_OPERAND,),
        (
            P("conv", CONV, grad="late_channel_orthogonal", grad_scale=0.3),
            P("dense", DENSE, grad="late_channel_orthogonal", grad_scale=0.3),
            P("fc", (3, 4), grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        seed=41,
    ),
    Case(
        "adamp-reduction-axes",
        "adamp",
        "A conv weight whose output-channel rows are orthogonal to the gradient (its "
        "per-kernel-position slices are not) and a dense weight whose layer view fires: "
        "statistics over the input axis alone miss both.",
        (Flag.REDUCTION_AXES,),
        # fc: 2-D, orthogonal rows: the input axis is every axis but the output one there
        (P("conv", CONV), P("dense", DENSE, grad="layer_only"), P("fc", (3, 4))),
        hyper={"lr": 2**-7},
        seed=42,
    ),
    Case(
        "sgdp-reduction-axes",
        "sgdp",
        "As adamp-reduction-axes, SGDP with momentum.",
        (Flag.REDUCTION_AXES,),
        (
            P("conv", CONV, grad_scale=0.3),
            P("dense", DENSE, grad="layer_only", grad_scale=0.3),
            P("fc", (3, 4), grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        seed=43,
    ),
    Case(
        "adamp-scalar-precision",
        "adamp",
        "Random gradients with beta1 = 0.9 and beta2 = 0.999: float32 cannot hold them "
        "(float64 case); bfloat16 rounds beta2 to 1 (bfloat16 case).",
        (Flag.SCALAR_PRECISION,),
        (P("dense", DENSE, grad="random"), P("bias", (6,), grad="random")),
        hyper={"lr": 2**-7},
        dtypes=("float64", "bfloat16"),
        low_hyper=LOW,
        seed=44,
        low_expose={"bfloat16": ("scalars_in_param_dtype",)},
    ),
    Case(
        "sgdp-scalar-precision",
        "sgdp",
        "Momentum 0.9 and dampening 0.1, which float32 cannot hold, on float64 weights.",
        (Flag.SCALAR_PRECISION,),
        (P("dense", DENSE, grad="random", grad_scale=0.3), P("bias", (6,), grad="random")),
        hyper={"lr": 2**-3, "momentum": 0.9, "dampening": 0.1},
        dtypes=("float64",),
        seed=45,
    ),
    Case(
        "adamp-eps-squared",
        "adamp",
        "float16 with eps = 1e-4, whose square is below float16's smallest subnormal: "
        "zero-gradient steps and a zero weight row.",
        (Flag.EPS_SQUARED,),
        (P("conv", CONV, grad="aligned", zero_steps=(1, 2)), P("dense", DENSE, init="zero_row")),
        hyper={"lr": 2**-7},
        dtypes=("float16",),
        low_hyper=LOW,
        f16_grad_factor=100.0,
        f16_hyper={"eps": 1e-4, "beta2": 0.9},
        seed=46,
    ),
    Case(
        "sgdp-eps-squared",
        "sgdp",
        "As adamp-eps-squared, SGDP with momentum in float16 (eps = 1e-4).",
        (Flag.EPS_SQUARED,),
        (
            P("conv", CONV, grad="aligned", grad_scale=0.3, zero_steps=(1, 2)),
            P("dense", DENSE, init="zero_row", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        dtypes=("float16",),
        low_hyper={"lr": 2**-1},
        f16_hyper=F16_SGDP,
        seed=47,
    ),
    Case(
        "adamp-threshold",
        "adamp",
        "Every channel row at cosine 0.06 with its weight: above delta / sqrt(d) "
        "(0.029, 0.041), below delta = 0.1; nothing is projected.",
        (Flag.THRESHOLD,),
        (P("conv", CONV, grad="weak"), P("dense", DENSE, grad="weak")),
        hyper={"lr": 2**-7},
        seed=48,
    ),
    Case(
        "sgdp-threshold",
        "sgdp",
        "As adamp-threshold, SGDP with momentum.",
        (Flag.THRESHOLD,),
        (
            P("conv", CONV, grad="weak", grad_scale=0.3),
            P("dense", DENSE, grad="weak", grad_scale=0.3),
        ),
        hyper={"lr": 2**-3, "momentum": 0.9},
        seed=49,
    ),
    Case(
        "adamp-decoupled-decay",
        "adamp",
        "Weight decay 0.5 on random gradients of ~1e-2: decay added to the gradient (L2) "
        "enters the moments instead of shrinking the weight.",
        (Flag.DECOUPLED_DECAY,),
        (P("dense", DENSE, grad="random"), P("bias", (6,), grad="random")),
        hyper={"lr": 2**-7, "weight_decay": 0.5},
        seed=50,
    ),
    Case(
        "sgdp-decoupled-decay",
        "sgdp",
        "As adamp-decoupled-decay, SGDP with momentum 0.9.",
        (Flag.DECOUPLED_DECAY,),
        (P("dense", DENSE, grad="random", grad_scale=0.3), P("bias", (6,), grad="random")),
        hyper={"lr": 2**-3, "momentum": 0.9, "weight_decay": 2**-3},
        seed=51,
    ),
)


def case_by_id(case_id: str) -> Case:
    for case in CASES:
        if case.id == case_id:
            return case
    raise KeyError(case_id)
