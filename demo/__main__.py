"""``python -m demo``: what AdamP and SGDP fix, shown with this project's optimizers.

1. The 2-D toy from the authors' project page (momentum inflates ||w||).
2. A conv net with BatchNorm on scikit-learn's 8x8 digits, SGD vs SGDP and
   AdamW vs AdamP, logging per-layer weight norms, effective step sizes, how
   often the projection fired, and test accuracy.

Writes toy.png, training.png, results.json and summary.md to --out.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from adamp_core._quiet import quiet_tensorflow_without_gpu
from demo import report
from demo.experiment import OPTIMIZERS, Schedule, load_digits
from demo.toy2d import TOY_LR, TOY_STEPS, toy_runs

BACKENDS = ("torch", "jax", "keras")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="whose optimizers to run (default: torch)",
    )
    parser.add_argument("--quick", action="store_true", help="a run of under a minute")
    parser.add_argument("--epochs", type=int, default=None, help="conv-net epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default demo_output/<backend>)"
    )
    return parser.parse_args(argv)


def load_backend(name: str):
    if name == "keras":
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        quiet_tensorflow_without_gpu()
    return importlib.import_module(f"demo.backend_{name}")


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 30)
    out = args.out or Path("demo_output") / args.backend
    out.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.backend)
    settings = {
        "epochs": epochs,
        "seed": args.seed,
        "toy_steps": TOY_STEPS,
        "toy_lr": TOY_LR,
        "projected_sampling": backend.PROJECTED_SAMPLING,
        "optimizers": [spec.__dict__ for spec in OPTIMIZERS],
    }
    start = time.perf_counter()

    print(f"[{args.backend}] 2-D toy: SGD, momentum 0.9 / 0.99, SGDP ...", flush=True)
    toy = toy_runs(backend.toy_optimizer, layout=backend.TOY_LAYOUT)

    digits = load_digits(args.seed)
    schedule = Schedule(epochs=epochs, seed=args.seed)
    histories = []
    with tqdm(
        total=epochs * len(OPTIMIZERS),
        desc=f"[{args.backend}] conv net",
        unit="epoch",
        file=sys.stdout,
    ) as bar:
        for spec in OPTIMIZERS:
            bar.set_postfix_str(spec.name)
            histories.append(backend.train(spec, digits, schedule, lambda: bar.update(1)))

    settings["seconds"] = round(time.perf_counter() - start, 1)
    report.write_json(out / "results.json", args.backend, toy, histories, settings)
    summary = report.markdown_summary(args.backend, toy, histories, settings)
    (out / "summary.md").write_text(summary)
    plots = report.plot(out, args.backend, toy, histories)
    print()
    print(summary)
    print("wrote", ", ".join(str(p) for p in [*plots, out / "results.json", out / "summary.md"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
