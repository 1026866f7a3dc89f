"""``python -m benchmarks [--only torch,keras,jax] [--quick]``: run the benchmark suites.

Each suite lives in ``benchmarks/bench_<name>.py`` and exposes ``main(quick: bool)``,
which prints its table and writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

SUITES = ("torch", "keras", "jax")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args(argv)
    for name in args.only.split(","):
        module_name = f"benchmarks.bench_{name}"
        if importlib.util.find_spec(module_name) is None:
            print(f"(no benchmark suite {name!r} yet)")
            continue
        importlib.import_module(module_name).main(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
