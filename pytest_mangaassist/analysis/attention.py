"""Attention redistribution (the source analysis' BertViz question): how much attention a layer/head
puts on a set of words (e.g. the domain's own words), in one model against another.

Mass of head h of layer l on a text = the mean, over query tokens, of the attention weight summed
over the key tokens that belong to the set's words (tokens are matched to the user's words as in
attribution.encode_words). query="cls" uses the [CLS] query only, the one the classifier reads at
the top. Attention says where a head looks, not what drives the logit (Jain & Wallace 2019):
pair a shift with an attribution audit before reading it as importance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MangaAssistInputError
from ..loading.recording import record
from .attribution import encode_words, normalize_word
from .checks import choice
from .sweep import attention_sweep


@dataclass(frozen=True)
class AttentionMass:
    mass: np.ndarray  # (texts, layers, heads): attention mass on the word set, encoder layers 1..L
    texts: tuple[str, ...]  # the texts that contain a word of the set, in input order

    def mean(self) -> np.ndarray:
        return self.mass.mean(axis=0)  # (layers, heads)


def key_positions(model, text: str, words: set[str]) -> np.ndarray:
    """Boolean mask over text's tokens: the tokens of the words in the set."""
    encoded = encode_words(model.tokenizer, text, model.max_length)
    hits = {i for i, w in enumerate(encoded.words) if normalize_word(w) in words}
    return np.array([w in hits for w in encoded.word_of_token])


def attention_mass(model, texts: list[str], words, query: str = "all") -> AttentionMass:
    """Attention mass on `words` per text, layer and head, from the shared attention sweep."""
    choice("attention_mass", "query", query, ("all", "cls"))  # all: mean over every query token; cls: [CLS]'s
    words = {normalize_word(w) for w in words}
    masks = [key_positions(model, t, words) for t in texts]
    kept = [i for i, m in enumerate(masks) if m.any()]
    if not kept:
        raise MangaAssistInputError(f"None of the {len(texts)} texts contains any of the words {sorted(words)}.",
                                    "Pass texts that contain the words whose attention you want to measure.")
    attentions = attention_sweep(model, [texts[i] for i in kept])
    rows = []
    for att, i in zip(attentions, kept):
        on_set = att[..., masks[i]].sum(axis=-1)  # (layers, heads, queries)
        rows.append(on_set[..., 0] if query == "cls" else on_set.mean(axis=-1))
    return AttentionMass(np.stack(rows), tuple(texts[i] for i in kept))


def write_head_view(model, text: str, path) -> bool:
    """Write bertviz's head view of text as HTML when bertviz is installed; False when it is not."""
    import importlib.util

    if importlib.util.find_spec("bertviz") is None:
        return False
    import torch
    from bertviz import head_view

    encoded = model.encode([text])
    with torch.no_grad():
        attentions = record(model, encoded, attentions=True).attentions
    tokens = model.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    html = head_view(attentions, tokens, html_action="return")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html.data)
    return True
