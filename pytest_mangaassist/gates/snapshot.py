"""Baselines: figures of an accepted run, stored in a JSON file committed with the suite, that later
runs must not fall below (the way snapshot plugins keep expected outputs).

`assert_no_regression(metric, value, tolerance)` compares against the session's baseline file; run
`pytest --mangaassist-update-baseline` to store the current figures instead (the plugin writes the
file once at the end of the run, from the controller under xdist, keeping metrics this run did not
measure). Outside pytest, pass `baseline=` a dict or a file.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MangaAssistInputError
from .records import GateRecord, check, record

FAMILY = "regression"


@dataclass
class BaselineStore:
    path: Path
    update: bool = False
    values: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, update: bool = False) -> BaselineStore:
        if not path.is_file():
            return cls(path, update)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            values = {str(k): float(v) for k, v in raw["figures"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MangaAssistInputError(
                f"The baseline file {path} is not a mangaassist baseline ({{\"figures\": {{metric: number}}}}).",
                "Regenerate it with pytest --mangaassist-update-baseline, or point --mangaassist-baseline-file "
                "at the right file.") from None
        return cls(path, update, values)

    def write(self, measured: dict[str, float]) -> None:
        figures = {**self.values, **measured}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"figures": dict(sorted(figures.items()))}, indent=2) + "\n", encoding="utf-8")


_active: ContextVar[BaselineStore | None] = ContextVar("mangaassist_baseline", default=None)


def assert_no_regression(metric: str, value: float, tolerance: float, higher_is_better: bool = True,
                         baseline: dict | str | Path | None = None) -> float:
    """`value` must not be worse than the baseline's `metric` by more than `tolerance`. Returns the value."""
    __tracebackhide__ = True
    store = _store(baseline)
    if store.update:
        record(GateRecord(FAMILY, "assert_no_regression", metric, float(value), None, "stored", True,
                          data={"baseline": store.values.get(metric), "tolerance": tolerance, "metric_name": metric}))
        return value
    if metric not in store.values:
        raise MangaAssistInputError(
            f"assert_no_regression: the baseline {store.path} has no figure {metric!r} "
            f"(it has {len(store.values)}: {', '.join(sorted(store.values)[:6]) or 'none'}).",
            "Run pytest --mangaassist-update-baseline once on an accepted model to store the figures, and commit "
            "the file with the suite.")
    stored = store.values[metric]
    limit = stored - tolerance if higher_is_better else stored + tolerance
    check("assert_no_regression", f"{metric} (baseline {stored:.4f}, tolerance {tolerance:g})", float(value), limit,
          ">=" if higher_is_better else "<=", family=FAMILY,
          data={"baseline": stored, "tolerance": tolerance, "metric_name": metric},
          evidence=f"baseline file: {store.path}",
          hint="if the change is intended (a reviewed trade-off), accept it with pytest --mangaassist-update-baseline "
               "and commit the updated file.")
    return value


def _store(baseline) -> BaselineStore:
    if isinstance(baseline, dict):
        return BaselineStore(Path("<dict>"), values={k: float(v) for k, v in baseline.items()})
    if baseline is not None:
        return BaselineStore.load(Path(baseline))
    store = _active.get()
    if store is None:
        raise MangaAssistInputError("assert_no_regression has no baseline outside a pytest run with the plugin.",
                                    "Pass baseline= a dict of figures or the path of a baseline file.")
    return store
