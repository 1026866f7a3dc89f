"""Run the conformance suite inside pytest, in a third party's CI.

Enable with ``-p adamp_conformance.pytest_plugin`` and name the adapter::

    pytest -p adamp_conformance.pytest_plugin --adamp-adapter=mypkg.conformance:adapter \
        [--adamp-dtype=float32] [--adamp-skip=ID ...] [--adamp-xfail=ID ...] \
        [--adamp-report=conformance.json]

Every golden case becomes one test item ``adamp-conformance::<case id>``. IDs
may be full (``adamp-channel-f32``) or base ids (``adamp-channel``, every
dtype); ``@file`` reads ids from a file, one per line (``#`` comments).
Unsupported cases are skipped with the reason; an xfail case that passes is
reported as a failure, so the list stays honest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adamp_conformance.builtin import get_adapter
from adamp_conformance.runner import run_case, select_cases, suite_report


def pytest_addoption(parser):
    group = parser.getgroup("adamp-conformance")
    group.addoption("--adamp-adapter", help="built-in adapter name or module:attribute")
    group.addoption("--adamp-dtype", action="append", default=[], help="only this dtype")
    group.addoption("--adamp-skip", action="append", default=[], help="case id or @file")
    group.addoption("--adamp-xfail", action="append", default=[], help="case id or @file")
    group.addoption("--adamp-report", help="write the JSON report here")


def _ids(values) -> set[str]:
    out: set[str] = set()
    for value in values:
        if value.startswith("@"):
            for line in Path(value[1:]).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    out.add(line)
        else:
            out.add(value)
    return out


class ConformanceItem(pytest.Item):
    def __init__(self, *, golden, **kwargs):
        super().__init__(**kwargs)
        self.golden = golden

    def runtest(self):
        config = self.config
        state = config.stash[_STATE]
        golden = self.golden
        if {golden.id, golden.case_id} & state["skip"]:
            pytest.skip("in the skip list")
        result = run_case(state["adapter"], golden)
        state["results"].append(result)
        expected_fail = bool({golden.id, golden.case_id} & state["xfail"])
        if result.status == "unsupported":
            pytest.skip(result.reason)
        if result.failed:
            detail = "; ".join(result.comparison.messages[:3]) if result.comparison else ""
            named = f" [deviation: {', '.join(result.deviations)}]" if result.deviations else ""
            if result.localisation:
                loc = result.localisation
                named = (f" [no known variant; step {loc['step']} {loc['tensor']}: "
                         f"{loc['quantity']} departs first: {loc['detail']}]")  # fmt: skip
            message = f"{golden.id} {result.status}: {result.reason}{named}\n{detail}"
            if expected_fail:
                pytest.xfail(message)
            raise ConformanceFailure(message)
        if expected_fail:
            raise ConformanceFailure(f"{golden.id} passes but is in the xfail list")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return "adamp-conformance", None, f"adamp-conformance::{self.golden.id}"


class ConformanceFailure(AssertionError):
    pass


_STATE = pytest.StashKey[dict]()


def pytest_configure(config):
    name = config.getoption("--adamp-adapter")
    if not name:
        return
    config.stash[_STATE] = {
        "adapter": get_adapter(name),
        "skip": _ids(config.getoption("--adamp-skip")),
        "xfail": _ids(config.getoption("--adamp-xfail")),
        "results": [],
    }


def pytest_collection_modifyitems(session, config, items):
    if _STATE not in config.stash:
        return
    dtypes = config.getoption("--adamp-dtype") or None
    for golden in select_cases(dtypes=dtypes):
        items.append(
            ConformanceItem.from_parent(
                session, name=f"adamp-conformance::{golden.id}", golden=golden
            )
        )


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _STATE not in config.stash or not config.getoption("--adamp-report"):
        return
    state = config.stash[_STATE]
    report = suite_report(state["adapter"], state["results"])
    Path(config.getoption("--adamp-report")).write_text(
        json.dumps(report, indent=1, default=str) + "\n"
    )
