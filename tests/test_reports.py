"""Reports people read: the terminal summary, JUnit properties, results.json and report.html, tiers,
baselines, progress and xdist, all as users run them."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

GATES = """
import pytest
from pytest_mangaassist import assert_accuracy_above, assert_cka_above, assert_latency_p95

@pytest.mark.gate("monthly")
def test_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, 0.0)

@pytest.mark.gate("quarterly")
def test_top_layer_cka(intent_model, pretrained_model, golden_set):
    assert_cka_above(intent_model, pretrained_model, -1, 0.0, golden_set)

@pytest.mark.gate("release")
def test_latency_within_budget(intent_model):
    assert_latency_p95(intent_model, 1e6, seq_len=8, min_calls=50, time_budget_s=1)

@pytest.mark.gate("release")
def test_latency_over_budget(intent_model):
    assert_latency_p95(intent_model, 1e-6, seq_len=8, min_calls=50, time_budget_s=1)

def test_not_a_gate():
    pass
"""


def model_args(small_reference):
    return [f"--model-path={small_reference / 'finetuned'}", f"--pretrained-path={small_reference / 'pretrained'}",
            f"--golden-set={small_reference / 'data' / 'golden.jsonl'}"]


def test_summary_junit_json_and_html_report(pytester, small_reference, tmp_path):
    pytester.makepyfile(test_gates=GATES)
    report_dir, junit = tmp_path / "report", tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(*model_args(small_reference), f"--mangaassist-report={report_dir}",
                                           f"--junitxml={junit}")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "mangaassist gates" in out
    for family in ("classification:", "representation:", "latency:"):
        assert family in out
    assert "FAIL" in out and "pass" in out and "<= 1.00e-06" in out

    properties = [p.attrib for p in ET.parse(junit).iter("property") if p.attrib["name"] == "mangaassist-gate"]
    assert len(properties) >= 4 and json.loads(properties[0]["value"])["gate"]

    results = json.loads((report_dir / "results.json").read_text())
    assert results["outcomes"] == {"passed": 4, "failed": 1}
    assert results["inputs"]["model hash"] and results["inputs"]["golden set hash"]
    assert results["versions"]["torch"].startswith("2.13")
    gates = {g["gate"]: g for t in results["tests"] for g in t["gates"]}
    assert gates["assert_accuracy_above"]["passed"] and gates["assert_accuracy_above"]["threshold"] == 0.0
    assert gates["assert_cka_above"]["data"]["curve"]["series"]
    failed = [t for t in results["tests"] if t["outcome"] == "failed"][0]
    assert "assert_latency_p95" in failed["message"]

    page = (report_dir / "report.html").read_text()
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "Per-layer curves" in page and "Latency" in page


def test_report_renders_in_headless_chromium(pytester, small_reference, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    pytester.makepyfile(test_gates=GATES)
    report_dir = tmp_path / "report"
    pytester.runpytest_subprocess(*model_args(small_reference), f"--mangaassist-report={report_dir}", "-k", "cka or latency")
    page = (report_dir / "report.html").as_uri()
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120).stdout
    assert "mangaassist gate report" in dom and dom.count("<svg") >= 2 and "polyline" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", page], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page with charts, not a blank one


def test_tiers_select_marked_tests_and_strict_markers_pass(pytester, small_reference):
    pytester.makepyfile(test_gates=GATES)
    result = pytester.runpytest_subprocess(*model_args(small_reference), "--gate-tier=monthly,quarterly",
                                           "--strict-markers")
    result.assert_outcomes(passed=3)  # accuracy, cka, and the unmarked test
    assert "2 deselected" in result.stdout.str()
    pytester.runpytest_subprocess("--markers").stdout.fnmatch_lines(["@pytest.mark.gate(*tiers)*"])


def test_baseline_is_stored_then_compared(pytester, monkeypatch):
    pytester.makepyfile(test_regress="""
        import os
        from pytest_mangaassist import assert_no_regression

        def test_accuracy_did_not_regress():
            assert_no_regression("golden accuracy", float(os.environ["ACCURACY"]), tolerance=0.01)
    """)
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("ACCURACY", "0.93")
    missing = pytester.runpytest_subprocess()
    assert "has no figure 'golden accuracy'" in missing.stdout.str() and "--mangaassist-update-baseline" in missing.stdout.str()
    pytester.runpytest_subprocess("--mangaassist-update-baseline").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "mangaassist-baseline.json").read_text())
    assert stored == {"figures": {"golden accuracy": 0.93}}
    monkeypatch.setenv("ACCURACY", "0.925")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # within the tolerance
    monkeypatch.setenv("ACCURACY", "0.90")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden accuracy*0.9300*0.9000*-0.0300*0.0100*REGRESSED*"])


def test_progress_shows_through_capture_and_stays_quiet_with_q(pytester):
    pytester.makepyfile(test_slow="""
        import time
        from pytest_mangaassist import progress

        def test_long_analysis():
            progress.SHOW_AFTER_S, progress.EVERY_S = 0.0, 0.0
            with progress.progress("probing layers", 3) as shown:
                for _ in range(3):
                    time.sleep(0.01)
                    shown.tick()
    """)
    assert "mangaassist: probing layers: 3/3" in pytester.runpytest_subprocess().stdout.str()
    assert "probing layers" not in pytester.runpytest_subprocess("-q").stdout.str()


def test_xdist_gives_the_same_verdicts_and_shares_the_sweeps(pytester, small_reference):
    pytester.makepyfile(test_gates=GATES)
    serial = pytester.runpytest_subprocess(*model_args(small_reference), )
    parallel = pytester.runpytest_subprocess(*model_args(small_reference), "-n", "2")
    serial.assert_outcomes(passed=4, failed=1)
    parallel.assert_outcomes(passed=4, failed=1)
    assert "mangaassist gates" in parallel.stdout.str()
    cache = pytester.path / ".pytest_cache" / "d" / "mangaassist"
    sweeps = sorted(p.name for p in cache.glob("sweep-*.npz"))
    assert len(sweeps) == 2  # one per model over the golden set, shared by both runs and both workers
