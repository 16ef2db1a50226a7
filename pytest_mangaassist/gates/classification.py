"""Classification gates: golden-set accuracy and macro-F1 (overall or per slice) and per-intent recall.

Each gate runs its analysis, compares with the threshold (records.check) and raises a GateFailure whose
message carries the measured value with its confidence interval, the limit and the examples to
look at. bound="point" gates the measured rate, bound="lower" the lower end of its interval (the
threshold is then cleared with the stated confidence, not by the luck of a few hundred examples).
A slice or intent with too few examples to decide is refused with the number it would need.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..analysis.classification import Evaluation, evaluate
from ..analysis.invariance import TOLERANCE, InvarianceResult, batch_invariance
from ..analysis.intervals import CONFIDENCE, Rate, check_bound, check_sample_size, rates_table
from ..errors import MangaAssistInputError, format_table
from ..loading.golden import GoldenSet, check_labels_match
from .records import check

WORST = 8
FAMILY = "classification"


def _evaluation(model, golden: GoldenSet, slice: str | None) -> Evaluation:
    if not isinstance(golden, GoldenSet):
        raise MangaAssistInputError(f"Expected a GoldenSet, got {type(golden).__name__}.",
                                    "Pass the golden_set fixture or pytest_mangaassist.load_golden_set(path).")
    check_labels_match(golden, model.labels, model.source, require_all=False)
    return evaluate(model, golden.only_slice(slice) if slice else golden)


def _errors_table(evaluation: Evaluation, intent: str | None = None) -> str:
    rows = [(_clip(text), expected, predicted, conf) for text, expected, predicted, conf
            in evaluation.errors(WORST, intent)]
    return "most confident mistakes:\n" + format_table(("text", "expected", "predicted", "confidence"), rows)


def _confusions(evaluation: Evaluation) -> str:
    pairs = Counter((ex.intent, p) for ex, p in zip(evaluation.golden, evaluation.predicted) if ex.intent != p)
    rows = [(expected, predicted, count) for (expected, predicted), count in pairs.most_common(5)]
    return "most frequent confusions:\n" + format_table(("expected", "predicted", "count"), rows)


def _clip(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _metric(name: str, rate: Rate, bound: str, detail: str) -> str:
    """'accuracy on golden set (330 examples, 22 wrong; 95% interval [0.90, 0.96], Clopper-Pearson)',
    prefixed by the bound when the gate is on one."""
    interval = f"{rate.confidence:.0%} interval {rate.interval()}, {rate.method}"
    if bound == "point":
        return f"{name} ({detail}; {interval})"
    return f"{rate.confidence:.0%} {bound} bound of {name} ({detail}; {name} {rate.estimate:.3f}, {interval})"


def assert_accuracy_above(model, golden: GoldenSet, min_accuracy: float, slice: str | None = None, *,
                          bound: str = "point", confidence: float = CONFIDENCE,
                          min_examples: int | None = None) -> Rate:
    """Golden-set accuracy (of one slice, if given) must be >= min_accuracy; with bound="lower", the lower
    end of its exact binomial interval must. Returns the accuracy (a float carrying .low, .high, .n)."""
    __tracebackhide__ = True
    check_bound(bound, ("point", "lower"), "assert_accuracy_above")
    evaluation = _evaluation(model, golden, slice)
    where = f"slice {slice!r}" if slice else "golden set"
    n = len(evaluation.golden)
    check_sample_size("assert_accuracy_above", where, n, min_accuracy, bound, min_examples, confidence)
    accuracy = evaluation.accuracy_rate(confidence)
    check("assert_accuracy_above",
          _metric(f"accuracy on {where}", accuracy, bound, f"{n} examples, {int((~evaluation.correct).sum())} wrong"),
          accuracy.bound(bound), min_accuracy, ">=", family=FAMILY, interval=(accuracy.low, accuracy.high),
          evidence=lambda: _confusions(evaluation) + "\n\n" + _errors_table(evaluation),
          hint="add training examples phrased like the mistakes above (targeted augmentation), retrain, "
               "and rerun; change the threshold only as a reviewed decision.")
    return accuracy


def assert_macro_f1_above(model, golden: GoldenSet, min_f1: float, slice: str | None = None, *,
                          bound: str = "point", confidence: float = CONFIDENCE, min_examples: int | None = None,
                          seed: int = 0) -> Rate:
    """Macro-F1 over the intents (of one slice, if given) must be >= min_f1; with bound="lower", the lower
    end of its seeded bootstrap interval must. Every intent weighs the same, so rare intents count."""
    __tracebackhide__ = True
    check_bound(bound, ("point", "lower"), "assert_macro_f1_above")
    evaluation = _evaluation(model, golden, slice)
    where = f"slice {slice!r}" if slice else "golden set"
    n = len(evaluation.golden)
    check_sample_size("assert_macro_f1_above", where, n, min_f1, bound, min_examples, confidence)
    f1 = evaluation.macro_f1_rate(confidence, seed)
    recall = evaluation.recall_rates(confidence)
    check("assert_macro_f1_above", _metric(f"macro-F1 on {where}", f1, bound, f"{n} examples, {len(recall)} intents"),
          f1.bound(bound), min_f1, ">=", family=FAMILY, interval=(f1.low, f1.high),
          evidence=lambda: "recall per intent:\n" + rates_table(recall, "recall") + "\n\n" + _confusions(evaluation),
          hint="macro-F1 weighs every intent alike: look at the intents with the lowest recall above first.")
    return f1


def assert_recall_above(model, golden: GoldenSet, min_recall: float,
                        intents: Sequence[str] | None = None, *, bound: str = "point",
                        confidence: float = CONFIDENCE, min_examples: int | None = None) -> dict[str, Rate]:
    """Recall of each intent (default: every intent in the golden set) must be >= min_recall; with
    bound="lower", the lower end of each intent's exact binomial interval must."""
    __tracebackhide__ = True
    check_bound(bound, ("point", "lower"), "assert_recall_above")
    evaluation = _evaluation(model, golden, None)
    recall = evaluation.recall_rates(confidence)
    wanted = list(intents) if intents is not None else list(recall)
    unknown = [i for i in wanted if i not in recall]
    if unknown:
        raise MangaAssistInputError(
            f"assert_recall_above: intent(s) {unknown} have no examples in {golden.source} "
            f"(intents with examples: {', '.join(recall)}).",
            "Name intents of the model's id2label that the golden set covers.",
        )
    for i in wanted:
        check_sample_size("assert_recall_above", f"intent {i!r}", recall[i].n, min_recall, bound, min_examples,
                          confidence)
    failing = [i for i in wanted if recall[i].bound(bound) < min_recall]
    worst = min(wanted, key=lambda i: recall[i].bound(bound))
    detail = f"lowest of {len(failing)} failing intent(s)" if failing else f"lowest of {len(wanted)} intent(s)"

    def evidence() -> str:
        table = rates_table({i: recall[i] for i in wanted}, "recall", {i: "FAIL" for i in failing})
        return table + "\n\n" + "\n\n".join(_errors_table(evaluation, i).replace(
            "most confident mistakes", f"missed {i} examples") for i in failing)

    check("assert_recall_above", _metric(f"recall of {worst!r}", recall[worst], bound, detail),
          recall[worst].bound(bound), min_recall, ">=", family=FAMILY, interval=(recall[worst].low, recall[worst].high),
          evidence=evidence, hint="rare intents usually need more varied training phrasings or a larger class weight.")
    return {i: recall[i] for i in wanted}


def assert_batch_invariant(model, texts, tolerance: float = TOLERANCE) -> InvarianceResult:
    """A message's logits must agree, within tolerance, whether it runs alone, in a mixed-length batch or
    padded to the maximum length, and no routed intent may change (analysis.invariance)."""
    __tracebackhide__ = True
    texts = list(texts.texts if isinstance(texts, GoldenSet) else texts)
    if not texts:
        raise MangaAssistInputError("assert_batch_invariant: no texts given.",
                                    "Pass the golden set or a list of messages.")
    result = batch_invariance(model, texts, tolerance)
    worst = max(result.max_abs_diff, key=result.max_abs_diff.get)
    hint = ("every batched gate assumes batch-independent logits: load with attn_implementation='eager', "
            "check that the attention mask reaches every layer, or disable fused attention kernels.")
    check("assert_batch_invariant", f"max |logit diff| {worst} vs alone ({result.n_texts} messages, "
          f"{len(result.route_changes)} route change(s))", result.max_abs_diff[worst], tolerance, "<=",
          family=FAMILY, passed=result.ok, evidence=result.table, hint=hint)
    return result
