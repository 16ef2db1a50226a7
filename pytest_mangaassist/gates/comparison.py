"""Candidate-versus-production gates: negative flips and McNemar's paired test, per slice or intent.

A monthly gate is a comparison: the candidate (intent_model) against the model in production
(production_model, --production-path), passed as against=, on the same golden examples. What counts as right
is named in every row: compare="intents" (the default) compares each model's top label with the example's
label; compare="routes" applies the routing policy in force (domain.routing_policy: the one given, the
suite's, the label set's profile's, else argmax) to each model's prediction, and a message is routed right
when its route is its label (a message sent to a fallback is routed wrong). The two can disagree: a
confident-enough correct label is the same under both, a correct label below its threshold is right as an
intent and wrong as a route. The failure lists the examples that the production model got right and the
candidate gets wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..analysis.classification import Evaluation
from ..analysis.comparison import PairedComparison, PairedSummary, compare
from ..analysis.counterfactuals import RoutingPolicy
from ..analysis.intervals import CONFIDENCE, check_sample_size
from ..cache.analyses import evaluate
from ..domain import routing_policy
from ..errors import MangaAssistInputError, clip, format_table, renamed_keywords
from ..loading.golden import GoldenSet
from . import validation as valid
from .records import Family, check

WORST = 15
UPPER_BOUNDS = ("point", "upper")
COMPARED = ("intents", "routes")


def _routed(evaluation: Evaluation, policy: RoutingPolicy) -> Evaluation:
    """The evaluation with each prediction replaced by the route the policy gives it (right: route == label)."""
    confidence = evaluation.confidence()
    routes = tuple(policy.route(p, float(c)) for p, c in zip(evaluation.predicted, confidence))
    return replace(evaluation, predicted=routes)


def _paired(caller: str, model, golden: GoldenSet, against, compared: str, policy) -> tuple[PairedComparison, str]:
    """The paired comparison of intents or of routes, and the words naming it in the row."""
    valid.choice(caller, "compare", compared, COMPARED)
    production, candidate = evaluate(against, golden), evaluate(model, golden)
    if compared == "intents":
        valid.policy(caller, policy)
        return compare(production, candidate), "intents"
    policy = routing_policy(model.labels, valid.policy(caller, policy))
    return (compare(_routed(production, policy), _routed(candidate, policy)),
            f"routes (routing: {policy.source})")


def paired_comparison(model, examples: GoldenSet, *, against) -> PairedComparison:
    """The predictions of model and of against (the production model) on the examples, paired one by one."""
    golden = valid.golden("paired_comparison", examples, model)
    valid.against("paired_comparison", model, against)
    return compare(evaluate(against, golden), evaluate(model, golden))


def _selection(caller: str, model, comparison: PairedComparison, slice, intents):
    slice = valid.slice_name(caller, slice, comparison.golden)
    intents = valid.intents(caller, model, intents)
    if intents is not None:
        unknown = sorted(set(intents) - set(comparison.golden.intents))
        if unknown:
            raise MangaAssistInputError(
                f"{caller}: intent(s) {unknown} have no examples in {comparison.golden.source}.",
                "Name intents that the examples cover, or add examples of them.")
    parts = ([f"slice {slice!r}"] if slice else []) + ([f"intents {', '.join(intents)}"] if intents else [])
    return comparison.mask(slice, intents), " and ".join(parts) or "golden set", intents


def _multiplicity(comparison: PairedComparison, slice, intents) -> str:
    """For one slice (or one intent) of several: its McNemar p-value adjusted with Benjamini-Hochberg across
    all the slices (intents) of the set, and how many were tested; empty for the whole set."""
    if slice is not None:
        by, name, mask = "slice", slice, comparison.mask(slice=slice)
    elif intents and len(intents) == 1:
        by, name, mask = "intent", intents[0], comparison.mask(intents=intents)
    else:
        return ""
    adjusted = comparison.adjusted_p_values(by)
    return (f"; McNemar p {comparison.summary(mask).worse_p_value:.3g}, Benjamini-Hochberg adjusted across the "
            f"{len(adjusted)} {by}s tested: {adjusted[name]:.3g}")


def _flips_evidence(comparison: PairedComparison, mask, by: str) -> str:
    flips = comparison.negative_flip_rows(mask)
    rows = [(clip(text), intent, before, after, conf) for text, intent, before, after, conf in flips[:WORST]]
    flipped = (f"negative flips (the production model was right, the candidate is wrong; {len(rows)} of "
               f"{len(flips)} shown, most confident first):\n"
               + format_table(("text", "intent", "production", "candidate", "confidence"), rows))
    return flipped + f"\n\npaired comparison per {by}:\n" + comparison.table(by)



@Family.COMPARISON.gate(page="statistics.md",
                        checks="share of examples the production model got right and the candidate gets wrong; "
                               "`compare=\"intents\"` (top label vs the example's label) or `\"routes\"` (the route "
                               "under the routing policy vs the example's label); the row says which")
@renamed_keywords(max_rate="max_negative_flip_rate", min_examples="at_least_examples")  # the old names, for one release
def assert_no_negative_flips(model, examples: GoldenSet, *, against, max_negative_flip_rate: float = 0.0,
                             slice: str | None = None, intents: Sequence[str] | None = None, bound: str = "point",
                             at_least_examples: int | None = None, compare: str = "intents",
                             policy: RoutingPolicy | None = None) -> PairedSummary:
    """The share of examples (of a slice and/or of some intents) that against (the production model) gets
    right and the candidate wrong must be <= max_negative_flip_rate; with bound="upper", the upper end of its exact 95%
    interval must. compare="intents": right is the top label; compare="routes": right is the route under
    the routing policy (see the module's docstring)."""
    __tracebackhide__ = True
    caller = "assert_no_negative_flips"
    golden = valid.golden(caller, examples, model)
    max_negative_flip_rate = valid.share(caller, "max_negative_flip_rate", max_negative_flip_rate)
    valid.choice(caller, "bound", bound, UPPER_BOUNDS)
    valid.count(caller, "at_least_examples", at_least_examples, minimum=1, optional=True)
    valid.against(caller, model, against)
    comparison, compared = _paired(caller, model, golden, against, compare, policy)
    mask, where, intents = _selection(caller, model, comparison, slice, intents)
    summary = comparison.summary(mask, CONFIDENCE)
    check_sample_size(caller, where, summary.n, max_negative_flip_rate, bound, at_least_examples, CONFIDENCE)
    rate = summary.negative_flip_rate
    name = "negative-flip rate" if bound == "point" else f"{CONFIDENCE:.0%} upper bound of the negative-flip rate"
    check(caller,
          f"{name} of {compared} on {where} ({summary.n} examples: {summary.negative_flips} negative, {summary.positive_flips} "
          f"positive flips; rate {rate.estimate:.3f}, {CONFIDENCE:.0%} interval {rate.interval()}, {rate.method}"
          f"{_multiplicity(comparison, slice, intents)})",
          rate.bound(bound), max_negative_flip_rate, "<=", interval=(rate.low, rate.high),
          evidence=lambda: _flips_evidence(comparison, mask, "intent" if intents and not slice else "slice"),
          hint="the candidate lost examples the production model handled: add training examples like them "
               "(or distil from the production model on them), retrain, and rerun.")
    return summary


@Family.COMPARISON.gate(page="statistics.md",
                        checks="McNemar's exact test must not find the candidate worse, comparing intents or routes")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_not_worse(model, examples: GoldenSet, *, against, min_p_value: float = 0.05, slice: str | None = None,
                     intents: Sequence[str] | None = None, at_least_examples: int | None = None, compare: str = "intents",
                     policy: RoutingPolicy | None = None) -> PairedSummary:
    """McNemar's exact paired test must not find the candidate worse than against (the production model):
    one-sided p >= min_p_value on the examples of a slice and/or of some intents. Examples both models get
    right (or wrong) carry no information; the test weighs negative against positive flips. compare:
    "intents" or "routes", as for assert_no_negative_flips."""
    __tracebackhide__ = True
    caller = "assert_not_worse"
    golden = valid.golden(caller, examples, model)
    min_p_value = valid.share(caller, "min_p_value", min_p_value)
    valid.count(caller, "at_least_examples", at_least_examples, minimum=1, optional=True)
    valid.against(caller, model, against)
    comparison, compared = _paired(caller, model, golden, against, compare, policy)
    mask, where, intents = _selection(caller, model, comparison, slice, intents)
    summary = comparison.summary(mask)
    check_sample_size(caller, where, summary.n, min_p_value, "point", at_least_examples)
    check(caller,
          f"McNemar exact p-value of 'the candidate is no worse', comparing {compared}, on {where} ({summary.n} examples: "
          f"{summary.negative_flips} negative vs {summary.positive_flips} positive flips; accuracy "
          f"{summary.production_accuracy:.3f} -> {summary.candidate_accuracy:.3f}"
          f"{_multiplicity(comparison, slice, intents)})",
          summary.worse_p_value, min_p_value, ">=", 
          evidence=lambda: _flips_evidence(comparison, mask, "intent" if intents and not slice else "slice"),
          hint="the candidate is significantly worse than the production model here: fix the regression "
               "(the examples above) before promoting it.")
    return summary
