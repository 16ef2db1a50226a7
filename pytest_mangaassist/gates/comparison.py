"""Candidate-versus-production gates: negative flips and McNemar's paired test, per slice or intent.

A monthly gate is a comparison: the candidate (intent_model) against the model in production
(baseline_model, --baseline-path) on the same golden examples. The failure lists the examples that
the production model routed right and the candidate routes wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..analysis.classification import evaluate
from ..analysis.comparison import PairedComparison, PairedSummary, compare
from ..analysis.intervals import CONFIDENCE, check_bound, check_sample_size
from ..errors import MangaAssistInputError, format_table
from ..loading.golden import GoldenSet, check_labels_match
from .records import check

WORST = 15
FAMILY = "comparison"


def paired_comparison(model, baseline, golden: GoldenSet) -> PairedComparison:
    """Both models' predictions on the golden set, paired example by example."""
    if not isinstance(golden, GoldenSet):
        raise MangaAssistInputError(f"Expected a GoldenSet, got {type(golden).__name__}.",
                                    "Pass the golden_set fixture or pytest_mangaassist.load_golden_set(path).")
    if tuple(model.labels) != tuple(baseline.labels):
        raise MangaAssistInputError(
            f"The candidate {model.source} and the baseline {baseline.source} have different label sets "
            f"({', '.join(model.labels)} vs {', '.join(baseline.labels)}), so their routes cannot be paired.",
            "Compare against the previous release of the same classifier (same id2label).",
        )
    check_labels_match(golden, model.labels, model.source, require_all=False)
    return compare(evaluate(baseline, golden), evaluate(model, golden))


def _selection(comparison: PairedComparison, slice: str | None, intents: Sequence[str] | None):
    if slice is not None:
        comparison.golden.only_slice(slice)  # an unknown slice is an input error, not an empty pass
    if intents is not None:
        unknown = sorted(set(intents) - set(comparison.golden.intents))
        if unknown:
            raise MangaAssistInputError(
                f"intent(s) {unknown} have no examples in {comparison.golden.source}.",
                "Name intents of the model's id2label that the golden set covers.")
    parts = ([f"slice {slice!r}"] if slice else []) + ([f"intents {', '.join(intents)}"] if intents else [])
    return comparison.mask(slice, intents), " and ".join(parts) or "golden set"


def _flips_evidence(comparison: PairedComparison, mask, by: str) -> str:
    flips = comparison.negative_flip_rows(mask)
    rows = [(_clip(text), intent, before, after, conf) for text, intent, before, after, conf in flips[:WORST]]
    flipped = (f"negative flips (the baseline was right, the candidate is wrong; {len(rows)} of {len(flips)} shown, "
               "most confident first):\n"
               + format_table(("text", "intent", "baseline", "candidate", "confidence"), rows))
    return flipped + f"\n\npaired comparison per {by}:\n" + comparison.table(by)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def assert_no_negative_flips(model, baseline, golden: GoldenSet, slice: str | None = None,
                             intents: Sequence[str] | None = None, max_rate: float = 0.0, *,
                             bound: str = "point", confidence: float = CONFIDENCE,
                             min_examples: int | None = None) -> PairedSummary:
    """The share of examples (of a slice and/or of some intents) that the baseline routes right and the
    candidate wrong must be <= max_rate; with bound="upper", the upper end of its exact interval must."""
    __tracebackhide__ = True
    check_bound(bound, ("point", "upper"), "assert_no_negative_flips")
    comparison = paired_comparison(model, baseline, golden)
    mask, where = _selection(comparison, slice, intents)
    summary = comparison.summary(mask, confidence)
    check_sample_size("assert_no_negative_flips", where, summary.n, max_rate, bound, min_examples, confidence)
    rate = summary.negative_flip_rate
    name = "negative-flip rate" if bound == "point" else f"{confidence:.0%} upper bound of the negative-flip rate"
    check("assert_no_negative_flips",
          f"{name} on {where} ({summary.n} examples: {summary.negative_flips} negative, {summary.positive_flips} "
          f"positive flips; rate {rate.estimate:.3f}, {confidence:.0%} interval {rate.interval()}, {rate.method})",
          rate.bound(bound), max_rate, "<=", family=FAMILY, interval=(rate.low, rate.high),
          evidence=lambda: _flips_evidence(comparison, mask, "intent" if intents and not slice else "slice"),
          hint="the candidate lost examples the production model handled: add training examples like them "
               "(or distil from the baseline on them), retrain, and rerun.")
    return summary


def assert_not_worse(model, baseline, golden: GoldenSet, slice: str | None = None,
                     intents: Sequence[str] | None = None, alpha: float = 0.05, *,
                     min_examples: int | None = None) -> PairedSummary:
    """McNemar's exact paired test must not find the candidate worse than the baseline (one-sided p >= alpha)
    on the examples of a slice and/or of some intents. Examples both models get right (or wrong) carry no
    information; the test weighs negative against positive flips."""
    __tracebackhide__ = True
    comparison = paired_comparison(model, baseline, golden)
    mask, where = _selection(comparison, slice, intents)
    summary = comparison.summary(mask)
    check_sample_size("assert_not_worse", where, summary.n, alpha, "point", min_examples)
    check("assert_not_worse",
          f"McNemar exact p-value of 'the candidate is no worse' on {where} ({summary.n} examples: "
          f"{summary.negative_flips} negative vs {summary.positive_flips} positive flips; accuracy "
          f"{summary.baseline_accuracy:.3f} -> {summary.candidate_accuracy:.3f})",
          summary.worse_p_value, alpha, ">=", family=FAMILY,
          evidence=lambda: _flips_evidence(comparison, mask, "intent" if intents and not slice else "slice"),
          hint="the candidate is significantly worse than the production model here: fix the regression "
               "(the examples above) before promoting it.")
    return summary
