"""Calibration: does the model's confidence mean what it says? The expected calibration error (ECE) of the
top-label confidence, with a seeded bootstrap interval over examples.

ECE (Naeini et al. 2015; Guo et al. 2017): the examples are binned by their top-label confidence into equal-width
bins over [0, 1], and ECE = sum over bins of (share of examples in the bin) x |accuracy in the bin - mean
confidence in the bin|, i.e. |correct in the bin - summed confidence in the bin| / n. 0 is perfectly calibrated;
an overconfident model has accuracy below its confidence in the high bins.

The bins follow scikit-learn's calibration_curve(strategy="uniform") to the edge (an example on an inner edge
falls in the lower bin; tests/test_calibration.py compares the two), but the sum is written here with numpy:
calibration_curve returns each non-empty bin's accuracy and mean confidence, not how many examples it holds,
which are ECE's weights, and it would validate its input again on each of the bootstrap's 2,000 resamples.
The interval is scipy.stats.bootstrap over examples (paired confidence and correctness, percentile, fixed
seed), as macro-F1's (analysis.intervals): ECE is a sum of absolute values, bounded at 0 and biased upwards on
few examples, so no normal approximation applies, and BCa's jackknife degenerates when a resample is all
correct. The interval says how far the estimate moves with the examples drawn, not that bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MangaAssistInputError
from .intervals import CONFIDENCE, N_RESAMPLES, Rate, bootstrap_method

N_BINS = 15  # Guo et al.'s choice, and the usual default
BATCH = 100  # resamples evaluated at once: bounds the memory of the vectorized statistic


@dataclass(frozen=True)
class CalibrationBin:
    low: float  # the bin's confidence range (low, high]
    high: float
    n: int
    confidence: float  # mean top-label confidence of its examples (nan when empty)
    accuracy: float  # share of its examples predicted right (nan when empty)
    contribution: float  # its term of the ECE: n / total x |accuracy - confidence|

    @property
    def gap(self) -> float:
        """Confidence minus accuracy: above 0 the model is overconfident in this bin."""
        return self.confidence - self.accuracy


@dataclass(frozen=True)
class Calibration:
    ece: Rate  # the expected calibration error with its bootstrap interval
    bins: tuple[CalibrationBin, ...]

    def worst(self, k: int) -> list[CalibrationBin]:
        """The k non-empty bins that add most to the ECE, largest first."""
        return sorted((b for b in self.bins if b.n), key=lambda b: -b.contribution)[:k]


def _bin_ids(confidences: np.ndarray, n_bins: int) -> np.ndarray:
    """calibration_curve's uniform bins: searchsorted on the inner edges (an inner edge falls in the lower bin)."""
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidences)


def _ece(confidences: np.ndarray, correct: np.ndarray, n_bins: int, axis: int = -1) -> np.ndarray:
    """ECE of each row of (..., n) arrays (scipy's vectorized bootstrap passes a batch of resamples as rows)."""
    confidences, correct = np.moveaxis(confidences, axis, -1), np.moveaxis(correct, axis, -1)
    rows = confidences.reshape(-1, confidences.shape[-1])
    n_rows, n = rows.shape
    flat = (np.arange(n_rows)[:, None] * n_bins + _bin_ids(rows, n_bins)).ravel()  # (row, bin) as one index
    confidence_sums = np.bincount(flat, weights=rows.ravel(), minlength=n_rows * n_bins)
    correct_sums = np.bincount(flat, weights=correct.reshape(-1, n).ravel().astype(float), minlength=n_rows * n_bins)
    gaps = np.abs(confidence_sums - correct_sums).reshape(n_rows, n_bins)
    return (gaps.sum(axis=1) / n).reshape(confidences.shape[:-1])


def calibration(confidences, correct, *, n_bins: int = N_BINS, confidence: float = CONFIDENCE, seed: int = 0,
                n_resamples: int = N_RESAMPLES) -> Calibration:
    """ECE of top-label `confidences` (each in [0, 1]) against `correct` (True where the top label was right),
    with its percentile-bootstrap interval (n_resamples, seeded) and every bin's figures."""
    from scipy.stats import bootstrap

    confidences = np.asarray(confidences, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidences.ndim != 1 or confidences.shape != correct.shape or not len(confidences):
        raise MangaAssistInputError(f"calibration: confidences and correct must be two non-empty 1-D arrays of the "
                                    f"same length; got shapes {confidences.shape} and {correct.shape}.",
                                    "Pass one top-label confidence and one right/wrong flag per example.")
    if not np.all((confidences >= 0) & (confidences <= 1)):  # NaN fails this too
        raise MangaAssistInputError("calibration: every confidence must be a probability in [0, 1].",
                                    "Pass the top label's softmax probability of each example.")
    n = len(confidences)
    ids = _bin_ids(confidences, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for b in range(n_bins):
        mask = ids == b
        count = int(mask.sum())
        mean_confidence = float(confidences[mask].mean()) if count else float("nan")
        accuracy = float(correct[mask].mean()) if count else float("nan")
        bins.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), count, mean_confidence, accuracy,
                                   count / n * abs(accuracy - mean_confidence) if count else 0.0))
    estimate = float(_ece(confidences, correct, n_bins))
    if n < 2:
        return Calibration(Rate(estimate, float("nan"), float("nan"), n, "bootstrap", confidence), tuple(bins))
    result = bootstrap((confidences, correct), lambda c, k, axis: _ece(c, k, n_bins, axis), paired=True,
                       vectorized=True, axis=-1, n_resamples=n_resamples, batch=BATCH, confidence_level=confidence,
                       method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    method = bootstrap_method(n_resamples, seed)
    return Calibration(Rate(estimate, float(ci.low), float(ci.high), n, method, confidence), tuple(bins))
