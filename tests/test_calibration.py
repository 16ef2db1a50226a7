"""Calibration: the ECE and its interval (analysis.calibration) against scikit-learn's bins, on synthetic
confidences; the gate assert_confidence_calibrated on the small model with labels drawn to make it calibrated or
overconfident. In process: one model load, no pytester run."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_mangaassist import GateFailure, GoldenExample, GoldenSet, IntentModel, MangaAssistInputError, \
    assert_confidence_calibrated, load_golden_set
from pytest_mangaassist.analysis.calibration import N_BINS, calibration


def sklearn_ece(confidences, correct, n_bins=N_BINS) -> float:
    """ECE from scikit-learn's calibration_curve: its per-bin accuracy and confidence, weighted by the bins'
    counts (np.histogram on the same edges; an inner edge falls in the lower bin there, as searchsorted does)."""
    from sklearn.calibration import calibration_curve

    accuracy, mean_confidence = calibration_curve(correct, confidences, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], confidences)
    counts = np.bincount(ids, minlength=n_bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(confidences) * np.abs(accuracy - mean_confidence)))


def synthetic(n: int, overconfidence: float, seed: int = 1):
    """Top-label confidences in [0.4, 1]; each example right with probability confidence - overconfidence."""
    rng = np.random.default_rng(seed)
    confidences = rng.uniform(0.4, 1.0, n)
    return confidences, rng.random(n) < np.clip(confidences - overconfidence, 0, 1)


def test_ece_matches_scikit_learns_bins_edges_included():
    confidences, correct = synthetic(500, 0.1)
    confidences[:4] = [0.2, 1.0, 2 / 15, 0.6]  # on inner edges and the top end
    assert calibration(confidences, correct, n_resamples=50).ece == pytest.approx(sklearn_ece(confidences, correct))


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_one():
    calibrated = calibration(*synthetic(4000, 0.0))
    overconfident = calibration(*synthetic(4000, 0.2))
    assert calibrated.ece < 0.03 and calibrated.ece.high < 0.05
    assert 0.17 < overconfident.ece.low < overconfident.ece < overconfident.ece.high < 0.23
    worst = overconfident.worst(1)[0]
    assert worst.gap > 0.1 and worst.contribution == max(b.contribution for b in overconfident.bins)
    assert sum(b.contribution for b in overconfident.bins) == pytest.approx(float(overconfident.ece))


def test_the_interval_is_the_seeded_percentile_bootstrap():
    from scipy.stats import bootstrap

    confidences, correct = synthetic(300, 0.1)
    found = calibration(confidences, correct, seed=3, n_resamples=400).ece
    again = bootstrap((confidences, correct), lambda c, k: sklearn_ece(c, k), paired=True, vectorized=False,
                      n_resamples=400, method="percentile", rng=np.random.default_rng(3)).confidence_interval
    assert (found.low, found.high) == pytest.approx((again.low, again.high))
    assert found.method == "bootstrap, 400 resamples, seed 3" and found.n == 300


@pytest.mark.parametrize("confidences, correct, problem", [
    ([0.5, 0.7], [True], "same length"),
    ([], [], "non-empty"),
    ([0.5, 1.5], [True, False], "a probability in [0, 1]"),
    ([0.5, float("nan")], [True, False], "a probability in [0, 1]"),
])
def test_the_analysis_refuses_what_a_notebook_user_can_get_wrong(confidences, correct, problem):
    with pytest.raises(MangaAssistInputError, match=r"^calibration: .*" + problem.replace("[", r"\[")):
        calibration(confidences, correct)


# -- the gate -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loaded(small_model, small_golden):
    return IntentModel.load(small_model), load_golden_set(small_golden)


def relabelled(model, golden, right) -> GoldenSet:
    """The golden messages labelled with the model's prediction where right[i], else with another label."""
    predicted = model.predict(golden.texts)
    other = {label: next(x for x in model.labels if x != label) for label in model.labels}
    return GoldenSet.from_examples(GoldenExample(text, p if ok else other[p])
                                   for text, p, ok in zip(golden.texts, predicted, right))


def test_the_gate_passes_a_calibrated_model_and_agrees_with_scikit_learn(loaded):
    from pytest_mangaassist.analysis.classification import evaluate

    model, golden = loaded
    confidences = evaluate(model, golden).confidence()
    right = np.random.default_rng(0).random(len(confidences)) < confidences  # right as often as it is confident
    labelled = relabelled(model, golden, right)
    result = assert_confidence_calibrated(model, labelled, max_ece=0.15)
    assert result.ece == pytest.approx(sklearn_ece(confidences, right))
    # the gate reports the analysis' interval (checked against scipy's bootstrap above). A percentile interval of
    # ECE, biased upward by resampling, need not contain the point estimate (this model: 0.054, lower end 0.055)
    expected = calibration(confidences, right).ece
    assert (result.ece.low, result.ece.high) == pytest.approx((expected.low, expected.high))


def test_an_overconfident_model_fails_naming_gate_metric_interval_limit_and_worst_bins(loaded):
    model, golden = loaded
    right = np.arange(len(golden)) % 4 == 0  # a quarter right, whatever its confidence says
    labelled = relabelled(model, golden, right)
    with pytest.raises(GateFailure) as info:
        assert_confidence_calibrated(model, labelled, max_ece=0.05, bound="upper")
    message, failure = str(info.value), info.value
    assert message.startswith("assert_confidence_calibrated: 95% upper bound of expected calibration error on "
                              f"golden set ({len(golden)} examples, top-label confidence in 15 equal-width bins")
    assert "95% interval [" in message and "bootstrap, 2000 resamples, seed 0" in message
    assert "required <= 0.0500" in message
    assert "bins that add most to the error" in message and "adds to ECE" in message
    assert failure.value > 0.05 and "Traceback" not in message


def test_the_gate_refuses_texts_and_a_bound_it_does_not_have(loaded):
    model, golden = loaded
    with pytest.raises(MangaAssistInputError, match="assert_confidence_calibrated: examples must be a GoldenSet"):
        assert_confidence_calibrated(model, golden.texts, max_ece=0.1)
    with pytest.raises(MangaAssistInputError, match="assert_confidence_calibrated: bound must be one of 'point', "
                                                    "'upper'"):
        assert_confidence_calibrated(model, golden, max_ece=0.1, bound="lower")
