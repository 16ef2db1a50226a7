"""The run log: what the plugin gathered from the test reports (outcomes, raw GateRecords, recorded tables),
in the xdist controller as in a plain run. It keeps every record as the gates made it; folding many calls of
one gate into one row is a view's job (views.py), never the log's, so the snapshot file and results.json
see every figure."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from ..gates.records import GateRecord

FAILED_OUTCOMES = ("failed", "error")


@dataclass
class TestEntry:
    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str  # passed, failed, error, skipped, xfailed, xpassed
    duration: float
    records: list[GateRecord] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""  # the failure's assertion lines
    line: int | None = None  # 1-based line of the test function in its file (CI annotations point there)

    @property
    def path(self) -> str:
        """The test's file, relative to the rootdir (as in its node id)."""
        return self.nodeid.split("::", 1)[0]

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


@dataclass
class RunLog:
    started: float = field(default_factory=time.time)
    tests: dict[str, TestEntry] = field(default_factory=dict)

    @property
    def records(self) -> list[tuple[TestEntry, GateRecord]]:
        """Every record of the run, raw (not folded), with the test that made it."""
        return [(t, r) for t in self.tests.values() for r in t.records]

    @classmethod
    def from_results(cls, data: dict) -> RunLog:
        """The log back from a results.json document (the HTML view is drawn from it)."""
        log = cls()
        for t in data["tests"]:
            log.tests[t["nodeid"]] = TestEntry(
                t["nodeid"], t["outcome"], t["seconds"],
                [GateRecord.from_json(json.dumps(g, allow_nan=True)) for g in t["gates"]],
                [(title, text) for title, text in t["tables"]], t.get("message", ""), t.get("line"))
        return log
