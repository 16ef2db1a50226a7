"""Shared by the attribution, adapter, behaviour and strategy tests: messages, captum's word scores (the
reference the audit is held to), and the planted-shortcut model (built once per test process, however many
modules ask for it)."""

import random

import numpy as np

from conftest import built_once
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


class WordPieces:
    """A message's token ids and the word each token belongs to (-1: a special token), from the tokenizer's own
    word_ids() of the whitespace-split words: written without the plugin's offset-based encode_words and
    word_scores, so that a wrong piece-to-word mapping there cannot agree with the reference by construction."""

    def __init__(self, tokenizer, text: str, max_length: int):
        self.words = text.split()
        encoded = tokenizer(self.words, is_split_into_words=True)
        self.ids = list(encoded["input_ids"])
        assert self.ids == list(tokenizer(text)["input_ids"]) and len(self.ids) <= max_length  # what the model reads
        self.word_of_token = [-1 if w is None else w for w in encoded.word_ids()]

    def merge(self, token_scores) -> np.ndarray:
        """Token scores summed per word."""
        words = np.zeros(len(self.words))
        np.add.at(words, [w for w in self.word_of_token if w >= 0],
                  [s for s, w in zip(token_scores, self.word_of_token) if w >= 0])
        return words


def captum_word_scores(model, text, intent, n_steps, with_completeness=False):
    """A plain captum LayerIntegratedGradients call (Gauss-Legendre, one message), merged into words."""
    import torch
    from captum.attr import LayerIntegratedGradients

    enc = WordPieces(model.tokenizer, text, model.max_length)
    ids = torch.tensor([enc.ids])
    base = torch.where(torch.tensor([[w < 0 for w in enc.word_of_token]]), ids,
                       torch.full_like(ids, model.tokenizer.pad_token_id))
    lig = LayerIntegratedGradients(lambda i: model.hf_model(input_ids=i).logits, model.embeddings)
    tokens, delta = lig.attribute(ids, baselines=base, target=model.label2id[intent], n_steps=n_steps,
                                  internal_batch_size=256, return_convergence_delta=True)
    words = enc.merge(tokens.sum(dim=-1)[0].detach().double().numpy())
    if not with_completeness:
        return words
    with torch.no_grad():
        gap = (model.hf_model(input_ids=ids).logits - model.hf_model(input_ids=base).logits)[0, model.label2id[intent]]
    return words, abs(delta.item()) / max(abs(gap.item()), 1.0)
