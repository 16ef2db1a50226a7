"""How busy the machine was while calls were timed, read while timing, and whether that leaves the timing
anything to say about the code that was timed.

Two signals, read alongside the timed calls (nothing is calibrated beforehand or stored between runs):
- per call, how long the calling thread was runnable but waiting for a core. On Linux that is the
  run-queue delay the scheduler counts for the thread (/proc/thread-self/schedstat), so a runtime that
  blocks on a device or on its worker threads is not mistaken for a waiting one. Elsewhere it is the wall
  time the process did not spend on the CPU, which also counts blocking and so can only overstate waits.
  The process's CPU time per call is kept too: it is what the calls cost on a core.
- between blocks of calls, how many other tasks were runnable, from /proc/loadavg's running count (an
  instant reading; the 1-minute load average, reported as well, lags a minute behind the machine).

No library reads these counters (psutil has neither the run-queue delay nor the running count), so the
readings are written out here.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

SCHEDSTAT = "/proc/thread-self/schedstat"  # cpu time, run-queue delay, time slices (ns) of this thread
LOADAVG = "/proc/loadavg"  # "1m 5m 15m running/total last-pid"
# A call that spent more than this share of its wall time waiting for a core was delayed by the machine.
DELAYED_CALL = 0.10
# Delays in at most this share of the calls move the P95 by at most to the undelayed calls' P97
# (0.95 / 0.98): the P95 still describes the code. More, and it describes the other processes.
MAX_DELAYED_SHARE = 0.02


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def running_tasks() -> int | None:
    """How many tasks the kernel counts as running or runnable right now, the reader included."""
    try:
        with open(LOADAVG, "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


class CallTimer:
    """Times calls on the thread that created it: wall ms, process CPU ms and ms spent waiting for a core
    per call, and the other runnable tasks between blocks. Readings sit outside each timed window."""

    def __init__(self, threads: int):
        self.threads = threads
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.waited_ms: list[float] = []
        self.others_running: list[int] = []
        try:  # held open and read with pread: about 2 microseconds a reading instead of 25
            self._schedstat: int | None = os.open(SCHEDSTAT, os.O_RDONLY)
        except OSError:
            self._schedstat = None

    @property
    def wait_source(self) -> str:
        return "run-queue delay" if self._schedstat is not None else "wall time off the CPU"

    def _run_queue_ns(self) -> int:
        return int(os.pread(self._schedstat, 128, 0).split()[1])

    def time(self, call) -> None:
        queued0 = self._run_queue_ns() if self._schedstat is not None else 0
        cpu0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        call()
        t1 = time.perf_counter_ns()
        cpu = time.process_time_ns() - cpu0
        wall = t1 - t0
        waited = self._run_queue_ns() - queued0 if self._schedstat is not None else max(0, wall - cpu)
        self.wall_ms.append(wall / 1e6)
        self.cpu_ms.append(cpu / 1e6)
        self.waited_ms.append(min(waited, wall) / 1e6)

    def sample_load(self) -> None:
        running = running_tasks()
        if running is not None:  # the reader is running, and so may be the runtime's other threads
            self.others_running.append(max(0, running - self.threads))

    def close(self) -> None:
        if self._schedstat is not None:
            os.close(self._schedstat)
            self._schedstat = None

    def contention(self) -> Contention:
        return assess_contention(np.asarray(self.wall_ms), np.asarray(self.waited_ms), self.others_running,
                                 usable_cores(), self.threads, load_average(), self.wait_source)


@dataclass(frozen=True)
class Contention:
    """How busy the machine was during a timing: plain figures, so that a report can store them."""

    delayed_share: float  # share of the timed calls that waited for a core > DELAYED_CALL of their wall time
    waited_share: float  # share of the timed wall time spent waiting for a core
    others_running: float  # median count of other runnable tasks between blocks (nan: not known on this OS)
    load_average: float  # 1-minute load average at the end (nan: not known on this OS)
    cores: int
    threads: int
    wait_source: str = "run-queue delay"

    @property
    def busy(self) -> bool:
        """More calls delayed than the P95 can absorb, or more runnable tasks than the cores left over
        for the runtime's threads."""
        crowded = not math.isnan(self.others_running) and self.others_running > self.cores - self.threads
        return self.delayed_share > MAX_DELAYED_SHARE or crowded

    def summary(self) -> str:
        """The two figures that decide `busy`, short enough for a table's metric column."""
        others = ("" if math.isnan(self.others_running) else
                  f", {self.others_running:g} other tasks runnable on {self.cores} cores")
        return f"{self.delayed_share:.0%} of calls waited for a core{others}"

    def describe(self) -> str:
        others = ("" if math.isnan(self.others_running) else
                  f", {self.others_running:g} other task(s) runnable (median) on {self.cores} core(s)")
        load = "" if math.isnan(self.load_average) else f", 1-minute load average {self.load_average:.1f}"
        return (f"{self.delayed_share:.0%} of calls waited for a core (> {DELAYED_CALL:.0%} of the call), "
                f"{self.waited_share:.0%} of the timed time spent waiting ({self.wait_source}){others}{load}")


def assess_contention(wall_ms: np.ndarray, waited_ms: np.ndarray, others_running: list[int], cores: int,
                      threads: int, load: float = math.nan, wait_source: str = "run-queue delay") -> Contention:
    """The contention figures of recorded calls (wall and waited ms per call, other runnable tasks per
    block): a pure function, so that recorded samples can be judged again."""
    wall_ms, waited_ms = np.asarray(wall_ms, dtype=float), np.asarray(waited_ms, dtype=float)
    delayed = float(np.mean(waited_ms > DELAYED_CALL * wall_ms)) if len(wall_ms) else 0.0
    waited = float(waited_ms.sum() / wall_ms.sum()) if wall_ms.sum() > 0 else 0.0
    others = float(np.median(others_running)) if len(others_running) else math.nan
    return Contention(delayed_share=delayed, waited_share=waited, others_running=others, load_average=load,
                      cores=cores, threads=threads, wait_source=wait_source)


def wait_until_quiet(deadline: float, threads: int, poll_seconds: float = 1.0, clock=time.monotonic,
                     sleep=time.sleep) -> bool:
    """Poll until the machine looks quiet (a short spin is not delayed and no more tasks are runnable than
    the cores left for `threads`) or `deadline` (clock() seconds) passes. True: it looked quiet."""
    while clock() < deadline:
        if not quiet_probe(threads).busy:
            return True
        sleep(max(0.0, min(poll_seconds, deadline - clock())))
    return False


def quiet_probe(threads: int, calls: int = 20, call_seconds: float = 0.01) -> Contention:
    """A fifth of a second of spinning, timed like the calls it stands in for."""
    timer = CallTimer(threads)
    try:
        for _ in range(calls):
            timer.sample_load()
            timer.time(lambda: _spin(call_seconds))
        return timer.contention()
    finally:  # after contention(): it names the wait source, which closing forgets
        timer.close()


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
