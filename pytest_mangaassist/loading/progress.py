"""Progress of long analyses, shown in the terminal even while pytest captures a test's output.

Analyses call `progress(label, total)` and tick it; nothing is shown unless a sink is installed (the
plugin installs one per test, writing through pytest's terminal reporter with capture suspended) and
the analysis has run for more than SHOW_AFTER_S seconds, at most one line per EVERY_S seconds. In a
notebook, or under `pytest -q`, or in an xdist worker (whose terminal is the controller's), it is silent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextvars import ContextVar

SHOW_AFTER_S = 3.0
EVERY_S = 2.0
_sink: ContextVar[Callable[[str], None] | None] = ContextVar("mangaassist_progress_sink", default=None)


@contextlib.contextmanager
def showing_progress(write: Callable[[str], None]):
    token = _sink.set(write)
    try:
        yield
    finally:
        _sink.reset(token)


class Progress:
    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.started = time.perf_counter()
        self.shown_at: float | None = None
        self.write = _sink.get()

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.write is None:
            return
        now = time.perf_counter()
        if now - self.started >= SHOW_AFTER_S and (self.shown_at is None or now - self.shown_at >= EVERY_S):
            self.shown_at = now
            self.write(f"mangaassist: {self.label}: {self.running(now - self.started)}")

    def finish(self) -> None:
        if self.write is not None and self.shown_at is not None:
            self.write(f"mangaassist: {self.label}: {self.finished(time.perf_counter() - self.started)}")

    def running(self, seconds: float) -> str:
        """The line while it runs, `seconds` after it started (subclasses say more)."""
        return f"{self.done}/{self.total} ({seconds:.0f} s)"

    def finished(self, seconds: float) -> str:
        return f"done in {seconds:.0f} s"


@contextlib.contextmanager
def progress(label: str, total: int):
    tracker = Progress(label, total)
    yield tracker
    tracker.finish()
