"""Meaningless gate arguments in a real suite: each test of the suite fails with the gate, the parameter,
the value and what it accepts; none passes and none ends in a traceback (issue #12, item 3)."""

import pytest

# (gate call inside a suite test, phrases its failure must contain)
CASES = {
    "negative_accuracy": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=-0.5)",
                          ["assert_accuracy_above", "min_accuracy", "-0.5", "[0, 1]"]),
    "negative_recall": ("assert_recall_above(intent_model, golden_set, min_recall=-1.0)",
                        ["assert_recall_above", "min_recall", "-1.0"]),
    "negative_min_examples": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=0.5, "
                              "at_least_examples=-5)", ["at_least_examples", "-5", "whole number"]),
    "threshold_as_text": ("assert_accuracy_above(intent_model, golden_set, min_accuracy='0.9')",
                          ["min_accuracy", "'0.9'", "str"]),
    "confidence_above_one": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=0.5, confidence=1.5)",
                             ["confidence", "1.5", "(0, 1)"]),
    "nan_limit": ("assert_macro_f1_above(intent_model, golden_set, min_f1=float('nan'))", ["min_f1", "nan"]),
    "infinite_latency_budget": ("assert_latency_p95(intent_model, max_p95_ms=float('inf'))",
                                ["assert_latency_p95", "max_p95_ms", "inf"]),
    "texts_where_labels_are_needed": ("assert_probe_f1_above(intent_model, golden_set.texts, layer=-1, min_f1=0.5)",
                                      ["assert_probe_f1_above", "GoldenSet"]),
    "positional_limit": ("assert_accuracy_above(intent_model, golden_set, 0.5)", ["positional"]),
    "unknown_intent": ("assert_recall_above(intent_model, golden_set, min_recall=0.5, intents=['refund'])",
                       ["'refund'", "not a label"]),
    "huge_integer_limit": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=10**400)",
                           ["min_accuracy", "[0, 1]"]),
    "empty_slice_name": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=0.5, slice='')",
                         ["slice", "''"]),
    "model_given_as_a_path": ("assert_accuracy_above('artifacts/model', golden_set, min_accuracy=0.5)",
                              ["model must be a model", "IntentModel.load(path)"]),
    # an xfail mark expects the model to fail the gate, not the gate to be called wrongly: still a failure
    "bad_limit_inside_an_xfail_test": ("assert_accuracy_above(intent_model, golden_set, min_accuracy=-0.5)",
                                       ["min_accuracy", "-0.5"]),
}
XFAIL = {"bad_limit_inside_an_xfail_test"}

SUITE = "import pytest\nfrom pytest_mangaassist import *\n\n" + "\n".join(
    ("@pytest.mark.xfail(strict=True, reason='the model misses the bar')\n" if name in XFAIL else "")
    + f"def test_{name}(intent_model, golden_set):\n    {call}\n" for name, (call, _) in CASES.items())


@pytest.fixture(scope="module")
def run(small_model, small_golden, tmp_path_factory):
    """The suite run once, as a user runs it: pytest in a subprocess, in its own folder."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("meaningless-limits")
    (folder / "test_suite.py").write_text(SUITE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rf",
                           f"--model-path={small_model}", f"--golden-set={small_golden}", str(folder)],
                          cwd=folder, capture_output=True, text=True, timeout=600)
    return done


def test_every_case_fails_and_none_passes(run):
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert f"{len(CASES)} failed" in out and " passed" not in out, out


@pytest.mark.parametrize("name", CASES)
def test_the_failure_names_the_problem_without_a_traceback(run, name):
    out = run.stdout
    section = out.split(f"test_{name} _")[1].split("\n____")[0] if f"test_{name} _" in out else ""
    assert section, f"no failure section for test_{name}:\n{out}"
    for phrase in CASES[name][1]:
        assert phrase in section, f"{phrase!r} not in:\n{section}"
    assert "Traceback" not in section and "validation.py" not in section
