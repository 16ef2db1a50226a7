"""Each statistic against an independent computation: Clopper-Pearson from the beta quantiles, macro-F1 and
its bootstrap from scikit-learn on explicit resamples, McNemar's exact test from binomial coefficients."""

import math
import pickle

import numpy as np
import pytest

from pytest_mangaassist.analysis.comparison import mcnemar_worse_p_value
from pytest_mangaassist.analysis.intervals import (MIN_EXAMPLES, Rate, binomial_rate, examples_needed, macro_f1,
                                                   macro_f1_rate)
from pytest_mangaassist.analysis.probes import control_labels, first_word_type


@pytest.mark.parametrize("k, n", [(0, 12), (7, 12), (12, 12), (290, 330), (1, 1)])
def test_clopper_pearson_matches_the_beta_quantiles(k, n):
    from scipy.stats import beta

    rate = binomial_rate(k, n)
    low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert (rate.estimate, rate.low, rate.high, rate.n) == pytest.approx((k / n, low, high, n), abs=1e-9)


def test_macro_f1_matches_scikit_learn_per_sample_and_vectorised():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, size=(20, 50))
    predicted = np.where(rng.random((20, 50)) < 0.6, truth, rng.integers(0, 8, size=(20, 50)))  # labels 6, 7: FP only
    expected = [f1_score(t, p, average="macro", zero_division=0) for t, p in zip(truth, predicted)]
    assert macro_f1(truth, predicted) == pytest.approx(expected, abs=1e-12)
    assert macro_f1(truth.T, predicted.T, axis=0) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval_of_macro_f1_agrees_with_explicit_resampling():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    truth = rng.choice(["a", "b", "c", "d"], size=200, p=[0.4, 0.3, 0.2, 0.1])
    predicted = np.where(rng.random(200) < 0.8, truth, rng.choice(["a", "b", "c", "d"], size=200))
    rate = macro_f1_rate(truth, predicted, seed=3)
    assert rate.estimate == pytest.approx(f1_score(truth, predicted, average="macro"))
    resample = np.random.default_rng(99).integers(0, 200, size=(800, 200))
    scores = [f1_score(truth[i], predicted[i], average="macro", zero_division=0) for i in resample]
    low, high = np.percentile(scores, [2.5, 97.5])
    assert rate.low == pytest.approx(low, abs=0.02) and rate.high == pytest.approx(high, abs=0.02)
    assert macro_f1_rate(truth, predicted, seed=3).low == rate.low  # seeded: same data, same interval


@pytest.mark.parametrize("negative, positive", [(0, 0), (5, 0), (8, 2), (3, 9), (20, 11)])
def test_mcnemar_exact_one_sided_matches_the_binomial_sum(negative, positive):
    n = negative + positive
    expected = 1.0 if n == 0 else sum(math.comb(n, k) for k in range(negative, n + 1)) / 2 ** n
    assert mcnemar_worse_p_value(negative, positive) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.95])
def test_examples_needed_is_where_a_perfect_score_first_clears_the_lower_bound(threshold):
    n = examples_needed(threshold, "lower")
    assert binomial_rate(n, n).low >= threshold
    assert n == MIN_EXAMPLES or binomial_rate(n - 1, n - 1).low < threshold
    m = examples_needed(1 - threshold, "upper")  # mirror image: zero events must clear an upper bound
    assert binomial_rate(0, m).high <= 1 - threshold + 1e-12
    assert examples_needed(0.9, "point") == MIN_EXAMPLES


def test_rate_is_a_float_that_keeps_its_interval_through_pickling():
    rate = binomial_rate(9, 10)
    clone = pickle.loads(pickle.dumps(rate))
    assert isinstance(clone, Rate) and clone == 0.9 and (clone.low, clone.high, clone.n) == (rate.low, rate.high, 10)
    assert rate.bound("lower") < rate < rate.bound("upper")
    assert "0.900 [0.555, 0.997]" in rate.describe()


def test_control_task_gives_each_first_word_one_label_drawn_from_the_intent_distribution():
    texts = ["where is my order", "Where can I return this?", "hi there", "hi!", "is there a sale", "where?"] * 50
    labels = ["order_status", "return_request", "chitchat", "chitchat", "promotion", "shipping"] * 50
    control = control_labels(texts, labels, seed=0)
    by_type = {}
    for text, label in zip(texts, control):
        by_type.setdefault(first_word_type(text), set()).add(label)
    assert set(by_type) == {"where", "hi", "is"} and all(len(v) == 1 for v in by_type.values())
    assert set(control) <= set(labels)
    assert (control == control_labels(texts, labels, seed=0)).all()
