"""The demonstration's outputs: PNG plots, a JSON file with every number, a markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from demo.experiment import History
from demo.toy2d import CONVERGED_DEG, PROJECT_PAGE_NORMS, TARGET_ANGLE_DEG, ToyRun

# Final accuracies closer than this do not separate the runs on a test set of this size
# (one test image is 0.28 %), so the plot leaves accuracy out and says so.
ACCURACY_SEPARATES = 0.01


def project_page_norm(run: ToyRun) -> float | None:
    """The final ||w|| the project page reports for this run, if it reports one."""
    return None if run.projected else PROJECT_PAGE_NORMS.get(run.momentum)


def toy_table(runs: list[ToyRun]) -> list[dict]:
    return [
        {
            "optimizer": r.name,
            "final_norm": float(r.norms[-1]),
            "project_page_norm": project_page_norm(r),
            "steps_to_converge": r.steps_to_converge,
        }
        for r in runs
    ]


def accuracy_spread(histories: list[History]) -> tuple[float, float]:
    finals = [h.test_accuracy[-1] for h in histories]
    return min(finals), max(finals)


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
        f"w0 starts {TARGET_ANGLE_DEG:g}° from w*; momentum in PyTorch's convention "
        "(buffer = momentum · buffer + grad, no dampening); SGDP with δ = 0.1.",
        "",
        f"| optimizer | final ‖w‖ | project page | steps until the angle stays "
        f"< {CONVERGED_DEG:g}° |",
        "|---|---:|---:|---:|",
    ]
    for r in toy:
        page = project_page_norm(r)
        lines.append(
            f"| {r.name} | {r.norms[-1]:.3f} | {'' if page is None else f'{page:.2f}'} "
            f"| {_fmt_steps(r.steps_to_converge)} |"
        )
    lines += ["", _toy_comparison(toy)]
    low, high = accuracy_spread(histories)
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
        f"Final test accuracy lies between {low:.3f} and {high:.3f} for all four optimizers: "
        + (
            "this data set is too easy to separate them by accuracy."
            if high - low < ACCURACY_SEPARATES
            else "see the accuracy panel of training.png."
        ),
        "",
    ]
    return "\n".join(lines)


def _toy_comparison(toy: list[ToyRun]) -> str:
    pairs = [(r, project_page_norm(r)) for r in toy]
    parts = [
        f"momentum {r.momentum:g}: {r.norms[-1]:.3f} here, {page:.2f} on the project page "
        f"({100 * (r.norms[-1] - page) / page:+.2f} %)"
        for r, page in pairs
        if page is not None
    ]
    return "Against the project page: " + "; ".join(parts) + "."


STYLES = {  # baseline dashed, projected solid; one colour per family
    "SGD": ("tab:blue", "--"),
    "SGDP": ("tab:blue", "-"),
    "AdamW": ("tab:red", "--"),
    "AdamP": ("tab:red", "-"),
}
PAIRS = (("SGD", "SGDP"), ("AdamW", "AdamP"))


def plot(out_dir: Path, backend: str, toy: list[ToyRun], histories: list[History]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [out_dir / "toy.png", out_dir / "training.png"]
    fig = _plot_toy(plt, backend, toy)
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig = _plot_training(plt, backend, histories)
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def _plot_toy(plt, backend: str, toy: list[ToyRun]):
    fig, (ax_norm, ax_angle) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in toy:
        steps = np.arange(1, len(r.norms) + 1)
        (line,) = ax_norm.plot(steps, r.norms, label=r.name)
        ax_angle.plot(steps, r.angles_deg, color=line.get_color(), label=r.name)
        page = project_page_norm(r)
        if page is not None:
            ax_norm.axhline(page, color=line.get_color(), linestyle=":", linewidth=1)
    ax_norm.plot([], [], "k:", linewidth=1, label="project page's final ||w||")
    ax_norm.set(title="weight norm ||w||", xlabel="step", ylabel="||w|| (log scale)", yscale="log")
    ax_angle.set(
        title="angle to w*",
        xlabel="step",
        ylabel="degrees (log scale)",
        yscale="log",
        ylim=(0.1, 200),
    )
    ax_angle.axhline(CONVERGED_DEG, color="grey", linewidth=0.8)
    ax_norm.legend(fontsize=8)
    ax_angle.legend(fontsize=8)
    fig.suptitle(f"2-D toy: momentum inflates ||w||; SGDP keeps it near 1 ({backend})")
    fig.tight_layout()
    return fig


def _plot_training(plt, backend: str, histories: list[History]):
    from matplotlib.ticker import MaxNLocator

    by_name = {h.optimizer: h for h in histories}
    low, high = accuracy_spread(histories)
    show_accuracy = high - low >= ACCURACY_SEPARATES
    fig, axes = plt.subplots(
        1, 3 if show_accuracy else 2, figsize=(15 if show_accuracy else 11, 4.2)
    )
    for h in histories:
        color, style = STYLES.get(h.optimizer, (None, "-"))
        epochs = np.arange(1, len(h.test_accuracy) + 1)
        axes[0].plot(epochs, np.mean(h.weight_norms, axis=1), style, color=color, label=h.optimizer)
        if show_accuracy:
            axes[2].plot(epochs, h.test_accuracy, style, color=color, label=h.optimizer)
    for base, projected in PAIRS:
        if base in by_name and projected in by_name:
            ratio = np.mean(by_name[projected].effective_steps, axis=1) / np.mean(
                by_name[base].effective_steps, axis=1
            )
            epochs = np.arange(1, len(ratio) + 1)
            color, _ = STYLES[projected]
            axes[1].plot(epochs, ratio, "-", color=color, label=f"{projected} / {base}")
    axes[1].axhline(1.0, color="grey", linewidth=0.8, label="no difference")
    axes[0].set(title="mean conv weight norm", xlabel="epoch", ylabel="||w||")
    axes[1].set(
        title="effective step size, projected / baseline",
        xlabel="epoch",
        ylabel="ratio (lr/||w||² for SGD, lr/||w|| for Adam)",
    )
    if show_accuracy:
        axes[2].set(title="test accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    title = f"Conv net + BatchNorm on 8x8 digits ({backend})"
    if not show_accuracy:
        title += (
            f"; final test accuracy {low:.3f}-{high:.3f} for all four, too close to separate them"
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig
