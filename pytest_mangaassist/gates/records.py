"""Gate records: every gate's verdict with its figures, collected per test for the reports.

Gates are plain functions that also run in a notebook, so they do not talk to pytest: they call
`check(...)`, which raises GateFailure when the figure is on the wrong side of its threshold and,
while the plugin is collecting (inside a test), appends a GateRecord. The plugin moves a test's
records into its report's user_properties (JSON strings), so they reach the terminal summary,
JUnit XML and results.json, under xdist too.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field

from ..errors import GateFailure

COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
_collector: ContextVar[list | None] = ContextVar("mangaassist_collector", default=None)


@dataclass(frozen=True)
class GateRecord:
    family: str  # classification, representation, attribution, behaviour, export, latency, comparison, regression
    gate: str
    metric: str
    value: float
    threshold: float | None
    comparison: str
    passed: bool
    interval: tuple[float, float] | None = None
    data: dict = field(default_factory=dict)  # JSON-able detail for the HTML report: curves, tokens, samples

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_jsonable, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> GateRecord:
        raw = json.loads(text)
        raw["interval"] = tuple(raw["interval"]) if raw.get("interval") else None
        return cls(**raw)


def _jsonable(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


@contextlib.contextmanager
def collecting():
    """Collect the GateRecords of the gates run inside the block (the plugin wraps each test in one)."""
    records: list[GateRecord] = []
    token = _collector.set(records)
    try:
        yield records
    finally:
        _collector.reset(token)


def record(rec: GateRecord) -> None:
    records = _collector.get()
    if records is not None:
        records.append(rec)


def check(gate: str, metric: str, value: float, threshold: float, comparison: str = ">=", *, family: str,
          evidence: str | Callable[[], str] = "", hint: str = "", interval: tuple[float, float] | None = None,
          data: dict | None = None, passed: bool | None = None) -> None:
    """Record the verdict `value <comparison> threshold` (or `passed`, for a gate whose rule is more than
    one comparison); raise GateFailure when it does not hold. evidence may be a callable, built only on
    failure. A nan value (undefined metric) fails: a gate never passes on a figure it could not measure."""
    __tracebackhide__ = True
    if passed is None:
        passed = not (isinstance(value, float) and math.isnan(value)) and COMPARE[comparison](value, threshold)
    record(GateRecord(family, gate, metric, value, threshold, comparison, bool(passed), interval, data or {}))
    if not passed:
        raise GateFailure(gate, metric, value, threshold, comparison, evidence() if callable(evidence) else evidence, hint)
