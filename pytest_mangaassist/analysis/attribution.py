"""Integrated Gradients over the embedding layer, merged back into the words the user typed.

IG on the output of the adapter's embedding module (as captum's LayerIntegratedGradients defines it),
target = the intent's logit.
The baseline input keeps [CLS], [SEP] and padding and replaces every other token by the [PAD],
[MASK] or [UNK] id, so special tokens get exactly zero attribution and the scores of a message
sum to F(x) - F(x') (completeness). Many messages go into one forward pass (similar lengths
together, INTERNAL_BATCH bounding memory).

The quadrature: a product trapezoid rule, written by hand (captum's rules weigh a node's units alike).
The integrand is not smooth: the ReLU of DistilBERT's classification head, ReLU(pre_classifier(h)),
switches units on and off along the path (on the small test model 142 of the 511 intervals between 512
Gauss-Legendre nodes of one message hold a switch, and the integrand jumps there), so every rule that
weighs nodes, Gauss-Legendre (captum's default), Clenshaw-Curtis or trapezoid, converges at first order.
The ReLU's input z is known at every node from the forward pass; the rule starts each node's backward
pass from w_target * (the length of the node's cell where z_j > 0, z interpolated linearly between
nodes) instead of w_target * 1[z_j > 0] times the cell length, so a unit that switches inside a cell
counts only where it is on; what remains is smooth (GELU, softmax, LayerNorm) and the rule converges at
second order. Heads without a ReLU (BERT's and RoBERTa's end in tanh) are smooth already: the same rule
with every unit on is the plain trapezoid rule.

Every message runs n_steps intervals; the same nodes give the rule with half the intervals (the even
nodes' backward pass run a second time with their own weights), and a third of the largest change of a
word score between the two is its error estimate (second order: ERROR_PER_CHANGE). A message stops when
that estimate is at most MAX_WORD_ERROR of its largest |score| and its scores sum to F(x) - F(x')
within MAX_RELATIVE_DELTA; otherwise the intervals double (the rule does not nest: each node's weights
depend on its cell, so the doubled rule runs all its nodes anew), up to at_most_steps. Why word scores and
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

from ..errors import MangaAssistInputError, renamed_keywords
from .checks import choice

ATTRIBUTION_FORMAT = "ig-4"  # bump when how attributions are computed changes (part of the cache key)
BASELINES = {"pad": "pad_token", "mask": "mask_token", "unk": "unk_token"}
DEFAULT_STEPS = 16
MAX_STEPS = 256
MAX_WORD_ERROR = 0.02
ERROR_PER_CHANGE = 1 / 3  # second order: the rule with half the intervals is off by 4e, this one by e
MAX_RELATIVE_DELTA = 0.01
DELTA_FLOOR = 1.0  # logits: a gap under one logit must still be matched within 0.01 logit
SCORE_FLOOR = 0.01  # logits: word scores all under it count as converged within MAX_WORD_ERROR of it
BATCH_EXAMPLES = 16
MAX_PADDING = 1.15  # a group's longest message has at most 15% more tokens than its shortest
INTERNAL_BATCH = 256  # interpolated rows (integrand evaluations) per forward/backward pass
_WORD = re.compile(r"\S+")
_STRIP = string.punctuation + "“”‘’…「」、。！？"


def normalize_word(word: str) -> str:
    """The form an audited word is matched in: lower case, outer punctuation stripped."""
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
    n_steps: int  # intervals of the rule it stopped at (n_steps + 1 integrand evaluations)
    probability: float  # softmax probability of the target intent on the message
    word_error: float  # error estimate of the word scores, relative to the largest |score| (ERROR_PER_CHANGE)

    @property
    def relative_delta(self) -> float:
        return abs(self.delta) / max(abs(self.gap), DELTA_FLOOR)

    @property
    def converged(self) -> bool:
        """Both stopping conditions hold: the word-score error estimate is at most MAX_WORD_ERROR of the
        largest score, and the scores sum to F(x) - F(x') within MAX_RELATIVE_DELTA."""
        return self.word_error <= MAX_WORD_ERROR and self.relative_delta <= MAX_RELATIVE_DELTA

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
    choice("integrated_gradients", "baseline", baseline, tuple(BASELINES))  # the embedding of that special token
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
    """Messages of similar lengths, padded to one width, attributed together."""

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


def _cell_on_measure(alphas, z):
    """Per node and unit, the length of the node's cell (from the midpoint to its left neighbour to the one
    to its right) on which the unit's input z is > 0, with z interpolated linearly between nodes: the
    weight that integrates the head's ReLU switches inside a cell (module docstring). alphas: (nodes,);
    z: (..., nodes, units), float64."""
    import torch

    def on_length(a, b, za, zb):  # the length of [a, b] on which z, linear from za to zb, is > 0
        on_a, on_b = za > 0, zb > 0
        switched = on_a != on_b
        crossing = za / torch.where(switched, za - zb, torch.ones_like(za))  # share of [a, b] before z crosses 0
        share = torch.where(on_a & on_b, 1.0, torch.where(switched, torch.where(on_a, crossing, 1 - crossing), 0.0))
        return (b - a)[:, None] * share

    mids, z_mids = (alphas[:-1] + alphas[1:]) / 2, (z[..., :-1, :] + z[..., 1:, :]) / 2
    measure = torch.zeros_like(z)
    measure[..., :-1, :] += on_length(alphas[:-1], mids, z[..., :-1, :], z_mids)
    measure[..., 1:, :] += on_length(mids, alphas[1:], z_mids, z[..., 1:, :])
    return measure


def _cell_length(alphas, z):
    """Per node, the length of its cell, for every unit: the trapezoid weights (heads without a ReLU)."""
    import torch

    cells = torch.zeros_like(alphas)
    cells[:-1] += (alphas[1:] - alphas[:-1]) / 2
    cells[1:] += (alphas[1:] - alphas[:-1]) / 2
    return cells[:, None].expand(z.shape[-2:]).expand_as(z)


def path_ends(model, base, ids):
    """The embedding outputs at the path's start and end. Where the baseline keeps the message's token (special
    tokens, padding) the start is the end, so those tokens get exactly zero attribution even in families whose
    embeddings derive positions from the ids (RoBERTa, XLM-RoBERTa, MPNet count positions past padding_idx:
    with a [PAD] baseline, the [SEP] after the replaced words would move, and its share of F(x) - F(x') would
    fall outside every word)."""
    import torch

    start, end = model.embeddings(base), model.embeddings(ids)
    return torch.where((base == ids)[..., None], end, start), end


def _head_inputs(model, path, ids, mask):
    """Runs the model with the embedding layer's output replaced by path (rows, width, dim) and returns the
    tensor the quadrature weighs per unit: the input of the ReLU (DistilBERT's pre_classifier output) or,
    for heads without one, the input of the head's last Linear."""
    hf, adapter = model.hf_model, model.adapter
    found = []
    relu = adapter.relu_layer(hf)
    if relu is not None:
        watch = relu.register_forward_hook(lambda module, inputs, output: found.append(output))
    else:
        watch = adapter.score_layer(hf).register_forward_pre_hook(lambda module, inputs: found.append(inputs[0]))
    swap = model.embeddings.register_forward_hook(lambda module, inputs, output: path)
    try:
        hf(input_ids=ids, attention_mask=mask)
    finally:
        swap.remove()
        watch.remove()
    return found[0].reshape(len(path), -1)  # one vector of units per row


def _quadrature(model, group: _Group, rows: list[int], intervals: int, with_half: bool):
    """Token scores (rows, width), float64, of the product trapezoid rule with `intervals` equal intervals
    and, with_half, of the same rule with half the intervals on the even nodes (the error estimate), from
    one forward pass per node (module docstring).

    Written by hand: captum's Riemann rules weigh every unit of a node alike (one weight per node); this rule
    weighs each unit of the head's ReLU by the share of its cell where the unit is on."""
    import torch

    hf, adapter = model.hf_model, model.adapter
    weigh = _cell_on_measure if adapter.relu_layer(hf) is not None else _cell_length
    alphas = torch.linspace(0, 1, intervals + 1, dtype=torch.float64, device=model.device)
    parts = (slice(0, None, 2), slice(1, None, 2)) if with_half else (slice(None),)
    ids, mask = group.ids[rows], group.mask[rows]
    with torch.no_grad():
        start, end = path_ends(model, group.base[rows], ids)
        delta = end - start
    weights = adapter.score_layer(hf).weight[group.target[rows]].double()  # (rows, units): d logit / d ReLU output
    fine = np.zeros(ids.shape)
    half = np.zeros(ids.shape) if with_half else None
    per_chunk = max(1, INTERNAL_BATCH // (intervals + 1))  # whole messages per forward pass: a cell needs both neighbours
    for first in range(0, len(rows), per_chunk):
        chunk = slice(first, first + per_chunk)
        n = len(ids[chunk])
        paths, inputs = [], []
        for part in parts:
            steps = alphas[part].to(start.dtype)
            path = (start[chunk, None] + steps[None, :, None, None] * delta[chunk, None]).reshape(-1, *start.shape[1:])
            path.requires_grad_(True)
            repeat = len(steps)
            inputs.append(_head_inputs(model, path, ids[chunk].repeat_interleave(repeat, 0),
                                       mask[chunk].repeat_interleave(repeat, 0)).reshape(n, repeat, -1))
            paths.append(path)
        z = torch.empty(n, intervals + 1, inputs[0].shape[-1], dtype=torch.float64, device=model.device)
        for part, values in zip(parts, inputs):
            z[:, part] = values.detach().double()
        cotangent = weigh(alphas, z) * weights[chunk, None, :]
        for index, (part, path, values) in enumerate(zip(parts, paths, inputs)):
            retain = with_half and index == 0
            fine[chunk] += _token_scores(values, path, cotangent[:, part], delta[chunk], retain)
        if with_half:
            coarse = weigh(alphas[::2], z[:, ::2]) * weights[chunk, None, :]
            half[chunk] += _token_scores(inputs[0], paths[0], coarse, delta[chunk], False)
    return fine, half


def _token_scores(values, path, cotangent, delta, retain: bool) -> np.ndarray:
    """Sum over nodes of the gradient (pulled back from values with the given cotangent) times the path's
    direction, per token: (messages, width), float64."""
    import torch

    (grad,) = torch.autograd.grad(values, path, grad_outputs=cotangent.to(values.dtype), retain_graph=retain)
    n = len(delta)
    per_node = (grad.reshape(n, -1, *delta.shape[1:]) * delta[:, None]).sum(dim=-1)
    return per_node.double().sum(dim=1).detach().cpu().numpy()


def _word_matrix(encoded: list[WordTokens], token_scores: np.ndarray) -> list[np.ndarray]:
    return [word_scores(e, token_scores[row, :len(e.ids)]) for row, e in enumerate(encoded)]


def word_change(fine: np.ndarray, coarse: np.ndarray) -> float:
    """The largest change of any word's score between two step counts, relative to the largest |score|
    (floored at SCORE_FLOOR logits): what the stopping rule reads, since the gates read word scores and
    the errors of opposite sign that cancel in the completeness sum do not cancel here."""
    return float(np.abs(fine - coarse).max(initial=0.0) / max(np.abs(fine).max(initial=0.0), SCORE_FLOOR))


def _attribute_group(model, encoded: list[WordTokens], targets: list[int], baseline_id: int, n_steps: int,
                     at_most_steps: int):
    """The product trapezoid rule for one group: n_steps intervals for every message, with its error
    estimate from the rule with half the intervals on the same nodes, then doubled for the messages that
    have not converged (ERROR_PER_CHANGE, MAX_WORD_ERROR, MAX_RELATIVE_DELTA), up to at_most_steps. Returns per
    message: word scores, gap, probability, intervals and the word-score error estimate."""
    import torch

    group = _group(model, encoded, targets, baseline_id)
    with torch.no_grad():
        out = model.hf_model(input_ids=group.ids, attention_mask=group.mask).logits
        # F(x') at the path's start: the embedding output of the baseline ids fed to the forward pass of the
        # message's ids, as the quadrature runs it. Running the baseline ids instead differs where an encoder
        # family derives more than the embeddings from the ids (measured: a tiny RoBERTa whose padding_idx is the
        # [PAD] baseline, 0.065 of a 0.12 logit gap, while its word scores equalled captum's)
        start, _ = path_ends(model, group.base, group.ids)
        swap = model.embeddings.register_forward_hook(lambda module, inputs, output: start)
        try:
            at_base = model.hf_model(input_ids=group.ids, attention_mask=group.mask).logits
        finally:
            swap.remove()
        pick = group.target[:, None]
        gaps = (out.gather(1, pick) - at_base.gather(1, pick))[:, 0].double().cpu().numpy()
        probs = torch.softmax(out.double(), dim=1).gather(1, pick)[:, 0].cpu().numpy()
    everyone = list(range(len(encoded)))
    intervals = n_steps
    tokens, half = _quadrature(model, group, everyone, intervals, with_half=True)
    words, halves = _word_matrix(encoded, tokens), _word_matrix(encoded, half)
    error = np.array([word_change(w, h) * ERROR_PER_CHANGE for w, h in zip(words, halves)])
    steps = np.full(len(encoded), intervals)
    pending = [row for row in everyone if not _stops(words[row], gaps[row], error[row])]
    while pending and intervals * 2 <= at_most_steps:
        intervals *= 2
        tokens, _ = _quadrature(model, group, pending, intervals, with_half=False)
        for k, row in enumerate(pending):
            fine = word_scores(encoded[row], tokens[k, :len(encoded[row].ids)])
            error[row] = word_change(fine, words[row]) * ERROR_PER_CHANGE
            words[row], steps[row] = fine, intervals
        pending = [row for row in pending if not _stops(words[row], gaps[row], error[row])]
    return words, gaps, probs, steps, error


def _stops(scores: np.ndarray, gap: float, estimate: float) -> bool:
    complete = abs(scores.sum() - gap) / max(abs(gap), DELTA_FLOOR) <= MAX_RELATIVE_DELTA
    return estimate <= MAX_WORD_ERROR and complete


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
                         n_steps: int = DEFAULT_STEPS, at_most_steps: int = MAX_STEPS,
                         batch_examples: int = BATCH_EXAMPLES, sort_by_length: bool = True) -> list[Attribution]:
    """IG for each (text, target intent), messages of similar length together; see integrated_gradients."""
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
            words, gaps, probs, steps, errors = _attribute_group(
                model, [encoded[i] for i in members], [target_ids[i] for i in members], baseline_id, n_steps,
                at_most_steps)
            for k, i in enumerate(members):
                found[i] = Attribution(texts[i], targets[i], encoded[i].words, words[k],
                                       float(words[k].sum() - gaps[k]), float(gaps[k]), int(steps[k]),
                                       float(probs[k]), float(errors[k]))
    return found


@renamed_keywords(max_steps="at_most_steps")  # the old name, for one release
def integrated_gradients(model, texts: list[str], targets: list[str] | str, baseline: str = "pad",
                         n_steps: int = DEFAULT_STEPS, at_most_steps: int = MAX_STEPS) -> list[Attribution]:
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
    if not (isinstance(n_steps, int) and isinstance(at_most_steps, int) and 8 <= n_steps <= at_most_steps
            and n_steps % 2 == 0):
        raise MangaAssistInputError(
            f"integrated_gradients needs whole numbers 8 <= n_steps <= at_most_steps, n_steps even (got "
            f"n_steps={n_steps!r}, at_most_steps={at_most_steps!r}).", f"Leave the defaults (n_steps={DEFAULT_STEPS}, "
            f"at_most_steps={MAX_STEPS}) or pass e.g. n_steps=16, at_most_steps=64: the rule starts at n_steps intervals, "
            "checked against n_steps / 2 on the same nodes, and doubles.")
    unknown = sorted(set(targets) - set(model.labels))
    if unknown:
        raise MangaAssistInputError(f"Unknown intent(s) {unknown} for the model {model.source}.",
                                    f"Use labels of its id2label: {', '.join(model.labels)}.")
    return compute_attributions(model, texts, targets, baseline, n_steps, at_most_steps)


@dataclass(frozen=True)
class WordsShare:
    """How much of an intent's positive attribution lands on a group of words, pooled over messages."""

    share: float  # the words' positive attribution / all positive attribution
    per_example: tuple[float, ...]  # the same share per message (nan where it has no positive attribution)
    words_mass: float
    total_mass: float


def words_share(attributions: list[Attribution], words: set[str]) -> WordsShare:
    """Pooled over messages, so a message with almost no evidence for the intent weighs little."""
    words_mass = total_mass = 0.0
    per_example = []
    for a in attributions:
        positive = np.clip(a.scores, 0.0, None)
        on_words = sum(p for w, p in zip(a.words, positive) if normalize_word(w) in words)
        words_mass += on_words
        total_mass += positive.sum()
        per_example.append(on_words / positive.sum() if positive.sum() > 0 else float("nan"))
    share = words_mass / total_mass if total_mass > 0 else 0.0
    return WordsShare(share, tuple(per_example), words_mass, total_mass)


def dominant_word_types(attributions: list[Attribution], at_least_examples: int = 3) -> list[tuple[str, float, int]]:
    """Word types by their pooled share of the intent's positive attribution, largest first:
    (word type, share, number of messages it occurs in); only types met in >= at_least_examples messages."""
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
    rows = [(w, m / total if total > 0 else 0.0, seen[w]) for w, m in mass.items() if seen[w] >= at_least_examples]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def attribution_batch_invariance(model, texts: list[str], target: str, baseline: str = "pad",
                                 n_steps: int = DEFAULT_STEPS) -> float:
    """Largest difference of a word score between attributing each text alone and all texts in one
    padded batch of mixed lengths, relative to the largest |score| (padding must not
    change the figures)."""
    texts = list(texts)
    targets = [target] * len(texts)
    together = compute_attributions(model, texts, targets, baseline, n_steps, n_steps,
                                    batch_examples=len(texts), sort_by_length=False)
    alone = compute_attributions(model, texts, targets, baseline, n_steps, n_steps, batch_examples=1)
    scale = max(max(np.abs(a.scores).max(initial=0.0) for a in alone), 1e-12)
    return max(float(np.abs(a.scores - b.scores).max(initial=0.0)) for a, b in zip(together, alone)) / scale

