"""The demonstration's outputs: PNG plots, a JSON file with every number, a markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from demo.experiment import History
from demo.toy2d import CONVERGED_DEG, TARGET_ANGLE_DEG, ToyRun


def toy_table(runs: list[ToyRun]) -> list[dict]:
    return [
        {
            "optimizer": r.name,
            "final_norm": float(r.norms[-1]),
            "steps_to_converge": r.steps_to_converge,
        }
        for r in runs
    ]


def training_table(histories: list[History]) -> list[dict]:
    rows = []
    for h in histories:
        rows.append(
            {
                "optimizer": h.optimizer,
                "final_test_accuracy": h.test_accuracy[-1],
                "best_test_accuracy": max(h.test_accuracy),
                "final_mean_weight_norm": float(np.mean(h.weight_norms[-1])),
                "mean_effective_step": float(np.mean(h.effective_steps)),
                "mean_projected_fraction": float(np.mean(h.projected_fraction)),
            }
        )
    return rows


def write_json(
    path: Path, backend: str, toy: list[ToyRun], histories: list[History], settings: dict
) -> None:
    payload = {
        "backend": backend,
        "settings": settings,
        "toy": {
            "target_angle_deg": TARGET_ANGLE_DEG,
            "converged_below_deg": CONVERGED_DEG,
            "summary": toy_table(toy),
            "runs": {
                r.name: {"norms": r.norms.tolist(), "angles_deg": r.angles_deg.tolist()}
                for r in toy
            },
        },
        "training": {
            "summary": training_table(histories),
            "runs": {h.optimizer: h.__dict__ for h in histories},
        },
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


def _fmt_steps(steps: int | None) -> str:
    return "not reached" if steps is None else str(steps)


def markdown_summary(
    backend: str, toy: list[ToyRun], histories: list[History], settings: dict
) -> str:
    lines = [
        f"# AdamP / SGDP demonstration ({backend})",
        "",
        f"## 2-D toy: minimise -cos(w, w*), ‖w0‖ = 1, lr = {settings['toy_lr']:g}, "
        f"{settings['toy_steps']} steps",
        "",
        f"| optimizer | final ‖w‖ | steps until the angle stays < {CONVERGED_DEG:g} deg |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r.name} | {r.norms[-1]:.3f} | {_fmt_steps(r.steps_to_converge)} |" for r in toy]
    lines += [
        "",
        f"## Conv net + BatchNorm on 8x8 digits, {settings['epochs']} epochs, "
        f"seed {settings['seed']}",
        "",
        "| optimizer | test accuracy (final / best) | mean conv ‖w‖ at end "
        "| mean effective step | projected layers |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in training_table(histories):
        projected = (
            f"{100 * row['mean_projected_fraction']:.0f}%"
            if row["optimizer"] in ("SGDP", "AdamP")
            else "n/a"
        )
        lines.append(
            f"| {row['optimizer']} | {row['final_test_accuracy']:.3f} / "
            f"{row['best_test_accuracy']:.3f} | {row['final_mean_weight_norm']:.2f} | "
            f"{row['mean_effective_step']:.2e} | {projected} |"
        )
    lines += [
        "",
        "Effective step size: lr/‖w‖² for SGD-type, lr/‖w‖ for Adam-type (the paper's "
        "definitions), averaged over epochs and conv layers. 'Projected layers': share of "
        "conv layers whose update the projection changed, averaged over "
        f"{settings['projected_sampling']}.",
        "",
    ]
    return "\n".join(lines)


def plot(out_dir: Path, backend: str, toy: list[ToyRun], histories: list[History]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, (ax_norm, ax_angle) = plt.subplots(1, 2, figsize=(11, 4))
    for r in toy:
        ax_norm.plot(r.norms, label=r.name)
        ax_angle.plot(r.angles_deg, label=r.name)
    ax_norm.set(title="2-D toy: weight norm", xlabel="step", ylabel="||w||", yscale="log")
    ax_angle.set(title="2-D toy: angle to w*", xlabel="step", ylabel="degrees", xscale="log")
    ax_norm.legend()
    fig.suptitle(f"Momentum inflates ||w||; SGDP keeps it near 1 ({backend})")
    fig.tight_layout()
    paths.append(out_dir / "toy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    styles = {
        "SGD": ("tab:blue", "--"),
        "SGDP": ("tab:blue", "-"),
        "AdamW": ("tab:red", "--"),
        "AdamP": ("tab:red", "-"),
    }
    for h in histories:
        color, style = styles.get(h.optimizer, (None, "-"))
        epochs = np.arange(1, len(h.test_accuracy) + 1)
        axes[0].plot(epochs, np.mean(h.weight_norms, axis=1), style, color=color, label=h.optimizer)
        axes[1].plot(
            epochs, np.mean(h.effective_steps, axis=1), style, color=color, label=h.optimizer
        )
        axes[2].plot(epochs, h.test_accuracy, style, color=color, label=h.optimizer)
    axes[0].set(title="mean conv weight norm", xlabel="epoch", ylabel="||w||")
    axes[1].set(
        title="mean effective step size",
        xlabel="epoch",
        yscale="log",
        ylabel="lr/||w||² (SGD), lr/||w|| (Adam)",
    )
    axes[2].set(title="test accuracy", xlabel="epoch", ylabel="accuracy")
    axes[2].legend()
    fig.suptitle(f"Conv net + BatchNorm on 8x8 digits ({backend})")
    fig.tight_layout()
    paths.append(out_dir / "training.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
