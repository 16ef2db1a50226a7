"""Integrated Gradients over the embedding layer, merged back into the words the user typed.

captum's LayerIntegratedGradients on the adapter's embedding module, target = the intent's logit.
The baseline input keeps [CLS], [SEP] and padding and replaces every other token by the [PAD],
[MASK] or [UNK] id, so special tokens get exactly zero attribution and the scores of a message
sum to F(x) - F(x') (completeness). Many messages go into one captum call (similar lengths
together, captum's internal_batch_size bounding memory); a message whose convergence delta is
above max_relative_delta of |F(x) - F(x')| (with an absolute floor for near-zero gaps) is
attributed again with twice the steps (up to max_steps) instead of being trusted.

Word merging (by hand: tokenizers give token offsets, not the user's words): every token is
assigned, by its character offsets, to the whitespace-separated word that contains it, so
"isekai?" is one word even when the tokenizer cut it into "is", "##ek", "##ai", "?".
"""

from __future__ import annotations

import re
import string
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import MangaAssistInputError

ATTRIBUTION_FORMAT = "ig-1"  # bump when how attributions are computed changes (part of the cache key)
BASELINES = {"pad": "pad_token", "mask": "mask_token", "unk": "unk_token"}
DEFAULT_STEPS = 16
MAX_STEPS = 256
MAX_RELATIVE_DELTA = 0.01
DELTA_FLOOR = 1.0  # logits: a gap under one logit must still be matched within 0.01 logit
BATCH_EXAMPLES = 16
INTERNAL_BATCH = 256  # interpolated rows per forward/backward pass inside captum
_WORD = re.compile(r"\S+")
_STRIP = string.punctuation + "“”‘’…「」、。！？"


def normalize_word(word: str) -> str:
    """The form a word family is matched against: lower case, outer punctuation stripped."""
    return word.lower().strip(_STRIP)


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words of text."""
    return [m.span() for m in _WORD.finditer(text)]


@dataclass(frozen=True)
class Attribution:
    """Word-level IG of one message for one intent's logit."""

    text: str
    target: str
    words: tuple[str, ...]
    scores: np.ndarray  # one per word, in logit units
    delta: float  # captum's convergence delta: sum(scores) - (F(x) - F(x'))
    gap: float  # F(x) - F(x')
    n_steps: int
    probability: float  # softmax probability of the target intent on the message

    @property
    def relative_delta(self) -> float:
        return abs(self.delta) / max(abs(self.gap), DELTA_FLOOR)

    @property
    def converged(self) -> bool:
        return self.relative_delta <= MAX_RELATIVE_DELTA

    def top_words(self, k: int = 6) -> str:
        """The k words with the largest |score|, e.g. 'sale:+1.92 return:-0.81'."""
        order = np.argsort(-np.abs(self.scores), kind="stable")[:k]
        return " ".join(f"{self.words[i]}:{self.scores[i]:+.2f}" for i in order)


@dataclass(frozen=True)
class WordTokens:
    ids: list[int]
    word_of_token: list[int]  # word index per token, -1 for special tokens
    words: tuple[str, ...]


def encode_words(tokenizer, text: str, max_length: int) -> WordTokens:
    """Token ids of text as the model sees it, and the whitespace word each token belongs to."""
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    spans = split_words(text)
    starts = [s for s, _ in spans]
    word_of_token = []
    for (start, end), special in zip(enc["offset_mapping"], enc["special_tokens_mask"]):
        if special or end <= start:
            word_of_token.append(-1)
        else:
            word_of_token.append(int(np.searchsorted(starts, start, side="right")) - 1)
    return WordTokens(list(enc["input_ids"]), word_of_token, tuple(text[s:e] for s, e in spans))


def baseline_token_id(tokenizer, baseline: str) -> int:
    if baseline not in BASELINES:
        raise MangaAssistInputError(f"Unknown IG baseline {baseline!r}.",
                                    f"Use one of {', '.join(BASELINES)} (the embedding of that special token).")
    token_id = getattr(tokenizer, f"{BASELINES[baseline]}_id")
    if token_id is None:
        raise MangaAssistInputError(f"The tokenizer has no {BASELINES[baseline]} for the {baseline!r} baseline.",
                                    "Choose another baseline: pad, mask or unk.")
    return token_id


def _length_groups(lengths: list[int], batch_examples: int) -> list[list[int]]:
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_examples].tolist() for i in range(0, len(order), batch_examples)]


def _ig_batch(model, encoded: list[WordTokens], targets: list[int], baseline_id: int, n_steps: int):
    """One captum call for a group of messages: (token scores per message, deltas, gaps, probabilities)."""
    import torch
    from captum.attr import LayerIntegratedGradients

    hf = model.hf_model
    tokenizer = model.tokenizer
    width = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    special = torch.ones_like(ids, dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, :len(e.ids)] = torch.tensor(e.ids)
        mask[row, :len(e.ids)] = 1
        special[row, :len(e.ids)] = torch.tensor([w < 0 for w in e.word_of_token])
    ids, mask = ids.to(model.device), mask.to(model.device)
    base = torch.where(special.to(model.device), ids, torch.full_like(ids, baseline_id))
    target = torch.tensor(targets, device=model.device)

    def logits(input_ids, attention_mask):
        return hf(input_ids=input_ids, attention_mask=attention_mask).logits

    lig = LayerIntegratedGradients(logits, model.embeddings)
    attributions, delta = lig.attribute(ids, baselines=base, target=target, additional_forward_args=(mask,),
                                        n_steps=n_steps, internal_batch_size=max(INTERNAL_BATCH, len(encoded)),
                                        return_convergence_delta=True)
    with torch.no_grad():
        out = logits(ids, mask)
        gap = out.gather(1, target[:, None])[:, 0] - logits(base, mask).gather(1, target[:, None])[:, 0]
        prob = torch.softmax(out.double(), dim=1).gather(1, target[:, None])[:, 0]
    tokens = attributions.sum(dim=-1).detach().double().cpu().numpy()
    return ([tokens[row, :len(e.ids)] for row, e in enumerate(encoded)], delta.detach().double().cpu().numpy(),
            gap.double().cpu().numpy(), prob.cpu().numpy())


def _word_scores(e: WordTokens, token_scores: np.ndarray) -> np.ndarray:
    scores = np.zeros(len(e.words))
    for token, word in enumerate(e.word_of_token):
        if word >= 0:
            scores[word] += token_scores[token]
    return scores


@contextmanager
def frozen_weights(hf_model):
    """No weight gradients while attributing: IG needs the gradients of the activations only; weight
    gradients cost as many FLOPs again, plus a dense vocabulary-sized gradient of the word embeddings."""
    flags = [(p, p.requires_grad) for p in hf_model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def compute_attributions(model, texts: list[str], targets: list[str] | str, baseline: str = "pad",
                         n_steps: int = DEFAULT_STEPS, max_steps: int = MAX_STEPS,
                         batch_examples: int = BATCH_EXAMPLES, sort_by_length: bool = True) -> list[Attribution]:
    """IG for each (text, target intent), in one or more captum calls; see integrated_gradients."""
    import torch

    targets = [targets] * len(texts) if isinstance(targets, str) else list(targets)
    tokenizer = model.tokenizer
    baseline_id = baseline_token_id(tokenizer, baseline)
    encoded = [encode_words(tokenizer, t, model.max_length) for t in texts]
    target_ids = [model.label2id[t] for t in targets]
    token_scores: list = [None] * len(texts)
    deltas, gaps, probs, steps = (np.zeros(len(texts)) for _ in range(4))
    pending = list(range(len(texts)))
    steps_now = n_steps
    with torch.enable_grad(), frozen_weights(model.hf_model):
        while pending:
            groups = (_length_groups([len(encoded[i].ids) for i in pending], batch_examples) if sort_by_length
                      else [list(range(i, min(i + batch_examples, len(pending))))
                            for i in range(0, len(pending), batch_examples)])
            for group in groups:
                members = [pending[g] for g in group]
                scores, d, g_, p = _ig_batch(model, [encoded[i] for i in members],
                                             [target_ids[i] for i in members], baseline_id, steps_now)
                for k, i in enumerate(members):
                    token_scores[i], deltas[i], gaps[i], probs[i], steps[i] = scores[k], d[k], g_[k], p[k], steps_now
            relative = np.abs(deltas) / np.maximum(np.abs(gaps), DELTA_FLOOR)
            if steps_now * 2 > max_steps:
                break
            pending = [i for i in pending if relative[i] > MAX_RELATIVE_DELTA]
            steps_now *= 2
    return [Attribution(texts[i], targets[i], encoded[i].words, _word_scores(encoded[i], token_scores[i]),
                        float(deltas[i]), float(gaps[i]), int(steps[i]), float(probs[i])) for i in range(len(texts))]


def integrated_gradients(model, texts: list[str], targets: list[str] | str, baseline: str = "pad",
                         n_steps: int = DEFAULT_STEPS, max_steps: int = MAX_STEPS) -> list[Attribution]:
    """Word-level IG of each text for its target intent (one intent for all, or one per text).

    Pure (computed on every call); pytest_mangaassist.cache.analyses.integrated_gradients is the
    cached form (memory and disk), with the same signature.
    """
    texts = list(texts)
    targets = [targets] * len(texts) if isinstance(targets, str) else list(targets)
    if not texts or len(targets) != len(texts):
        raise MangaAssistInputError(
            f"integrated_gradients needs at least one text and one target per text (got {len(texts)} texts, "
            f"{len(targets)} targets).", "Pass a non-empty list of texts and one intent, or one intent per text.")
    unknown = sorted(set(targets) - set(model.labels))
    if unknown:
        raise MangaAssistInputError(f"Unknown intent(s) {unknown} for the model {model.source}.",
                                    f"Use labels of its id2label: {', '.join(model.labels)}.")
    return compute_attributions(model, texts, targets, baseline, n_steps, max_steps)


@dataclass(frozen=True)
class FamilyShare:
    """How much of an intent's positive attribution lands on a word family, pooled over messages."""

    share: float  # family's positive attribution / all positive attribution
    per_example: tuple[float, ...]  # the same share per message (nan where it has no positive attribution)
    family_mass: float
    total_mass: float


def family_share(attributions: list[Attribution], family: set[str]) -> FamilyShare:
    """Pooled over messages, so a message with almost no evidence for the intent weighs little."""
    family_mass = total_mass = 0.0
    per_example = []
    for a in attributions:
        positive = np.clip(a.scores, 0.0, None)
        on_family = sum(p for w, p in zip(a.words, positive) if normalize_word(w) in family)
        family_mass += on_family
        total_mass += positive.sum()
        per_example.append(on_family / positive.sum() if positive.sum() > 0 else float("nan"))
    share = family_mass / total_mass if total_mass > 0 else 0.0
    return FamilyShare(share, tuple(per_example), family_mass, total_mass)


def dominant_word_types(attributions: list[Attribution], min_examples: int = 3) -> list[tuple[str, float, int]]:
    """Word types by their pooled share of the intent's positive attribution, largest first:
    (word type, share, number of messages it occurs in); only types met in >= min_examples messages."""
    mass: dict[str, float] = {}
    seen: dict[str, int] = {}
    total = 0.0
    for a in attributions:
        positive = np.clip(a.scores, 0.0, None)
        total += positive.sum()
        for word in {normalize_word(w) for w in a.words} - {""}:
            seen[word] = seen.get(word, 0) + 1
        for w, p in zip(a.words, positive):
            if normalize_word(w):
                mass[normalize_word(w)] = mass.get(normalize_word(w), 0.0) + p
    rows = [(w, m / total if total > 0 else 0.0, seen[w]) for w, m in mass.items() if seen[w] >= min_examples]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def attribution_batch_invariance(model, texts: list[str], target: str, baseline: str = "pad",
                                 n_steps: int = DEFAULT_STEPS) -> float:
    """Largest difference of a word score between attributing each text alone and all texts in one
    padded batch of mixed lengths, relative to the largest |score| (captum and padding must not
    change the figures)."""
    texts = list(texts)
    targets = [target] * len(texts)
    together = compute_attributions(model, texts, targets, baseline, n_steps, n_steps,
                                    batch_examples=len(texts), sort_by_length=False)
    alone = compute_attributions(model, texts, targets, baseline, n_steps, n_steps, batch_examples=1)
    scale = max(max(np.abs(a.scores).max(initial=0.0) for a in alone), 1e-12)
    return max(float(np.abs(a.scores - b.scores).max(initial=0.0)) for a, b in zip(together, alone)) / scale

