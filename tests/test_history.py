"""Figures across runs, with the real MLflow: three runs of a suite logged to a SQLite store (the last one on two
xdist workers) and read back with MlflowClient, the trends and "moved" marks they give, the CI summary and its
annotations; one run against `mlflow server` started here on a loopback port, whose death mid-run loses no
local report; start-up errors for a missing extra and an unreachable server.

The suite's gates are `check` calls with figures set per run (no model: the subject is the history, not the
gates), so each pytest run costs a second or two beyond MLflow's own import."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import outcomes

from mlflow.tracking import MlflowClient  # requirements.lock pins MLflow: a missing one is a failure, not a skip

from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.reporting import history as history_module
from pytest_mangaassist.reporting.history import check_tracking_uri, experiment_name

# per run (RUN=0, 1, 2): accuracy drifts down a little, then drops beyond its interval and below its limit
ACCURACY = (0.93, 0.925, 0.85)
SUITE = """
import os

import pytest
from pytest_mangaassist.gates.records import Family, check

RUN = int(os.environ["RUN"])
ACCURACY = {accuracy}


def test_accuracy():
    value = ACCURACY[RUN]
    check("assert_accuracy_above", "accuracy on golden.jsonl (154 messages)", value, 0.9, ">=",
          family=Family.CLASSIFICATION, interval=(value - 0.02, value + 0.02))


@pytest.mark.parametrize("route", ["escalation", "checkout"])
def test_flip_rate(route):
    check("assert_traffic_agreement", f"route flip rate of {{route}} ({{RUN * 10 + 1000}} messages)",
          0.01 + RUN * 0.001, 0.05, "<=", family=Family.COMPARISON, interval=(0.005, 0.02))


def test_two_calls():  # the same figure twice in one test: the second key gets " call 2"
    for n in (100, 200):
        check("assert_no_leakage", f"share of golden messages seen in training ({{n}} compared)", 0.0, 0.01, "<=",
              family=Family.DATA)


def test_kill_the_server():
    group = os.environ.get("KILL_SERVER")
    if group:  # the tracking server (and its workers) dies while the tests run: the local report must stay
        os.killpg(int(group), 9)
""".format(accuracy=ACCURACY)
ACCURACY_KEY = "test_accuracy/accuracy on golden.jsonl"
ESCALATION_KEY = "test_flip_rate_escalation_/route flip rate of escalation"


def run_suite(folder: Path, run: int, *args: str, env: dict | None = None, timeout: int = 300):
    """pytest in a subprocess (as a user runs it) on the suite in `folder`, run number `run`."""
    environment = {**os.environ, "RUN": str(run), "PY_COLORS": "0", **(env or {})}
    for name in ("GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS"):
        environment.pop(name, None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Runs:
    folder: Path
    uri: str
    outputs: list  # CompletedProcess of each run


@pytest.fixture(scope="module")
def sqlite_runs(tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("suite")
    (folder / "test_figures.py").write_text(SUITE)
    (folder / "pytest.ini").write_text("[pytest]\n")
    uri = f"sqlite:///{folder / 'store' / 'mlflow.db'}"
    (folder / "store").mkdir()
    done = []
    for run in range(len(ACCURACY)):
        xdist = ["-n", "2"] if run == len(ACCURACY) - 1 else []
        done.append(run_suite(folder, run, f"--mangaassist-mlflow={uri}", f"--mangaassist-report=report{run}",
                              f"--mangaassist-markdown=summary{run}.md", *xdist))
    return Runs(folder, uri, done)


def test_three_runs_are_three_mlflow_runs_with_every_figure(sqlite_runs):
    first, second, third = sqlite_runs.outputs
    for done in (first, second):
        assert done.returncode == 0 and outcomes(done.stdout) == {"passed": 5}, done.stdout + done.stderr
    assert third.returncode == 1 and outcomes(third.stdout) == {"passed": 4, "failed": 1}, third.stdout
    assert "Traceback" not in "".join(d.stdout + d.stderr for d in sqlite_runs.outputs)

    client = MlflowClient(tracking_uri=sqlite_runs.uri)
    experiment = client.get_experiment_by_name(experiment_name(sqlite_runs.folder.name))
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 3  # the xdist run is one MLflow run, not one per worker
    assert [r.data.metrics[ACCURACY_KEY] for r in runs] == pytest.approx(list(ACCURACY))
    last = runs[-1].data
    assert last.metrics[ACCURACY_KEY + "/low"] == pytest.approx(ACCURACY[-1] - 0.02)
    assert last.metrics[ACCURACY_KEY + "/high"] == pytest.approx(ACCURACY[-1] + 0.02)
    assert last.metrics[ACCURACY_KEY + "/limit"] == 0.9
    # the message count in the sentence changes every run; the key does not
    assert {k for k in last.metrics if "flip rate" in k and "/" not in k.split("/", 1)[1]} == {
        ESCALATION_KEY, "test_flip_rate_checkout_/route flip rate of checkout"}
    twice = "test_two_calls/share of golden messages seen in training"
    assert last.metrics[twice] == last.metrics[twice + " call 2"] == 0.0
    assert last.tags["mangaassist.verdict/" + ACCURACY_KEY] == "failed"
    assert runs[0].data.tags["mangaassist.verdict/" + ACCURACY_KEY] == "passed"
    assert last.tags["mangaassist.tier"] == "all" and last.tags["mangaassist.outcome"] == "failed"
    assert {r.info.status for r in runs} == {"FINISHED"}
    artifacts = {a.path for a in client.list_artifacts(runs[-1].info.run_id)}
    assert {"results.json", "report.html"} <= artifacts
    store = sqlite_runs.folder / "store"
    assert (store / "mlflow-artifacts").is_dir() and not (sqlite_runs.folder / "mlruns").exists()


def test_trends_moves_and_the_ci_summary(sqlite_runs):
    folder = sqlite_runs.folder
    first, second, third = sqlite_runs.outputs
    assert "mangaassist trends" not in first.stdout + second.stdout  # 0.925 lies within 0.93's interval
    moved = third.stdout[third.stdout.index("mangaassist trends"):]
    assert f"{ACCURACY_KEY}: 0.9250 -> 0.8500 [0.8300, 0.8700]" in moved and "flip rate" not in moved
    assert "logged to MLflow" in third.stdout and "2 previous run(s)" in third.stdout

    page = (folder / "report2" / "report.html").read_text()
    assert page.count("<td class='trend'") == 5 and "2 previous run(s) of this suite" in page
    assert page.count("<svg") == 5 + 5  # a trend line and an interval glyph per gate row
    assert "<td class='trend'" not in (folder / "report0" / "report.html").read_text()  # no history yet

    summary = (folder / "summary2.md").read_text()
    assert summary.startswith("## mangaassist gates: **1 of 5 gates FAILED**")
    failures = summary.index("### Failures")
    assert failures < summary.index("### Moved") < summary.index("### Gate families")
    assert "- **test_accuracy** · assert_accuracy_above: accuracy on golden.jsonl (154 messages) = 0.8500 " \
           "[0.8300, 0.8700], limit >= 0.9000" in summary
    assert "| classification | 1 | 1 |" in summary and "| comparison | 2 |" in summary and "| data | 2 |" in summary
    line = next(n for n, text in enumerate(SUITE.splitlines(), 1) if text.startswith("def test_accuracy"))
    assert (f"::error file=test_figures.py,line={line},title=test_accuracy%3A assert_accuracy_above failed::"
            f"assert_accuracy_above: accuracy on golden.jsonl (154 messages) = 0.8500 [0.8300, 0.8700], limit >= "
            f"0.9000") in third.stdout.splitlines(), third.stdout
    assert third.stdout.count("::error ") == 1 and "::error" not in second.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on a free loopback port, with its own SQLite store; waited for (bounded), always
    stopped."""
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as errors:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                                   str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                                   "--artifacts-destination", str(tmp_path / "served-artifacts"), "--workers", "1"],
                                  stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not answers(uri):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
            time.sleep(0.5)
        yield server, uri
    finally:
        with contextlib.suppress(ProcessLookupError):  # its own process group: the server and its workers
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(uri + "/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_tracking_server_run_and_its_death_mid_run(tracking_server, tmp_path):
    server, uri = tracking_server
    (tmp_path / "suite").mkdir()
    folder = tmp_path / "suite"
    (folder / "test_figures.py").write_text(SUITE)
    (folder / "pytest.ini").write_text(f"[pytest]\nmangaassist_mlflow = {uri}\n")  # the ini key works too
    logged = run_suite(folder, 0, "--mangaassist-report=report")
    assert logged.returncode == 0, logged.stdout + logged.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(folder.name))
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.metrics[ACCURACY_KEY] == pytest.approx(ACCURACY[0])
    assert {"results.json", "report.html"} <= {a.path for a in client.list_artifacts(run.info.run_id)}

    (folder / "report").rename(folder / "report-before")
    died = run_suite(folder, 1, "--mangaassist-report=report", env={"KILL_SERVER": str(server.pid)})
    text = died.stdout + died.stderr
    assert died.returncode == 0 and "Traceback" not in text, text
    assert re.search(r"mangaassist: MLflow (reading|logging to) http://127\.0\.0\.1:\d+ failed: .*the local reports "
                     r"are kept", died.stdout), died.stdout
    data = json.loads((folder / "report" / "results.json").read_text())
    assert data["outcomes"] == {"passed": 5} and (folder / "report" / "report.html").stat().st_size > 1000

    refused = run_suite(folder, 2)  # the server is gone now: a start-up error, exit 4
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout + refused.stderr
    assert "is not reachable" in refused.stderr and "fix:" in refused.stderr and "Traceback" not in refused.stderr


def test_start_up_checks_name_the_problem_and_the_fix(monkeypatch, tmp_path):
    with pytest.raises(MangaAssistInputError, match="SQLite file does not exist"):
        check_tracking_uri(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")
    (tmp_path / "file").write_text("")
    with pytest.raises(MangaAssistInputError, match="is a file, not a folder"):
        check_tracking_uri(str(tmp_path / "file"))
    with pytest.raises(MangaAssistInputError, match="not reachable") as refused:
        check_tracking_uri(f"http://127.0.0.1:{free_port()}")
    assert "mlflow server" in refused.value.fix
    check_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")  # a new store in an existing folder: fine
    monkeypatch.setattr(history_module, "find_spec", lambda name: None)
    with pytest.raises(MangaAssistInputError, match="needs MLflow, which is not installed") as missing:
        check_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "pytest-mangaassist[mlflow]" in missing.value.fix
