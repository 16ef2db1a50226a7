"""The terminal view: one table per gate family (failed gates first, xfailed ones marked as expected,
metrics wrapped, never cut) and the snapshot table."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from ..analysis.latency import INTERVAL_SCOPE
from ..errors import display
from ..gates.records import Family
from .runlog import RunLog
from .views import FAIL, XFAIL, by_family, counts, limit, measured, number, snapshot_rows

METRIC_WIDTH = 60  # the metric column wraps at this width; nothing is cut


def wrapped_table(header: Sequence[str], rows: Sequence[Sequence[str]], wrap: dict[int, int]) -> str:
    """A left-aligned text table whose columns in `wrap` (index -> width) wrap on words onto more lines; control
    characters in a cell (a slice name from the golden set) are shown escaped, never sent to the terminal."""
    lines_of = []
    for row in rows:
        cells = [textwrap.wrap(display(c), wrap[i], break_on_hyphens=False) or [""] if i in wrap else [display(c)]
                 for i, c in enumerate(row)]
        height = max(len(c) for c in cells)
        lines_of += [[c[k] if k < len(c) else "" for c in cells] for k in range(height)]
    widths = [max([len(header[i])] + [len(line[i]) for line in lines_of]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines_of]
    return "\n".join(out)


def gate_tables(log: RunLog) -> list[tuple[str, str]]:
    """(title, table) per gate family: test, gate, metric, measured (interval), limit, verdict."""
    out = []
    for family, family_rows in by_family(log):
        table = wrapped_table(("test", "gate", "metric", "measured", "limit", "verdict"),
                              [(r.test.name, r.record.gate, r.metric, measured(r.record), limit(r.record), r.status)
                               for r in family_rows], {2: METRIC_WIDTH})
        if family is Family.LATENCY:
            table += f"\nmeasured [low, high]: {INTERVAL_SCOPE}"
        out.append((f"{family.value}: {_tally(family_rows)}", table))
    return out


def _tally(rows) -> str:
    found: dict[str, int] = {}
    for r in rows:
        found[r.status] = found.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in found.items())


def headline(log: RunLog) -> str | None:
    """One line over the tables: how many gate rows failed, were expected to fail, passed."""
    found = counts(log)
    if not found:
        return None
    line = ", ".join(f"{n} {status}" for status, n in found.items())
    if XFAIL in found:
        line += " (xfail: a gate failing in a test marked xfail, as the test expects)"
    if FAIL in found:
        line = "gates that FAILED are listed first. " + line
    return line


def snapshot_table(log: RunLog) -> str | None:
    found = snapshot_rows(log)
    if not found:
        return None
    return wrapped_table(("test", "metric", "snapshot", "now", "change", "max regression", ""),
                         [(test, name, number(stored) or "not stored", number(now),
                           "" if change is None else f"{change:+.4f}", f"{max_regression:g}", status)
                          for test, name, stored, now, change, max_regression, status in found],
                         {1: METRIC_WIDTH})
