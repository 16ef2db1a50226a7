"""Reports people read: the terminal summary, JUnit properties, results.json and report.html, tiers,
the snapshot file, progress and xdist, all as users run them; and the views' rules on a hand-made run
log (failures first, xfail marked as expected, nothing cut, nothing drawn twice, raw records kept)."""

import html
import json
import math
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import outcomes, run_pytest
from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.gates.records import (Curve, Family, GateRecord, HeatmapRow, LatencySamples, SnapshotFigure,
                                              StructureCheck, StructureChecks, TokenHeatmap, TrafficFlip,
                                              TrafficReplay, Verdict, collecting)
from pytest_mangaassist.gates.snapshot import SnapshotStore, assert_no_regression, snapshot_figures
from pytest_mangaassist.reporting.history import History, PastRun, figure_keys
from pytest_mangaassist.reporting.html import render_html
from pytest_mangaassist.reporting.results import results
from pytest_mangaassist.reporting.runlog import RunLog, TestEntry
from pytest_mangaassist.reporting.terminal import METRIC_WIDTH, gate_tables, snapshot_table
from pytest_mangaassist.reporting.views import CAUGHT, FAIL, FUZZ_CALLS, PASS, XFAIL, rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SNAPSHOT_TEST = REPO / "example_suite" / "test_regression_snapshot.py"

GATES = """
import pytest
from pytest_mangaassist import assert_accuracy_above, assert_cka_above, assert_latency_p95

FAST = dict(seq_len=8, at_least_calls=50, at_most_seconds=1)

@pytest.mark.gate("monthly")
def test_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.0)

@pytest.mark.gate("quarterly")
def test_top_layer_cka(intent_model, pretrained_model, validation_set):
    assert_cka_above(intent_model, validation_set, against=pretrained_model, layer=-1, min_cka=0.0)

@pytest.mark.gate("release")
def test_latency_within_budget(intent_model):
    assert_latency_p95(intent_model, max_p95_ms=1e6, **FAST)

@pytest.mark.gate("release")
def test_latency_over_budget(intent_model):
    assert_latency_p95(intent_model, max_p95_ms=1e-6, **FAST)  # no forward pass takes a nanosecond

@pytest.mark.xfail(strict=True, reason="a nanosecond budget cannot be met")
def test_latency_expected_to_fail(intent_model):
    assert_latency_p95(intent_model, max_p95_ms=1e-6, **FAST)

def test_not_a_gate():
    pass
"""
# what GATES gives, by construction of its limits (0.0 and 1e6 always hold, 1e-6 never does)
GATES_OUTCOMES = {"passed": 4, "failed": 1, "xfailed": 1}
GATES_MARKED = {"monthly": 1, "quarterly": 1, "release": 2}


def model_args(small_reference):
    return [f"--model-path={small_reference / 'finetuned'}", f"--pretrained-path={small_reference / 'pretrained'}",
            f"--golden-set={small_reference / 'data' / 'golden.jsonl'}",
            # the training split: the small build's largest set, above CKA's minimum sample size
            f"--validation-set={small_reference / 'data' / 'train.jsonl'}", "--mangaassist-allow-duplicates"]


def all_records(data: dict) -> list[tuple[dict, dict]]:
    return [(t, g) for t in data["tests"] for g in t["gates"]]


def chart_count(data: dict) -> int:
    """Distinct charts the page must draw: one per distinct curve or latency payload."""
    return len({json.dumps([g["gate"], g["payload"]], sort_keys=True) for _, g in all_records(data)
                if g["payload"] and g["payload"]["kind"] in ("curve", "latency")})


@dataclass(frozen=True)
class GatesRun:
    folder: Path
    stdout: str
    report_dir: Path
    junit: Path


@pytest.fixture(scope="module")
def gates_run(small_reference, tmp_path_factory) -> GatesRun:
    """GATES run once, as a user runs it (pytest in a subprocess, in its own folder), with every report on:
    the tests below each read their own output of it (summary, JUnit, results.json, report.html, disk cache),
    instead of each paying for a run that loads the model."""
    folder = tmp_path_factory.mktemp("gates")
    (folder / "test_gates.py").write_text(GATES)
    report_dir, junit = folder / "report", folder / "junit.xml"
    done = run_pytest(folder, *model_args(small_reference), f"--mangaassist-report={report_dir}",
                      f"--junitxml={junit}")
    return GatesRun(folder, done.stdout, report_dir, junit)


def test_summary_junit_json_and_html_report(gates_run, small_reference):
    report_dir, junit = gates_run.report_dir, gates_run.junit
    assert outcomes(gates_run.stdout) == GATES_OUTCOMES, gates_run.stdout
    data = json.loads((report_dir / "results.json").read_text())
    assert data["outcomes"] == GATES_OUTCOMES
    records = all_records(data)
    failing = [g for t, g in records if g["verdict"] == "failed" and t["outcome"] == "failed"]
    expected_failures = [g for t, g in records if g["verdict"] == "failed" and t["outcome"] == "xfailed"]
    assert len(failing) == GATES_OUTCOMES["failed"] and len(expected_failures) == GATES_OUTCOMES["xfailed"]

    # terminal: the failed family first, its failed row first, the xfailed gate marked as expected, nothing cut
    out = gates_run.stdout
    summary = out[out.index("mangaassist gates"):]
    titles = re.findall(r"^(\w+): ", summary, flags=re.M)
    assert titles[0] == "latency" and {"classification", "representation"} <= set(titles)
    verdict_lines = [line for line in summary.splitlines() if line.startswith("test_")]
    assert [line.split()[0] for line in verdict_lines if line.rstrip().endswith(FAIL)] == ["test_latency_over_budget"]
    assert [line.split()[0] for line in verdict_lines if line.rstrip().endswith(XFAIL)] == [
        "test_latency_expected_to_fail"]
    latency_rows = [line.split()[0] for line in verdict_lines if "assert_latency_p95" in line]
    assert latency_rows[0] == "test_latency_over_budget"  # run after the within-budget test, shown before it
    assert "…" not in out
    long_metrics = [g["metric"] for _, g in records if len(g["metric"]) > METRIC_WIDTH]
    assert long_metrics  # the latency metric is long: it must wrap, whole
    for metric in long_metrics:
        assert all(word in summary for word in metric.split())

    # JUnit XML carries every record
    properties = [p.attrib for p in ET.parse(junit).iter("property") if p.attrib["name"] == "mangaassist-gate"]
    assert len(properties) == len(records)
    assert {json.loads(p["value"])["gate"] for p in properties} == {g["gate"] for _, g in records}

    # results.json: typed records, the inputs with their hashes, versions
    inputs = data["inputs"]
    assert inputs["model hash"] and inputs["golden set hash"]
    assert inputs["pretrained model"] == str((small_reference / "pretrained").resolve())  # the plugin resolves links
    assert inputs["validation set"] == str((small_reference / "data" / "train.jsonl").resolve())
    assert "ONNX model" not in inputs  # no gate read an ONNX file
    assert data["versions"]["torch"] and data["versions"]["matplotlib"]
    gates = {g["gate"]: g for _, g in records}
    assert gates["assert_accuracy_above"]["verdict"] == "passed" and gates["assert_accuracy_above"]["threshold"] == 0.0
    assert gates["assert_cka_above"]["payload"]["kind"] == "curve" and gates["assert_cka_above"]["payload"]["series"]
    latency = [g for _, g in records if g["gate"] == "assert_latency_p95"]
    assert all(g["payload"]["kind"] == "latency" and len(g["payload"]["samples_ms"]) >= 50 for g in latency)
    failed_test = [t for t in data["tests"] if t["outcome"] == "failed"][0]
    assert "assert_latency_p95" in failed_test["message"]

    # report.html: self-contained, failures before the gate tables (failing family first), every chart once
    page = (report_dir / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and "src=" not in page and "@import" not in page
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # XML names, never fetched
    assert set(re.findall(r"https?://[^\"'\s)]+", page)) <= namespaces
    tables = gate_table_html(page)
    assert page.index("Failures (1)") < page.index("<table class='gates'>")
    first_row = tables[0][tables[0].index("<tr class="):tables[0].index("</tr>", tables[0].index("<tr class="))]
    assert "test_latency_over_budget" in first_row and ">FAIL<" in first_row
    assert page.index("<h2>latency <span class='counts'>3 gate(s): 1 <span class='fail'>FAIL</span>") < \
        page.index("<table class='gates'>")
    rows_html = "".join(tables)
    assert rows_html.count(f">{XFAIL}<") == len(expected_failures) and rows_html.count(">FAIL<") == len(failing)
    assert rows_html.count("<tr class=") == len(records)  # one row per record: no test here calls a gate often
    assert rows_html.count("<details>") == len(records)  # each row's sentence and evidence one click away
    assert drawn_charts(page) == chart_count(data) == len(latency) + 1
    assert ">None<" not in page and "not given" in page
    for metric in long_metrics:
        assert metric.replace("'", "&#x27;") in page  # whole, in the row's <details>


def gate_table_html(page: str) -> list[str]:
    return re.findall(r"<table class=.gates.>.*?</table>", page, flags=re.S)


def drawn_charts(page: str) -> int:
    """matplotlib's charts on a page: every <svg> but the rows' interval glyphs."""
    return page.count("<svg") - len(re.findall(r"<svg class=.glyph", page))


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI") == "true":  # .ci/run fails when it cannot install chromium: never skipped on CI
            pytest.fail("chromium is not installed on CI; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    return browser


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


# appended to a copy of the page (the report itself has no script): what the browser laid out, as attributes
MEASURE = """<script>
const rows = [...document.querySelectorAll('table.gates tbody tr')];
document.body.dataset.rows = JSON.stringify(rows.map(r => Math.round(r.getBoundingClientRect().height)));
document.body.dataset.line = parseFloat(getComputedStyle(rows[0]).lineHeight) || 16;
document.body.dataset.scroll = document.documentElement.scrollWidth;
document.body.dataset.viewport = window.innerWidth;
</script>"""
WIDTHS = {"desktop": 1400, "phone": 390}  # px


def layout(browser: str, page: Path, width: int) -> dict:
    """Row heights and page width of `page` rendered `width` px wide."""
    measured = page.with_name(f"measured-{width}.html")
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = headless(browser, f"--window-size={width},2000", "--dump-dom", measured.as_uri()).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    found = {k: html.unescape(v) for k, v in re.findall(r'data-(\w+)="([^"]*)"', body)}
    return {"rows": json.loads(found["rows"]), "line": float(found["line"]), "scroll": int(found["scroll"]),
            "viewport": int(found["viewport"])}


def test_report_renders_in_headless_chromium(gates_run, tmp_path):
    browser = chromium()
    data = json.loads((gates_run.report_dir / "results.json").read_text())
    page = (gates_run.report_dir / "report.html").as_uri()
    dom = headless(browser, "--dump-dom", page).stdout
    charts = chart_count(data)
    latency_tests = GATES.count("assert_latency_p95(")
    assert latency_tests and charts == 1 + latency_tests  # the CKA curve and each latency test's histogram
    assert "mangaassist gate report" in dom and drawn_charts(dom) == charts
    assert dom.count('id="axes_1"') == charts  # drawn by matplotlib: every chart has its axes
    assert "latency per call (ms)" in dom and "budget" in dom  # the histogram's axis and its budget


def test_report_reads_at_a_glance_on_a_desktop_and_a_phone(tmp_path):
    """Every gate row one line high at 1,400 px and at most three on a phone; nothing wider than the window:
    the sample run (every payload kind, a traffic replay, a fuzz fold, trends over past runs) laid out by
    Chromium, and screenshots of both widths kept for a person to look at."""
    browser = chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(json.loads(json.dumps(results(sample_log(), {"model": "/models/m"}))),
                                sample_history()))
    for name, width in WIDTHS.items():
        found = layout(browser, page, width)
        lines = max(found["rows"]) / found["line"]
        assert len(found["rows"]) == len(rows(sample_log())) - SNAPSHOT_ROWS, found
        assert lines <= (2.0 if name == "desktop" else 4.0), (name, found)
        # columns fit the page, no sideways scrolling (headless Chromium lays a page out at least 500 px wide:
        # still a phone's layout, under the 700 px breakpoint)
        assert found["scroll"] <= found["viewport"] <= max(width, 500), (name, found)
        shot = tmp_path / f"report-{name}.png"
        headless(browser, f"--screenshot={shot}", f"--window-size={width},1600", page.as_uri())
        assert shot.stat().st_size > 20_000  # a rendered page with charts, not a blank one


def test_tiers_select_marked_tests_and_strict_markers_pass(pytester, small_reference):
    pytester.makepyfile(test_gates=GATES)
    result = pytester.runpytest_subprocess(*model_args(small_reference), "--gate-tier=monthly,quarterly",
                                           "--strict-markers")
    # every tier selection keeps the unmarked tests: test_not_a_gate (passes), test_latency_expected_to_fail (xfail)
    unmarked = GATES.count("\ndef test_") - sum(GATES_MARKED.values())
    result.assert_outcomes(passed=GATES_MARKED["monthly"] + GATES_MARKED["quarterly"] + unmarked - 1, xfailed=1,
                           deselected=GATES_MARKED["release"])
    pytester.runpytest_subprocess("--markers").stdout.fnmatch_lines(["@pytest.mark.gate(*tiers)*"])


def test_snapshot_is_stored_then_compared(pytester, monkeypatch):
    pytester.makepyfile(test_regress="""
        import os
        from pytest_mangaassist import assert_no_regression

        def test_accuracy_did_not_regress():
            assert_no_regression("golden accuracy", float(os.environ["ACCURACY"]), max_regression=0.01)
    """)
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("ACCURACY", "0.93")
    missing = pytester.runpytest_subprocess()
    missing.assert_outcomes(failed=1)
    assert "has no figure 'golden accuracy'" in missing.stdout.str()
    assert "--mangaassist-update-snapshot" in missing.stdout.str()
    pytester.runpytest_subprocess("--mangaassist-update-snapshot").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "mangaassist-snapshot.json").read_text())
    assert stored == {"figures": {"golden accuracy": 0.93}}
    monkeypatch.setenv("ACCURACY", "0.925")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # within max_regression
    monkeypatch.setenv("ACCURACY", "0.90")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden accuracy*0.9300*0.9000*-0.0300*0.01*REGRESSED*"])


def test_update_snapshot_keeps_every_figure_of_the_example_suite(pytester, small_reference, tmp_path):
    """#12: a test recording more figures than the views fold used to leave one figure in the file."""
    golden = small_reference / "data" / "golden.jsonl"
    slices = {json.loads(line).get("slice") for line in golden.read_text().splitlines() if line.strip()} - {None}
    expected = {"golden accuracy", "golden macro-F1"} | {f"golden accuracy, slice {s}" for s in slices}
    assert len(expected) > FUZZ_CALLS  # more figures than one gate's calls shown unfolded
    pytester.makepyfile(test_regression_snapshot=EXAMPLE_SNAPSHOT_TEST.read_text())
    pytester.makeini("[pytest]\n")
    report_dir = tmp_path / "report"
    update = pytester.runpytest_subprocess(*model_args(small_reference), "--mangaassist-update-snapshot",
                                           f"--mangaassist-report={report_dir}")
    update.assert_outcomes(passed=1)
    figures = json.loads((pytester.path / "mangaassist-snapshot.json").read_text())["figures"]
    assert set(figures) == expected
    data = json.loads((report_dir / "results.json").read_text())
    stored = [g for _, g in all_records(data) if g["family"] == "snapshot"]
    assert {g["payload"]["name"] for g in stored} == expected and {g["verdict"] for g in stored} == {"stored"}
    assert {g["payload"]["name"]: g["value"] for g in stored} == figures
    out = update.stdout.str()
    assert f"{len(expected)} figure(s) written to" in out
    assert all(name in out for name in expected)  # the terminal's snapshot table lists every figure
    compare = pytester.runpytest_subprocess(*model_args(small_reference))
    compare.assert_outcomes(passed=1)  # the same model against its own snapshot
    assert compare.stdout.str().count(" ok") >= len(expected)


def test_snapshot_file_nested_deep_is_a_usage_error(pytester):
    pytester.makepyfile(test_regress="def test_nothing():\n    pass\n")
    pytester.makeini("[pytest]\n")
    (pytester.path / "mangaassist-snapshot.json").write_text("[" * 100_000 + "]" * 100_000)
    result = pytester.runpytest_subprocess()
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "snapshot file" in text and "nested too deep" in text
    assert "Traceback" not in text and "RecursionError" not in text


@pytest.mark.parametrize("content, problem", [
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ('{"figures": {"golden accuracy": "0.9"}}', "not a mangaassist snapshot"),
    ('{"figures": {"golden accuracy": NaN}}', "finite numbers"),
    ('{"values": {}}', 'no "figures" object'),
    ('{"figures": {', "not valid JSON"),
])
def test_snapshot_store_refuses_a_broken_file(tmp_path, content, problem):
    path = tmp_path / "mangaassist-snapshot.json"
    path.write_text(content)
    with pytest.raises(MangaAssistInputError) as refused:
        SnapshotStore.load(path)
    assert problem in str(refused.value) and str(path) in str(refused.value)


def test_snapshot_store_refuses_a_folder_and_writes_atomically(tmp_path):
    with pytest.raises(MangaAssistInputError, match="is a folder"):
        SnapshotStore.load(tmp_path)
    path = tmp_path / "suite" / "mangaassist-snapshot.json"
    store = SnapshotStore.load(path, update=True)
    assert store.values == {}
    store.write({"b": 0.5, "a": 1.0})
    SnapshotStore.load(path).write({"c": 0.25})  # keeps the figures this run did not measure
    assert json.loads(path.read_text()) == {"figures": {"a": 1.0, "b": 0.5, "c": 0.25}}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("kwargs, problem", [
    (dict(max_regression=-0.01), "max_regression must be a number >= 0"),
    (dict(max_regression=float("nan")), "max_regression must be a number >= 0"),
    (dict(max_regression="0.01"), "max_regression must be a number >= 0"),
    (dict(max_regression=0.01, higher_is_better="yes"), "higher_is_better must be True or False"),
    (dict(max_regression=0.01, snapshot=42), "snapshot must be None, a dict"),
])
def test_assert_no_regression_validates_its_arguments(kwargs, problem):
    with pytest.raises(MangaAssistInputError) as refused:
        assert_no_regression("golden accuracy", 0.9, **{"snapshot": {"golden accuracy": 0.9}, **kwargs})
    assert problem in str(refused.value) and "assert_no_regression" in str(refused.value)


def test_assert_no_regression_records_typed_figures(tmp_path):
    snapshot = {"accuracy": 0.9, "error rate": 0.1}
    with collecting() as made:
        assert_no_regression("accuracy", 0.89, max_regression=0.02, snapshot=snapshot)
        assert_no_regression("error rate", 0.11, max_regression=0.02, higher_is_better=False, snapshot=snapshot)
        with pytest.raises(AssertionError, match="accuracy"):
            assert_no_regression("accuracy", 0.85, max_regression=0.02, snapshot=snapshot)
    assert [r.verdict for r in made] == [Verdict.PASSED, Verdict.PASSED, Verdict.FAILED]
    assert all(r.family is Family.SNAPSHOT and isinstance(r.payload, SnapshotFigure) for r in made)
    assert [r.comparison for r in made] == [">=", "<=", ">="]
    assert made[1].threshold == pytest.approx(0.12) and made[1].payload.stored == 0.1
    assert snapshot_figures(made) == {"accuracy": 0.85, "error rate": 0.11}  # the last call of a name wins


# -- the views, on a hand-made run log ----------------------------------------------------------------
LONG_METRIC = ("recall of escalation on golden.jsonl (154 messages), exact binomial lower bound at 95% "
               "confidence, slice adversarial, tail-of-metric-detail")


def sample_log() -> RunLog:
    log = RunLog()

    def add(name, outcome, records, message=""):
        log.tests[f"test_x.py::{name}"] = TestEntry(f"test_x.py::{name}", outcome, 0.1, records, [], message)

    def rec(family, gate, metric, value, threshold, comparison, verdict, payload=None):
        return GateRecord(family, gate, metric, value, threshold, comparison, verdict, payload=payload)

    samples = tuple(1.0 + 0.01 * i for i in range(100))
    add("test_pass", "passed", [rec(Family.CLASSIFICATION, "assert_accuracy_above", "accuracy", 0.95, 0.9, ">=",
                                    Verdict.PASSED)])
    add("test_expected", "xfailed", [rec(Family.CLASSIFICATION, "assert_recall_above", LONG_METRIC, 0.5, 0.9, ">=",
                                         Verdict.FAILED)])
    add("test_caught", "passed", [rec(Family.BEHAVIOUR, "assert_routes", "routes", 0.0, 1.0, ">=", Verdict.FAILED)])
    curve = Curve(("emb", "L1", "L2"), {"linear CKA": (None, 0.8, 0.6)}, gated="L2")
    add("test_cka_twice", "passed", [rec(Family.REPRESENTATION, "assert_cka_above", "CKA at L2", 0.6, 0.5, ">=",
                                         Verdict.PASSED, curve)] * 2)
    add("test_fuzz", "failed",
        [rec(Family.BEHAVIOUR, "assert_prediction_invariant", f"flip rate, case {i}", i / 10, 0.5, "<=",
             Verdict.PASSED if i / 10 <= 0.5 else Verdict.FAILED) for i in range(FUZZ_CALLS + 3)],
        "GateFailure: assert_prediction_invariant")
    add("test_latency", "passed", [rec(Family.LATENCY, "assert_latency_p95", "p95 latency in ms (pytorch, batch 1)",
                                       1.95, 3.0, "<=", Verdict.PASSED, LatencySamples(samples, 1.5, 1.99, 3.0))])
    add("test_onnx", "passed", [rec(Family.EXPORT, "assert_onnx_structure", "structure", 1.0, 1.0, ">=",
                                    Verdict.PASSED, StructureChecks((StructureCheck("dynamic batch", True, "dynamic",
                                                                                    "dynamic"),)))])
    add("test_shortcut", "passed", [rec(Family.ATTRIBUTION, "assert_no_lexical_shortcut", "share", 0.2, 0.5, "<=",
                                        Verdict.PASSED, TokenHeatmap((HeatmapRow((("refund", 0.8),), "note"),)))])
    replay = TrafficReplay(("faq", "checkout", "escalation"), ((90, 3, 1), (2, 40, 0), (0, 1, 9)),
                           {"faq": (0.04, 0.01, 0.1, 94), "checkout": (0.05, 0.01, 0.15, 42),
                            "escalation": (0.1, 0.003, 0.45, 10)},
                           {"faq": (0.64, 0.63, -0.01, -0.03, 0.01, False), "checkout": (0.29, 0.30, 0.01, -0.01, 0.03,
                                                                                         False),
                            "escalation": (0.07, 0.07, 0.0, -0.01, 0.01, False)},
                           (TrafficFlip('{"text": "refund my order"}', "faq", 0.6, "checkout", 0.7, "sample"),),
                           146, 146, 0.5, "embedded")
    add("test_replay", "passed", [rec(Family.BEHAVIOUR, "assert_traffic_agreement", "route flip rate on 146 messages",
                                      0.0411, 0.1, "<=", Verdict.PASSED, replay)])
    add("test_snapshot", "passed", [rec(Family.SNAPSHOT, "assert_no_regression", f"figure {i}", 0.5, None, ">=",
                                        Verdict.STORED, SnapshotFigure(f"figure {i}", None, 0.01))
                                    for i in range(SNAPSHOT_ROWS)])
    return log


SNAPSHOT_ROWS = FUZZ_CALLS + 2  # the sample's snapshot figures: their own table, not gate rows


def sample_history() -> History:
    """Three earlier runs of the sample: every figure 1% lower per run before this one."""
    keys = figure_keys(sample_log())
    runs = [PastRun(1.7e9 + month * 2.6e6, f"run {month}", {k: r.value * (1 - 0.01 * (3 - month)) for k, _, r in keys})
            for month in range(3)]
    return History("sqlite:///store/mlflow.db", runs)


def test_run_log_keeps_raw_records_and_only_views_fold():
    log = sample_log()
    raw = sum(len(t.records) for t in log.tests.values())
    assert len(log.records) == raw
    data = results(log, {})
    assert sum(len(t["gates"]) for t in data["tests"]) == raw
    fuzz = log.tests["test_x.py::test_fuzz"]
    folded = [r for r in rows(log) if r.test is fuzz]
    assert len(folded) == 1 and folded[0].calls == len(fuzz.records)
    assert folded[0].failed_calls == sum(r.verdict is Verdict.FAILED for r in fuzz.records)
    assert folded[0].record.value == max(r.value for r in fuzz.records)  # the worst call of a <= limit
    snapshot = log.tests["test_x.py::test_snapshot"].records
    assert snapshot_figures(r for _, r in log.records) == {r.payload.name: r.value for r in snapshot}


def test_views_put_failures_first_and_mark_expected_failures():
    log = sample_log()
    shown = rows(log)
    statuses = [r.status for r in shown]
    failures = statuses.count(FAIL)
    assert failures == sum(t.failed for t in log.tests.values()) and statuses[:failures] == [FAIL] * failures
    by_test = {r.test.name: r.status for r in shown}
    assert by_test["test_expected"] == XFAIL and by_test["test_caught"] == CAUGHT and by_test["test_pass"] == PASS
    tables = gate_tables(log)
    assert tables[0][0].startswith("behaviour") and f"{failures} {FAIL}" in tables[0][0]
    text = "\n".join(table for _, table in tables)
    assert "…" not in text and all(len(line) < 200 for line in text.splitlines())
    assert all(word in text for word in LONG_METRIC.split()) and "tail-of-metric-detail" in text
    assert "snapshot" not in [title.split(":")[0] for title, _ in tables]  # its own table, not drawn twice
    snapshot = snapshot_table(log)
    assert all(f"figure {i}" in snapshot for i in range(FUZZ_CALLS + 2)) and "not stored" in snapshot


def test_html_draws_each_chart_once_with_failures_first():
    log = sample_log()
    data = results(log, {"model": "/models/m", "pretrained model": None})
    page = render_html(json.loads(json.dumps(data, allow_nan=True)))
    curves = {json.dumps(r.payload.__dict__, default=list) for _, r in log.records if isinstance(r.payload, Curve)}
    latency = [r for _, r in log.records if isinstance(r.payload, LatencySamples)]
    replays = [r for _, r in log.records if isinstance(r.payload, TrafficReplay)]
    assert drawn_charts(page) == len(curves) + len(latency) + len(replays) == 3
    assert page.count("Token attributions") == 1 and page.count("<h2>ONNX structure</h2>") == 1
    assert page.index("Failures (1)") < page.index("<table class='gates'>") < page.index("<h2>Inputs</h2>")
    assert page.index("<h2>behaviour") < page.index("<h2>classification")  # the family with a failure first
    assert ">None<" not in page and "not given" in page
    assert LONG_METRIC in page and "xfail (expected)" in page and "latency per call (ms)" in page
    assert "budget 3 ms" in page  # the budget line of the histogram
    assert page.count("figure 0<") == 1  # the snapshot table only, not the gate table too
    assert not math.isnan(data["seconds"])
    # the replay: shares and flip rates drawn, the flip matrix with its off-diagonal flips shaded
    assert "share of the traffic" in page and "flip rate (95% interval)" in page
    matrix = page[page.index("<table class='matrix'>"):page.index("</table>", page.index("<table class='matrix'>"))]
    assert matrix.count("background:rgba(214,39,40") == 4  # 3, 1, 2 and 1 messages changed route
    # a glyph per gate row: the interval bar and the limit tick where the record has them
    rows_html = "".join(gate_table_html(page))
    assert rows_html.count("<svg class='glyph'") == rows_html.count("<tr class=") == len(rows(log)) - SNAPSHOT_ROWS
    assert "<td class='trend'" not in page  # no history given: no trend column


def test_html_trends_draw_each_figure_over_the_past_runs():
    log, history = sample_log(), sample_history()
    page = render_html(json.loads(json.dumps(results(log, {}), allow_nan=True)), history)
    rows_html = "".join(gate_table_html(page))
    gate_rows = rows_html.count("<tr class=")
    assert rows_html.count("<td class='trend'") == gate_rows and "<th>trend</th>" in rows_html
    assert drawn_charts(rows_html) == gate_rows  # one sparkline per row (folded rows: their worst call's key)
    key, _, accuracy = next(k for k in figure_keys(log) if k[0].startswith("test_pass/"))
    assert key == "test_pass/accuracy"
    past = "; ".join(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r.started))}: {r.metrics[key]:.4f}"
                     for r in history.runs)
    assert f"title='{past}; this run: {accuracy.value:.4f}'" in rows_html
    assert "3 previous run(s) of this suite" in page


def test_progress_shows_through_capture_and_stays_quiet_with_q(pytester):
    pytester.makepyfile(test_slow="""
        import time
        from pytest_mangaassist.loading import progress

        def test_long_analysis():
            progress.SHOW_AFTER_S, progress.EVERY_S = 0.0, 0.0
            with progress.progress("probing layers", 3) as shown:
                for _ in range(3):
                    time.sleep(0.01)
                    shown.tick()
    """)
    assert "mangaassist: probing layers: 3/3" in pytester.runpytest_subprocess().stdout.str()
    assert "probing layers" not in pytester.runpytest_subprocess("-q").stdout.str()


def test_xdist_gives_the_same_verdicts_and_shares_the_cache(pytester, gates_run, small_reference, tmp_path):
    from pytest_mangaassist.cache.store import ENTRY_SUFFIX

    # the serial run is gates_run: its test file and its disk cache, copied
    pytester.makepyfile(test_gates=GATES)
    shutil.copytree(gates_run.folder / ".pytest_cache", pytester.path / ".pytest_cache")
    parallel_dir = tmp_path / "parallel"
    def entries():  # name -> (inode, mtime): an entry written again (atomically: a new file) changes both
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in (pytester.path / ".pytest_cache").rglob(f"*{ENTRY_SUFFIX}")}

    cached = entries()
    parallel = pytester.runpytest_subprocess(*model_args(small_reference), "-n", "2",
                                             f"--mangaassist-report={parallel_dir}")
    assert outcomes(gates_run.stdout) == GATES_OUTCOMES, gates_run.stdout
    parallel.assert_outcomes(**GATES_OUTCOMES)
    assert "mangaassist gates" in parallel.stdout.str()

    def verdicts(folder):
        data = json.loads((folder / "results.json").read_text())
        return sorted((t["nodeid"], g["gate"], g["verdict"]) for t, g in all_records(data))

    assert verdicts(parallel_dir) == verdicts(gates_run.report_dir) and verdicts(gates_run.report_dir)
    assert cached  # the serial run cached its analyses ...
    assert entries() == cached  # ... and the parallel run read them: none computed and written again
