"""What the views (terminal tables, report.html) show of a run log: rows folded for reading, each with the
status a reader needs, failures first. Nothing here changes the log: folding happens on the way out.

Status of a gate row, from the record's verdict and its test's outcome:
  FAIL               the gate failed and so did its test (what a reader must act on)
  xfail (expected)   the gate failed in a test marked xfail (strict or not): the expected outcome
  fail (test passed) the gate failed and the test caught it (a test of the gate itself, pytest.raises)
  pass / stored      the gate held / --mangaassist-update-snapshot stored the figure
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gates.records import Family, GateRecord, SnapshotFigure, Verdict, declared_gates
from .runlog import RunLog, TestEntry

FUZZ_CALLS = 4  # a test calling one gate more often than this (a hypothesis property) is shown as one row
FAMILY_ORDER = tuple(Family)

FAIL, XFAIL, CAUGHT, PASS, STORED = "FAIL", "xfail (expected)", "fail (test passed)", "pass", "stored"


@dataclass(frozen=True)
class Row:
    test: TestEntry
    record: GateRecord  # the record shown: the worst call of a folded group
    calls: int = 1
    failed_calls: int = 0

    @property
    def status(self) -> str:
        if self.record.verdict is Verdict.STORED:
            return STORED
        if self.record.verdict is Verdict.PASSED:
            return PASS
        if self.test.outcome == "xfailed":
            return XFAIL
        return FAIL if self.test.failed else CAUGHT

    @property
    def is_failure(self) -> bool:
        return self.status == FAIL

    @property
    def metric(self) -> str:
        if self.calls == 1:
            return self.record.metric
        return f"{self.calls} calls, {self.failed_calls} failed; worst: {self.record.metric}"


def fold(test: TestEntry) -> list[Row]:
    """One row per gate call, or one row for a gate a test called more than FUZZ_CALLS times: its worst call
    (a failed one where any failed) and how many failed. Snapshot figures are never folded: each call is
    a different named figure."""
    groups: dict[str, list[GateRecord]] = {}
    for rec in test.records:
        groups.setdefault(rec.gate, []).append(rec)
    rows = []
    for rec in test.records:
        group = groups[rec.gate]
        if len(group) <= FUZZ_CALLS or rec.family is Family.SNAPSHOT:
            rows.append(Row(test, rec))
        elif rec is group[0]:
            failed = [r for r in group if r.verdict is Verdict.FAILED]
            lower_is_worse = rec.comparison in (">=", ">")  # else a larger value is worse (<=, <, ==)
            worst = min(failed or group, key=lambda r: _badness(r.value, lower_is_worse))
            rows.append(Row(test, worst, len(group), len(failed)))
    return rows


def _badness(value: float, lower_is_worse: bool) -> float:
    if value != value:  # nan: an unmeasurable figure is the worst
        return float("-inf")
    return value if lower_is_worse else -value


def rows(log: RunLog) -> list[Row]:
    """Every row of the run, failures first, then in run order."""
    found = [row for test in log.tests.values() for row in fold(test)]
    return [r for r in found if r.is_failure] + [r for r in found if not r.is_failure]


def by_family(log: RunLog, *, include_snapshot: bool = False) -> list[tuple[Family, list[Row]]]:
    """Rows grouped by gate family: families with a failure first, then in FAMILY_ORDER. The snapshot family
    has its own table (snapshot_rows) and is left out unless asked for."""
    groups: dict[Family, list[Row]] = {}
    for row in rows(log):
        if row.record.family is Family.SNAPSHOT and not include_snapshot:
            continue
        groups.setdefault(row.record.family, []).append(row)
    order = sorted(groups, key=lambda f: (not any(r.is_failure for r in groups[f]), FAMILY_ORDER.index(f)))
    return [(family, groups[family]) for family in order]


def snapshot_rows(log: RunLog) -> list[tuple[str, str, float | None, float, float | None, float, str]]:
    """One row per snapshot figure: (test, name, snapshot, now, change, max regression, status), regressions
    first."""
    out = []
    for row in rows(log):
        figure = row.record.payload
        if row.record.family is not Family.SNAPSHOT or not isinstance(figure, SnapshotFigure):
            continue
        change = None if figure.stored is None else row.record.value - figure.stored
        status = {FAIL: "REGRESSED", PASS: "ok"}.get(row.status, row.status)
        out.append((row.test.name, figure.name, figure.stored, row.record.value, change, figure.max_regression,
                    status))
    return out


def counts(log: RunLog) -> dict[str, int]:
    """How many rows have each status (snapshot figures included), in the order FAIL, xfail, ... ."""
    found: dict[str, int] = {}
    for row in rows(log):
        found[row.status] = found.get(row.status, 0) + 1
    return {s: found[s] for s in (FAIL, XFAIL, CAUGHT, PASS, STORED) if s in found}


def runtimes_used(log: RunLog) -> set[str]:
    """Which exported artifacts the run's gates read: "onnx" and/or "serving" (a gate's declaration says which
    it reads; the latency gate times whichever runtime it was given, and its metric names it)."""
    declared = declared_gates()
    used = set()
    for _, rec in log.records:
        reads = declared[rec.gate].reads if rec.gate in declared else None
        if reads:
            used.add(reads)
        if rec.family is Family.LATENCY and "(onnxruntime" in rec.metric:
            used.add("onnx")
        if rec.family is Family.LATENCY and "(serving" in rec.metric:
            used.add("serving")
    return used


def number(value) -> str:
    """A figure as the views print it: 4 decimals, scientific when tiny or huge, "n/a" for undefined."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if value != value:
        return "n/a"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return f"{value:.2e}" if value and (abs(value) < 1e-3 or abs(value) >= 1e4) else f"{value:.4f}"


def measured(rec: GateRecord) -> str:
    text = number(rec.value)
    if rec.interval:
        text += f" [{number(rec.interval[0])}, {number(rec.interval[1])}]"
    return text


def limit(rec: GateRecord) -> str:
    return "" if rec.threshold is None else f"{rec.comparison} {number(rec.threshold)}"


def first_line(text: str) -> str:
    """A test's message in one line for a summary (the whole message sits one click away)."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "no message")
