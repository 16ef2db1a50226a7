"""Classification gates: golden-set accuracy and macro-F1 (overall or per slice), per-intent recall, batch
invariance of the logits, and calibration of the confidence.

Each gate validates its arguments (gates.validation), runs its analysis, compares with its limit
(records.check) and raises a GateFailure whose message carries the measured value with its confidence
interval, the limit and the examples to look at. bound="point" gates the measured rate, bound="lower" the
lower end of its interval (the limit is then cleared with the stated confidence, not by the luck of a few
hundred examples). A slice or intent with too few examples to decide is refused with the number it needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..analysis.calibration import N_BINS, Calibration, calibration
from ..analysis.classification import Evaluation
from ..cache.analyses import evaluate
from ..analysis.invariance import TOLERANCE, InvarianceResult
from ..cache.analyses import batch_invariance
from ..analysis.intervals import CONFIDENCE, Rate, check_sample_size, rates_table
from ..errors import MangaAssistInputError, clip, format_table, renamed_keywords
from ..loading.golden import GoldenSet
from . import validation as valid
from .records import Family, check

WORST = 8
LOWER_BOUNDS = ("point", "lower")
UPPER_BOUNDS = ("point", "upper")
WORST_BINS = 5


def _options(caller: str, bound: str, confidence: float, at_least_examples: int | None) -> None:
    valid.choice(caller, "bound", bound, LOWER_BOUNDS)
    valid.confidence(caller, confidence)
    valid.count(caller, "at_least_examples", at_least_examples, minimum=1, optional=True)


def _evaluation(model, golden: GoldenSet, slice: str | None) -> Evaluation:
    return evaluate(model, golden if slice is None else golden.only_slice(slice))


def _errors_table(evaluation: Evaluation, intent: str | None = None) -> str:
    rows = [(clip(text), expected, predicted, conf) for text, expected, predicted, conf
            in evaluation.errors(WORST, intent)]
    return "most confident mistakes:\n" + format_table(("text", "expected", "predicted", "confidence"), rows)


def _confusions(evaluation: Evaluation) -> str:
    pairs = Counter((ex.intent, p) for ex, p in zip(evaluation.golden, evaluation.predicted) if ex.intent != p)
    rows = [(expected, predicted, count) for (expected, predicted), count in pairs.most_common(5)]
    return "most frequent confusions:\n" + format_table(("expected", "predicted", "count"), rows)



def _metric(name: str, rate: Rate, bound: str, detail: str) -> str:
    """'accuracy on golden set (330 examples, 22 wrong; 95% interval [0.90, 0.96], Clopper-Pearson)',
    prefixed by the bound when the gate is on one."""
    interval = f"{rate.confidence:.0%} interval {rate.interval()}, {rate.method}"
    if bound == "point":
        return f"{name} ({detail}; {interval})"
    return f"{rate.confidence:.0%} {bound} bound of {name} ({detail}; {name} {rate.estimate:.3f}, {interval})"


@Family.CLASSIFICATION.gate(page="statistics.md",
                            checks="accuracy on the set or one slice, with its exact Clopper-Pearson interval; lists"
                                   " the most frequent confusions and the most confident mistakes")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_accuracy_above(model, examples: GoldenSet, *, min_accuracy: float, slice: str | None = None,
                          bound: str = "point", confidence: float = CONFIDENCE,
                          at_least_examples: int | None = None) -> Rate:
    """Accuracy on the examples (of one slice, if given) must be >= min_accuracy; with bound="lower", the
    lower end of its exact binomial interval must. Returns the accuracy (a float carrying .low, .high, .n)."""
    __tracebackhide__ = True
    caller = "assert_accuracy_above"
    golden = valid.golden(caller, examples, model)
    min_accuracy = valid.share(caller, "min_accuracy", min_accuracy)
    _options(caller, bound, confidence, at_least_examples)
    slice = valid.slice_name(caller, slice)
    evaluation = _evaluation(model, golden, slice)
    where = f"slice {slice!r}" if slice else "golden set"
    n = len(evaluation.golden)
    check_sample_size(caller, where, n, min_accuracy, bound, at_least_examples, confidence)
    accuracy = evaluation.accuracy_rate(confidence)
    check(caller,
          _metric(f"accuracy on {where}", accuracy, bound, f"{n} examples, {int((~evaluation.correct).sum())} wrong"),
          accuracy.bound(bound), min_accuracy, ">=", interval=(accuracy.low, accuracy.high),
          evidence=lambda: _confusions(evaluation) + "\n\n" + _errors_table(evaluation),
          hint="add training examples phrased like the mistakes above (targeted augmentation), retrain, "
               "and rerun; change the threshold only as a reviewed decision.")
    return accuracy


@Family.CLASSIFICATION.gate(page="statistics.md", checks="macro-F1 with a seeded bootstrap interval")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_macro_f1_above(model, examples: GoldenSet, *, min_f1: float, slice: str | None = None,
                          bound: str = "point", confidence: float = CONFIDENCE, at_least_examples: int | None = None,
                          seed: int = 0) -> Rate:
    """Macro-F1 over the intents (of one slice, if given) must be >= min_f1; with bound="lower", the lower
    end of its seeded bootstrap interval must. Every intent weighs the same, so rare intents count."""
    __tracebackhide__ = True
    caller = "assert_macro_f1_above"
    golden = valid.golden(caller, examples, model)
    min_f1 = valid.share(caller, "min_f1", min_f1)
    _options(caller, bound, confidence, at_least_examples)
    seed = valid.count(caller, "seed", seed, minimum=0)
    slice = valid.slice_name(caller, slice)
    evaluation = _evaluation(model, golden, slice)
    where = f"slice {slice!r}" if slice else "golden set"
    n = len(evaluation.golden)
    check_sample_size(caller, where, n, min_f1, bound, at_least_examples, confidence)
    f1 = evaluation.macro_f1_rate(confidence, seed)
    recall = evaluation.recall_rates(confidence)
    check(caller, _metric(f"macro-F1 on {where}", f1, bound, f"{n} examples, {len(recall)} intents"),
          f1.bound(bound), min_f1, ">=", interval=(f1.low, f1.high),
          evidence=lambda: "recall per intent:\n" + rates_table(recall, "recall") + "\n\n" + _confusions(evaluation),
          hint="macro-F1 weighs every intent alike: look at the intents with the lowest recall above first.")
    return f1


@Family.CLASSIFICATION.gate(page="statistics.md",
                            checks="recall of each named intent (default: all), each with its interval")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_recall_above(model, examples: GoldenSet, *, min_recall: float, intents: Sequence[str] | None = None,
                        bound: str = "point", confidence: float = CONFIDENCE,
                        at_least_examples: int | None = None) -> dict[str, Rate]:
    """Recall of each intent (default: every intent with examples) must be >= min_recall; with
    bound="lower", the lower end of each intent's exact binomial interval must."""
    __tracebackhide__ = True
    caller = "assert_recall_above"
    golden = valid.golden(caller, examples, model)
    min_recall = valid.share(caller, "min_recall", min_recall)
    _options(caller, bound, confidence, at_least_examples)
    named = valid.intents(caller, model, intents)
    evaluation = _evaluation(model, golden, None)
    recall = evaluation.recall_rates(confidence)
    wanted = named if named is not None else list(recall)
    unknown = [i for i in wanted if i not in recall]
    if unknown:
        raise MangaAssistInputError(
            f"{caller}: intent(s) {unknown} have no examples in {golden.source} "
            f"(intents with examples: {', '.join(recall)}).",
            "Name intents that the examples cover, or add examples of them.",
        )
    for i in wanted:
        check_sample_size(caller, f"intent {i!r}", recall[i].n, min_recall, bound, at_least_examples, confidence)
    failing = [i for i in wanted if recall[i].bound(bound) < min_recall]
    worst = min(wanted, key=lambda i: recall[i].bound(bound))
    detail = f"lowest of {len(failing)} failing intent(s)" if failing else f"lowest of {len(wanted)} intent(s)"

    def evidence() -> str:
        table = rates_table({i: recall[i] for i in wanted}, "recall", {i: "FAIL" for i in failing})
        return table + "\n\n" + "\n\n".join(_errors_table(evaluation, i).replace(
            "most confident mistakes", f"missed {i} examples") for i in failing)

    check(caller, _metric(f"recall of {worst!r}", recall[worst], bound, detail),
          recall[worst].bound(bound), min_recall, ">=", interval=(recall[worst].low, recall[worst].high),
          evidence=evidence, hint="rare intents usually need more varied training phrasings or a larger class weight.")
    return {i: recall[i] for i in wanted}


@Family.CLASSIFICATION.gate(page="statistics.md",
                            checks="logits of messages run alone, in mixed-length batches and padded to the maximum "
                                   "agree, on a seeded sample of at most 24 messages (the row says \"a seeded sample "
                                   "of 24 of the 60 messages\")")
def assert_batch_invariant(model, examples, *, max_logit_diff: float = TOLERANCE) -> InvarianceResult:
    """A message's logits must agree within max_logit_diff whether it runs alone, in a mixed-length batch or
    padded to the maximum length, and no routed intent may change (analysis.invariance), on a seeded sample of
    at most analysis.invariance.MAX_TEXTS messages (the row says how many of how many). Examples: a GoldenSet
    or a list of messages (labels are not needed)."""
    __tracebackhide__ = True
    caller = "assert_batch_invariant"
    texts = valid.texts(caller, examples)
    max_logit_diff = valid.number(caller, "max_logit_diff", max_logit_diff, low=0.0)
    result = batch_invariance(model, texts, max_logit_diff)
    worst = max(result.max_abs_diff, key=result.max_abs_diff.get)
    hint = ("every batched gate assumes batch-independent logits: load with attn_implementation='eager', "
            "check that the attention mask reaches every layer, or disable fused attention kernels.")
    sample = (f"a seeded sample of {result.n_texts} of the {len(texts)} messages" if result.n_texts < len(texts)
              else f"{result.n_texts} messages")
    check(caller, f"max |logit diff| {worst} vs alone ({sample}, {len(result.route_changes)} route change(s))", result.max_abs_diff[worst], max_logit_diff, "<=",
          passed=result.ok, evidence=result.table, hint=hint)
    return result


@Family.CLASSIFICATION.gate(page="statistics.md",
                            checks="expected calibration error of the top-label confidence (15 equal-width bins) "
                                   "with a seeded bootstrap interval; lists the bins that add most to it")
def assert_confidence_calibrated(model, examples: GoldenSet, *, max_ece: float, bound: str = "point",
                                 seed: int = 0) -> Calibration:
    """The expected calibration error (analysis.calibration) of the model's top-label confidence on the examples
    must be <= max_ece; with bound="upper", the upper end of its bootstrap interval must. Returns the
    Calibration (its .ece a float carrying .low, .high, .n, and every bin)."""
    __tracebackhide__ = True
    caller = "assert_confidence_calibrated"
    golden = valid.golden(caller, examples, model)
    max_ece = valid.share(caller, "max_ece", max_ece)
    valid.choice(caller, "bound", bound, UPPER_BOUNDS)
    seed = valid.count(caller, "seed", seed, minimum=0)
    evaluation = evaluate(model, golden)
    check_sample_size(caller, "golden set", len(golden), max_ece, "point", None)
    result = calibration(evaluation.confidence(), evaluation.correct, seed=seed)
    ece = result.ece
    check(caller, _metric("expected calibration error on golden set", ece, bound,
                          f"{ece.n} examples, top-label confidence in {N_BINS} equal-width bins"),
          ece.bound(bound), max_ece, "<=", interval=(ece.low, ece.high), evidence=lambda: _bins_table(result),
          hint="confidence above accuracy (gap > 0) is overconfidence: fit a temperature on held-out data "
               "(temperature scaling) or add training examples like those of the worst bins, and rerun.")
    return result


def _bins_table(result: Calibration) -> str:
    rows = [(f"({b.low:.2f}, {b.high:.2f}]", b.n, f"{b.confidence:.3f}", f"{b.accuracy:.3f}", f"{b.gap:+.3f}",
             f"{b.contribution:.4f}") for b in result.worst(WORST_BINS)]
    return "bins that add most to the error:\n" + format_table(
        ("confidence", "examples", "mean confidence", "accuracy", "gap", "adds to ECE"), rows)
