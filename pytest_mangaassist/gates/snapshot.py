"""Snapshot: figures of an accepted run, stored in a JSON file committed with the suite
(mangaassist-snapshot.json), that later runs must not fall below (the way syrupy and pytest-regressions
keep expected outputs).

`assert_no_regression(metric, value, *, max_regression)` compares against the session's snapshot file; run
`pytest --mangaassist-update-snapshot` to store the current figures instead (the plugin writes the file once
at the end of the run, from the controller under xdist, with every figure the run recorded, keeping the
figures this run did not measure). Outside pytest, pass `snapshot=` a dict or the path of a snapshot file.

Every figure has a possible range: a rate in [0, 1] unless the call says otherwise (`bounds=(0, math.inf)`
for a latency); the file keeps the ranges that are not [0, 1] under "bounds", and a figure outside its
range (a hand edit or a bad merge: `-1e308` would let any model pass) is refused when the file is read, as
NaN is. The file must be a regular file: a symbolic link (a pull request can commit one pointing at any file
the CI user can write), a FIFO or a device is refused before anything reads or writes it, and the update
replaces the file by a rename, never writing through whatever holds its name.

"baseline" is not used here on purpose: it names captum's Integrated-Gradients reference inputs (the model
now in production is the production model, --production-path).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import files
from ..config.destinations import check_writable
from ..errors import MangaAssistInputError
from ..loading.jsonfile import parse_json
from . import validation
from .records import Family, GateRecord, SnapshotFigure, Verdict, check, record

DEFAULT_FILE = "mangaassist-snapshot.json"
GATE = "assert_no_regression"
UPDATE_FLAG = "--mangaassist-update-snapshot"
FILE_FLAG = "--mangaassist-snapshot-file"
SHAPE = '{"figures": {"metric name": number, ...}, "bounds"?: {"metric name": [low, high or null], ...}}'
RATE = (0.0, 1.0)  # a figure's range unless its call or the file's "bounds" says otherwise
SIZE_LIMIT = 16 * 2**20  # thousands of figures take a few hundred KB; a larger file is not a snapshot


@dataclass
class SnapshotStore:
    path: Path
    update: bool = False
    values: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # figures whose range is not RATE

    @classmethod
    def load(cls, path: Path, update: bool = False) -> SnapshotStore:
        path = Path(path)
        check_path(path)
        fix = f"Regenerate it with pytest {UPDATE_FLAG}, or point {FILE_FLAG} at the right file."
        try:
            data = files.read_file(path, SIZE_LIMIT)
        except FileNotFoundError:
            return cls(path, update)
        except OSError as exc:  # swapped since check_path, or unreadable
            raise MangaAssistInputError(f"The snapshot file {path} cannot be read: {exc.strerror or exc}.",
                                        fix) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MangaAssistInputError(f"The snapshot file {path} is not UTF-8 text (byte {exc.start}).",
                                        fix) from None
        values, bounds = _figures(parse_json(text, f"The snapshot file {path}", fix=fix), path)
        return cls(path, update, values, bounds)

    def write(self, measured: dict[str, float], bounds: dict[str, tuple[float, float]] | None = None) -> None:
        """Store `measured` (with the ranges in `bounds`, RATE where absent) over the figures already in the
        file, atomically (a crash leaves the old file), by a rename: never through a link in its place."""
        figures = {**self.values, **{str(k): float(v) for k, v in measured.items()}}
        ranges = {**self.bounds, **{str(k): tuple(b) for k, b in (bounds or {}).items()}}
        ranges = {k: b for k, b in ranges.items() if k in figures and tuple(b) != RATE}
        content = {"figures": dict(sorted(figures.items()))}
        if ranges:
            content["bounds"] = {k: [b[0], None if math.isinf(b[1]) else b[1]] for k, b in sorted(ranges.items())}
        files.replace_file(self.path, (json.dumps(content, indent=2, allow_nan=False) + "\n").encode("utf-8"))
        self.values, self.bounds = figures, ranges


def check_path(path: Path) -> None:
    """The snapshot file is a regular file or absent: a symbolic link, a folder, a FIFO or a device is refused
    (the link itself is examined, never what it points to)."""
    what = files.describe(path)
    if what is not None:
        raise MangaAssistInputError(
            f"The snapshot file {path} is {what}, not a regular file; the plugin neither reads nor writes through it "
            f"(a link committed in a pull request would let {UPDATE_FLAG} overwrite whatever it points to).",
            f"Replace it with a regular file (remove it, then restore it from version control or write it with pytest "
            f"{UPDATE_FLAG}), or point {FILE_FLAG} (ini mangaassist_snapshot_file) at a regular file (default: "
            f"{DEFAULT_FILE} next to the ini file).")


def check_destination(path: Path, update: bool) -> None:
    """At start-up: the snapshot file is a regular file or absent, and under --mangaassist-update-snapshot it
    can be written, before the run rather than found broken after it."""
    check_path(path)
    if update:
        if path.exists() and not os.access(path, os.W_OK):
            raise MangaAssistInputError(f"The snapshot file {path} is not writable.",
                                        f"Make it writable, or point {FILE_FLAG} elsewhere.")
        check_writable(path.parent, FILE_FLAG)


def _figures(raw, path, ranged: bool = True) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """(figures, ranges other than RATE) of a snapshot's JSON; every figure finite and (where ranged) inside its
    range."""
    figures = raw.get("figures") if isinstance(raw, dict) else None
    stated = raw.get("bounds", {}) if isinstance(raw, dict) else {}
    if not isinstance(figures, dict):
        bad = ["the top level has no \"figures\" object"]
    elif not isinstance(stated, dict):
        bad = ["\"bounds\" is not an object"]
    else:
        ranges = {k: _bounds(v) for k, v in stated.items()}
        bad = [f"the range of {_name(k)} is {_shown(v)}, not [low, high or null] with low < high"
               for k, v in stated.items() if ranges[k] is None]
        bad += [f"{_name(k)} is {_shown(v)}" for k, v in figures.items() if not _finite(v)]
        bad += [f"{_name(k)} is {_shown(v)}, outside its range {_interval(ranges.get(k) or RATE)}"
                for k, v in figures.items() if ranged and _finite(v) and not _inside(float(v), ranges.get(k) or RATE)]
    if bad:
        raise MangaAssistInputError(
            f"The snapshot file {path} is not a mangaassist snapshot ({SHAPE}, with finite numbers inside each "
            f"figure's range, [0, 1] unless \"bounds\" says otherwise): {'; '.join(bad[:3])}"
            f"{f' (and {len(bad) - 3} more)' if len(bad) > 3 else ''}.",
            f"Regenerate it with pytest {UPDATE_FLAG} (after removing the figures named), or restore it from version "
            f"control, or point {FILE_FLAG} at the right file.")
    return ({str(k): float(v) for k, v in figures.items()},
            {str(k): ranges[k] for k in stated if k in figures and ranges[k] != RATE})


def _bounds(value) -> tuple[float, float] | None:
    """[low, high] or [low, null] (no upper end) from the file; None where it is not a range."""
    if not isinstance(value, list) or len(value) != 2 or not _finite(value[0]):
        return None
    high = math.inf if value[1] is None else value[1]
    if not (_finite(high) or high == math.inf) or not float(value[0]) < float(high):
        return None
    return float(value[0]), float(high)


def _finite(value) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _inside(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _shown(value) -> str:
    """A figure as a message shows it: 6 significant digits, never a 309-digit expansion."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return f"{float(value):.6g}"
        except OverflowError:
            return f"an integer of {value.bit_length()} bits, too large for a float"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _name(key) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "..."


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


_active: ContextVar[SnapshotStore | None] = ContextVar("mangaassist_snapshot", default=None)


@Family.SNAPSHOT.gate(page="reports.md", chart=SnapshotFigure,
                      checks="a figure is not worse than the committed snapshot (`mangaassist-snapshot.json`) by "
                             "more than `max_regression`; `bounds` is the metric's possible range (`(0, math.inf)` "
                             "for a latency); `--mangaassist-update-snapshot` stores it instead")
def assert_no_regression(metric: str, value: float, *, max_regression: float, higher_is_better: bool = True,
                         bounds: tuple[float, float] = RATE, snapshot: dict | str | Path | None = None) -> float:
    """`value` must not be worse than the snapshot's figure `metric` by more than `max_regression`.
    `bounds` is the metric's possible range (a rate by default; `(0, math.inf)` for a latency): the value and
    the stored figure must lie inside it. Returns the value. Under --mangaassist-update-snapshot the value
    is stored (with its range) instead of compared."""
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
    bounds = _call_bounds(bounds)
    if not _inside(value, bounds):
        raise MangaAssistInputError(
            f"{GATE}: the measured {metric!r} is {_shown(value)}, outside the metric's range {_interval(bounds)}.",
            "Pass bounds=(low, high), the metric's possible range (a rate: the default (0, 1); a latency or a count: "
            "(0, math.inf)), or fix the measurement.")
    store = _store(snapshot)
    comparison = ">=" if higher_is_better else "<="
    stored = store.values.get(metric)
    if stored is not None and not _inside(stored, bounds):
        raise MangaAssistInputError(
            f"{GATE}: the snapshot {store.path} holds {metric!r} = {_shown(stored)}, outside the metric's range "
            f"{_interval(bounds)}.",
            f"Remove the figure and store it again with pytest {UPDATE_FLAG}, or restore the file from version "
            "control (or pass the metric's range as bounds=).")
    figure = SnapshotFigure(metric, stored, max_regression, bounds[0], None if math.isinf(bounds[1]) else bounds[1])
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
    check(GATE, f"{metric} (snapshot {_shown(stored)}, max regression {max_regression:g})", value,
          _limit(stored, max_regression, higher_is_better), comparison, family=Family.SNAPSHOT, payload=figure,
          evidence=f"snapshot file: {store.path}",
          hint=f"if the change is intended (a reviewed trade-off), accept it with pytest {UPDATE_FLAG} and commit "
               "the updated file.")
    return value


def _call_bounds(bounds) -> tuple[float, float]:
    ok = (isinstance(bounds, (tuple, list)) and len(bounds) == 2 and _finite(bounds[0])
          and (_finite(bounds[1]) or bounds[1] == math.inf) and bounds[0] < bounds[1])
    if not ok:
        raise MangaAssistInputError(f"{GATE}: bounds must be (low, high) numbers with low < high (high may be "
                                    f"math.inf); got {_name(bounds)}.",
                                    "Pass bounds=(0, 1) for a rate (the default) or bounds=(0, math.inf) for a "
                                    "latency.")
    return float(bounds[0]), float(bounds[1])


def _limit(stored: float | None, max_regression: float, higher_is_better: bool) -> float | None:
    if stored is None:
        return None
    return stored - max_regression if higher_is_better else stored + max_regression


def _store(snapshot) -> SnapshotStore:
    if isinstance(snapshot, dict):
        values, _ = _figures({"figures": snapshot}, "given as snapshot=", ranged=False)  # the call checks the range
        return SnapshotStore(Path("<dict>"), values=values)
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


@contextlib.contextmanager
def using_snapshot(store: SnapshotStore):
    """assert_no_regression calls made inside read (or update) `store`: the plugin's snapshot of the run, set
    around each test call."""
    token = _active.set(store)
    try:
        yield store
    finally:
        _active.reset(token)


def snapshot_figures(records) -> dict[str, float]:
    """The figures to store from a run's raw records: every assert_no_regression call, by its metric name."""
    return {r.payload.name: float(r.value) for r in records if isinstance(r.payload, SnapshotFigure)}


def snapshot_bounds(records) -> dict[str, tuple[float, float]]:
    """The range of each figure snapshot_figures returns, as its call gave it."""
    return {r.payload.name: (r.payload.low, math.inf if r.payload.high is None else r.payload.high)
            for r in records if isinstance(r.payload, SnapshotFigure)}
