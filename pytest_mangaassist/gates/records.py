"""Gate records: every gate's verdict with its figures, typed, collected per test for the reports.

Gates are plain functions that also run in a notebook, so they do not talk to pytest: they call
`check(...)`, which raises GateFailure when the figure is on the wrong side of its limit and,
while the plugin is collecting (inside a test), appends a GateRecord. The plugin moves a test's
records into its report's user_properties (JSON strings), so they reach the terminal summary,
JUnit XML and results.json, under xdist too. The run log keeps every record as it was made; only
the views (terminal, HTML) fold many calls of one gate into one row.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from enum import Enum

from ..analysis.contention import Contention
from ..analysis.onnx_structure import StructureCheck
from ..errors import GateFailure

COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
_collector: ContextVar[list | None] = ContextVar("mangaassist_collector", default=None)


class Family(str, Enum):
    """The gate families, in the order the views show them."""

    CLASSIFICATION = "classification"
    COMPARISON = "comparison"
    REPRESENTATION = "representation"
    ATTRIBUTION = "attribution"
    BEHAVIOUR = "behaviour"
    EXPORT = "export"
    LATENCY = "latency"
    SNAPSHOT = "snapshot"
    DATA = "data"  # the evaluation data itself (leakage into training data)


class Verdict(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    STORED = "stored"  # --mangaassist-update-snapshot: the figure was stored, not compared


# -- typed payloads: the detail a view draws, beyond the headline figure ---------------------------
@dataclass(frozen=True)
class Curve:
    """Per-layer series (a None value is an undefined layer, drawn as a gap); `gated` is the x the gate read."""

    x: tuple[str, ...]
    series: dict[str, tuple[float | None, ...]]
    gated: str | None = None
    kind: str = "curve"


@dataclass(frozen=True)
class HeatmapRow:
    words: tuple[tuple[str, float], ...]  # (word, attribution score)
    note: str


@dataclass(frozen=True)
class TokenHeatmap:
    rows: tuple[HeatmapRow, ...]
    kind: str = "heatmap"


@dataclass(frozen=True)
class LatencySamples:
    samples_ms: tuple[float, ...]
    p50_ms: float
    p99_ms: float
    budget_ms: float
    contention: Contention | None = None  # how busy the machine was during the (last) timing
    verdict: str = ""  # analysis.latency.LatencyVerdict: within budget, over budget, not measurable on ...
    attempts: int = 1  # timings run: more than one when a busy machine quieted down
    kind: str = "latency"


@dataclass(frozen=True)
class StructureChecks:
    checks: tuple[StructureCheck, ...]
    kind: str = "structure"


@dataclass(frozen=True)
class SnapshotFigure:
    name: str  # the figure's key in the snapshot file
    stored: float | None  # the committed figure (None: not in the file yet)
    max_regression: float
    low: float = 0.0  # the metric's possible range (assert_no_regression's bounds); high None: no upper end
    high: float | None = 1.0
    kind: str = "snapshot"


@dataclass(frozen=True)
class TrafficFlip:
    record: str  # the message's record as JSON (text and the other fields of the traffic)
    production: str  # route, production model
    production_confidence: float
    candidate: str
    candidate_confidence: float
    why: str  # "most confident" or "sample"


@dataclass(frozen=True)
class TrafficReplay:
    """A replay's routes: the flip matrix, per-route flip rates and shares, example flips, throughput."""

    routes: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]  # [production route][candidate route] message counts
    route_flip_rates: dict[str, tuple[float, float, float, int]]  # route -> (rate, low, high, n)
    shares: dict[str, tuple[float, float, float, float, float, bool]]  # route -> (production, candidate, shift,
    #                                                                      its low, its high, rare)
    flips: tuple[TrafficFlip, ...]
    messages: int
    replayed: int
    seconds: float
    engine: str
    kind: str = "traffic"


Payload = Curve | TokenHeatmap | LatencySamples | StructureChecks | SnapshotFigure | TrafficReplay


def _payload_from_json(raw: dict | None) -> Payload | None:
    if raw is None:
        return None
    raw = dict(raw)
    kind = raw.pop("kind")
    if kind == "curve":
        return Curve(tuple(raw["x"]), {k: tuple(v) for k, v in raw["series"].items()}, raw.get("gated"))
    if kind == "heatmap":
        return TokenHeatmap(tuple(HeatmapRow(tuple((w, float(s)) for w, s in r["words"]), r["note"])
                                  for r in raw["rows"]))
    if kind == "latency":
        contention = Contention(**raw["contention"]) if raw.get("contention") else None
        return LatencySamples(tuple(raw["samples_ms"]), raw["p50_ms"], raw["p99_ms"], raw["budget_ms"], contention,
                              raw.get("verdict", ""), raw.get("attempts", 1))
    if kind == "structure":
        return StructureChecks(tuple(StructureCheck(**c) for c in raw["checks"]))
    if kind == "snapshot":
        return SnapshotFigure(raw["name"], raw["stored"], raw["max_regression"], raw.get("low", 0.0),
                              raw.get("high", 1.0))
    if kind == "traffic":
        return TrafficReplay(tuple(raw["routes"]), tuple(tuple(r) for r in raw["matrix"]),
                             {k: tuple(v) for k, v in raw["route_flip_rates"].items()},
                             {k: tuple(v) for k, v in raw["shares"].items()},
                             tuple(TrafficFlip(**f) for f in raw["flips"]), raw["messages"], raw["replayed"],
                             raw["seconds"], raw["engine"])
    raise ValueError(f"unknown gate record payload {kind!r}")


@dataclass(frozen=True)
class GateRecord:
    family: Family
    gate: str
    metric: str
    value: float
    threshold: float | None
    comparison: str
    verdict: Verdict
    interval: tuple[float, float] | None = None
    payload: Payload | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is not Verdict.FAILED

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_jsonable, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> GateRecord:
        raw = json.loads(text)
        raw["family"] = Family(raw["family"])
        raw["verdict"] = Verdict(raw["verdict"])
        raw["interval"] = tuple(raw["interval"]) if raw.get("interval") else None
        raw["payload"] = _payload_from_json(raw.get("payload"))
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


def check(gate: str, metric: str, value: float, threshold: float, comparison: str = ">=", *, family: Family,
          evidence: str | Callable[[], str] = "", hint: str = "", interval: tuple[float, float] | None = None,
          payload: Payload | None = None, passed: bool | None = None) -> None:
    """Record the verdict `value <comparison> threshold` (or `passed`, for a gate whose rule is more than
    one comparison); raise GateFailure when it does not hold. evidence may be a callable, built only on
    failure. A nan value (undefined metric) fails: a gate never passes on a figure it could not measure."""
    __tracebackhide__ = True
    if passed is None:
        passed = not (isinstance(value, float) and math.isnan(value)) and COMPARE[comparison](value, threshold)
    verdict = Verdict.PASSED if passed else Verdict.FAILED
    record(GateRecord(Family(family), gate, metric, value, threshold, comparison, verdict, interval, payload))
    if not passed:
        raise GateFailure(gate, metric, value, threshold, comparison, evidence() if callable(evidence) else evidence, hint)
