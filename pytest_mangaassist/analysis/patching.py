"""Activation patching at the [CLS] position: can one layer's state from a correct run repair an error?

For each misclassified example, the [CLS] hidden state at layer l is replaced (forward hook on
the adapter's module for that layer) by the [CLS] state, at the same layer, of a correctly
classified example of the error's true intent; the patched run counts as recovered when it then
predicts the true intent.

Pairing rule: each error gets one donor, drawn with numpy's default_rng(seed) from the correctly
classified examples of its true intent, in golden-set order; an error whose true intent has no
correct example cannot be patched and is reported as such. Only the [CLS] position is patched,
so donors of any length fit; at the embeddings every [CLS] state is identical (same token, same
position), so patching there changes nothing, and at the last layer it hands over the donor's
decision outright: the informative layers are the ones between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table
from .layers import layer_name
from .sweep import activation_sweep


@dataclass(frozen=True)
class PatchingResult:
    recovered: tuple[int, ...]  # per layer, embeddings first
    n_errors: int  # errors with a donor
    unpatchable: int  # errors whose intent has no correctly classified example
    pairs: tuple[tuple[int, int], ...]  # (error index, donor index) into the examples

    def rate(self, layer: int) -> float:
        return self.recovered[layer] / self.n_errors if self.n_errors else float("nan")

    def table(self) -> str:
        rows = [(layer_name(l), f"{r} / {self.n_errors}", self.rate(l)) for l, r in enumerate(self.recovered)]
        return format_table(("patched layer", "errors corrected", "rate"), rows)


def pair_errors_with_donors(predicted: list[str], intents: list[str], seed: int) -> tuple[list[tuple[int, int]], int]:
    rng = np.random.default_rng(seed)
    correct_by_intent: dict[str, list[int]] = {}
    for i, (p, t) in enumerate(zip(predicted, intents)):
        if p == t:
            correct_by_intent.setdefault(t, []).append(i)
    pairs, unpatchable = [], 0
    for i, (p, t) in enumerate(zip(predicted, intents)):
        if p != t:
            donors = correct_by_intent.get(t)
            if donors:
                pairs.append((i, int(rng.choice(donors))))
            else:
                unpatchable += 1
    return pairs, unpatchable


def patching_recovery(model, golden, seed: int = 0, batch_size: int = 64) -> PatchingResult:
    sweep = activation_sweep(model, golden.texts)
    predicted = [model.labels[i] for i in sweep.logits.argmax(axis=1)]
    pairs, unpatchable = pair_errors_with_donors(predicted, golden.intents, seed)
    by_length = sorted(pairs, key=lambda pair: len(golden.texts[pair[0]]))  # less padding per batch
    recovered = [0] * (model.num_layers + 1)
    for layer in range(model.num_layers + 1):
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start:start + batch_size]
            texts = [golden.texts[e] for e, _ in chunk]
            donors = sweep.cls_states[[d for _, d in chunk], layer]
            logits = _patched_logits(model, texts, layer, donors)
            truth = [model.label2id[golden.intents[e]] for e, _ in chunk]
            recovered[layer] += int((logits.argmax(axis=1) == np.array(truth)).sum())
    return PatchingResult(tuple(recovered), len(pairs), unpatchable, tuple(pairs))


def _patched_logits(model, texts: list[str], layer: int, donor_cls: np.ndarray) -> np.ndarray:
    import torch

    module = model.embeddings if layer == 0 else model.layers[layer - 1]
    replacement = torch.as_tensor(donor_cls, dtype=torch.float32, device=model.device)

    def patch(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, 0, :] = replacement.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = module.register_forward_hook(patch)
    try:
        with torch.inference_mode():
            return model.hf_model(**model.encode(texts)).logits.float().cpu().numpy()
    finally:
        handle.remove()
