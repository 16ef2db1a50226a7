"""Traffic predictions, cached per (model content hash, shard content hash) in the signed disk cache.

A replay asks for each model's predictions on each shard. Those found (in this process' memo on the
Traffic object, else as a verified entry in the model's cache folder) are not replayed; the rest are
replayed in one engine run (only the models and shards missing), then written. So the next candidate
replays only its own side, and a rerun with both sides cached reads two small entries per shard (no
export, no weights, no tokenizer).

The entry key: the model's content hash and tokenizer length, the shard's content hash and format, the
text field, the library versions (store.model_key) and PREDICTIONS_FORMAT.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.counterfactuals import RoutingPolicy
from ..analysis.traffic import TrafficComparison, compare_routes
from ..errors import MangaAssistInputError
from ..loading import export
from ..loading.replay import Predictions, ReplayProgress, ServedModel, predict
from ..loading.traffic import Traffic
from . import store
from .artifacts import onnx_export_path, signed_artifact

PREDICTIONS_FORMAT = "traffic-predictions-1"  # bump when what a prediction is changes


@dataclass(frozen=True)
class ReplayStats:
    """How the predictions of one replay were obtained, for the summary."""

    engine: str
    messages: int  # messages of the traffic
    replayed: int  # message-model predictions computed now (0: everything came from a cache)
    cached: int  # message-model predictions read from the disk cache or this process' memo
    seconds: float  # wall time of the engine run

    @property
    def per_second(self) -> float:
        """Message-model predictions per second of the engine run (nan when nothing was replayed)."""
        return self.replayed / self.seconds if self.replayed and self.seconds > 0 else float("nan")

    def describe(self) -> str:
        if not self.replayed:
            return f"{self.messages:,} messages, every prediction cached"
        return (f"{self.messages:,} messages, {self.replayed:,} predictions replayed ({self.engine} engine) at "
                f"{self.per_second:,.0f}/s" + (f", {self.cached:,} cached" if self.cached else ""))


def _entry_name(model, traffic: Traffic, shard) -> str:
    key = store.model_key(model, "traffic", PREDICTIONS_FORMAT, shard.content_hash, shard.format, traffic.text_field)
    return f"traffic-{key}"


def _memo_key(model, shard) -> tuple:
    return (model.content_hash, model.max_length, shard.content_hash)


def _read(model, traffic: Traffic, shard) -> Predictions | None:
    found = traffic.memo.get(_memo_key(model, shard))
    if found is not None or model.cache_dir is None:
        return found
    arrays, problem = store.read_entry(model.cache_dir, _entry_name(model, traffic, shard))
    if problem is not None:
        if problem != store.MISSING:
            store.warn_ignored(store.entry_path(model.cache_dir, _entry_name(model, traffic, shard)), problem)
        return None
    try:
        intents, confidences = arrays["intents"].astype(np.int16), arrays["confidences"].astype(np.float32)
    except KeyError:
        return None
    if intents.shape != (shard.rows,) or confidences.shape != (shard.rows,) or not (
            (intents >= 0) & (intents < len(model.labels))).all():
        return None
    return Predictions(intents, confidences)


def _write(model, traffic: Traffic, shard, predictions: Predictions) -> None:
    traffic.memo[_memo_key(model, shard)] = predictions
    if model.cache_dir is None:
        return
    try:
        store.write_entry(model.cache_dir, _entry_name(model, traffic, shard),
                          {"intents": predictions.intents, "confidences": predictions.confidences})
    except OSError as exc:  # a read-only or full cache folder costs the reuse, not the run
        import warnings

        warnings.warn(store.CacheWarning(f"pytest-mangaassist: traffic predictions could not be cached "
                                         f"({type(exc).__name__}: {exc})."))


def served_model(model, directory: Path) -> ServedModel:
    """The model's ONNX export (made once per content hash, verified before use) and its tokenizer."""
    data = signed_artifact(onnx_export_path(model, directory), lambda tmp: export.export_onnx(model, tmp))
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise MangaAssistInputError(f"The tokenizer of {model.source} is not a fast (Rust) tokenizer, which the "
                                    "traffic replay runs outside Python.",
                                    "Save the model with its fast tokenizer (tokenizer.json), as AutoTokenizer does.")
    return ServedModel(model.source, data, backend.to_str(), model.max_length)


def traffic_predictions(models: Sequence, traffic: Traffic) -> tuple[list[list[Predictions]], ReplayStats]:
    """predictions[model][shard] for every model on every shard, replaying only what no cache holds."""
    found = [[_read(model, traffic, shard) for shard in traffic.shards] for model in models]
    missing = [(m, s) for m in range(len(models)) for s in range(len(traffic.shards)) if found[m][s] is None]
    cached = sum(traffic.shards[s].rows for m, row in enumerate(found) for s, p in enumerate(row) if p is not None)
    started = time.perf_counter()
    if missing:
        need = sorted({m for m, _ in missing})
        shards = sorted({s for _, s in missing})
        with tempfile.TemporaryDirectory(prefix="mangaassist-replay-") as scratch:
            served = [served_model(models[m], models[m].cache_dir or Path(scratch)) for m in need]
        total = sum(traffic.shards[s].rows for s in shards)
        names = " and ".join(Path(models[m].source).name for m in need)
        tracker = ReplayProgress(f"traffic replay ({traffic.engine}), {names}", total)
        computed = predict(served, traffic, shards, tracker)
        tracker.finish()
        for (i, s), predictions in computed.items():
            m = need[i]
            if found[m][s] is None:
                found[m][s] = predictions
                _write(models[m], traffic, traffic.shards[s], predictions)
    seconds = time.perf_counter() - started
    replayed = sum(traffic.shards[s].rows for _, s in missing)
    return found, ReplayStats(traffic.engine, len(traffic), replayed, cached, seconds if missing else 0.0)


def traffic_comparison(model, traffic: Traffic, *, against, policy: RoutingPolicy) -> tuple[TrafficComparison,
                                                                                           ReplayStats]:
    """The routes of model (the candidate) and against (production) on every message of the traffic."""
    (production, candidate), stats = traffic_predictions([against, model], traffic)

    def joined(predictions: list[Predictions]) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([p.intents for p in predictions]), np.concatenate([p.confidences for p in predictions]))

    return compare_routes(model.labels, policy, joined(production), joined(candidate)), stats
