"""``adamp-conformance``: list the cases, run an adapter, tabulate implementations.

    adamp-conformance list [--dtype D]
    adamp-conformance run --adapter NAME|module:attr [--dtype D] [--case ID] [--skip ID]
                          [--report out.json] [--quiet]
    adamp-conformance table [--adapters a,b,...] [--dtype D] [--report out.json]
    adamp-conformance generate           (maintainers: regenerate golden/)

``run`` exits 0 iff no supported case fails or errors; 2 if the adapter is unusable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _set_keras_backend(adapter: str) -> None:
    """``adamp_keras-<backend>`` picks the backend before keras is first imported."""
    prefix = "adamp_keras-"
    if adapter.startswith(prefix) and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = adapter[len(prefix) :]


def _cases(args):
    from adamp_conformance.runner import select_cases

    return select_cases(
        dtypes=args.dtype or None, optimizers=args.optimizer or None, ids=args.case or None
    )


def _cmd_list(args) -> int:
    from adamp_conformance.golden import load_manifest

    manifest = load_manifest()
    cases = _cases(args)
    if args.json:
        print(json.dumps([c.meta for c in cases], indent=1, default=str))
        return 0
    print(
        f"suite {manifest['suite_version']}, case set {manifest['case_set_hash'][:16]}, "
        f"{len(cases)} cases"
    )
    for c in cases:
        print(f"{c.id:32s} {c.steps:3d} steps  {','.join(c.flags)}")
        print(f"{'':32s} {c.description}")
    return 0


def _cmd_run(args) -> int:
    _set_keras_backend(args.adapter)
    from adamp_conformance.builtin import Unavailable, get_adapter
    from adamp_conformance.runner import format_table, run_suite, suite_report

    try:
        adapter = get_adapter(args.adapter)
    except (Unavailable, ImportError, ValueError) as exc:
        print(f"adamp-conformance: {exc}", file=sys.stderr)
        return 2
    results = run_suite(adapter, _cases(args), skip=args.skip or ())
    report = suite_report(adapter, results)
    if not args.quiet:
        print(format_table(results))
    summary = report["summary"]
    counts = ", ".join(
        f"{summary.get(k, 0)} {k}" for k in ("pass", "fail", "error", "unsupported", "skip")
    )
    print(f"{adapter.name}: {counts}; deviations: {', '.join(summary['deviations']) or 'none'}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"report written to {args.report}")
    return 0 if summary["passed"] else 1


def _cmd_table(args) -> int:
    from adamp_conformance.table import main as table_main

    return table_main(args)


def _cmd_generate(args) -> int:
    from adamp_conformance.golden import main as golden_main

    return golden_main(["--force"] if args.force else [])


def main(argv: list[str] | None = None) -> int:
    from adamp_core._quiet import quiet_tensorflow_without_gpu

    quiet_tensorflow_without_gpu()
    parser = argparse.ArgumentParser(prog="adamp-conformance", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def selection(p):
        p.add_argument(
            "--dtype", action="append", choices=["float64", "float32", "float16", "bfloat16"]
        )
        p.add_argument("--optimizer", action="append", choices=["adamp", "sgdp"])
        p.add_argument("--case", action="append", help="a case id (with or without dtype)")

    p_list = sub.add_parser("list", help="list the cases")
    selection(p_list)
    p_list.add_argument("--json", action="store_true")
    p_run = sub.add_parser("run", help="run the suite against an adapter")
    p_run.add_argument("--adapter", required=True, help="built-in name or module:attribute")
    selection(p_run)
    p_run.add_argument("--skip", action="append", help="case id to skip")
    p_run.add_argument("--report", help="write the JSON report here")
    p_run.add_argument("--quiet", action="store_true", help="only the summary line")
    p_table = sub.add_parser("table", help="summarise several adapters (Markdown)")
    p_table.add_argument("--adapters", default="adamp,timm,pytorch_optimizer,torch_optimizer")
    selection(p_table)
    p_table.add_argument("--report", help="write the JSON reports here")
    p_gen = sub.add_parser("generate", help="regenerate the golden files (maintainers)")
    p_gen.add_argument("--force", action="store_true", help="write even if a case is rejected")
    args = parser.parse_args(argv)
    handler = {"list": _cmd_list, "run": _cmd_run, "table": _cmd_table, "generate": _cmd_generate}[
        args.command
    ]
    try:
        return handler(args)
    except BrokenPipeError:  # output piped into e.g. head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
