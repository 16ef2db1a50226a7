"""The activation sweep: one batched, no-grad forward pass per (model, texts), shared by every gate.

It yields the logits and the [CLS] state of every layer (embeddings first). Results are kept on
the model for the session and on disk under model.cache_dir, keyed by the model's content hash
(checkpoint files, or in-memory weights and vocabulary), the texts and the tokenizer length,
so a second pytest run (or an xdist worker) reuses them.
"""

from __future__ import annotations

from ..cache import cached_on_model, texts_hash
from ..model import ForwardResult

SWEEP_FORMAT = "sweep-1"  # bump when what a sweep stores changes


def activation_sweep(model, texts: list[str]) -> ForwardResult:
    texts = list(texts)

    def compute() -> dict:
        result = model.forward(texts, cls_states=True)
        return {"logits": result.logits, "cls_states": result.cls_states}

    arrays = cached_on_model(model, "sweep", (SWEEP_FORMAT, texts_hash(texts)), compute)
    return ForwardResult(arrays["logits"], arrays["cls_states"])
