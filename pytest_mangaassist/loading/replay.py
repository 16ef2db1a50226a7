"""The replay engines: stream traffic shards through ONNX Runtime sessions of exported models.

Both engines answer `predict(models, traffic, shards) -> {(model index, shard index): Predictions}`:
each message's top intent and its probability, in shard order.

- embedded (the default): in this process, a chunk of messages at a time: tokenized once per tokenizer,
  sorted by length, cut into batches of `traffic.batch_size` padded to their longest message, run through
  one session per model. Memory is bounded by the chunk, not by the traffic (the answer itself is 6 bytes a
  message and model).
- ray: Ray Data reads the shards (read_text / read_parquet, order preserved) and runs `map_batches` on a
  pool of actors (one per CPU of the cluster; for Parquet one CPU is left to the readers), each holding one
  ONNX Runtime session per model; the driver gathers the answers per shard.

Both run the same function (`_predict_chunk`) on each chunk. The exported models' logits do not depend on
how messages are batched or padded (the plugin's batch-invariance check warns where they do), so the two
engines give the same predictions to the bit, whatever chunks Ray cuts; tests check it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MangaAssistInputError
from .progress import Progress
from .traffic import RAY_FIX, Traffic

CHUNK_BATCHES = 16  # batches per chunk: enough to sort by length, few enough to bound memory


@dataclass(frozen=True)
class ServedModel:
    """What an engine needs to serve one model: its verified ONNX bytes and its tokenizer."""

    source: str
    onnx: bytes
    tokenizer_json: str  # the fast tokenizer's definition (tokenizers' JSON)
    max_length: int


@dataclass(frozen=True)
class Predictions:
    intents: np.ndarray  # int16: the top intent's index
    confidences: np.ndarray  # float32: its probability


class ReplayProgress(Progress):
    """Messages done, messages per second and the time left, through the plugin's progress sink."""

    def running(self, seconds: float) -> str:
        rate = self.done / seconds
        left = (self.total - self.done) / rate if rate else float("inf")
        return f"{self.done:,}/{self.total:,} messages, {rate:,.0f} messages/s, {left:,.0f} s left"

    def finished(self, seconds: float) -> str:
        return f"{self.done:,} messages in {seconds:,.0f} s ({self.done / max(seconds, 1e-9):,.0f} messages/s)"


# -- one chunk, the same in both engines -------------------------------------------------------------
class _Encoder:
    def __init__(self, tokenizer_json: str, max_length: int):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]


class _Sessions:
    """One ORT session per model and one encoder per distinct tokenizer (shared when the models share one)."""

    def __init__(self, models: Sequence[ServedModel], threads: int | None = None):
        from .runtimes import OnnxModel

        self.models = list(models)
        self.runtimes = []
        for model in self.models:
            runtime = OnnxModel.load(model.source, data=model.onnx)
            self.runtimes.append(runtime.with_threads(threads) if threads else runtime)
        self.encoders: dict[tuple[str, int], _Encoder] = {}
        for model in self.models:
            key = (model.tokenizer_json, model.max_length)
            if key not in self.encoders:
                self.encoders[key] = _Encoder(*key)

    def predict(self, texts: list[str], batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        encoded = {key: encoder.encode(texts) for key, encoder in self.encoders.items()}
        return [_predict_chunk(runtime, encoded[(model.tokenizer_json, model.max_length)], batch_size)
                for model, runtime in zip(self.models, self.runtimes)]


def _predict_chunk(runtime, ids: list[list[int]], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(top intent, its probability) of each tokenized message, batched by similar length."""
    n = len(ids)
    intents = np.empty(n, dtype=np.int16)
    confidences = np.empty(n, dtype=np.float32)
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        width = int(lengths[idx].max())
        input_ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            input_ids[row, :lengths[i]] = ids[i]
            mask[row, :lengths[i]] = 1
        logits = runtime.logits(input_ids, mask).astype(np.float64)
        top = logits.argmax(axis=1)
        # the top probability of a softmax: 1 / sum(exp(logit - top logit))
        confidences[idx] = 1.0 / np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)
        intents[idx] = top
    return intents, confidences


# -- embedded ----------------------------------------------------------------------------------------
def predict_embedded(models: Sequence[ServedModel], traffic: Traffic, shards: Sequence[int],
                     progress: ReplayProgress | None = None) -> dict[tuple[int, int], Predictions]:
    sessions = _Sessions(models)
    chunk = traffic.batch_size * CHUNK_BATCHES
    out = {}
    for s in shards:
        shard = traffic.shards[s]
        intents = [np.empty(shard.rows, dtype=np.int16) for _ in models]
        confidences = [np.empty(shard.rows, dtype=np.float32) for _ in models]
        done = 0
        for texts in traffic.texts(shard, chunk):
            for m, (top, conf) in enumerate(sessions.predict(texts, traffic.batch_size)):
                intents[m][done:done + len(texts)] = top
                confidences[m][done:done + len(texts)] = conf
            done += len(texts)
            if progress is not None:
                progress.tick(len(texts))
        out.update({(m, s): Predictions(intents[m], confidences[m]) for m in range(len(models))})
    return out


# -- Ray -----------------------------------------------------------------------------------------------
class _RayPredictor:
    """A Ray actor: one ORT session per model (one thread each: the pool has an actor per CPU)."""

    def __init__(self, models, text_field: str, batch_size: int):
        import ray

        self.sessions = _Sessions(ray.get(models) if isinstance(models, ray.ObjectRef) else models, threads=1)
        self.text_field = text_field
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        if "line" in batch:  # a JSON Lines shard, read as text
            texts = [json.loads(line.lstrip("\ufeff"))[self.text_field] for line in batch["line"]]
        else:
            texts = [str(t) for t in batch[self.text_field]]
        out = {"path": np.asarray(batch["path"])}
        for m, (top, conf) in enumerate(self.sessions.predict(texts, self.batch_size)):
            out[f"intent{m}"], out[f"confidence{m}"] = top, conf
        return out


def check_ray(address: str | None) -> None:
    """Ray Data importable and, where an address is given, a cluster answering there: else the fix."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MangaAssistInputError(f"--mangaassist-engine=ray needs Ray Data, which does not import here "
                                    f"({type(exc).__name__}: {exc}).", RAY_FIX) from None
    if address and address != "auto":
        _check_reachable(address)


def _check_reachable(address: str) -> None:
    import socket

    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    fix = ("Start the cluster (ray start --head on its head node) and pass its address, e.g. "
           "--mangaassist-ray-address=ray://head:10001 or head:6379; leave the option out to start a local cluster.")
    if not host or not port.isdigit():
        raise MangaAssistInputError(f"--mangaassist-ray-address {address!r} is not host:port.", fix)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise MangaAssistInputError(f"--mangaassist-ray-address {address}: no Ray cluster answers there "
                                    f"({exc.strerror or exc}).", fix) from None


def predict_ray(models: Sequence[ServedModel], traffic: Traffic, shards: Sequence[int],
                progress: ReplayProgress | None = None) -> dict[tuple[int, int], Predictions]:
    import ray

    check_ray(traffic.ray_address)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=traffic.ray_address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        return _run_ray(models, traffic, shards, progress)
    finally:
        if started_here:
            ray.shutdown()


def _run_ray(models, traffic: Traffic, shards: Sequence[int], progress) -> dict[tuple[int, int], Predictions]:
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in shard order
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset statistics in the test output
    served = ray.put(list(models))  # once in the object store, not pickled into every actor's definition
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    by_path = {str(traffic.shards[s].path.resolve()): s for s in shards}
    gathered: dict[int, list[list]] = {s: [[] for _ in models] for s in shards}
    confidences: dict[int, list[list]] = {s: [[] for _ in models] for s in shards}
    for kind in ("jsonl", "parquet"):
        paths = [str(traffic.shards[s].path.resolve()) for s in shards if traffic.shards[s].format == kind]
        if not paths:
            continue
        # reading is light next to the forward passes: read tasks take no CPU of the actors' (else an actor pool
        # holding every CPU leaves no read task scheduled). Reading Parquet still waits for a free CPU (measured:
        # Ray 2.60 hangs with an actor on every CPU), so its pool leaves one free.
        if kind == "jsonl":
            data = ray.data.read_text(paths, include_paths=True, num_cpus=0).rename_columns({"text": "line"})
            actors = cpus
        else:
            data = ray.data.read_parquet(paths, include_paths=True, num_cpus=0).select_columns(
                [traffic.text_field, "path"])  # Ray pushes the projection down into the read
            actors = max(1, cpus - 1)
        answers = data.map_batches(_RayPredictor, fn_constructor_kwargs={
            "models": served, "text_field": traffic.text_field, "batch_size": traffic.batch_size},
            batch_size=traffic.batch_size * CHUNK_BATCHES, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
            batch_format="numpy")
        for batch in answers.iter_batches(batch_size=None, batch_format="numpy"):
            for path in np.unique(batch["path"]):
                rows = batch["path"] == path
                s = by_path[str(Path(str(path).removeprefix("file://")).resolve())]
                for m in range(len(models)):
                    gathered[s][m].append(batch[f"intent{m}"][rows])
                    confidences[s][m].append(batch[f"confidence{m}"][rows])
            if progress is not None:
                progress.tick(len(batch["path"]))
    out = {}
    for s in shards:
        for m in range(len(models)):
            intents = np.concatenate(gathered[s][m]).astype(np.int16) if gathered[s][m] else np.zeros(0, np.int16)
            if intents.size != traffic.shards[s].rows:
                raise MangaAssistInputError(
                    f"Ray returned {intents.size} predictions for {traffic.shards[s].path}, which holds "
                    f"{traffic.shards[s].rows} messages.",
                    "Check that every node of the cluster reads the same files (a shared or copied folder), or "
                    "replay with --mangaassist-engine=embedded.")
            out[(m, s)] = Predictions(intents, np.concatenate(confidences[s][m]).astype(np.float32))
    return out


ENGINES = {"embedded": predict_embedded, "ray": predict_ray}


def predict(models: Sequence[ServedModel], traffic: Traffic, shards: Sequence[int],
            progress: ReplayProgress | None = None) -> dict[tuple[int, int], Predictions]:
    return ENGINES[traffic.engine](models, traffic, shards, progress)
