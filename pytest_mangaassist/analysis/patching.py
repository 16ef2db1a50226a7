"""Activation patching at the [CLS] position: can one layer's state from a correct run repair an error?

For each misclassified example, the [CLS] hidden state at layer l is replaced by the [CLS] state,
at the same layer, of a correctly classified example of the error's true intent; the patched run
counts as recovered when it then predicts the true intent. The patched run resumes from layer l's
recorded states instead of starting again from the embeddings (patched_logits).

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
from ..loading.recording import record
from .layers import layer_name
from ..loading.adapters import replace_states as _replace_states
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
    for start in range(0, len(by_length), batch_size):
        chunk = by_length[start:start + batch_size]
        texts = [golden.texts[e] for e, _ in chunk]
        donors = sweep.cls_states[[d for _, d in chunk]]  # (errors, layers + 1, hidden)
        truth = np.array([model.label2id[golden.intents[e]] for e, _ in chunk])
        for layer, logits in enumerate(patched_logits(model, texts, donors)):
            recovered[layer] += int((logits.argmax(axis=1) == truth).sum())
    return PatchingResult(tuple(recovered), len(pairs), unpatchable, tuple(pairs))


def patched_logits(model, texts: list[str], donor_cls: np.ndarray) -> list[np.ndarray]:
    """Per layer (embeddings first), the logits of texts with that layer's [CLS] state replaced by donor_cls[:, layer].

    Patching layer l changes nothing below it, so one unpatched forward pass records every layer's token
    states and each patched run resumes from its own layer: the layers above l run on the recorded states
    of layer l with position 0 replaced, the same computation as a full forward pass with a hook on layer l
    (tests compare the two), at about half the cost. Where the replacement equals the recorded [CLS] state
    bit for bit (the embeddings: one token at one position, so one vector for every message), the patch is
    a no-op and the unpatched logits are the result, by construction rather than by assumption.
    """
    import torch

    batch = model.encode(texts)
    donors = torch.as_tensor(donor_cls, dtype=torch.float32, device=model.device)
    with torch.inference_mode():
        unpatched = record(model, batch, hidden_states=True)
        results = []
        for layer, states in enumerate(unpatched.hidden_states):
            replacement = donors[:, layer].to(states.dtype)
            if torch.equal(states[:, 0], replacement):
                results.append(unpatched.logits)
                continue
            patched = states.clone()
            patched[:, 0] = replacement
            results.append(_resumed_logits(model, batch, layer, patched))
        return [logits.float().cpu().numpy() for logits in results]


def _resumed_logits(model, batch, layer: int, states):
    """The model's own forward pass (masks, head) in which the encoder's states after `layer` (hidden_states
    index: 0 = the first layer's input) are `states`. Where the layers are a list, only the layers from
    `layer` up run (the layer below it too, its output replaced: it carries the masks' and position
    embeddings' arguments as the others do); where one module serves several depths (ALBERT), the whole
    stack runs with the replacement at that depth."""
    import torch

    adapter, hf = model.adapter, model.hf_model
    found = adapter.layer_list(hf)
    if found is None:
        handle = (_replace_first_input(adapter.layers(hf)[0], states) if layer == 0 else
                  adapter.hook_layer(hf, layer - 1, lambda _m, _i, output: _replace_states(output, states)))
        try:
            return hf(**batch).logits
        finally:
            handle.remove()
    owner, attr = found
    every_layer = getattr(owner, attr)
    remaining = list(every_layer)[max(layer - 1, 0):]
    setattr(owner, attr, torch.nn.ModuleList(remaining))
    handle = (_replace_first_input(remaining[0], states) if layer == 0 else
              remaining[0].register_forward_hook(lambda _m, _i, output: _replace_states(output, states)))
    try:
        return hf(**batch).logits
    finally:
        handle.remove()
        setattr(owner, attr, every_layer)


def _replace_first_input(module, states):
    """A pre-hook that hands `states` to module's first call as its hidden states (first positional argument,
    or the hidden_states keyword)."""
    calls = []

    def replace(_module, args, kwargs):
        calls.append(None)
        if len(calls) > 1:
            return None
        if args:
            return (states, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": states}

    return module.register_forward_pre_hook(replace, with_kwargs=True)
