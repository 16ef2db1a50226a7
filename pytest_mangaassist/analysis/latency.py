"""Latency of one runtime at a fixed batch size, sequence length and thread count.

Warm-up calls first (allocator, onnxruntime's first-run planning, lazy kernels), then timed calls in
blocks until the P95 is pinned down: the distribution-free 95% confidence interval of the 0.95
quantile (order statistics at binomial ranks) must be narrower than `precision` x P95, or the time
budget runs out; how many calls were timed is reported either way. Inputs are fixed token ids, so
the runtime's arithmetic is the same on every call. A runtime that cannot run the input at all (a
graph frozen to another shape) has no latency: measure_latency raises RuntimeCannotRun with the
runtime's own message, and the caller decides what that means (the latency gate fails on it).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import numpy as np

from ..errors import format_table

BLOCK = 50


class RuntimeCannotRun(Exception):
    """The runtime raised on the latency input: there is nothing to time."""

    def __init__(self, source: str, batch_size: int, seq_len: int, cause: BaseException):
        self.source, self.batch_size, self.seq_len = source, batch_size, seq_len
        self.cause = f"{type(cause).__name__}: {' '.join(str(cause).split())}"
        super().__init__(f"{source} cannot run batch {batch_size} x {seq_len} tokens: {self.cause}")


@dataclass(frozen=True)
class LatencyResult:
    runtime: str
    source: str
    batch_size: int
    seq_len: int
    threads: int
    samples_ms: np.ndarray
    warmup: int
    seconds: float
    precision: float = 0.10  # the relative width of the P95's interval the run aimed for

    @property
    def n_calls(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def p95_interval(self) -> tuple[float, float]:
        return quantile_interval(self.samples_ms, 0.95)

    @property
    def stable(self) -> bool:
        low, high = self.p95_interval
        return (high - low) <= self.precision * self.p95

    def table(self) -> str:
        low, high = self.p95_interval
        rows = [(self.runtime, self.batch_size, self.seq_len, self.threads, self.n_calls, f"{self.p50:.2f}",
                 f"{self.p95:.2f}", f"{low:.2f}-{high:.2f}", f"{self.p99:.2f}",
                 f"{self.samples_ms.min():.2f}-{self.samples_ms.max():.2f}")]
        return format_table(("runtime", "batch", "tokens", "threads", "calls", "p50 ms", "p95 ms", "p95 95% CI",
                             "p99 ms", "min-max ms"), rows)


def quantile_interval(samples: np.ndarray, q: float, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the q-quantile: the order statistics at the binomial(n, q) ranks
    (written out here: scipy gives the ranks, not the interval)."""
    from scipy.stats import binom

    ordered = np.sort(samples)
    n = len(ordered)
    tail = (1 - confidence) / 2
    low = int(binom.ppf(tail, n, q))
    high = int(binom.ppf(1 - tail, n, q)) + 1
    return float(ordered[max(low - 1, 0)]), float(ordered[min(high - 1, n - 1)])


def latency_inputs(batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed token ids (within any BERT-family vocabulary) and a full mask: a dense encoder's cost
    depends on the shape, not on which tokens fill it."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(batch_size, seq_len), dtype=np.int64)
    return ids, np.ones_like(ids)


def measure_latency(runtime, batch_size: int = 1, seq_len: int = 32, threads: int = 1, warmup: int = 20,
                    min_calls: int = 200, max_calls: int = 5000, precision: float = 0.10,
                    max_seconds: float = 15.0) -> LatencyResult:
    """Time runtime.logits (an IntentModel, OnnxModel or ServingArtifact) on one fixed input, for at least
    min_calls and at most max_calls calls, stopping once the P95 is pinned down or max_seconds have passed.
    Raises RuntimeCannotRun when the runtime fails on the input (its first call)."""
    from ..errors import MangaAssistInputError
    from ..loading.runtimes import as_runtime

    runtime = as_runtime(runtime).with_threads(threads)
    ids, mask = latency_inputs(batch_size, seq_len)
    try:
        runtime.logits(ids, mask)
    except MangaAssistInputError:
        raise
    except Exception as exc:  # the runtime's own failure (onnxruntime names the node whose shape broke)
        raise RuntimeCannotRun(runtime.source, batch_size, seq_len, exc) from exc
    for _ in range(warmup):
        runtime.logits(ids, mask)
    gc.collect()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < max_calls:
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            runtime.logits(ids, mask)
            samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= min_calls:
            array = np.asarray(samples)
            low, high = quantile_interval(array, 0.95)
            if high - low <= precision * np.percentile(array, 95) or time.perf_counter() - started > max_seconds:
                break
    return LatencyResult(runtime.kind, runtime.source, batch_size, seq_len, threads, np.asarray(samples), warmup,
                         time.perf_counter() - started, precision)
