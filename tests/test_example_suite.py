"""End to end, as a user runs it: a reference model built by the project's code, then `pytest example_suite`
in a subprocess with the four model options, and the deep dive on the same model with its top layer
re-initialised (must fail).

The model is the full reference build, in artifacts/reference where scripts/gate.sh builds it (reused while
its fingerprint is current, built under the test-model lock otherwise): the suite's strict xfails record
that model's own mistakes, so only that model decides the suite's outcome. The run lists what it collected;
every collected test must pass except the model's known failures (KNOWN_FAILURES, listed here, not read from the
suite's marks), which must end as expected failures of their gates (an XPASS fails the run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import built_once_lock
from mangaassist_reference.build import FULL
from mangaassist_reference.derived import build_with_derived
from mangaassist_reference.defects import reinitialise_top_layer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SUITE = ROOT / "example_suite"

# Loaded into the suite's run with -p: one line per collected test, with its xfail mark, printed before any
# test runs (a separate --collect-only run would pay for the suite's imports a second time), and one line per
# failed test as it fails.
COLLECT_PLUGIN = '''
terminal = None


def pytest_collection_finish(session):
    global terminal
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    for item in session.items:
        mark = item.get_closest_marker("xfail")
        if mark is None:
            kind = "run"
        elif mark.args or "condition" in mark.kwargs or not mark.kwargs.get("strict", False):
            kind = "unsupported-xfail"  # conditional or non-strict: the outcome is not decided by the suite
        else:
            kind = "strict-xfail"
        terminal.write_line(f"E2E-ITEM {kind} {item.nodeid}")


def pytest_runtest_logreport(report):
    # listed whatever -r the ini or the command line chose (-rx alone prints no FAILED line)
    if report.failed:
        terminal.write_line(f"E2E-FAILED {report.nodeid}")
'''


@pytest.fixture(scope="module")
def reference() -> Path:
    import torch

    def build(out: Path) -> Path:
        threads = torch.get_num_threads()
        torch.set_num_threads(2)  # as scripts/gate.sh builds on 2 cores, whatever OMP_NUM_THREADS the tests use
        try:
            build_with_derived(out, FULL, log=lambda line: None)
        finally:
            torch.set_num_threads(threads)
        return out

    with built_once_lock("reference"):
        return build(ROOT / "artifacts" / "reference")


# The suite replays the build's 20,000-message traffic in scripts/gate.sh; here its first 3,000, at a seventh of
# the cost. The route limit needs them: the fallback route loses 19 of its first 36 messages (0.53 against the
# suite's 0.6), but 12 of its first 20 (exactly 0.6). Figures: example_suite/test_traffic_replay.py.
TRAFFIC_MESSAGES = 3000


def first_lines(source: Path, count: int, target: Path) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[:count]), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def traffic_shard(reference, tmp_path_factory) -> Path:
    return first_lines(reference / "data" / "traffic.jsonl", TRAFFIC_MESSAGES,
                       tmp_path_factory.mktemp("traffic") / "traffic.jsonl")


# The defect run reads the first 1,000 of the 5,500 validation messages, at half the cost (the pre-trained
# model's sweep of these is computed too): above the 300 that debiased CKA needs (sd 0.010 at 1,000), and the
# gates keep their margins: top-layer CKA 0.377 against the 0.42 floor, probe F1 lower bound 0.743 against
# 0.95, layers 1-3 at 0.966 or more against 0.95.
DEFECT_VALIDATION_MESSAGES = 1000


def suite_args(model: Path, reference: Path, traffic: Path, target: Path = EXAMPLE_SUITE,
               validation: Path | None = None) -> list[str]:
    return [str(target), f"--model-path={model}", f"--pretrained-path={reference / 'pretrained'}",
            f"--production-path={reference / 'previous'}",
            f"--validation-set={validation or reference / 'data' / 'valid.jsonl'}", f"--traffic={traffic}"]


@pytest.fixture(autouse=True)
def both_cores(monkeypatch):
    """The suite runs in a subprocess with two math threads, as scripts/gate.sh runs it, whatever the test
    run's own OMP_NUM_THREADS: this file is the run's longest, and the other worker is done by then."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> list[str]:
    """One disk cache for this file's runs, in a temporary folder (cold at the start, so the suite's run
    computes everything; nothing is written under example_suite/). The suite's ini turns the cache off, as a
    release gate should; this turns it back on for the test."""
    return ["-o", f"cache_dir={tmp_path_factory.mktemp('e2e-cache')}", "-o", "mangaassist_no_cache=false"]


def collected(result) -> dict[str, list[str]]:
    """The suite's tests by kind (run / strict-xfail), from the lines COLLECT_PLUGIN printed in the run."""
    kinds: dict[str, list[str]] = {"run": [], "strict-xfail": [], "unsupported-xfail": []}
    for line in result.stdout.lines:
        if line.startswith("E2E-ITEM "):
            _, kind, nodeid = line.split(" ", 2)
            kinds[kind].append(nodeid)
    assert not kinds["unsupported-xfail"], f"xfail marks must be strict and unconditional: {kinds['unsupported-xfail']}"
    return kinds


# The reference model's known failures, written here, not read from the suite's marks: each must end as an
# expected failure (xfailed: the gate failed, the only failure the plugin lets an xfail of a gate test count),
# and no other test may. A retrain that fixes one (an XPASS) or fails another fails this test.
KNOWN_FAILURES = {
    "test_attribution_gate.py::test_adversarial_golden_examples_keep_their_intent_without_the_trigger_words[0]",
    "test_attribution_gate.py::test_fuzz_code_switching_keeps_the_intent",
    "test_attribution_gate.py::test_fuzz_indirect_frustration_routes_to_escalation",
}


def xfailed(result) -> set[str]:
    """file::test of each test the run reported as XFAIL (-rx)."""
    return {line.removeprefix("XFAIL ").split(" - ")[0].rsplit("/", 1)[-1] for line in result.stdout.lines
            if line.startswith("XFAIL ")}


LATENCY_TEST = "test_release_gate.py::test_p95_latency_on_onnx_runtime_at_batch_1"


def latency_missed_on_this_machine(result) -> int:
    """1 where the run's only failure is the latency gate's own verdict (GateFailure of assert_latency_p95): the
    example suite's 15 ms budget is MangaAssist's production hardware's, and this machine's speed is not the
    plugin's to test (the reference model measured p95 16.4 ms on this quiet 2-core machine, December 2026; more on a busy one);
    0 otherwise, so any other failure, or a latency test that broke some other way, still fails this test."""
    failed = [line.split()[1] for line in result.stdout.lines if line.startswith("E2E-FAILED ")]
    only_latency = len(failed) == 1 and failed[0].endswith(LATENCY_TEST)
    return int(only_latency and "GateFailure: assert_latency_p95: p95 latency in ms" in result.stdout.str())


def test_example_suite_passes_on_the_reference_model_and_prints_the_deep_dive_tables(pytester, reference,
                                                                                     traffic_shard, shared_cache):
    pytester.makepyfile(e2e_collect=COLLECT_PLUGIN)
    result = pytester.runpytest_subprocess(*suite_args(reference / "finetuned", reference, traffic_shard),
                                           *shared_cache, "-p", "e2e_collect", "-rx")
    kinds = collected(result)
    assert kinds["run"] and kinds["strict-xfail"], kinds
    assert {nodeid.rsplit("/", 1)[-1] for nodeid in kinds["strict-xfail"]} == KNOWN_FAILURES
    assert {Path(nodeid.split("::")[0]).name for nodeid in kinds["run"]} == {
        path.name for path in EXAMPLE_SUITE.glob("test_*.py")}, "every file of the suite runs"
    unmeasurable = latency_missed_on_this_machine(result)
    # every collected test has exactly one outcome: the counts add up to the listed tests, none left out
    result.assert_outcomes(passed=len(kinds["run"]) - unmeasurable, failed=unmeasurable, xfailed=len(KNOWN_FAILURES))
    assert xfailed(result) == KNOWN_FAILURES, result.stdout.str()
    out = result.stdout.str()
    assert "mangaassist figures" in out
    for title in ("CKA pre-trained vs fine-tuned", "probe macro-F1 per layer", "activation patching at [CLS]"):
        assert title in out
    assert "layer 6" in out


def test_deep_dive_fails_on_a_reinitialised_top_layer(pytester, reference, traffic_shard, tmp_path, shared_cache):
    broken = reinitialise_top_layer(reference / "finetuned", tmp_path / "reinit")
    validation = first_lines(reference / "data" / "valid.jsonl", DEFECT_VALIDATION_MESSAGES, tmp_path / "valid.jsonl")
    # patching is left out: a broken top layer makes thousands of errors to patch, and the CKA and probe
    # gates are the ones the deep dive relies on to catch this defect
    deep_dive = EXAMPLE_SUITE / "test_deep_dive.py"
    result = pytester.runpytest_subprocess(*suite_args(broken, reference, traffic_shard, deep_dive, validation),
                                           *shared_cache, "-k", "not decision_is_carried")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2)  # the lower layers are untouched; the top layer is not
    assert "FAILED" in out and "test_top_layer_adapted_without_being_replaced" in out
    assert "test_intent_is_linearly_readable_at_the_top" in out
    assert "assert_cka_above: debiased linear CKA at layer 6" in out  # the top layer: far below the floor once re-initialised
