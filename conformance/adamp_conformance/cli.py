"""``adamp-conformance``: list the cases and adapters, run an adapter, tabulate implementations.

    adamp-conformance list [--dtype D] [--optimizer O] [--case ID] [--json]
    adamp-conformance adapters [--build] [--json]  (built-in adapters: usable here or why not)
    adamp-conformance run --adapter NAME|module:attr [--dtype D] [--optimizer O] [--case ID]
                          [--skip ID] [--report out.json] [--quiet]
    adamp-conformance table [--adapters a,b,...] [--dtype D] [--report out.json]
    adamp-conformance generate           (maintainers: regenerate golden/)
    adamp-conformance export OUT_DIR [--layout L] [--dtype D] [--optimizer O] [--case ID]
    adamp-conformance grade --cases DIR --results DIR [--skip ID] [--report out.json]

Exit codes: ``run`` and ``grade`` 0 iff no supported case fails or errors, 1
otherwise; 2 for a usage error: an adapter that cannot be loaded or is not usable
here, a cases or results directory ``grade`` cannot use, or a selection
(``--case``, ``--dtype``, ``--optimizer``) that matches no case. See
docs/porting.md for ``export`` and ``grade``.

Subcommands are registered in :data:`COMMANDS` (name -> :class:`Command`);
:func:`register` adds one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COMMANDS", "Command", "UsageError", "main", "register"]


class UsageError(Exception):
    """A user mistake reported as one line on stderr with exit code 2."""


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]  # adds the subcommand's arguments
    handler: Callable[[argparse.Namespace], int]  # returns the exit code
    description: str = ""


COMMANDS: dict[str, Command] = {}


def register(name: str, command: Command) -> None:
    COMMANDS[name] = command


def selection(p: argparse.ArgumentParser) -> None:
    """The case-selection options shared by list, run and table."""
    p.add_argument(
        "--dtype", action="append", choices=["float64", "float32", "float16", "bfloat16"]
    )
    p.add_argument("--optimizer", action="append", choices=["adamp", "sgdp"])
    p.add_argument("--case", action="append", help="a case id (with or without dtype)")


def selected_cases(args):
    """The cases ``args`` select; a selection matching nothing, or an unknown id, is an error."""
    from adamp_conformance.runner import EmptySelection, select_cases

    try:
        cases = select_cases(
            dtypes=args.dtype or None, optimizers=args.optimizer or None, ids=args.case or None
        )
    except EmptySelection as exc:
        raise UsageError(str(exc)) from None
    known = {c.id for c in select_cases()} | {c.case_id for c in select_cases()}
    unknown = [i for i in args.case or () if i not in known]
    if unknown:
        raise UsageError(f"unknown case id(s) {unknown}; see `adamp-conformance list`")
    return cases


def _set_keras_backend(adapter: str) -> None:
    """``adamp_keras-<backend>`` picks the backend before keras is first imported."""
    prefix = "adamp_keras-"
    if adapter.startswith(prefix) and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = adapter[len(prefix) :]


def load_adapter(spec: str):
    """The adapter ``spec`` names, or a UsageError saying in one line why not."""
    _set_keras_backend(spec)
    from adamp_conformance.builtin import Unavailable, get_adapter

    try:
        return get_adapter(spec)
    except (Unavailable, ImportError, ValueError) as exc:
        raise UsageError(str(exc)) from None


# ----------------------------------------------------------------------------- commands


def _configure_list(p):
    selection(p)
    p.add_argument("--json", action="store_true", help="the cases' metadata as JSON")


def _cmd_list(args) -> int:
    from adamp_conformance.golden import load_manifest

    manifest = load_manifest()
    cases = selected_cases(args)
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


def _configure_adapters(p):
    p.add_argument("--json", action="store_true", help="as JSON: [{name, usable, reason}]")
    p.add_argument(
        "--build",
        action="store_true",
        help="build each adapter (imports its framework; slower) instead of looking up its "
        "packages",
    )


def _cmd_adapters(args) -> int:
    from adamp_conformance.builtin import BUILTIN, availability

    rows = []
    for name in BUILTIN:
        reason = availability(name, build=args.build)
        rows.append({"name": name, "usable": reason is None, "reason": reason or ""})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        state = "usable" if row["usable"] else "not usable"
        print(f"{row['name']:26s} {state:10s} {row['reason']}")
    print(
        "PyTorch adapters also run as NAME+channels_last (4-D tensors in channels_last memory);"
        " any adapter: --adapter module:attribute"
    )
    return 0


def _report_options(p):
    """The options ``run`` and ``grade`` share after the case selection."""
    selection(p)
    p.add_argument("--skip", action="append", help="case id to skip")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--quiet", action="store_true", help="only the summary line")


def _configure_run(p):
    p.add_argument("--adapter", required=True, help="built-in name or module:attribute")
    _report_options(p)


def _cmd_run(args) -> int:
    from adamp_conformance.runner import COLUMNS, format_table, run_suite, suite_report

    adapter = load_adapter(args.adapter)
    results = run_suite(adapter, selected_cases(args), skip=args.skip or ())
    report = suite_report(adapter, results)
    if not args.quiet:
        print(format_table(results))
        print(COLUMNS)
    summary = report["summary"]
    counts = ", ".join(
        f"{summary.get(k, 0)} {k}" for k in ("pass", "fail", "error", "unsupported", "skip")
    )
    print(f"{adapter.name}: {counts}; deviations: {', '.join(summary['deviations']) or 'none'}")
    if summary["unexplained"]:
        print(f"  not explained by a known variant (localised): {len(summary['unexplained'])}")
    swap = summary["after_layout_swap"]
    if swap:
        print(
            f"  a wrong channel axis was named: re-run of {swap['rerun']} failing case(s) with "
            f"layout {swap['layout']}: {swap['pass']} pass; deviations: "
            f"{', '.join(swap['deviations']) or 'none'}"
        )
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"report written to {args.report}")
    return 0 if summary["passed"] else 1


def _configure_table(p):
    p.add_argument("--adapters", default="adamp,timm,pytorch_optimizer,torch_optimizer")
    selection(p)
    p.add_argument("--report", help="write the JSON reports here")


def _cmd_table(args) -> int:
    from adamp_conformance.table import main as table_main

    selected_cases(args)  # a selection matching nothing is an error before any run
    return table_main(args)


def _configure_generate(p):
    p.add_argument("--force", action="store_true", help="write even if a case is rejected")


def _cmd_generate(args) -> int:
    from adamp_conformance.golden import main as golden_main

    return golden_main(["--force"] if args.force else [])


def _configure_export(p):
    p.add_argument("out_dir", help="directory to write (created if missing)")
    p.add_argument("--layout", choices=["channels_first", "channels_last"])
    p.set_defaults(layout="channels_first")
    selection(p)


def _cmd_export(args) -> int:
    from adamp_conformance.export import export_cases

    cases = selected_cases(args)
    out = Path(args.out_dir)
    export_cases(cases, out, args.layout)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"exported {len(cases)} cases ({args.layout}) to {out}: {size / 1e6:.2f} MB")
    return 0


def _configure_grade(p):
    p.add_argument("--cases", required=True, help="a directory written by export")
    p.add_argument("--results", required=True, help="the port's results directory")
    _report_options(p)


def _cmd_grade(args) -> int:
    from adamp_conformance.export import FormatError
    from adamp_conformance.grade import grade
    from adamp_conformance.runner import format_table

    try:
        report, results = grade(
            Path(args.cases),
            Path(args.results),
            dtypes=args.dtype or None,
            optimizers=args.optimizer or None,
            ids=args.case or None,
            skip=args.skip or (),
        )
    except FormatError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(format_table(results))
    summary = report["summary"]
    counts = ", ".join(
        f"{summary.get(k, 0)} {k}" for k in ("pass", "fail", "error", "unsupported", "skip")
    )
    name = report["adapter"]["name"]
    print(f"{name}: {counts}; deviations: {', '.join(summary['deviations']) or 'none'}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"report written to {args.report}")
    return 0 if summary["passed"] else 1


def _run_epilog() -> str:
    from adamp_conformance.runner import COLUMNS

    return COLUMNS


register("list", Command("list the cases", _configure_list, _cmd_list))
register(
    "adapters",
    Command(
        "list the built-in adapters and whether each is usable here",
        _configure_adapters,
        _cmd_adapters,
    ),
)
register("run", Command("run the suite against an adapter", _configure_run, _cmd_run))
register("table", Command("summarise several adapters (Markdown)", _configure_table, _cmd_table))
register(
    "generate",
    Command("regenerate the golden files (maintainers)", _configure_generate, _cmd_generate),
)
register(
    "export",
    Command("write the cases as language-neutral files", _configure_export, _cmd_export),
)
register(
    "grade",
    Command("grade results written by a port in any language", _configure_grade, _cmd_grade),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adamp-conformance", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        extra = {}
        if name == "run":
            extra = {
                "epilog": _run_epilog(),
                "formatter_class": argparse.RawDescriptionHelpFormatter,
            }
        command.configure(
            sub.add_parser(name, help=command.help, description=command.description, **extra)
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    from adamp_core._quiet import quiet_tensorflow_without_gpu

    quiet_tensorflow_without_gpu()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].handler(args)
    except UsageError as exc:
        print(f"adamp-conformance: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
