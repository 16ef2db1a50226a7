"""Latency of one runtime at a fixed batch size, sequence length and thread count.

Warm-up calls first (allocator, onnxruntime's first-run planning, lazy kernels), then timed calls in
blocks until the P95 is pinned down: the distribution-free 95% confidence interval of the 0.95
quantile (order statistics at binomial ranks) must be narrower than `precision` x P95, or the time
budget runs out; how many calls were timed is reported either way. Inputs are fixed token ids, so
the runtime's arithmetic is the same on every call. A runtime that cannot run the input at all (a
graph frozen to another shape) has no latency: measure_latency raises RuntimeCannotRun with the
runtime's own message, and the caller decides what that means (the latency gate fails on it).

The P95's interval covers the noise within one run: on a shared machine the load changes between runs
more than within one, so runs at other times differ by more than the interval (analysis/contention.py
measures the load of this run; latency_verdict says when it leaves the P95 meaningless).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import format_table, renamed_keywords
from .contention import CallTimer, Contention

BLOCK = 50
INTERVAL_SCOPE = ("the P95's 95% CI covers the noise within this run only: on a shared machine, runs at other "
                  "times differ by more")


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
    cpu_ms: np.ndarray | None = None  # the process's CPU time per timed call
    contention: Contention | None = None  # how busy the machine was while timing

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
    def cpu_p95(self) -> float:
        """P95 of the process's CPU time per call. With one thread it is a lower bound of the call's wall
        time on an idle core, whatever the load was while timing (with more, workers spinning while a
        sibling waits for a core burn CPU time the call would not need on an idle machine)."""
        return float(np.percentile(self.cpu_ms, 95)) if self.cpu_ms is not None else float("nan")

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
        table = format_table(("runtime", "batch", "tokens", "threads", "calls", "p50 ms", "p95 ms",
                              "p95 95% CI (this run)", "p99 ms", "min-max ms"), rows)
        lines = [table, INTERVAL_SCOPE + "."]
        if self.contention is not None:
            busy = "machine BUSY" if self.contention.busy else "machine quiet"
            lines.append(f"{busy}: {self.contention.describe()}; CPU time per call p95 {self.cpu_p95:.2f} ms")
        return "\n".join(lines)


class LatencyVerdict(str, Enum):
    WITHIN_BUDGET = "within budget"
    OVER_BUDGET = "over budget"
    NOT_MEASURABLE = "not measurable on this machine now"


def latency_verdict(result: LatencyResult, max_p95_ms: float) -> LatencyVerdict:
    """Within budget: a busy machine only adds time, so a P95 within budget holds. Over budget: on a quiet
    machine, or where a single-threaded runtime's CPU time alone is over the budget (waiting for a core
    cannot explain that). Otherwise the machine was busy and the P95 measures it more than the code:
    not measurable."""
    if result.p95 <= max_p95_ms:
        return LatencyVerdict.WITHIN_BUDGET
    cpu_alone_over = result.threads == 1 and result.cpu_p95 > max_p95_ms
    if result.contention is None or not result.contention.busy or cpu_alone_over:
        return LatencyVerdict.OVER_BUDGET
    return LatencyVerdict.NOT_MEASURABLE


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


@renamed_keywords(min_calls="at_least_calls", max_calls="at_most_calls",  # the old names, for one release
                  max_seconds="at_most_seconds")
def measure_latency(runtime, batch_size: int = 1, seq_len: int = 32, threads: int = 1, warmup: int = 20,
                    at_least_calls: int = 200, at_most_calls: int = 5000, precision: float = 0.10,
                    at_most_seconds: float = 15.0) -> LatencyResult:
    """Time runtime.logits (an IntentModel, OnnxModel or ServingArtifact) on one fixed input, for at least
    at_least_calls and at most at_most_calls calls, stopping once the P95 is pinned down or at_most_seconds
    have passed.
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
    timer = CallTimer(threads)
    started = time.perf_counter()
    try:
        while len(timer.wall_ms) < at_most_calls:
            timer.sample_load()
            for _ in range(BLOCK):
                timer.time(lambda: runtime.logits(ids, mask))
            if len(timer.wall_ms) >= at_least_calls:
                array = np.asarray(timer.wall_ms)
                low, high = quantile_interval(array, 0.95)
                if high - low <= precision * np.percentile(array, 95) or time.perf_counter() - started > at_most_seconds:
                    break
        contention = timer.contention()
    finally:
        timer.close()
    return LatencyResult(runtime.kind, runtime.source, batch_size, seq_len, threads, np.asarray(timer.wall_ms),
                         warmup, time.perf_counter() - started, precision, np.asarray(timer.cpu_ms), contention)
