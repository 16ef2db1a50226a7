"""The reporting side of a pytest session, registered by the plugin at configure time as a plugin object
(pytest_runtest_logreport receives no config): gathers every test report into the run log (raw records),
then writes the snapshot update, the report files and the terminal summary. In the xdist controller it sees
the workers' reports; in a worker it writes nothing."""

from __future__ import annotations

from pathlib import Path

from .views import measured, number

RECORD_PREFIX = "mangaassist: "  # user_properties key prefix of a table recorded with mangaassist_record
GATE_PROPERTY = "mangaassist-gate"  # user_properties key of a GateRecord (JSON): reaches JUnit XML and xdist


class ReportingSession:
    def __init__(self, config, log, settings, snapshot_store, traffic=None):
        self.config = config
        self.log = log
        self.settings = settings
        self.snapshot_store = snapshot_store
        self.traffic = traffic  # loading.traffic.Traffic of --traffic: its content hash is an input's
        self.snapshot_written: int | None = None  # figures written by --mangaassist-update-snapshot
        self.history = None  # reporting.history.History with --mangaassist-mlflow
        self.moved: list[str] = []  # figures that left their interval since the previous run, as lines

    def pytest_runtest_logreport(self, report):
        from ..gates.records import GateRecord
        from .runlog import TestEntry

        setup_or_teardown_problem = report.when in ("setup", "teardown") and not report.passed
        if not (report.when == "call" or setup_or_teardown_problem):
            return
        entry = self.log.tests.setdefault(report.nodeid, TestEntry(report.nodeid, report.outcome, 0.0))
        if report.when == "teardown":
            if report.failed:
                entry.outcome = "error"
                entry.message = "\n".join(m for m in (entry.message, "teardown: " + _failure_text(report)) if m)
            return
        if report.when == "setup" and report.failed:
            entry.outcome = "error"
        elif hasattr(report, "wasxfail"):
            entry.outcome = "xfailed" if report.skipped else "xpassed"
        else:
            entry.outcome = report.outcome
        entry.duration += report.duration
        if report.location[1] is not None:
            entry.line = report.location[1] + 1
        entry.records += [GateRecord.from_json(v) for k, v in report.user_properties if k == GATE_PROPERTY]
        entry.tables += [(k[len(RECORD_PREFIX):], v) for k, v in report.user_properties if k.startswith(RECORD_PREFIX)]
        if report.failed:
            entry.message = _failure_text(report)

    def pytest_sessionfinish(self, session):
        """Write the snapshot (--mangaassist-update-snapshot) and the reports, once, in the controller."""
        if hasattr(self.config, "workerinput"):
            return
        from ..gates.snapshot import snapshot_bounds, snapshot_figures

        settings, log = self.settings, self.log
        if settings.update_snapshot:
            # raw records (every figure of every test), from the tests that passed only: a failed or xfailed
            # test's figures are not an accepted state; sorted by test id, so xdist's arrival order cannot matter
            accepted = [r for entry, r in sorted(log.records, key=lambda pair: pair[0].nodeid)
                        if entry.outcome == "passed"]
            measured = snapshot_figures(accepted)
            if measured:
                self.snapshot_store.write(measured, snapshot_bounds(accepted))
                self.snapshot_written = len(measured)
        inputs = report_inputs(settings, log, self.traffic)
        if settings.mlflow_uri is None:
            if settings.report_dir is not None:
                write_reports(settings.report_dir, log, inputs)
        else:
            self._log_to_mlflow(inputs)
        if settings.markdown_file is not None:
            from .markdown import markdown_summary

            settings.markdown_file.parent.mkdir(parents=True, exist_ok=True)
            with open(settings.markdown_file, "a" if settings.markdown_appends else "w", encoding="utf-8") as out:
                out.write(markdown_summary(log, self.moved))

    def _log_to_mlflow(self, inputs: dict) -> None:
        """The suite's history read, the reports written with its trends (in the report folder, else a temporary
        one), then this run logged with them as artifacts: a store failing on the way loses no local report."""
        import tempfile

        from .history import log_run, moved, read_history

        settings, log, suite = self.settings, self.log, self.config.rootpath.name
        self.history = history = read_history(settings.mlflow_uri, suite)
        self.moved = [f"{key}: {number(before)} -> {measured(rec)}" for key, before, rec in moved(log, history)]
        with tempfile.TemporaryDirectory(prefix="mangaassist-mlflow-") as scratch:
            folder = settings.report_dir or Path(scratch)
            paths = write_reports(folder, log, inputs, history)
            if history.problem is None:
                log_run(history, suite, log, run_tags(settings, log, inputs), list(paths))

    def pytest_terminal_summary(self, terminalreporter):
        from .terminal import gate_tables, headline, snapshot_table

        log, settings = self.log, self.settings
        families = gate_tables(log)
        if families:
            terminalreporter.section("mangaassist gates")
            terminalreporter.write_line(headline(log))
            terminalreporter.write_line("")
            for title, table in families:
                terminalreporter.write_line(title)
                terminalreporter.write_line(table)
                terminalreporter.write_line("")
        tables = list(dict.fromkeys(table for entry in log.tests.values() for table in entry.tables))
        if tables:
            from ..errors import display

            terminalreporter.section("mangaassist figures")
            for title, table in tables:
                terminalreporter.write_line(display(title))
                terminalreporter.write_line(display(table, keep_newlines=True))
                terminalreporter.write_line("")
        snapshot = snapshot_table(log)
        if snapshot:
            terminalreporter.section("mangaassist snapshot")
            terminalreporter.write_line(snapshot)
            if self.snapshot_written is not None:
                terminalreporter.write_line(f"{self.snapshot_written} figure(s) written to {settings.snapshot_file}: "
                                            "commit it with the suite")
        if settings.report_dir is not None:
            terminalreporter.write_line(f"mangaassist report: {settings.report_dir / 'report.html'} "
                                        f"(figures: {settings.report_dir / 'results.json'})")
        self._summarize_history(terminalreporter)
        if settings.markdown_file is not None:
            from .markdown import annotations

            terminalreporter.write_line(f"mangaassist summary (Markdown): {settings.markdown_file}")
            for line in annotations(log):  # workflow commands: GitHub reads them from the log, one per line
                terminalreporter.write_line(line)

    def _summarize_history(self, terminalreporter) -> None:
        history = self.history
        if history is None:
            return
        if self.moved:
            terminalreporter.section("mangaassist trends")
            terminalreporter.write_line("moved beyond this run's interval since the previous run:")
            for line in self.moved:
                terminalreporter.write_line(f"  {line}")
        if history.problem is not None:
            terminalreporter.write_line(f"mangaassist: MLflow {history.problem}; the local reports are kept",
                                        red=True)
        elif history.run_id is not None:
            terminalreporter.write_line(f"mangaassist: logged to MLflow {history.uri} as run {history.run_id} "
                                        f"({len(history.runs)} previous run(s) in the trends)")


def write_reports(folder, log, inputs: dict, history=None):
    """results.json (every raw record) and report.html (drawn from it, with the trends of `history`) in
    `folder`."""
    from .html import render_html
    from .results import results, write_json

    folder.mkdir(parents=True, exist_ok=True)
    data = results(log, inputs)
    json_path = write_json(folder / "results.json", data)
    html_path = folder / "report.html"
    html_path.write_text(render_html(data, history), encoding="utf-8")
    return json_path, html_path


def report_inputs(settings, log, traffic=None) -> dict:
    """What the run read, each with its content hash; None where not given (the page says "not given").
    The exported artifacts are named only when a gate used them."""
    from .results import file_hash
    from .views import runtimes_used

    def path(info, attribute="path"):
        return None if info is None else str(getattr(info, attribute))

    inputs = {"model": path(settings.model), "model hash": _model_hash(settings.model),
              "pretrained model": path(settings.pretrained),
              "production model": path(settings.production),
              "golden set": path(settings.golden_set, "source"),
              "golden set hash": file_hash(settings.golden_set.source) if settings.golden_set else None,
              "validation set": path(settings.validation_set, "source"),
              "validation set hash": file_hash(settings.validation_set.source) if settings.validation_set else None}
    if settings.production is not None:
        inputs["production model hash"] = _model_hash(settings.production)
    if traffic is not None:
        inputs["traffic"], inputs["traffic hash"] = str(traffic.source), traffic.content_hash
    inputs.update(_more_input_hashes(settings))
    used = runtimes_used(log)
    if "onnx" in used:
        inputs["ONNX model"] = (str(settings.onnx_path) if settings.onnx_path else
                                "exported by the plugin from the model")
    if "serving" in used:
        inputs["serving artifact"] = (str(settings.serving_artifact) if settings.serving_artifact else
                                      "compiled by the plugin from the model")
    if any(r.family.value == "snapshot" for _, r in log.records):
        updated = " (updated by this run)" if settings.update_snapshot else ""
        inputs["snapshot file"] = f"{settings.snapshot_file}{updated}"
    return inputs


def run_tags(settings, log, inputs: dict) -> dict[str, str]:
    """The MLflow run's tags: every input's content hash, the tier, the outcome."""
    from .history import TAG_PREFIX

    tags = {TAG_PREFIX + "hash." + k.removesuffix(" hash").replace(" ", "_"): v
            for k, v in inputs.items() if k.endswith(" hash") and v}
    tags[TAG_PREFIX + "tier"] = ",".join(settings.tiers) if settings.tiers else "all"
    tags[TAG_PREFIX + "outcome"] = "failed" if any(t.failed for t in log.tests.values()) else "passed"
    return tags


def _more_input_hashes(settings) -> dict:
    """results.json records a content hash of every input it read (the models': of their weight files)."""
    from .results import file_hash, policy_hash

    return {"pretrained model hash": _model_hash(settings.pretrained),
            "training set": settings.training_set and str(settings.training_set.source),
            "training set hash": settings.training_set and file_hash(settings.training_set.source),
            "routing policy": settings.routing_policy and settings.routing_policy.source,
            "routing policy hash": policy_hash(settings.routing_policy),
            "ONNX model hash": file_hash(settings.onnx_path),
            "serving artifact hash": file_hash(settings.serving_artifact),
            "snapshot file hash": file_hash(settings.snapshot_file)}


def _failure_text(report) -> str:
    text = getattr(report, "longreprtext", "") or str(report.longrepr)
    lines = [line[2:] if line.startswith("E ") else line for line in text.splitlines() if line.startswith("E ")]
    return "\n".join(lines) if lines else text[-4000:]


def _model_hash(info) -> str | None:
    if info is None:
        return None
    from ..loading.model import IntentModel

    return IntentModel.from_checkpoint(info).content_hash  # hashes the files; loads no weights
