"""The summary table of several implementations (the README's third-party table)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

__all__ = ["main", "summarise"]


def summarise(results) -> dict:
    """Counts per status and per finding; a case counts once per finding label (an
    ambiguous finding ``a|b`` is one label), and a case's findings after a layout swap
    are counted apart."""
    status = Counter(r.status for r in results)
    deviations = Counter(d for r in results for d in dict.fromkeys(r.deviations))
    swapped = [r.layout_swapped for r in results if r.layout_swapped is not None]
    after_swap = Counter(d for s in swapped for d in dict.fromkeys(s.deviations))
    unnamed = sorted(r.id for r in results if r.status == "fail" and not r.deviations)
    errors = Counter(r.reason.split(": ", 1)[-1][:70] for r in results if r.status == "error")
    return {
        "status": dict(status),
        "deviations": dict(deviations),
        "after_layout_swap": dict(after_swap),
        "unnamed_failures": unnamed,
        "errors": dict(errors),
    }


def main(args) -> int:
    from adamp_conformance.builtin import Unavailable, get_adapter
    from adamp_conformance.runner import run_suite, select_cases, suite_report

    cases = select_cases(
        dtypes=args.dtype or None, optimizers=args.optimizer or None, ids=args.case or None
    )
    rows, reports = [], {}
    for name in args.adapters.split(","):
        try:
            adapter = get_adapter(name)
        except (Unavailable, ImportError, ValueError) as exc:
            rows.append(f"| {name} | not installed | | | | | {exc} |")
            continue
        results = run_suite(adapter, cases)
        report = suite_report(adapter, results)
        reports[name] = report
        s = summarise(results)
        version = ", ".join(f"{k} {v}" for k, v in adapter.version_info().items())
        devs = "; ".join(
            f"`{d}` ({n})" for d, n in sorted(s["deviations"].items(), key=lambda x: -x[1])
        )
        if s["after_layout_swap"]:
            devs += "; after layout swap: " + ", ".join(
                f"`{d}` ({n})"
                for d, n in sorted(s["after_layout_swap"].items(), key=lambda x: -x[1])
            )
        for message, n in sorted(s["errors"].items(), key=lambda x: -x[1]):
            devs += ("; " if devs else "") + f"raises `{message}` ({n})"
        if s["unnamed_failures"]:
            devs += (
                ("; " if devs else "") + "localised only: " + ", ".join(s["unnamed_failures"][:6])
            )
        devs = devs.replace("|", "\\|")  # an ambiguous finding a|b inside a Markdown cell
        rows.append(
            f"| {name} | {version} | {s['status'].get('pass', 0)} | {s['status'].get('fail', 0)} | "
            f"{s['status'].get('error', 0)} | {s['status'].get('unsupported', 0)} | "
            f"{devs or 'none'} |"
        )
    print(
        "| implementation | versions | pass | fail | error | unsupported "
        "| deviations named (cases) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.report:
        Path(args.report).write_text(json.dumps(reports, indent=1, default=str) + "\n")
    return 0
