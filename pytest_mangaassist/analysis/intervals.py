"""Confidence intervals for the rates the gates check (scipy), and the sample-size rule of the gates.

Rates that count successes among independent examples (accuracy, recall, negative-flip rate) get the
exact Clopper-Pearson interval (scipy.stats.binomtest). Macro-F1 is not a proportion, so it gets a
seeded percentile bootstrap over examples (scipy.stats.bootstrap, resampling (truth, prediction)
pairs together). A gate states whether the point estimate or the bound on its side must clear the
threshold; a sample too small for that to be possible is reported as undecidable, not as a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import MangaAssistInputError, format_table

CONFIDENCE = 0.95
N_RESAMPLES = 2000
MIN_EXAMPLES = 10  # below this, one example moves a rate by > 10 points: no gate decides on it
BOUNDS = ("point", "lower", "upper")  # which value of a Rate a gate compares: Rate.bound(which)


class Rate(float):
    """A measured rate that carries its confidence interval; it compares and prints as the point estimate,
    so gates that used to return floats still do."""

    def __new__(cls, estimate: float, low: float, high: float, n: int, method: str,
                confidence: float = CONFIDENCE):
        rate = super().__new__(cls, estimate)
        rate.low, rate.high, rate.n, rate.method, rate.confidence = float(low), float(high), int(n), method, confidence
        return rate

    def __reduce__(self):  # picklable for xdist: rebuild from the constructor arguments
        return Rate, (float(self), self.low, self.high, self.n, self.method, self.confidence)

    @property
    def estimate(self) -> float:
        return float(self)

    def bound(self, which: str) -> float:
        """The point estimate, or the lower or upper end of the interval."""
        return {"point": float(self), "lower": self.low, "upper": self.high}[which]

    def describe(self) -> str:
        """'0.933 [0.900, 0.958] (95% Clopper-Pearson, n=330)'"""
        return f"{float(self):.3f} {self.interval()} ({self.confidence:.0%} {self.method}, n={self.n})"

    def interval(self) -> str:
        return f"[{self.low:.3f}, {self.high:.3f}]"


def binomial_rate(successes: int, n: int, confidence: float = CONFIDENCE) -> Rate:
    """successes / n with its exact (Clopper-Pearson) interval."""
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return Rate(successes / n, ci.low, ci.high, n, "Clopper-Pearson", confidence)


def macro_f1(truth: np.ndarray, predicted: np.ndarray, axis: int = -1) -> np.ndarray:
    """Macro-F1 over `axis` (scipy's bootstrap passes -1) of labels coded 0..K-1, for many resamples at once.

    Same definition as sklearn.metrics.f1_score(average="macro"): per-class F1 = 2TP / (2TP + FP + FN),
    averaged over the classes present in the truth or the predictions of each sample. Written here
    because the bootstrap needs it vectorised over thousands of resamples (f1_score takes ~1 ms a call);
    tests check it against f1_score. Counts come from one bincount per kind over (sample, class) cells;
    a class absent from a sample adds exactly 0 to its sums, so counting every code 0..K-1 is exact.
    """
    truth, predicted = np.moveaxis(np.asarray(truth), axis, -1), np.moveaxis(np.asarray(predicted), axis, -1)
    if truth.min(initial=0) < 0 or predicted.min(initial=0) < 0:
        raise ValueError("macro_f1 reads labels coded 0..K-1")
    shape = truth.shape[:-1]
    k = int(max(truth.max(initial=0), predicted.max(initial=0))) + 1
    cell = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(*shape, 1) * k  # first cell of each sample
    cells = int(np.prod(shape)) * k

    def count(codes, where=None) -> np.ndarray:
        index = (cell + codes) if where is None else (cell + codes)[where]
        return np.bincount(index.ravel(), minlength=cells).reshape(*shape, k)

    tp = count(truth, truth == predicted)
    errors = count(truth) + count(predicted) - 2 * tp  # FP + FN
    total = np.zeros(shape)
    present = np.zeros(shape)
    for label in range(k):  # class by class, in order: the same sums as adding each class's F1 in turn
        seen = (tp[..., label] + errors[..., label]) > 0
        total += np.where(seen, 2 * tp[..., label] / np.maximum(2 * tp[..., label] + errors[..., label], 1), 0.0)
        present += seen
    return total / np.maximum(present, 1)


def macro_f1_rate(truth: Sequence, predicted: Sequence, confidence: float = CONFIDENCE,
                  n_resamples: int = N_RESAMPLES, seed: int = 0) -> Rate:
    """Macro-F1 with a seeded percentile-bootstrap interval over examples."""
    from scipy.stats import bootstrap

    classes = sorted(set(truth) | set(predicted))
    code = {label: i for i, label in enumerate(classes)}
    t = np.array([code[x] for x in truth])
    p = np.array([code[x] for x in predicted])
    estimate = float(macro_f1(t, p))
    if len(t) < 2:
        return Rate(estimate, math.nan, math.nan, len(t), "bootstrap", confidence)
    # percentile rather than BCa: BCa's jackknife degenerates when a resample is all-correct
    result = bootstrap((t, p), macro_f1, paired=True, vectorized=True, axis=-1, n_resamples=n_resamples,
                       confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Rate(estimate, ci.low, ci.high, len(t), bootstrap_method(n_resamples, seed), confidence)


def bootstrap_method(n_resamples: int, seed: int) -> str:
    """How a seeded percentile-bootstrap interval was made, as a Rate names it."""
    return f"bootstrap, {n_resamples} resamples, seed {seed}"


def examples_needed(threshold: float, bound: str, confidence: float = CONFIDENCE) -> int:
    """The fewest examples on which a perfect score can clear `threshold` at the interval's bound.

    A perfect n/n has the Clopper-Pearson lower bound ((1 - confidence) / 2) ** (1 / n); for a lower
    bound to reach the threshold, n must be at least log(alpha/2) / log(threshold). Upper-bound gates
    (a rate that must stay low) need the mirror image: 0 of n with upper bound 1 - (alpha/2) ** (1/n).
    """
    alpha_half = (1 - confidence) / 2
    if bound == "lower" and 0 < threshold < 1:
        return max(MIN_EXAMPLES, math.ceil(math.log(alpha_half) / math.log(threshold)))
    if bound == "upper" and 0 < threshold < 1:
        return max(MIN_EXAMPLES, math.ceil(math.log(alpha_half) / math.log(1 - threshold)))
    return MIN_EXAMPLES


def check_sample_size(caller: str, where: str, n: int, threshold: float, bound: str,
                      at_least_examples: int | None, confidence: float = CONFIDENCE) -> None:
    """Refuse to decide on too few examples: say how many there are and how many the gate needs (the
    gate's at_least_examples= where given, a reviewed decision)."""
    needed = examples_needed(threshold, bound, confidence) if at_least_examples is None else at_least_examples
    if n >= needed:
        return
    why = (f"even a perfect score on {n} examples has a {confidence:.0%} {bound} bound that cannot reach "
           f"{threshold:.3f}" if bound != "point" and needed > MIN_EXAMPLES and at_least_examples is None
           else f"one example moves the rate by {1 / max(n, 1):.3f}")
    raise MangaAssistInputError(
        f"{caller}: {where} has {n} examples, too few to decide: the gate needs at least {needed} "
        f"(minimum sample size; {why}).",
        "Add examples to this slice or intent of the golden set, gate a larger slice, or pass a smaller "
        "at_least_examples= as a reviewed decision.",
    )


def rates_table(rates: dict[str, Rate], header: str = "rate", marks: dict[str, str] | None = None,
                key: str = "intent") -> str:
    """One row per name: the estimate, its interval and the sample size (and a mark, e.g. FAIL)."""
    marks = marks or {}
    confidence = next(iter(rates.values())).confidence if rates else CONFIDENCE
    rows = [(name, rate.estimate, rate.interval(), rate.n, marks.get(name, "")) for name, rate in rates.items()]
    return format_table((key, header, f"{confidence:.0%} interval", "n", ""), rows)
