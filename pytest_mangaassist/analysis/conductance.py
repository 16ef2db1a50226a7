"""Layer conductance (captum LayerConductance): which encoder layers carry an intent's attribution.

The path runs from the baseline's word embeddings ([PAD] for every non-special token, as in
attribution.py) to the message's, through inputs_embeds; conductance is taken at each encoder
layer's output and summed over the hidden units, giving one score per token and layer.
Every layer's output is a cut of the network, so each layer's signed total is the same
F(x) - F(x') (completeness, checked in the tests); what differs between layers is how strongly
token states push for and against the intent. A layer's share = its absolute token mass over the
sum of all layers' absolute masses, pooled over the messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table
from ..loading.adapters import replace_states
from .attribution import frozen_weights, baseline_token_id
from .layers import layer_name

CONDUCTANCE_FORMAT = "conductance-1"  # bump when the computation changes (part of the cache key)
CONDUCTANCE_STEPS = 64  # conductance converges to first order only: 32 steps left 15% completeness error


@dataclass(frozen=True)
class LayerConductance:
    mass: np.ndarray  # (layers,) absolute token conductance per encoder layer, pooled over messages
    totals: np.ndarray  # (texts, layers) signed conductance per message and layer
    gaps: np.ndarray  # (texts,) F(x) - F(x')

    @property
    def shares(self) -> np.ndarray:
        return self.mass / self.mass.sum()

    def table(self, gated: int | None = None) -> str:
        rows = [(layer_name(l + 1), m, s, "<- gate" if gated == l + 1 else "")
                for l, (m, s) in enumerate(zip(self.mass, self.shares))]
        return format_table(("layer", "|conductance| mass", "share", ""), rows)


def _conductance_batch(model, texts: list[str], target: int, baseline_id: int, n_steps: int):
    import torch
    from captum.attr import LayerConductance as CaptumLayerConductance

    hf = model.hf_model
    batch = model.encode(texts)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    special = torch.tensor([model.tokenizer.get_special_tokens_mask(row.tolist(), already_has_special_tokens=True)
                            for row in ids], dtype=torch.bool, device=ids.device) | (mask == 0)
    base_ids = torch.where(special, ids, torch.full_like(ids, baseline_id))
    word_embeddings = hf.get_input_embeddings()
    inputs, baselines = word_embeddings(ids).detach(), word_embeddings(base_ids).detach()

    def logits(inputs_embeds, attention_mask):
        return hf(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits

    per_layer = []
    for depth in range(model.num_layers):
        # captum hooks a module whose output is one tensor: a layer's output is a tuple in some families (DeBERTa:
        # states and None) and ALBERT runs one layer module at every depth, so captum hooks an identity tap that
        # a hook on this depth's layer call passes the states through
        tap = torch.nn.Identity()
        handle = model.adapter.hook_layer(hf, depth, lambda _m, _i, output: replace_states(output, tap(
            output[0] if isinstance(output, tuple) else output)))
        try:
            cond = CaptumLayerConductance(logits, tap).attribute(
                inputs, baselines=baselines, target=target, additional_forward_args=(mask,), n_steps=n_steps,
                internal_batch_size=max(256, len(texts)))
        finally:
            handle.remove()
        per_layer.append((cond.sum(dim=-1) * mask).detach().double().cpu().numpy())  # (texts, tokens)
    with torch.no_grad():
        gap = (logits(inputs, mask) - logits(baselines, mask))[:, target].double().cpu().numpy()
    tokens = np.stack(per_layer, axis=1)  # (texts, layers, tokens)
    return np.abs(tokens).sum(axis=(0, 2)), tokens.sum(axis=2), gap


def layer_conductance(model, texts: list[str], intent: str, baseline: str = "pad",
                      n_steps: int = CONDUCTANCE_STEPS, batch_texts: int = 16) -> LayerConductance:
    """Per-layer conductance of intent's logit over texts. Pure (computed on every call);
    pytest_mangaassist.cache.analyses.layer_conductance is the cached form, with the same signature."""
    import torch

    texts = list(texts)
    target, baseline_id = model.label2id[intent], baseline_token_id(model.tokenizer, baseline)
    order = np.argsort([len(t) for t in texts], kind="stable")
    mass = np.zeros(model.num_layers)
    totals, gaps = np.zeros((len(texts), model.num_layers)), np.zeros(len(texts))
    with torch.enable_grad(), frozen_weights(model.hf_model):
        for start in range(0, len(texts), batch_texts):
            idx = order[start:start + batch_texts]
            m, t, g = _conductance_batch(model, [texts[i] for i in idx], target, baseline_id, n_steps)
            mass += m
            totals[idx], gaps[idx] = t, g
    return LayerConductance(mass, totals, gaps)
