"""Token trajectories (the source analysis' Ecco question): one word's hidden state through the
layers, in two sets of contexts ("return my order" vs "return to this series").

The word's state at a layer is the mean of its tokens' states (a word may be several word
pieces). Separation at a layer = mean cosine distance between the two sets' states minus the
mean cosine distance within a set (pairs inside A and inside B, pooled): positive when the
encoder gives the word two distinguishable senses, about 0 when context does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MangaAssistInputError, format_table
from .attribution import encode_words, normalize_word
from .layers import layer_name
from .sweep import token_state_sweep


@dataclass(frozen=True)
class SenseSeparation:
    word: str
    between: tuple[float, ...]  # per layer, embeddings first
    within: tuple[float, ...]

    @property
    def separation(self) -> tuple[float, ...]:
        return tuple(b - w for b, w in zip(self.between, self.within))

    def table(self, from_layer: int | None = None) -> str:
        rows = [(layer_name(l), b, w, s, "<- gated" if from_layer is not None and l >= from_layer else "")
                for l, (b, w, s) in enumerate(zip(self.between, self.within, self.separation))]
        return format_table(("layer", "between-context", "within-context", "separation", ""), rows)


def word_trajectory(model, word: str, contexts: list[str]) -> np.ndarray:
    """(contexts, layers + 1, hidden): the state of the first occurrence of word in each context."""
    target = normalize_word(word)
    positions = []
    for text in contexts:
        encoded = encode_words(model.tokenizer, text, model.max_length)
        hits = [i for i, w in enumerate(encoded.words) if normalize_word(w) == target]
        tokens = [t for t, w in enumerate(encoded.word_of_token) if hits and w == hits[0]]
        if not tokens:
            raise MangaAssistInputError(f"The context {text!r} does not contain the word {word!r} (within the "
                                        f"model's {model.max_length} tokens).",
                                        f"Give only contexts in which {word!r} appears as a word of its own.")
        positions.append(tokens)
    states = token_state_sweep(model, list(contexts))
    return np.stack([s[:, tokens].mean(axis=1) for s, tokens in zip(states, positions)])


def _cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - a @ b.T


def _mean_within(x: np.ndarray) -> tuple[float, int]:
    d = _cosine_distances(x, x)
    upper = np.triu_indices(len(x), k=1)
    return float(d[upper].sum()), len(upper[0])


def sense_separation(model, word: str, contexts_a: list[str], contexts_b: list[str]) -> SenseSeparation:
    """Between- and within-context cosine distance of word's state, per layer."""
    if len(contexts_a) < 2 or len(contexts_b) < 2:
        raise MangaAssistInputError(
            f"sense_separation needs at least 2 contexts per sense (got {len(contexts_a)} and {len(contexts_b)}).",
            "Give several contexts of each sense, e.g. 3-10 messages per sense.")
    a = word_trajectory(model, word, contexts_a)
    b = word_trajectory(model, word, contexts_b)
    between, within = [], []
    for layer in range(a.shape[1]):
        between.append(float(_cosine_distances(a[:, layer], b[:, layer]).mean()))
        (sum_a, n_a), (sum_b, n_b) = _mean_within(a[:, layer]), _mean_within(b[:, layer])
        within.append((sum_a + sum_b) / (n_a + n_b))
    return SenseSeparation(word, tuple(between), tuple(within))
