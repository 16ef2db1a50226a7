"""Classification gates: golden-set accuracy (overall or per slice) and per-intent recall.

Each gate runs its analysis, compares with the threshold and raises a GateFailure whose
message carries the measured value, the limit and the examples to look at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..analysis.classification import Evaluation, evaluate
from ..errors import GateFailure, MangaAssistInputError, format_table
from ..golden import GoldenSet, check_labels_match

WORST = 8


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


def assert_accuracy_above(model, golden: GoldenSet, min_accuracy: float, slice: str | None = None) -> float:
    """Golden-set accuracy (of one slice, if given) must be >= min_accuracy. Returns the accuracy."""
    __tracebackhide__ = True
    evaluation = _evaluation(model, golden, slice)
    accuracy = evaluation.accuracy
    if accuracy < min_accuracy:
        where = f"slice {slice!r}" if slice else "golden set"
        raise GateFailure(
            "assert_accuracy_above",
            f"accuracy on {where} ({len(evaluation.golden)} examples, {int((~evaluation.correct).sum())} wrong)",
            accuracy, min_accuracy, ">=",
            evidence=_confusions(evaluation) + "\n\n" + _errors_table(evaluation),
            hint="add training examples phrased like the mistakes above (targeted augmentation), retrain, "
                 "and rerun; change the threshold only as a reviewed decision.",
        )
    return accuracy


def assert_recall_above(model, golden: GoldenSet, min_recall: float,
                        intents: Sequence[str] | None = None) -> dict[str, float]:
    """Recall of each intent (default: every intent in the golden set) must be >= min_recall."""
    __tracebackhide__ = True
    evaluation = _evaluation(model, golden, None)
    recall = evaluation.recall()
    wanted = list(intents) if intents is not None else list(recall)
    unknown = [i for i in wanted if i not in recall]
    if unknown:
        raise MangaAssistInputError(
            f"assert_recall_above: intent(s) {unknown} have no examples in {golden.source} "
            f"(intents with examples: {', '.join(recall)}).",
            "Name intents of the model's id2label that the golden set covers.",
        )
    failing = [i for i in wanted if recall[i] < min_recall]
    if failing:
        support = evaluation.support()
        worst = min(failing, key=recall.get)
        table = format_table(("intent", "recall", "examples", ""),
                             [(i, recall[i], support[i], "FAIL" if i in failing else "") for i in wanted])
        raise GateFailure(
            "assert_recall_above", f"recall of {worst!r} (lowest of {len(failing)} failing intent(s))",
            recall[worst], min_recall, ">=",
            evidence=table + "\n\n" + "\n\n".join(_errors_table(evaluation, i).replace(
                "most confident mistakes", f"missed {i} examples") for i in failing),
            hint="rare intents usually need more varied training phrasings or a larger class weight.",
        )
    return {i: recall[i] for i in wanted}
