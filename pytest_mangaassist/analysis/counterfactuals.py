"""Counterfactual edits (the source analysis' LIT question) and the routing policy they feed.

An edit is a pair (original, edited); the analyses here measure what it does to the prediction
and to one intent's probability, in one batched forward pass over both sides. Routing: the
classifier's top intent is auto-routed only when its probability reaches that intent's
threshold; otherwise the message goes to the intent's fallback route. Which policy a gate uses (the one
given, the suite's, a profile's, or argmax) is decided in pytest_mangaassist.domain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import MangaAssistInputError
from .attribution import normalize_word

DEFAULT_FALLBACK = "fallback"


def remove_words(text: str, words) -> str:
    """text without the whitespace words whose normalized form is in words (the causal check of
    an attribution finding: take the words away and see what the model does)."""
    words = {normalize_word(w) for w in words}
    kept = [w for w in text.split() if normalize_word(w) not in words]
    return re.sub(r"\s+", " ", " ".join(kept)).strip()


@dataclass(frozen=True)
class EditEffect:
    originals: tuple[str, ...]
    edited: tuple[str, ...]
    before: np.ndarray  # (pairs, labels) probabilities on the originals
    after: np.ndarray
    labels: tuple[str, ...]

    def predicted(self, which: str) -> list[str]:
        probs = self.before if which == "before" else self.after
        return [self.labels[i] for i in probs.argmax(axis=1)]

    def shift(self, intent: str) -> np.ndarray:
        """p(intent | edited) - p(intent | original), per pair."""
        k = self.labels.index(intent)
        return self.after[:, k] - self.before[:, k]


def edit_effect(model, pairs) -> EditEffect:
    """Probabilities before and after each edit, in one forward pass over both sides."""
    pairs = [tuple(p) for p in pairs]
    if not pairs or any(len(p) != 2 or not all(isinstance(t, str) and t.strip() for t in p) for p in pairs):
        raise MangaAssistInputError(
            f"Expected a non-empty list of (original, edited) text pairs, got {pairs[:2]!r}{'...' if len(pairs) > 2 else ''}.",
            "Pass pairs like [(\"the original message\", \"the original message, edited\")].")
    originals, edited = zip(*pairs)
    probs = model.forward(list(originals) + list(edited)).probabilities
    return EditEffect(originals, edited, probs[:len(pairs)], probs[len(pairs):], tuple(model.labels))


@dataclass(frozen=True)
class RoutingPolicy:
    """Per-intent auto-route thresholds and fallback routes; intents not named auto-route at any
    confidence (default_threshold) and fall back to default_fallback."""

    thresholds: Mapping[str, float] = field(default_factory=dict)
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    default_threshold: float = 0.0
    default_fallback: str = DEFAULT_FALLBACK
    source: str = field(default="a policy given to the gate", compare=False)  # where it came from, for the rows

    def route(self, intent: str, confidence: float) -> str:
        if confidence >= self.thresholds.get(intent, self.default_threshold):
            return intent
        return self.fallbacks.get(intent, self.default_fallback)

    def check_labels(self, labels) -> None:
        unknown = sorted((set(self.thresholds) | set(self.fallbacks)) - set(labels))
        if unknown:
            raise MangaAssistInputError(f"The routing policy ({self.source}) names label(s) {unknown} the model "
                                        "does not know.", f"Use labels of the model's id2label: {', '.join(labels)}.")


@dataclass(frozen=True)
class Routing:
    text: str
    intent: str
    confidence: float
    route: str


def route(model, texts: list[str], policy: RoutingPolicy) -> list[Routing]:
    """Each text's top intent, its confidence, and the route the policy gives it."""
    policy.check_labels(model.labels)
    probs = model.forward(list(texts)).probabilities
    out = []
    for text, p in zip(texts, probs):
        intent = model.labels[int(p.argmax())]
        out.append(Routing(text, intent, float(p.max()), policy.route(intent, float(p.max()))))
    return out
