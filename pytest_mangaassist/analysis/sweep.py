"""The activation sweep: one batched, no-grad forward pass per (model, texts), shared by every gate.

It yields the logits and the [CLS] state of every layer (embeddings first). Results are kept on
the model for the session and on disk under model.cache_dir, keyed by the model's content hash
(checkpoint files, or in-memory weights and vocabulary), the texts and the tokenizer length,
so a second pytest run (or an xdist worker) reuses them. attention_sweep and token_state_sweep
store, the same way, every layer's attention weights and every token's states (attention shift,
token trajectories).
"""

from __future__ import annotations

import numpy as np

from ..cache.store import cached_on_model, texts_hash
from ..loading.model import ForwardResult

SWEEP_FORMAT = "sweep-1"  # bump when what a sweep stores changes


def activation_sweep(model, texts: list[str]) -> ForwardResult:
    texts = list(texts)

    def compute() -> dict:
        result = model.forward(texts, cls_states=True)
        return {"logits": result.logits, "cls_states": result.cls_states}

    arrays = cached_on_model(model, "sweep", (SWEEP_FORMAT, texts_hash(texts)), compute)
    return ForwardResult(arrays["logits"], arrays["cls_states"])


def _ragged(per_text: list, lengths: list[int]) -> dict:
    """Arrays of different token counts, stored flat with their token counts (npz holds no lists)."""
    return {"flat": np.concatenate([a.reshape(-1) for a in per_text]), "lengths": np.array(lengths)}


def _unragged(arrays: dict, shape_of) -> list[np.ndarray]:
    """Inverse of _ragged; shape_of(token count) gives one text's array shape."""
    out, start = [], 0
    for n in arrays["lengths"].tolist():
        shape = shape_of(n)
        size = int(np.prod(shape))
        out.append(arrays["flat"][start:start + size].reshape(shape))
        start += size
    return out


def attention_sweep(model, texts: list[str]) -> list[np.ndarray]:
    """Per text, the attention weights (layers, heads, tokens, tokens), unpadded; cached like the sweep."""
    texts = list(texts)

    def compute() -> dict:
        attentions = model.forward(texts, attentions=True).attentions
        return {**_ragged(attentions, [a.shape[-1] for a in attentions]), "heads": np.array(attentions[0].shape[1])}

    arrays = cached_on_model(model, "attentions", (SWEEP_FORMAT, texts_hash(texts)), compute)
    heads = int(arrays["heads"])
    return _unragged(arrays, lambda n: (model.num_layers, heads, n, n))


def token_state_sweep(model, texts: list[str]) -> list[np.ndarray]:
    """Per text, every token's hidden state at every layer (layers + 1, tokens, hidden); cached like the sweep."""
    texts = list(texts)

    def compute() -> dict:
        states = model.forward(texts, hidden_states=True).hidden_states
        return _ragged(states, [s.shape[1] for s in states])

    arrays = cached_on_model(model, "token-states", (SWEEP_FORMAT, texts_hash(texts)), compute)
    return _unragged(arrays, lambda n: (model.num_layers + 1, n, model.hidden_size))
