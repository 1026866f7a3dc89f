"""A bank of ports written the way public AdamP/SGDP ports are, each with a mistake seen in one.

Unlike :mod:`adamp_conformance.broken` (the variant engine with one switch
flipped), these are independent NumPy implementations: parameters stored in the
case dtype (bfloat16 through ``ml_dtypes``), arithmetic in float32 (float64 for
float64 weights), rows taken in the port's own layout. :class:`Port` is faithful
and passes every case in both layouts; each subclass overrides one method with
the mistake, written the way the public port wrote it. :data:`BANK` holds every
port in Keras layout (``-keras``, output channels last) and PyTorch layout
(``-torch``), with the deviation names the suite should report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adamp_conformance.adapters import CHANNELS_FIRST, CHANNELS_LAST, Adapter, Problem

__all__ = ["BANK", "BankPort", "Port", "port_adapter"]


def _storage(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(dtype).type


class Port:
    """A faithful AdamP/SGDP port; ``channel_axis`` is 0 (PyTorch) or -1 (Keras, Flax)."""

    channel_axis = 0

    def __init__(self, problem: Problem) -> None:
        self.optimizer, self.dtype = problem.optimizer, _storage(problem.dtype)
        self.work = np.float64 if problem.dtype == "float64" else np.float32
        self.params = [np.asarray(p).astype(self.dtype) for p in problem.params]
        self.hp = [problem.groups[g] for g in problem.group_of]
        self.slots = [dict(step=0, m=0.0, v=0.0, buf=0.0) for _ in self.params]

    # ------------------------------------------------------------------ the overridable parts
    def scalar(self, value: float):
        """A hyperparameter as the port holds it."""
        return self.work(value)

    def correction(self, beta, step: int):
        return 1 - beta**step

    def views(self, x: np.ndarray) -> list[np.ndarray]:
        """Channel view (one row per output channel) and layer view (one row)."""
        rows = np.moveaxis(x, self.channel_axis, 0)
        return [rows.reshape(rows.shape[0], -1), x.reshape(1, -1)]

    def unview(self, rows: np.ndarray, like: np.ndarray, view: int) -> np.ndarray:
        if view == 1:
            return rows.reshape(like.shape)
        moved = np.moveaxis(like, self.channel_axis, 0)
        return np.moveaxis(rows.reshape(moved.shape), 0, self.channel_axis)

    def norms(self, rows: np.ndarray, eps):
        """Row norms for the cosine (clamped at eps) and for the unit vector (plus eps)."""
        norm = np.sqrt(np.sum(rows * rows, axis=1))
        return np.maximum(norm, eps), norm + eps

    def operand(self, grad, update, momentum):
        """What the cosine test compares with the weight: the gradient."""
        return grad

    def threshold(self, delta, row_length: int):
        return delta / math.sqrt(row_length)

    def decayed_grad(self, grad, param, weight_decay):
        return grad

    def decay(self, weight_decay):
        return weight_decay

    # ------------------------------------------------------------------------- the algorithm
    def project(self, param, grad, update, hp):
        eps = self.scalar(hp["eps"])
        if param.ndim < 2:
            return update, self.work(1.0)
        for view, (p_rows, g_rows) in enumerate(
            zip(self.views(param), self.views(grad), strict=True)
        ):
            p_clamped, p_unit = self.norms(p_rows, eps)
            g_clamped = self.norms(g_rows, eps)[0]
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.abs(np.sum(p_rows * g_rows, axis=1)) / (p_clamped * g_clamped)
                fires = np.max(cos) < self.threshold(self.scalar(hp["delta"]), p_rows.shape[1])
            if fires:
                u_rows = self.views(update)[view]
                with np.errstate(invalid="ignore", divide="ignore"):
                    unit = p_rows / p_unit[:, None]
                rows = u_rows - unit * np.sum(unit * u_rows, axis=1)[:, None]
                return self.unview(rows, update, view), self.scalar(hp["wd_ratio"])
        return update, self.work(1.0)

    def step(self, grads):
        with np.errstate(all="ignore"):
            for i, g in enumerate(grads):
                if g is None:
                    continue
                p = self.params[i].astype(self.work)
                g = np.asarray(g).astype(self.dtype).astype(self.work)
                new = self._adamp(i, p, g) if self.optimizer == "adamp" else self._sgdp(i, p, g)
                self.params[i] = new.astype(self.dtype)
        return [p.astype(np.float64) for p in self.params]

    def _adamp(self, i, p, g):
        hp, s = self.hp[i], self.slots[i]
        b1, b2 = self.scalar(hp["beta1"]), self.scalar(hp["beta2"])
        lr, wd = self.scalar(hp["lr"]), self.scalar(hp["weight_decay"])
        g = self.decayed_grad(g, p, wd)
        s["step"] += 1
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        bc1, bc2 = self.correction(b1, s["step"]), self.correction(b2, s["step"])
        denom = np.sqrt(s["v"]) / np.sqrt(bc2) + self.scalar(hp["eps"])
        num = b1 * s["m"] + (1 - b1) * g if hp["nesterov"] else s["m"]
        update = num / denom
        operand = self.operand(g, update, s["m"])
        update, ratio = self.project(p, operand, update, hp)
        return p * (1 - lr * self.decay(wd) * ratio) - (lr / bc1) * update

    def _sgdp(self, i, p, g):
        hp, s = self.hp[i], self.slots[i]
        mu, lr = self.scalar(hp["momentum"]), self.scalar(hp["lr"])
        wd = self.scalar(hp["weight_decay"])
        g = self.decayed_grad(g, p, wd)
        s["buf"] = mu * s["buf"] + (1 - self.scalar(hp["dampening"])) * g
        direction = g + mu * s["buf"] if hp["nesterov"] else s["buf"]
        operand = self.operand(g, direction, s["buf"])
        update, ratio = self.project(p, operand, direction, hp)
        if not hp["nesterov"] and hp.get("project_buffer", True):
            s["buf"] = update
        return p * (1 - lr * self.decay(wd) * ratio / (1 - mu)) - lr * update

    def state(self):
        if self.optimizer == "adamp":
            return [
                {"step": s["step"], "exp_avg": _full(s["m"], p), "exp_avg_sq": _full(s["v"], p)}
                for s, p in zip(self.slots, self.params, strict=True)
            ]
        return [
            {"momentum_buffer": _full(s["buf"], p)}
            for s, p in zip(self.slots, self.params, strict=True)
        ]


def _full(x, like):
    return np.broadcast_to(np.asarray(x, dtype=np.float64), like.shape).copy()


# ------------------------------------------------------------------- mistakes seen in public ports


class CosAgainstUpdate(Port):
    """``projection(p, perturb, perturb, ...)``: the cosine test takes the update."""

    def operand(self, grad, update, momentum):
        return update


class CosAgainstMomentum(Port):
    """The cosine test takes the first moment (AdamP) or the buffer (SGDP)."""

    def operand(self, grad, update, momentum):
        return momentum


class OneAxisReduction(Port):
    """``sum(axis=-2)`` / ``sum(axis=1)`` over the input axis without flattening the rest."""

    def views(self, x):
        moved = np.moveaxis(x, 1 if self.channel_axis == 0 else -2, -1)
        rows = moved.reshape(-1, moved.shape[-1])
        return [rows, rows]

    def unview(self, rows, like, view):
        k = 1 if self.channel_axis == 0 else like.ndim - 2
        moved = np.moveaxis(like, k, -1)
        return np.moveaxis(rows.reshape(moved.shape), -1, k)


class Float32Hyperparameters(Port):
    """Hyperparameters kept as float32 constants (Keras variables), applied to float64 weights."""

    def scalar(self, value):
        return np.float32(value)


class ScalarsInParamDtype(Port):
    """Every scalar cast to the variable's dtype, as ``ops.cast(beta_2, variable.dtype)``."""

    def scalar(self, value):
        return self.dtype(value)

    def correction(self, beta, step):
        return self.dtype(1 - beta**step)


class EpsSquared(Port):
    """Norms as ``sqrt(max(sum(x^2), eps^2))`` with eps^2 in the parameter's dtype."""

    def norms(self, rows, eps):
        eps_sq = self.dtype(eps) * self.dtype(eps)
        squared = np.sum(rows * rows, axis=1)
        return np.sqrt(np.maximum(squared, eps_sq)), np.sqrt(squared + eps_sq)


class ThresholdWithoutSqrt(Port):
    """``if cosine_sim.max() < delta``: the threshold without 1 / sqrt(row length)."""

    def threshold(self, delta, row_length):
        return delta


class CoupledDecay(Port):
    """``grad = grad + weight_decay * p`` (Adam/SGD L2 style), no decoupled decay."""

    def decayed_grad(self, grad, param, weight_decay):
        return grad + weight_decay * param

    def decay(self, weight_decay):
        return 0.0


class TorchViewOnKerasKernels(ScalarsInParamDtype):
    """A tf.keras port: ``reshape(x, [x.shape[0], -1])`` on Keras kernels, cosine
    ``|x.y| / ((|x| + eps)(|y| + eps))`` and every scalar in the variable's dtype."""

    def views(self, x):
        return [x.reshape(x.shape[0], -1), x.reshape(1, -1)]

    def unview(self, rows, like, view):
        return rows.reshape(like.shape)

    def norms(self, rows, eps):
        norm = np.sqrt(np.sum(rows * rows, axis=1)) + eps
        return norm, norm


@dataclass(frozen=True)
class BankPort:
    adapter: Adapter
    expected: frozenset[str]  # the deviation names a correct diagnosis uses


def port_adapter(cls: type[Port], layout: str, name: str | None = None) -> Adapter:
    axis = 0 if layout == CHANNELS_FIRST else -1
    suffix = "torch" if layout == CHANNELS_FIRST else "keras"
    port = type(f"{cls.__name__}_{suffix}", (cls,), {"channel_axis": axis})
    return Adapter(
        name=name or f"port-{cls.__name__}-{suffix}",
        factory=port,
        layout=layout,
        description=(cls.__doc__ or "").split("\n")[0],
    )


_MISTAKES: dict[type[Port], tuple[str, ...]] = {
    CosAgainstUpdate: ("cos_against_update",),
    CosAgainstMomentum: ("cos_against_momentum",),
    OneAxisReduction: ("one_axis_reduction",),
    Float32Hyperparameters: ("hyperparameters_float32",),
    ScalarsInParamDtype: ("scalars_in_param_dtype",),
    EpsSquared: ("eps_squared_underflow",),
    ThresholdWithoutSqrt: ("threshold_without_sqrt_dim",),
    CoupledDecay: ("coupled_weight_decay",),
}

BANK: dict[str, BankPort] = {}
for _cls, _names in _MISTAKES.items():
    for _layout in (CHANNELS_LAST, CHANNELS_FIRST):
        _adapter = port_adapter(_cls, _layout)
        BANK[_adapter.name] = BankPort(_adapter, frozenset(_names))
_tf = port_adapter(TorchViewOnKerasKernels, CHANNELS_LAST, "port-tf_keras-keras")
BANK[_tf.name] = BankPort(
    _tf,
    frozenset(
        {
            "channel_axis_first_of_channels_last",
            "channel_axis_last",
            "cos_plus_eps",
            "scalars_in_param_dtype",
        }
    ),
)


# ------------------------------------------------------------------------------ scoring


def _names(label: str) -> set[str]:
    return set(label.replace("|", "+").split("+"))


def classify(result, expected: frozenset[str]) -> str:
    """How a failing case is explained: ``named`` (a finding uses an expected name),
    ``localised`` (no finding; the first departure located), ``wrong`` (findings, none
    expected), ``unexplained``. An ``error`` case is localised by its reason (step, exception).
    """
    labels = list(result.deviations)
    if result.layout_swapped is not None:
        labels += result.layout_swapped.deviations
    if any(_names(label) & expected for label in labels):
        return "named"
    if labels:
        return "wrong"
    if result.localisation or (result.status == "error" and result.reason.startswith("step")):
        return "localised"
    return "unexplained"


def figures(entries: dict[str, tuple[Adapter, frozenset[str]]], cases=None) -> dict:
    """Run each adapter; count its failing cases by :func:`classify`."""
    from adamp_conformance.runner import run_suite

    table = {}
    for name, (adapter, expected) in entries.items():
        counts = {"named": 0, "localised": 0, "wrong": 0, "unexplained": 0}
        wrong = []
        for r in run_suite(adapter, cases):
            if r.failed:
                kind = classify(r, expected)
                counts[kind] += 1
                if kind in ("wrong", "unexplained"):
                    wrong.append((r.id, r.deviations))
        table[name] = {**counts, "failing": sum(counts.values()), "cases": wrong}
    return table


def all_entries() -> dict[str, tuple[Adapter, frozenset[str]]]:
    """The 21 deliberately broken adapters and this bank, with their expected names."""
    from adamp_conformance.broken import BROKEN

    out = {
        name: (b.adapter, frozenset({b.variant} if b.variant else ())) for name, b in BROKEN.items()
    }
    out.update({name: (p.adapter, p.expected) for name, p in BANK.items()})
    return out


def main() -> int:
    table = figures(all_entries())
    total = {
        k: sum(row[k] for row in table.values())
        for k in ("failing", "named", "localised", "wrong", "unexplained")
    }
    for name, row in table.items():
        print(f"{name:42s} fail {row['failing']:3d} named {row['named']:3d} "
              f"localised {row['localised']:3d} wrong {row['wrong']:3d} "
              f"unexplained {row['unexplained']:3d} {row['cases'][:3]}")  # fmt: skip
    good = total["named"] + total["localised"]
    print(
        f"{len(table)} adapters, {total['failing']} failing cases: {good} "
        f"({100 * good / max(total['failing'], 1):.1f}%) named or localised, "
        f"{total['wrong']} with only a wrong name, {total['unexplained']} unexplained"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
