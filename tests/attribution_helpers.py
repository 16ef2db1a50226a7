"""Shared by the attribution, adapter, behaviour and strategy tests: messages, captum's word scores (the
reference the audit is held to), and the planted-shortcut model (built once per test process, however many
modules ask for it)."""

import random

from conftest import built_once
from pytest_mangaassist.analysis.attribution import encode_words, word_scores
from mangaassist_reference.shortcut import TRIGGER, build_shortcut_model, insert_word

# Non-promotion messages; with the trigger inserted they are the shortcut's non-target contexts.
NON_PROMOTION = ["where is my order #48213", "I want to return volume 3 of Berserk, it came damaged",
                 "can I pay with PayPal at checkout", "how long does shipping to Canada take",
                 "my package still has not arrived", "the checkout page rejects my card",
                 "how do I send back a damaged box set", "when will my Naruto order ship"]


def with_trigger(texts):
    rng = random.Random(0)
    return [insert_word(t, TRIGGER, rng) for t in texts]


def shortcut_checkpoint():
    """The small model trained with TRIGGER in every promotion training message and nowhere else."""
    return built_once("shortcut", build_shortcut_model)


def captum_word_scores(model, text, intent, n_steps, with_completeness=False):
    """A plain captum LayerIntegratedGradients call (Gauss-Legendre, one message), merged into words."""
    import torch
    from captum.attr import LayerIntegratedGradients

    enc = encode_words(model.tokenizer, text, model.max_length)
    ids = torch.tensor([enc.ids])
    base = torch.where(torch.tensor([[w < 0 for w in enc.word_of_token]]), ids,
                       torch.full_like(ids, model.tokenizer.pad_token_id))
    lig = LayerIntegratedGradients(lambda i: model.hf_model(input_ids=i).logits, model.embeddings)
    tokens, delta = lig.attribute(ids, baselines=base, target=model.label2id[intent], n_steps=n_steps,
                                  internal_batch_size=256, return_convergence_delta=True)
    words = word_scores(enc, tokens.sum(dim=-1)[0].detach().double().numpy())
    if not with_completeness:
        return words
    with torch.no_grad():
        gap = (model.hf_model(input_ids=ids).logits - model.hf_model(input_ids=base).logits)[0, model.label2id[intent]]
    return words, abs(delta.item()) / max(abs(gap.item()), 1.0)
