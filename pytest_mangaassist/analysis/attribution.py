"""Integrated Gradients over the embedding layer, merged back into the words the user typed.

captum's LayerIntegratedGradients on the adapter's embedding module, target = the intent's logit.
The baseline input keeps [CLS], [SEP] and padding and replaces every other token by the [PAD],
[MASK] or [UNK] id, so special tokens get exactly zero attribution and the scores of a message
sum to F(x) - F(x') (completeness). Many messages go into one captum call (similar lengths
together, captum's internal_batch_size bounding memory).

The quadrature: nested trapezoid doubling with captum's Riemann rules. A message starts at
n_steps / 4 equal intervals (captum's riemann_trapezoid) and is refined with captum's riemann_middle
at the midpoints only (T_2n = (T_n + M_n) / 2), so every integrand evaluation is reused when the
steps double; from n_steps on it stops when its word-score error estimate (_error_estimate) is at
most MAX_WORD_CHANGE of its largest |score| and the scores sum to F(x) - F(x') within
MAX_RELATIVE_DELTA, or at max_steps. Why not Gauss-Legendre (captum's default): its nodes do not
nest (doubling recomputed everything), and its high order buys nothing here: the integrand is not
smooth. The ReLU of DistilBERT's classification head switches units on and off along the path (on
the small test model 142 of the 511 intervals between 512 Gauss-Legendre nodes of one message hold a
switch, and the integrand jumps there), so every rule converges at first order. Why word scores and
not completeness alone: errors of opposite sign cancel in the sum (issue #14: a message with 0.35%
completeness error and one word off by 10% of the largest score).

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

ATTRIBUTION_FORMAT = "ig-2"  # bump when how attributions are computed changes (part of the cache key)
BASELINES = {"pad": "pad_token", "mask": "mask_token", "unk": "unk_token"}
DEFAULT_STEPS = 16
MAX_STEPS = 256
MAX_WORD_CHANGE = 0.02
MAX_RELATIVE_DELTA = 0.01
DELTA_FLOOR = 1.0  # logits: a gap under one logit must still be matched within 0.01 logit
SCORE_FLOOR = 0.01  # logits: word scores all under it count as converged within MAX_WORD_CHANGE of it
BATCH_EXAMPLES = 16
MAX_PADDING = 1.15  # a group's longest message has at most 15% more tokens than its shortest
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
    delta: float  # completeness error: sum(scores) - (F(x) - F(x'))
    gap: float  # F(x) - F(x')
    n_steps: int  # intervals of the trapezoid rule (n_steps + 1 integrand evaluations)
    probability: float  # softmax probability of the target intent on the message
    word_change: float  # error estimate of the word scores, relative to the largest |score| (_error_estimate)

    @property
    def relative_delta(self) -> float:
        return abs(self.delta) / max(abs(self.gap), DELTA_FLOOR)

    @property
    def converged(self) -> bool:
        """Both stopping conditions hold: the word-score error estimate is at most MAX_WORD_CHANGE of the
        largest score, and the scores sum to F(x) - F(x') within MAX_RELATIVE_DELTA."""
        return self.word_change <= MAX_WORD_CHANGE and self.relative_delta <= MAX_RELATIVE_DELTA

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
    """Messages sorted by length, in groups of at most batch_examples whose longest message is at most
    MAX_PADDING longer than the shortest: every row runs forward and backward at the group's width, so
    padding costs FLOPs (measured: groups of 16 over the reference benchmark's lengths ran 30% more FLOPs
    per evaluation than each message alone)."""
    groups: list[list[int]] = []
    for i in np.argsort(lengths, kind="stable").tolist():
        if groups and len(groups[-1]) < batch_examples and lengths[i] <= lengths[groups[-1][0]] * MAX_PADDING:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@dataclass
class _Group:
    """A captum call's worth of messages (similar lengths), padded to one width."""

    ids: object  # (n, width) token ids
    mask: object
    base: object  # the baseline ids: special tokens and padding kept, every other token replaced
    target: object  # (n,) target intent ids


def _group(model, encoded: list[WordTokens], targets: list[int], baseline_id: int) -> _Group:
    import torch

    width = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), width), model.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    special = torch.ones_like(ids, dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, :len(e.ids)] = torch.tensor(e.ids)
        mask[row, :len(e.ids)] = 1
        special[row, :len(e.ids)] = torch.tensor([w < 0 for w in e.word_of_token])
    ids, mask = ids.to(model.device), mask.to(model.device)
    base = torch.where(special.to(model.device), ids, torch.full_like(ids, baseline_id))
    return _Group(ids, mask, base, torch.tensor(targets, device=model.device))


def _riemann_sum(model, group: _Group, rows: list[int], method: str, n_steps: int) -> np.ndarray:
    """captum's LayerIntegratedGradients with one of its Riemann rules for the given rows of the group:
    token scores (rows, width) in float64."""
    from captum.attr import LayerIntegratedGradients

    def logits(input_ids, attention_mask):
        return model.hf_model(input_ids=input_ids, attention_mask=attention_mask).logits

    lig = LayerIntegratedGradients(logits, model.embeddings)
    attributions = lig.attribute(group.ids[rows], baselines=group.base[rows], target=group.target[rows],
                                 additional_forward_args=(group.mask[rows],), n_steps=n_steps, method=method,
                                 internal_batch_size=max(INTERNAL_BATCH, len(rows)))
    return attributions.sum(dim=-1).detach().double().cpu().numpy()


def _trapezoid(model, group: _Group, rows: list[int], intervals: int) -> np.ndarray:
    """The trapezoid rule with `intervals` equal intervals (intervals + 1 integrand evaluations). captum's
    riemann_trapezoid puts n nodes at linspace(0, 1, n) but weighs them 1/n (ends 1/(2n)) instead of
    1/(n - 1): its weights sum to (n - 1) / n, so its result is rescaled by n / (n - 1)."""
    nodes = intervals + 1
    return _riemann_sum(model, group, rows, "riemann_trapezoid", nodes) * (nodes / intervals)


def _refined(model, group: _Group, rows: list[int], coarse: np.ndarray, intervals: int) -> np.ndarray:
    """The trapezoid rule with twice the intervals, from the coarse rule and the midpoints only
    (T_2n = (T_n + M_n) / 2): every evaluation of the coarse rule is reused, only `intervals` are new."""
    return (coarse + _riemann_sum(model, group, rows, "riemann_middle", intervals)) / 2


def _word_matrix(encoded: list[WordTokens], token_scores: np.ndarray) -> list[np.ndarray]:
    return [word_scores(e, token_scores[row, :len(e.ids)]) for row, e in enumerate(encoded)]


def word_change(fine: np.ndarray, coarse: np.ndarray) -> float:
    """The largest change of any word's score between two step counts, relative to the largest |score|
    (floored at SCORE_FLOOR logits): what the stopping rule reads, since the gates read word scores and
    the errors of opposite sign that cancel in the completeness sum do not cancel here."""
    return float(np.abs(fine - coarse).max(initial=0.0) / max(np.abs(fine).max(initial=0.0), SCORE_FLOOR))


def _attribute_group(model, encoded: list[WordTokens], targets: list[int], baseline_id: int, n_steps: int,
                     max_steps: int):
    """Nested trapezoid doubling for one group: n_steps // 4 intervals, doubled twice to n_steps (every
    message), then doubled again for the messages that have not converged (_error_estimate,
    MAX_WORD_CHANGE, MAX_RELATIVE_DELTA), up to max_steps. Returns per message: word scores, gap,
    probability, intervals and the error estimate."""
    import torch

    group = _group(model, encoded, targets, baseline_id)
    with torch.no_grad():
        out = model.hf_model(input_ids=group.ids, attention_mask=group.mask).logits
        at_base = model.hf_model(input_ids=group.base, attention_mask=group.mask).logits
        pick = group.target[:, None]
        gaps = (out.gather(1, pick) - at_base.gather(1, pick))[:, 0].double().cpu().numpy()
        probs = torch.softmax(out.double(), dim=1).gather(1, pick)[:, 0].cpu().numpy()
    everyone = list(range(len(encoded)))
    intervals = n_steps // 4
    tokens = _trapezoid(model, group, everyone, intervals)
    words = _word_matrix(encoded, tokens)
    steps = np.full(len(encoded), intervals)
    changes = [[] for _ in everyone]  # word change at each doubling, per message
    pending = everyone
    while pending and intervals * 2 <= max_steps:
        tokens[pending] = _refined(model, group, pending, tokens[pending], intervals)
        intervals *= 2
        for row in pending:
            fine = word_scores(encoded[row], tokens[row, :len(encoded[row].ids)])
            changes[row].append(word_change(fine, words[row]))
            words[row], steps[row] = fine, intervals
        if intervals >= n_steps:
            pending = [row for row in pending if not _stops(words[row], gaps[row], _error_estimate(changes[row]))]
    return words, gaps, probs, steps, np.array([_error_estimate(c) for c in changes])


def _error_estimate(changes: list[float]) -> float:
    """The word-score error estimate after the last doubling: the larger of the last word change and half
    the one before. The integrand jumps (module docstring), so the rule converges at first order and
    its error about halves per doubling: the earlier change, halved, guards against a last change that is
    small by coincidence (measured on the small test model: with the last change alone, 2% lets a message
    stop 2.7% off captum at 2,048 steps; with both, the worst is 1.3%)."""
    if not changes:
        return float("inf")  # one rule alone says nothing of its error
    return max(changes[-1], changes[-2] / 2 if len(changes) > 1 else 0.0)


def _stops(scores: np.ndarray, gap: float, estimate: float) -> bool:
    complete = abs(scores.sum() - gap) / max(abs(gap), DELTA_FLOOR) <= MAX_RELATIVE_DELTA
    return estimate <= MAX_WORD_CHANGE and complete


def word_scores(e: WordTokens, token_scores: np.ndarray) -> np.ndarray:
    """Token scores summed into the words of e (special tokens dropped)."""
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
    groups = (_length_groups([len(e.ids) for e in encoded], batch_examples) if sort_by_length
              else [list(range(i, min(i + batch_examples, len(texts)))) for i in range(0, len(texts), batch_examples)])
    found: list = [None] * len(texts)
    with torch.enable_grad(), frozen_weights(model.hf_model):
        for members in groups:
            words, gaps, probs, steps, changes = _attribute_group(
                model, [encoded[i] for i in members], [target_ids[i] for i in members], baseline_id, n_steps,
                max_steps)
            for k, i in enumerate(members):
                found[i] = Attribution(texts[i], targets[i], encoded[i].words, words[k],
                                       float(words[k].sum() - gaps[k]), float(gaps[k]), int(steps[k]),
                                       float(probs[k]), float(changes[k]))
    return found


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
    if not (isinstance(n_steps, int) and isinstance(max_steps, int) and 8 <= n_steps <= max_steps):
        raise MangaAssistInputError(
            f"integrated_gradients needs whole numbers 8 <= n_steps <= max_steps (got n_steps={n_steps!r}, "
            f"max_steps={max_steps!r}).", f"Leave the defaults (n_steps={DEFAULT_STEPS}, max_steps={MAX_STEPS}) or "
            "pass e.g. n_steps=16, max_steps=64: the trapezoid rule starts at n_steps / 4 intervals and doubles.")
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

