"""Figures across runs, kept in MLflow (--mangaassist-mlflow=URI): one MLflow run per pytest run, every gate
figure a metric under a stable key, and the same suite's previous runs read back for the trends of
report.html and the terminal's "moved" marks.

MLflow does the storing (a local SQLite file or folder, or a tracking server); this module only names the
figures and chooses what to log. MLflow is imported when a run is logged, never at start-up: the start-up
check (check_tracking_uri) looks for the package and, for a server, asks its /health endpoint.
"""

from __future__ import annotations

import math
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlparse

from ..errors import MangaAssistInputError
from ..gates.records import Family, GateRecord, SnapshotFigure
from .runlog import RunLog, TestEntry

TREND_RUNS = 6  # runs a trend shows: this one and up to five before it (half a year of monthly retrains)
EXPERIMENT_PREFIX = "mangaassist: "  # + the suite's folder name: the runs a trend compares
TAG_PREFIX = "mangaassist."
VERDICT_TAG = TAG_PREFIX + "verdict/"
BOUNDS = ("low", "high", "limit")  # metrics logged beside a figure: key/low, key/high, key/limit
HEALTH_TIMEOUT_S = 5
KEY_LENGTH = 250  # MLflow's longest metric key
FIX_INSTALL = "pip install 'pytest-mangaassist[mlflow]' (or leave --mangaassist-mlflow out)."
# the server's client retries with back-off (about 2 minutes by default): a server that died mid-run should
# cost the run seconds, not minutes; a user's own setting wins
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


# -- start-up --------------------------------------------------------------------------------------
def check_tracking_uri(uri: str) -> None:
    """At configure time: MLflow installed, a local store's folder there, a server answering. Cheap: no import
    of MLflow (seconds), one HTTP request for a server."""
    if find_spec("mlflow") is None:
        raise MangaAssistInputError(f"--mangaassist-mlflow {uri} needs MLflow, which is not installed here.",
                                    FIX_INSTALL)
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri)
    elif scheme == "sqlite":
        folder = Path(uri.split(":///", 1)[-1]).parent if ":///" in uri else None
        if folder is not None and not folder.is_dir():
            raise MangaAssistInputError(f"--mangaassist-mlflow {uri}: the folder {folder} of the SQLite file does "
                                        f"not exist.", "Create the folder, or point the URI at an existing one.")
    elif scheme in ("", "file"):
        folder = Path(uri.removeprefix("file://").removeprefix("file:"))
        if folder.exists() and not folder.is_dir():
            raise MangaAssistInputError(f"--mangaassist-mlflow {uri} is a file, not a folder.",
                                        "Pass a folder (MLflow keeps its file store there) or sqlite:///FILE.db.")


def _check_server(uri: str) -> None:
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=HEALTH_TIMEOUT_S) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MangaAssistInputError(f"the MLflow tracking server {uri} is not reachable ({reason}).",
                                    "Start it (mlflow server --host 127.0.0.1 --port 5000), or pass the URI of one "
                                    "that runs, or leave --mangaassist-mlflow out.") from None
    if status != 200:
        raise MangaAssistInputError(f"the MLflow tracking server {uri} answered {health} with HTTP {status}, "
                                    f"not 200: it is not an MLflow server, or not a healthy one.",
                                    "Pass the tracking server's base URI (the one its UI is served at).")


# -- figure keys -----------------------------------------------------------------------------------
def _clean(text: str) -> str:
    """MLflow keys allow letters, digits, _ - . / : and spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\-./: ]", "_", text)).strip()


def metric_head(metric: str) -> str:
    """What a metric sentence measures, without this run's counts and details: the text before its first
    parenthesis or semicolon ("p95 latency in ms (pytorch, batch 1)" -> "p95 latency in ms"), files by their
    name."""
    head = re.split(r"[(;]", metric, maxsplit=1)[0].strip() or metric
    return re.sub(r"\S*/(\S+)", r"\1", head)  # a file by its name: the same figure on another checkout


def figure_keys(log: RunLog) -> list[tuple[str, TestEntry, GateRecord]]:
    """Every raw record with its metric key "test/what it measures": a snapshot figure by its name; a second
    record of the same key in one test gets " call 2" (the call order within a test is fixed)."""
    out, seen = [], {}
    for entry, rec in log.records:
        what = rec.payload.name if isinstance(rec.payload, SnapshotFigure) else metric_head(rec.metric)
        # "/" only between the two parts: MLflow refuses a key that a path normalization would change
        key = f"{_clean(entry.name).replace('/', '_')}/{_clean(what).replace('/', '_')}"[: KEY_LENGTH - 16]
        seen[key] = seen.get(key, 0) + 1
        out.append((key if seen[key] == 1 else f"{key} call {seen[key]}", entry, rec))
    return out


def figures(log: RunLog) -> dict[str, float]:
    """The metrics one run logs: each figure, and its interval bounds and limit beside it."""
    found = {}
    for key, _, rec in figure_keys(log):
        found[key] = rec.value
        if rec.interval:
            found[f"{key}/low"], found[f"{key}/high"] = rec.interval
        if rec.threshold is not None:
            found[f"{key}/limit"] = rec.threshold
    return found


# -- history ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PastRun:
    started: float  # seconds since the epoch
    name: str
    metrics: dict[str, float]


@dataclass
class History:
    """The suite's previous runs (oldest first) and what happened when logging this one."""

    uri: str
    runs: list[PastRun] = field(default_factory=list)
    problem: str | None = None  # MLflow failed (reading or logging): the local reports stand
    run_id: str | None = None

    def series(self, key: str, now: float) -> list[tuple[str, float]]:
        """(run label, value) of a figure over the past runs that have it, then this run."""
        past = [(time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.started)), r.metrics[key])
                for r in self.runs if key in r.metrics]
        return past + [("this run", now)]

    def previous(self, key: str) -> float | None:
        return next((r.metrics[key] for r in reversed(self.runs) if key in r.metrics), None)


def moved(log: RunLog, history: History) -> list[tuple[str, float, GateRecord]]:
    """(key, previous value, record) of the figures whose previous run's value lies outside this run's
    interval: they moved by more than this run's noise."""
    out = []
    for key, _, rec in figure_keys(log):
        before = history.previous(key)
        if before is None or not rec.interval or rec.family is Family.SNAPSHOT or math.isnan(before):
            continue
        if not rec.interval[0] <= before <= rec.interval[1]:
            out.append((key, before, rec))
    return out


def experiment_name(suite: str) -> str:
    return EXPERIMENT_PREFIX + suite


def _client(uri: str):
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def read_history(uri: str, suite: str) -> History:
    """The suite's last TREND_RUNS - 1 finished runs; a store that cannot be read gives no history and a
    problem to print, never a lost report."""
    history = History(uri)
    try:
        client = _client(uri)
        experiment = client.get_experiment_by_name(experiment_name(suite))
        if experiment is None:
            return history
        found = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                   order_by=["attributes.start_time DESC"], max_results=TREND_RUNS - 1)
        history.runs = [PastRun(r.info.start_time / 1000, r.info.run_name or r.info.run_id, dict(r.data.metrics))
                        for r in reversed(found)]
    except Exception as exc:  # noqa: BLE001 - MLflow and its HTTP client raise many types; the run goes on
        history.problem = f"reading {uri} failed: {type(exc).__name__}: {_first_line(exc)}"
    return history


def log_run(history: History, suite: str, log: RunLog, tags: dict[str, str], artifacts: list[Path]) -> None:
    """One MLflow run for this pytest run: figures as metrics, verdicts and input hashes as tags, the report
    files as artifacts. A failure is kept in history.problem (the local files are already written)."""
    from mlflow.entities import Metric, RunTag

    uri = history.uri
    try:
        client = _client(uri)
        experiment_id = _experiment(client, uri, experiment_name(suite))
        run = client.create_run(experiment_id, start_time=int(log.started * 1000),
                                run_name=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(log.started)))
        history.run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in figures(log).items()]
        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
        run_tags += [RunTag(_clean(VERDICT_TAG + key)[:KEY_LENGTH], rec.verdict.value)
                     for key, _, rec in figure_keys(log)]
        client.log_batch(run.info.run_id, metrics=metrics, tags=run_tags, synchronous=True)  # split by the client
        for path in artifacts:
            client.log_artifact(run.info.run_id, str(path))
        # a run whose gates failed is FINISHED too (its outcome is a tag): the trend reads finished runs only,
        # so a run that died while logging never shows as a point
        client.set_terminated(run.info.run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - MLflow and its HTTP client raise many types; the run goes on
        history.problem = f"logging to {uri} failed: {type(exc).__name__}: {_first_line(exc)}"


def _experiment(client, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(uri))


def _artifact_location(uri: str) -> str | None:
    """A local store keeps its artifacts beside it (MLflow's default is ./mlruns in the working folder, which
    may be anywhere); a server decides for itself (None)."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite" and ":///" in uri:
        return str(Path(uri.split(":///", 1)[1]).resolve().parent / "mlflow-artifacts")
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
