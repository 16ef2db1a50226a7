"""Outcomes the plugin does not let pass, read from the test reports (so they hold under xdist too): an xfail
of a gate test counts only a failing gate, and a run that needed the plugin's inputs but ran no gate fails."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ..config.inputs import needed_inputs
from ..errors import GateFailure
from .session import GATE_PROPERTY

WORKER_USAGE_ERROR = "mangaassist_usage_error"  # key in an xdist worker's workeroutput
INPUTS_ATTRIBUTE = "mangaassist_inputs"  # on a setup report: the input fixtures the test needs (survives xdist)


def unexpected_xfail(item, exc: BaseException) -> str | None:
    """Why exc must not count as the expected failure of item's xfail mark, or None where it may.

    A gate test (one that reads the plugin's inputs or carries @pytest.mark.gate) marked xfail expects the
    model to fail a gate, i.e. a GateFailure. A TypeError from a plugin bug, an error in the test itself, or a
    plain `assert` read as "xfailed" would hide the bug until the model is fixed, and then look like a fix
    (issue #23). A mark with raises= states what it expects: pytest checks that, not the plugin. pytest.xfail()
    called in the test is its own decision."""
    if isinstance(exc, (GateFailure, pytest.xfail.Exception)):
        return None
    gate_test = bool(needed_inputs(getattr(item, "fixturenames", ()))) or item.get_closest_marker("gate") is not None
    if not gate_test or any(mark.kwargs.get("raises") is not None for mark in item.iter_markers("xfail")):
        return None
    return (f"this gate test is marked xfail, which expects a gate to fail (GateFailure), but it raised "
            f"{type(exc).__name__} instead: an error in the test or the plugin, not the model's known weakness, so "
            f"it is not counted as the expected failure.\n"
            f"  fix: fix the error (the traceback above); make the test's check a gate (assert_*), or, if it really "
            f"expects this exception, say so: @pytest.mark.xfail(raises={type(exc).__name__}, strict=True, ...).")


@dataclass
class GateRunCheck:
    """A run that needed the plugin's inputs but in which no gate ran (every such test skipped) is not a
    pass: registered as a plugin object; works from the test reports, so it holds under xdist too."""

    needing: set[str] = field(default_factory=set)
    passed: int = 0
    gates: int = 0
    message: str | None = None
    usage_error: str | None = None  # met by an xdist worker at collection (a worker cannot stop the run itself)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        self.usage_error = self.usage_error or getattr(node, "workeroutput", {}).get(WORKER_USAGE_ERROR)

    def pytest_runtest_logreport(self, report) -> None:
        if getattr(report, INPUTS_ATTRIBUTE, None):
            self.needing.add(report.nodeid)
        if any(key == GATE_PROPERTY for key, _ in getattr(report, "user_properties", ())):
            self.gates += 1
        if report.when == "call" and report.passed and report.nodeid in self.needing:
            self.passed += 1

    def verdict(self) -> str | None:
        if self.gates or self.passed or not self.needing:
            return None
        return (f"pytest-mangaassist: no gate ran: the {len(self.needing)} test(s) that need the model or data inputs "
                "were all skipped (or xfailed), so this run checked nothing and must not pass.\n"
                "  fix: give the inputs (--model-path=DIR, --golden-set=FILE, ...), or run a selection in which "
                "gates run.")

    def finish(self, session) -> None:
        if self.usage_error:
            self.message = f"ERROR: {self.usage_error}"
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if session.exitstatus != pytest.ExitCode.OK:
            return
        self.message = self.verdict()
        if self.message is not None:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.message:
            terminalreporter.section("mangaassist", red=True, bold=True)
            terminalreporter.write_line(self.message, red=True)
