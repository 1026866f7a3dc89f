"""``python -m demo``: the paper's effect on the 2-D toy, with the NumPy reference."""

from __future__ import annotations

import argparse

from demo.toy2d import CONVERGED_DEG, TARGET_ANGLE_DEG, toy_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    args = parser.parse_args(argv)
    print(
        f"2-D toy: minimise -cos(w, w*), ||w0|| = 1, angle(w0, w*) = {TARGET_ANGLE_DEG:g} deg, "
        f"lr = {args.lr:g}, {args.steps} steps"
    )
    print(
        f"{'optimizer':<20} {'final ||w||':>12} {'max ||w||':>10} "
        f"{f'steps to <{CONVERGED_DEG:g} deg':>18}"
    )
    for run in toy_runs(steps=args.steps, lr=args.lr):
        steps = "not reached" if run.steps_to_converge is None else str(run.steps_to_converge)
        print(f"{run.name:<20} {run.norms[-1]:>12.3f} {run.norms.max():>10.3f} {steps:>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
