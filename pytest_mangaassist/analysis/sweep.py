"""The activation sweep: one batched, no-grad forward pass per (model, texts), shared by every gate.

activation_sweep yields the logits and the [CLS] state of every layer (embeddings first);
attention_sweep every layer's attention weights and token_state_sweep every token's states, per text
and unpadded (attention shift, token trajectories).

Pure: model and texts in, arrays out. Each sweep is memoised on the model object for its lifetime
(model.memo, memory only), because several analyses read the same sweep; the disk cache is not
this module's business: pytest_mangaassist.cache.analyses wraps these functions (same names and
signatures) and shares this memo, so a sweep it loaded from disk is what the analyses here see.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..loading.model import ForwardResult

SWEEP_FORMAT = "sweep-2"  # bump when what a sweep computes changes


def memo_key(kind: str, texts: list[str]) -> tuple[str, str, str]:
    """The key a sweep is memoised under on the model (cache.analyses uses the same)."""
    digest = hashlib.sha256()
    for text in texts:  # length-prefixed: a NUL inside a text cannot make two lists hash alike
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)
    return ("sweep", kind, f"{SWEEP_FORMAT}:{len(texts)}:{digest.hexdigest()}")


def activation_sweep(model, texts: list[str]) -> ForwardResult:
    """Logits and every layer's [CLS] state of each text, in input order."""
    texts = list(texts)

    def compute() -> ForwardResult:
        result = model.forward(texts, cls_states=True)
        return ForwardResult(result.logits, result.cls_states)

    return model.memo(memo_key("activations", texts), compute)


def attention_sweep(model, texts: list[str]) -> list[np.ndarray]:
    """Per text, the attention weights (layers, heads, tokens, tokens), unpadded."""
    texts = list(texts)
    return model.memo(memo_key("attentions", texts), lambda: list(model.forward(texts, attentions=True).attentions))


def token_state_sweep(model, texts: list[str]) -> list[np.ndarray]:
    """Per text, every token's hidden state at every layer (layers + 1, tokens, hidden)."""
    texts = list(texts)
    return model.memo(memo_key("token-states", texts),
                      lambda: list(model.forward(texts, hidden_states=True).hidden_states))
