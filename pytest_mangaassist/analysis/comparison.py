"""Paired comparison of a candidate model with the model in production on the same golden examples.

Each example is a pair of outcomes (production model right or wrong, candidate right or wrong). A flip is an
example the two models route differently; a negative flip is one the production model got right and the
candidate gets wrong (Yan et al., 2021, "Positive-congruent training"): the regressions a user notices
even when overall accuracy went up. Whether the candidate is worse on a set of examples is McNemar's
exact test: only the discordant pairs carry information, and under "no worse" the negative flips
among them are Binomial(discordant, 1/2). scipy has no McNemar function; the exact test is exactly
that binomial test (scipy.stats.binomtest), one-sided towards "candidate worse".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table, warn_renamed
from ..loading.golden import GoldenSet
from .classification import Evaluation
from .intervals import CONFIDENCE, Rate, binomial_rate


@dataclass(frozen=True)
class PairedComparison:
    """The two models' predictions on the same examples, aligned with golden.examples."""

    golden: GoldenSet
    production: Evaluation
    candidate: Evaluation

    @property
    def baseline(self) -> Evaluation:
        """Deprecated name of `production`, kept for one release."""
        warn_renamed("PairedComparison.baseline", "read .production")
        return self.production

    @property
    def negative(self) -> np.ndarray:
        """Examples the production model routes right and the candidate wrong."""
        return self.production.correct & ~self.candidate.correct

    @property
    def positive(self) -> np.ndarray:
        return ~self.production.correct & self.candidate.correct

    @property
    def flipped(self) -> np.ndarray:
        """Examples routed to a different intent by the two models (right or wrong)."""
        return np.array([a != b for a, b in zip(self.production.predicted, self.candidate.predicted)], dtype=bool)

    def mask(self, slice: str | None = None, intents=None) -> np.ndarray:
        """The examples of one slice and/or of some true intents (all examples by default)."""
        keep = np.ones(len(self.golden), dtype=bool)
        if slice is not None:
            keep &= np.array([ex.slice == slice for ex in self.golden])
        if intents is not None:
            keep &= np.isin(self.golden.intents, list(intents))
        return keep

    def summary(self, mask: np.ndarray, confidence: float = CONFIDENCE) -> PairedSummary:
        n = int(mask.sum())
        negative, positive = int(self.negative[mask].sum()), int(self.positive[mask].sum())
        return PairedSummary(
            n=n,
            production_accuracy=float(self.production.correct[mask].mean()) if n else float("nan"),
            candidate_accuracy=float(self.candidate.correct[mask].mean()) if n else float("nan"),
            flip_rate=float(self.flipped[mask].mean()) if n else float("nan"),
            negative_flips=negative,
            positive_flips=positive,
            negative_flip_rate=binomial_rate(negative, n, confidence) if n else None,
            worse_p_value=mcnemar_worse_p_value(negative, positive),
        )

    def negative_flip_rows(self, mask: np.ndarray, limit: int | None = None) -> list[tuple[str, str, str, str, float]]:
        """(text, intent, production model's route, candidate's route, candidate's confidence), most confident first."""
        confidence = self.candidate.confidence()
        rows = [(ex.text, ex.intent, self.production.predicted[i], self.candidate.predicted[i], float(confidence[i]))
                for i, ex in enumerate(self.golden) if mask[i] and self.negative[i]]
        return sorted(rows, key=lambda row: -row[4])[:limit]

    def groups(self, by: str = "slice") -> dict[str, np.ndarray]:
        """The masks of every slice (by="slice") or of every true intent (by="intent") of the golden set."""
        if by == "slice":
            return {name: self.mask(slice=name) for name in self.golden.slice_names}
        return {label: self.mask(intents=[label]) for label in self.production.labels
                if label in set(self.golden.intents)}

    def adjusted_p_values(self, by: str = "slice") -> dict[str, float]:
        """McNemar's p-value of every slice (or intent), adjusted with Benjamini-Hochberg across all of them
        (scipy.stats.false_discovery_control): testing each of k slices at 0.05 finds a "worse" slice by
        chance far more often than 5% of the time."""
        from scipy.stats import false_discovery_control

        groups = self.groups(by)
        if not groups:
            return {}
        raw = [self.summary(mask).worse_p_value for mask in groups.values()]
        return dict(zip(groups, map(float, false_discovery_control(raw, method="bh"))))

    def table(self, by: str = "slice", confidence: float = CONFIDENCE) -> str:
        """Per slice (by="slice") or per true intent (by="intent"), plus the whole set; p(worse) is also given
        adjusted with Benjamini-Hochberg across the slices (or intents) tested."""
        groups = self.groups(by)
        adjusted = self.adjusted_p_values(by)
        groups["(all)"] = self.mask()
        rows = []
        for name, mask in groups.items():
            s = self.summary(mask, confidence)
            rows.append((name, s.n, s.production_accuracy, s.candidate_accuracy, s.flip_rate, s.negative_flips,
                         s.negative_flip_rate.interval(), s.positive_flips, f"{s.worse_p_value:.3g}",
                         f"{adjusted[name]:.3g}" if name in adjusted else ""))
        header = (by, "n", "production acc", "candidate acc", "flip rate", "neg flips",
                  f"neg rate {confidence:.0%} CI", "pos flips", "p(worse)", "p(worse) BH")
        return (format_table(header, rows) + f"\n{len(adjusted)} {by}s tested; p(worse): McNemar exact, one-sided; "
                f"p(worse) BH: Benjamini-Hochberg adjusted across the {len(adjusted)} {by}s")


@dataclass(frozen=True)
class PairedSummary:
    n: int
    production_accuracy: float
    candidate_accuracy: float
    flip_rate: float
    negative_flips: int
    positive_flips: int
    negative_flip_rate: Rate | None
    worse_p_value: float  # McNemar exact, one-sided: small means the candidate is worse

    @property
    def baseline_accuracy(self) -> float:
        """Deprecated name of `production_accuracy`, kept for one release."""
        warn_renamed("PairedSummary.baseline_accuracy", "read .production_accuracy")
        return self.production_accuracy


def mcnemar_worse_p_value(negative_flips: int, positive_flips: int) -> float:
    """Exact one-sided McNemar test of "the candidate is no worse": P(X >= negative) for
    X ~ Binomial(negative + positive, 1/2). 1.0 when the models never disagree on correctness."""
    from scipy.stats import binomtest

    discordant = negative_flips + positive_flips
    if discordant == 0:
        return 1.0
    return float(binomtest(negative_flips, discordant, 0.5, alternative="greater").pvalue)


def compare(production: Evaluation, candidate: Evaluation) -> PairedComparison:
    """Pair two evaluations of the same golden set."""
    if production.golden.content_hash != candidate.golden.content_hash:
        raise ValueError("compare() needs two evaluations of the same golden set")
    return PairedComparison(candidate.golden, production, candidate)
