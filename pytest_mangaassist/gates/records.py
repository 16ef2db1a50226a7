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
import inspect
import json
import math
import operator
import pkgutil
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from enum import Enum
from importlib import import_module
from pathlib import Path

from ..analysis.contention import Contention
from ..analysis.onnx_structure import StructureCheck
from ..errors import GateFailure

COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
_collector: ContextVar[list | None] = ContextVar("mangaassist_collector", default=None)


class Family(str, Enum):
    """The gate families, in the order the views show them. `@Family.X.gate(...)` declares a gate of family X."""

    CLASSIFICATION = "classification"
    COMPARISON = "comparison"
    REPRESENTATION = "representation"
    ATTRIBUTION = "attribution"
    BEHAVIOUR = "behaviour"
    EXPORT = "export"
    LATENCY = "latency"
    SNAPSHOT = "snapshot"
    DATA = "data"  # the evaluation data itself (leakage into training data)

    def gate(self, *, page: str, checks: str, chart: type | None = None, reads: str | None = None):
        """Declare the decorated function a gate of this family (see GateDeclaration); returns it unchanged."""
        def declare(function: Callable) -> Callable:
            DECLARED[function.__name__] = GateDeclaration(function, self, page, checks, chart, reads)
            return function
        return declare


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


def _curve(raw: dict) -> Curve:
    return Curve(tuple(raw["x"]), {k: tuple(v) for k, v in raw["series"].items()}, raw.get("gated"))


def _heatmap(raw: dict) -> TokenHeatmap:
    return TokenHeatmap(tuple(HeatmapRow(tuple((w, float(s)) for w, s in r["words"]), r["note"]) for r in raw["rows"]))


def _latency(raw: dict) -> LatencySamples:
    contention = Contention(**raw["contention"]) if raw.get("contention") else None
    return LatencySamples(tuple(raw["samples_ms"]), raw["p50_ms"], raw["p99_ms"], raw["budget_ms"], contention,
                          raw.get("verdict", ""), raw.get("attempts", 1))


def _structure(raw: dict) -> StructureChecks:
    return StructureChecks(tuple(StructureCheck(**c) for c in raw["checks"]))


def _snapshot(raw: dict) -> SnapshotFigure:
    return SnapshotFigure(raw["name"], raw["stored"], raw["max_regression"], raw.get("low", 0.0), raw.get("high", 1.0))


def _traffic(raw: dict) -> TrafficReplay:
    return TrafficReplay(tuple(raw["routes"]), tuple(tuple(r) for r in raw["matrix"]),
                         {k: tuple(v) for k, v in raw["route_flip_rates"].items()},
                         {k: tuple(v) for k, v in raw["shares"].items()},
                         tuple(TrafficFlip(**f) for f in raw["flips"]), raw["messages"], raw["replayed"],
                         raw["seconds"], raw["engine"])


# payload class -> its reader from JSON; keyed in the JSON by the class's `kind` (what the record stores)
PAYLOADS: dict[type, Callable[[dict], Payload]] = {Curve: _curve, TokenHeatmap: _heatmap, LatencySamples: _latency,
                                                   StructureChecks: _structure, SnapshotFigure: _snapshot,
                                                   TrafficReplay: _traffic}
_BY_KIND = {cls.kind: read for cls, read in PAYLOADS.items()}


def _payload_from_json(raw: dict | None) -> Payload | None:
    if raw is None:
        return None
    raw = dict(raw)
    kind = raw.pop("kind")
    if kind not in _BY_KIND:
        raise ValueError(f"unknown gate record payload {kind!r}")
    return _BY_KIND[kind](raw)


# -- the declaration of every gate ----------------------------------------------------------------
@dataclass(frozen=True)
class GateDeclaration:
    """A gate, declared once beside its function with `@Family.X.gate(page=..., checks=..., chart=..., reads=...)`.

    Derived from it: the package's public names (pytest_mangaassist/__init__.py reads the declarations), the
    report's family of each record (check() asks it), the chart a view draws (`chart`: the payload class its
    records carry, checked when recorded), which exported artifacts a run read (`reads`), the gate tables of
    docs/gates.md and the README and the shape tests' cases (tests/test_gate_registry.py, test_gate_shape.py).
    """

    function: Callable
    family: Family
    page: str  # the docs page that explains the gate (docs/<page>)
    checks: str  # what it checks, one line: its row in the docs' gate table
    chart: type | None = None  # the payload class its records carry (what the report draws), None: no chart
    reads: str | None = None  # the exported artifact it reads: "onnx" or "serving" (None: the model only)

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def module(self) -> str:
        """Its module, relative to the package: "gates.classification"."""
        return self.function.__module__.split(".", 1)[1]


DECLARED: dict[str, GateDeclaration] = {}  # filled as the gate modules are imported; see declared_gates()


def declared_gates() -> dict[str, GateDeclaration]:
    """Every gate's declaration, in family order (the views' and the docs' order), then in source order. Imports every
    gate module (numpy, not torch): the package's __init__ knows the names without importing them."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        import_module(f"{__package__}.{module.name}")
    order = list(Family)
    return dict(sorted(DECLARED.items(), key=lambda item: (order.index(item[1].family), item[1].module,
                                                           inspect.unwrap(item[1].function).__code__.co_firstlineno)))


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


def check(gate: str, metric: str, value: float, threshold: float, comparison: str = ">=", *,
          family: Family | None = None, evidence: str | Callable[[], str] = "", hint: str = "",
          interval: tuple[float, float] | None = None, payload: Payload | None = None,
          passed: bool | None = None) -> None:
    """Record the verdict `value <comparison> threshold` (or `passed`, for a gate whose rule is more than
    one comparison); raise GateFailure when it does not hold. evidence may be a callable, built only on
    failure. A nan value (undefined metric) fails: a gate never passes on a figure it could not measure.
    The record's family and payload kind are the gate's declaration's (`family`, where given, must agree)."""
    __tracebackhide__ = True
    declared = _declaration(gate, family, payload)
    if passed is None:
        passed = not (isinstance(value, float) and math.isnan(value)) and COMPARE[comparison](value, threshold)
    verdict = Verdict.PASSED if passed else Verdict.FAILED
    record(GateRecord(declared.family, gate, metric, value, threshold, comparison, verdict, interval, payload))
    if not passed:
        raise GateFailure(gate, metric, value, threshold, comparison, evidence() if callable(evidence) else evidence, hint)


def _declaration(gate: str, family: Family | None, payload: Payload | None) -> GateDeclaration:
    """The gate's declaration; a programming error (not the user's) when the call disagrees with it."""
    declared = DECLARED.get(gate) or declared_gates().get(gate)  # a record written outside its gate's module
    if declared is None:
        raise LookupError(f"{gate} calls check() but is not declared: decorate it with @Family.<family>.gate(...)")
    if family is not None and Family(family) is not declared.family:
        raise ValueError(f"{gate} records family {family!r}; its declaration says {declared.family.value!r}")
    if payload is not None and type(payload) is not declared.chart:
        raise TypeError(f"{gate} records a {type(payload).__name__}; its declaration draws "
                        f"{declared.chart.__name__ if declared.chart else 'no chart'}")
    return declared
