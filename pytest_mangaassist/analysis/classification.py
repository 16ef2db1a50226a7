"""Accuracy, per-intent recall, macro-F1 and per-slice accuracy of a model on a golden set (scikit-learn
metrics), each also with its confidence interval (analysis.intervals)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..loading.golden import GoldenSet
from .intervals import CONFIDENCE, Rate, binomial_rate, macro_f1_rate
from .sweep import activation_sweep


@dataclass(frozen=True)
class Evaluation:
    """Predictions of one model on one golden set, aligned with golden.examples."""

    golden: GoldenSet
    labels: tuple[str, ...]
    predicted: tuple[str, ...]
    probabilities: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return np.array([p == ex.intent for p, ex in zip(self.predicted, self.golden)])

    @property
    def accuracy(self) -> float:
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(self.golden.intents, self.predicted))

    def recall(self) -> dict[str, float]:
        """Recall of every intent that has golden examples."""
        from sklearn.metrics import recall_score

        present = [label for label in self.labels if label in set(self.golden.intents)]
        scores = recall_score(self.golden.intents, self.predicted, labels=present, average=None, zero_division=0)
        return dict(zip(present, map(float, scores)))

    @property
    def macro_f1(self) -> float:
        from sklearn.metrics import f1_score

        return float(f1_score(self.golden.intents, self.predicted, average="macro", zero_division=0))

    def accuracy_rate(self, confidence: float = CONFIDENCE) -> Rate:
        """Accuracy with its exact binomial interval (examples are independent trials)."""
        return binomial_rate(int(self.correct.sum()), len(self.predicted), confidence)

    def recall_rates(self, confidence: float = CONFIDENCE) -> dict[str, Rate]:
        """Recall of every intent that has golden examples, each with its exact binomial interval."""
        correct, intents = self.correct, np.array(self.golden.intents)
        return {label: binomial_rate(int(correct[intents == label].sum()), n, confidence)
                for label, n in self.support().items()}

    def macro_f1_rate(self, confidence: float = CONFIDENCE, seed: int = 0) -> Rate:
        """Macro-F1 with a seeded bootstrap interval over examples."""
        return macro_f1_rate(self.golden.intents, self.predicted, confidence, seed=seed)

    def support(self) -> dict[str, int]:
        intents = self.golden.intents
        return {label: intents.count(label) for label in self.labels if label in intents}

    def slice_accuracy(self) -> dict[str, tuple[float, int]]:
        correct = self.correct
        out = {}
        for name in self.golden.slice_names:
            mask = np.array([ex.slice == name for ex in self.golden])
            out[name] = (float(correct[mask].mean()), int(mask.sum()))
        return out

    def slice_accuracy_rates(self, confidence: float = CONFIDENCE) -> dict[str, Rate]:
        """Accuracy of every slice, each with its exact binomial interval."""
        correct = self.correct
        return {name: binomial_rate(int(correct[mask].sum()), int(mask.sum()), confidence)
                for name in self.golden.slice_names
                for mask in [np.array([ex.slice == name for ex in self.golden])]}

    def confidence(self) -> np.ndarray:
        """Probability the model gave its own prediction."""
        return self.probabilities.max(axis=1)

    def errors(self, limit: int = 10, intent: str | None = None) -> list[tuple[str, str, str, float]]:
        """The most confident mistakes first: (text, expected, predicted, confidence)."""
        conf = self.confidence()
        rows = [
            (ex.text, ex.intent, pred, float(conf[i]))
            for i, (ex, pred) in enumerate(zip(self.golden, self.predicted))
            if pred != ex.intent and (intent is None or ex.intent == intent)
        ]
        return sorted(rows, key=lambda row: -row[3])[:limit]


def evaluate(model, golden: GoldenSet) -> Evaluation:
    """The model's predictions on the golden set, computed once per (model, golden set content)."""

    def compute() -> Evaluation:
        probabilities = activation_sweep(model, golden.texts).probabilities
        predicted = tuple(model.labels[i] for i in probabilities.argmax(axis=1))
        return Evaluation(golden, model.labels, predicted, probabilities)

    return model.memo(("evaluate", golden.content_hash), compute)
