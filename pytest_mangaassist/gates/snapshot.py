"""Snapshot: figures of an accepted run, stored in a JSON file committed with the suite
(mangaassist-snapshot.json), that later runs must not fall below (the way syrupy and pytest-regressions
keep expected outputs).

`assert_no_regression(metric, value, *, max_regression)` compares against the session's snapshot file; run
`pytest --mangaassist-update-snapshot` to store the current figures instead (the plugin writes the file once
at the end of the run, from the controller under xdist, with every figure the run recorded, keeping the
figures this run did not measure). Outside pytest, pass `snapshot=` a dict or the path of a snapshot file.

"baseline" is not used here on purpose: it names the production model (--baseline-path) and captum's
Integrated-Gradients reference inputs.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MangaAssistInputError
from ..loading.jsonfile import read_json
from . import validation
from .records import Family, GateRecord, SnapshotFigure, Verdict, check, record

DEFAULT_FILE = "mangaassist-snapshot.json"
GATE = "assert_no_regression"
UPDATE_FLAG = "--mangaassist-update-snapshot"
FILE_FLAG = "--mangaassist-snapshot-file"
SHAPE = '{"figures": {"metric name": number, ...}}'


@dataclass
class SnapshotStore:
    path: Path
    update: bool = False
    values: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, update: bool = False) -> SnapshotStore:
        path = Path(path)
        if path.exists() and not path.is_file():
            raise MangaAssistInputError(f"The snapshot file {path} is a folder, not a file.",
                                        f"Point {FILE_FLAG} at a file (default: {DEFAULT_FILE} next to the ini file).")
        if not path.is_file():
            return cls(path, update)
        raw = read_json(path, f"The snapshot file {path}",
                        fix=f"Regenerate it with pytest {UPDATE_FLAG}, or point {FILE_FLAG} at the right file.")
        return cls(path, update, _figures(raw, path))

    def write(self, measured: dict[str, float]) -> None:
        """Store `measured` over the figures already in the file (atomically: a crash leaves the old file)."""
        figures = {**self.values, **{str(k): float(v) for k, v in measured.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"figures": dict(sorted(figures.items()))}, indent=2, allow_nan=False) + "\n",
                             encoding="utf-8")
        os.replace(temporary, self.path)
        self.values = figures


def _figures(raw, path) -> dict[str, float]:
    figures = raw.get("figures") if isinstance(raw, dict) else None
    bad = (["the top level has no \"figures\" object"] if not isinstance(figures, dict) else
           [f"{k!r} is {v!r}" for k, v in figures.items() if not _finite(v)])
    if bad:
        raise MangaAssistInputError(
            f"The snapshot file {path} is not a mangaassist snapshot ({SHAPE} with finite numbers): "
            f"{'; '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}.",
            f"Regenerate it with pytest {UPDATE_FLAG}, or point {FILE_FLAG} at the right file.")
    return {str(k): float(v) for k, v in figures.items()}


def _finite(value) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


_active: ContextVar[SnapshotStore | None] = ContextVar("mangaassist_snapshot", default=None)


def assert_no_regression(metric: str, value: float, *, max_regression: float, higher_is_better: bool = True,
                         snapshot: dict | str | Path | None = None) -> float:
    """`value` must not be worse than the snapshot's figure `metric` by more than `max_regression`.
    Returns the value. Under --mangaassist-update-snapshot the value is stored instead of compared."""
    __tracebackhide__ = True
    if not isinstance(metric, str) or not metric.strip():
        raise MangaAssistInputError(f"{GATE}: metric must be a non-empty string (the figure's name in the snapshot); "
                                    f"got {metric!r}.",
                                    'Pass e.g. assert_no_regression("golden accuracy", value, max_regression=0.01).')
    value = validation.number(GATE, "value", value)
    if not math.isfinite(value):
        raise MangaAssistInputError(f"{GATE}: value must be a finite number; got {value!r}.",
                                    f"Pass the measured figure of {metric!r}.")
    max_regression = validation.number(GATE, "max_regression", max_regression, low=0.0)
    higher_is_better = validation.flag(GATE, "higher_is_better", higher_is_better)
    store = _store(snapshot)
    comparison = ">=" if higher_is_better else "<="
    stored = store.values.get(metric)
    figure = SnapshotFigure(metric, stored, max_regression)
    if store.update:
        record(GateRecord(Family.SNAPSHOT, GATE, metric, value, _limit(stored, max_regression, higher_is_better),
                          comparison, Verdict.STORED, payload=figure))
        return value
    if stored is None:
        names = sorted(store.values)
        raise MangaAssistInputError(
            f"{GATE}: the snapshot {store.path} has no figure {metric!r} "
            f"(it has {len(names)}: {', '.join(map(repr, names[:6])) or 'none'}{', ...' if len(names) > 6 else ''}).",
            f"Run pytest {UPDATE_FLAG} once on an accepted model to store the figures, and commit the file with the "
            "suite.")
    check(GATE, f"{metric} (snapshot {stored:.4f}, max regression {max_regression:g})", value,
          _limit(stored, max_regression, higher_is_better), comparison, family=Family.SNAPSHOT, payload=figure,
          evidence=f"snapshot file: {store.path}",
          hint=f"if the change is intended (a reviewed trade-off), accept it with pytest {UPDATE_FLAG} and commit "
               "the updated file.")
    return value


def _limit(stored: float | None, max_regression: float, higher_is_better: bool) -> float | None:
    if stored is None:
        return None
    return stored - max_regression if higher_is_better else stored + max_regression


def _store(snapshot) -> SnapshotStore:
    if isinstance(snapshot, dict):
        return SnapshotStore(Path("<dict>"), values=_figures({"figures": snapshot}, "given as snapshot="))
    if isinstance(snapshot, (str, os.PathLike)):
        return SnapshotStore.load(Path(snapshot))
    if snapshot is not None:
        raise MangaAssistInputError(f"{GATE}: snapshot must be None, a dict of figures or the path of a snapshot "
                                    f"file; got {type(snapshot).__name__}.",
                                    'Pass e.g. snapshot={"golden accuracy": 0.95} or '
                                    'snapshot="mangaassist-snapshot.json".')
    store = _active.get()
    if store is None:
        raise MangaAssistInputError(f"{GATE} has no snapshot outside a pytest run with the plugin.",
                                    "Pass snapshot= a dict of figures or the path of a snapshot file.")
    return store


def snapshot_figures(records) -> dict[str, float]:
    """The figures to store from a run's raw records: every assert_no_regression call, by its metric name."""
    return {r.payload.name: float(r.value) for r in records if isinstance(r.payload, SnapshotFigure)}
