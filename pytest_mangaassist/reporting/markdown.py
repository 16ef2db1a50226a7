"""The CI view: a Markdown summary (GitHub Actions shows $GITHUB_STEP_SUMMARY on the run's page) with the
failures first, one line each, then a table of the gate families; and the failing gates as workflow-command
annotations (::error file=...,line=...::), which GitHub draws on the test's line in the diff."""

from __future__ import annotations

from .runlog import RunLog
from .views import CAUGHT, FAIL, PASS, STORED, XFAIL, Row, by_family, first_line, limit, measured

COLUMNS = (FAIL, XFAIL, CAUGHT, PASS, STORED)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def reason(row: Row) -> str:
    """A failing gate in one line: gate, metric, the deciding figure with its interval, the limit."""
    return f"{row.record.gate}: {row.metric} = {measured(row.record)}, limit {limit(row.record)}"


def markdown_summary(log: RunLog, moved: list[str] = ()) -> str:
    families = by_family(log, include_snapshot=True)
    failing = [r for _, rows in families for r in rows if r.is_failure]
    broken = [t for t in log.tests.values() if t.failed and not any(r.test is t for r in failing)]
    total = sum(len(rows) for _, rows in families)
    verdict = f"**{len(failing)} of {total} gates FAILED**" if failing else f"all {total} gates hold"
    lines = [f"## mangaassist gates: {verdict}", ""]
    if failing or broken:
        lines += ["### Failures", ""]
        lines += [f"- **{_cell(r.test.name)}** · {_cell(reason(r))}" for r in failing]
        lines += [f"- **{_cell(t.name)}** ({t.outcome}) · {_cell(first_line(t.message))}" for t in broken]
        lines.append("")
    if moved:
        lines += ["### Moved beyond their interval since the previous run", ""]
        lines += [f"- {_cell(m)}" for m in moved] + [""]
    shown = [c for c in COLUMNS if any(r.status == c for _, rows in families for r in rows)]
    lines += ["### Gate families", "", "| family | gates | " + " | ".join(shown) + " |",
              "|---|---:|" + "---:|" * len(shown)]
    for family, rows in families:
        tally = [sum(r.status == c for r in rows) for c in shown]
        lines.append(f"| {family.value} | {len(rows)} | " + " | ".join(str(n) if n else "" for n in tally) + " |")
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(log: RunLog) -> list[str]:
    """One ::error line per failing gate (folded as the views fold), at its test's file and line."""
    out = []
    for _, rows in by_family(log, include_snapshot=True):
        for r in rows:
            if not r.is_failure:
                continue
            where = f"file={_escape_property(r.test.path)}"
            if r.test.line is not None:
                where += f",line={r.test.line}"
            title = _escape_property(f"{r.test.name}: {r.record.gate} failed")
            out.append(f"::error {where},title={title}::{_escape_data(reason(r))}")
    return out
