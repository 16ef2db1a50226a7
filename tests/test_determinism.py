"""Results are deterministic: two cold runs of the same suite on the same model and data (each with a
fresh cache folder, so each computes everything) write the same figures to results.json, to the bit."""

import json

SUITE = """
from pytest_mangaassist import (assert_accuracy_above, assert_cka_above, assert_macro_f1_above,
                                assert_no_lexical_shortcut, assert_patching_recovers, assert_recall_above)

def test_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.0)

def test_recall(intent_model, golden_set):
    assert_recall_above(intent_model, golden_set, min_recall=0.0, at_least_examples=1)

def test_macro_f1(intent_model, golden_set):  # a seeded bootstrap interval
    assert_macro_f1_above(intent_model, golden_set, min_f1=0.0)

def test_cka(intent_model, pretrained_model, validation_set):
    assert_cka_above(intent_model, validation_set, against=pretrained_model, layer=-1, min_cka=0.0)

def test_patching(intent_model, validation_set):  # donors drawn with a seeded generator
    assert_patching_recovers(intent_model, validation_set, layer=1, min_rate=0.0)

def test_attribution(intent_model, golden_set):  # integrated gradients with adaptive steps
    assert_no_lexical_shortcut(intent_model, golden_set.only_intent("promotion"), intent="promotion",
                               max_share=1.0, baselines=("pad", "mask"))
"""


def figures(report_dir):
    data = json.loads((report_dir / "results.json").read_text())
    return {(t["nodeid"], g["gate"], g["metric"]): (g["value"], g["interval"], g["threshold"], g["verdict"])
            for t in data["tests"] for g in t["gates"]}


def test_two_cold_runs_write_the_same_figures(pytester, small_reference, tmp_path):
    pytester.makepyfile(test_suite=SUITE)
    args = [f"--model-path={small_reference / 'finetuned'}", f"--pretrained-path={small_reference / 'pretrained'}",
            f"--golden-set={small_reference / 'data' / 'golden.jsonl'}",
            f"--validation-set={small_reference / 'data' / 'train.jsonl'}", "--mangaassist-allow-duplicates"]
    runs = []
    for name in ("first", "second"):
        report = tmp_path / name
        result = pytester.runpytest_subprocess(*args, "-o", f"cache_dir={tmp_path / (name + '-cache')}",
                                               f"--mangaassist-report={report}")
        result.assert_outcomes(passed=SUITE.count("def test_"))
        runs.append(figures(report))
    first, second = runs
    assert len(first) >= SUITE.count("def test_")  # every test recorded its figures
    assert first == second
    assert any(interval for _, interval, _, _ in first.values())  # intervals are compared too, not only values
