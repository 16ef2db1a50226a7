"""The reporting side of a pytest session, registered by the plugin at configure time as a plugin object
(pytest_runtest_logreport receives no config): gathers every test report into the run log, then writes
the baseline update, the report files and the terminal summary. In the xdist controller it sees the
workers' reports; in a worker it writes nothing."""

from __future__ import annotations

RECORD_PREFIX = "mangaassist: "  # user_properties key prefix of a table recorded with mangaassist_record
GATE_PROPERTY = "mangaassist-gate"  # user_properties key of a GateRecord (JSON): reaches JUnit XML and xdist


class ReportingSession:
    def __init__(self, config, log, settings, baseline_store):
        self.config = config
        self.log = log
        self.settings = settings
        self.baseline_store = baseline_store

    def pytest_runtest_logreport(self, report):
        from ..gates.records import GateRecord
        from .reports import TestEntry

        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        entry = self.log.tests.setdefault(report.nodeid, TestEntry(report.nodeid, report.outcome, 0.0))
        entry.outcome = ("error" if report.when == "setup" and report.failed else
                         ("xfailed" if report.skipped else "xpassed") if hasattr(report, "wasxfail") else report.outcome)
        entry.duration += report.duration
        entry.records += [GateRecord.from_json(v) for k, v in report.user_properties if k == GATE_PROPERTY]
        entry.tables += [(k[len(RECORD_PREFIX):], v) for k, v in report.user_properties if k.startswith(RECORD_PREFIX)]
        if report.failed:
            entry.message = _failure_text(report)

    def pytest_sessionfinish(self, session):
        """Write the baseline (--mangaassist-update-baseline) and the reports, once, in the controller."""
        if hasattr(self.config, "workerinput"):
            return
        from .reports import file_hash, results, write_reports

        settings, log = self.settings, self.log
        if settings.update_baseline:
            measured = {r.data["metric_name"]: r.value for _, r in log.records if r.family == "regression"}
            if measured:
                self.baseline_store.write(measured)
        if settings.report_dir is not None:
            inputs = {"model": str(settings.model.path) if settings.model else None,
                      "model hash": _model_hash(settings.model),
                      "golden set": str(settings.golden_set.source) if settings.golden_set else None,
                      "golden set hash": file_hash(settings.golden_set.source) if settings.golden_set else None,
                      "validation set hash": file_hash(settings.validation_set.source) if settings.validation_set else None,
                      "baseline model": str(settings.baseline.path) if settings.baseline else None,
                      "onnx": str(settings.onnx_path) if settings.onnx_path else "exported by the plugin",
                      "serving artifact": str(settings.serving_artifact) if settings.serving_artifact else "compiled by the plugin"}
            write_reports(settings.report_dir, results(log, inputs))

    def pytest_terminal_summary(self, terminalreporter):
        from .reports import baseline_moves, gate_tables

        log, settings = self.log, self.settings
        families = gate_tables(log)
        if families:
            terminalreporter.section("mangaassist gates")
            for family, table in families:
                terminalreporter.write_line(f"{family}:")
                terminalreporter.write_line(table)
                terminalreporter.write_line("")
        tables = [table for entry in log.tests.values() for table in entry.tables]
        if tables:
            terminalreporter.section("mangaassist figures")
            for title, table in tables:
                terminalreporter.write_line(title)
                terminalreporter.write_line(table)
                terminalreporter.write_line("")
        moves = baseline_moves(log)
        if moves:
            terminalreporter.section("mangaassist baseline")
            terminalreporter.write_line(moves)
            if settings.update_baseline:
                terminalreporter.write_line(f"baseline written to {settings.baseline_file}: commit it with the suite")
        if settings.report_dir is not None:
            terminalreporter.write_line(f"mangaassist report: {settings.report_dir / 'report.html'} "
                                        f"(figures: {settings.report_dir / 'results.json'})")


def _failure_text(report) -> str:
    text = getattr(report, "longreprtext", "") or str(report.longrepr)
    lines = [line[2:] if line.startswith("E ") else line for line in text.splitlines() if line.startswith("E ")]
    return "\n".join(lines) if lines else text[-4000:]


def _model_hash(info) -> str | None:
    if info is None:
        return None
    from ..loading.model import IntentModel

    return IntentModel.from_checkpoint(info).content_hash  # hashes the files; loads no weights
