"""Nothing that was accepted last month may quietly get worse: the golden-set figures against the snapshot
committed next to this suite (mangaassist-snapshot.json).

After a reviewed change (a retrain that trades a little accuracy for something else), accept the new
figures with `pytest example_suite --mangaassist-update-snapshot ...` and commit the file.
"""

import pytest

from pytest_mangaassist import assert_no_regression, evaluate

pytestmark = pytest.mark.gate("monthly")  # tier: every retrain

MAX_REGRESSION = 0.02  # 3 of the 154 golden messages


def test_golden_figures_did_not_regress(intent_model, golden_set):
    evaluation = evaluate(intent_model, golden_set)
    assert_no_regression("golden accuracy", evaluation.accuracy, max_regression=MAX_REGRESSION)
    assert_no_regression("golden macro-F1", float(evaluation.macro_f1_rate()), max_regression=MAX_REGRESSION)
    for slice_name, (accuracy, n) in evaluation.slice_accuracy().items():
        # slices hold 8-30 messages: allow one message (or 5 points, whichever is more)
        assert_no_regression(f"golden accuracy, slice {slice_name}", accuracy, max_regression=max(0.05, 1.01 / n))
