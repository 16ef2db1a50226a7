"""Attribution gates (the source analysis' Captum section): lexical shortcuts, layer conductance,
and the check that attribution figures do not depend on how messages are batched.

A shortcut finding needs two pieces of evidence: Integrated Gradients puts more than max_share of
the intent's positive attribution on a group of words, AND taking those words out of the messages
lowers the intent's probability by at least min_effect on average (the causal confirmation).
Attribution alone can point at a word the decision does not depend on; removal alone cannot say
which word to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis.attribution import DEFAULT_STEPS, MAX_STEPS, dominant_word_types, words_share, normalize_word
from ..analysis.conductance import LayerConductance
from ..analysis.counterfactuals import remove_words
from ..analysis.layers import layer_name
from ..cache.analyses import attribution_batch_invariance, integrated_gradients, layer_conductance
from ..errors import MangaAssistInputError, clip, format_table, renamed_keywords, warn_renamed
from . import validation as valid
from .records import Family, HeatmapRow, TokenHeatmap, check

WORST = 6


@dataclass(frozen=True)
class ShortcutAudit:
    intent: str
    words: tuple[str, ...]
    shares: dict  # baseline -> pooled share of the intent's positive attribution on the words
    attributions: dict  # baseline -> list[Attribution], over the messages that contain one of the words
    after_removal: np.ndarray  # p(intent) with the words removed, per message
    discovered: bool  # the word type found by the audit (no words given)

    @property
    def family(self) -> tuple[str, ...]:
        """Deprecated name of `words`, kept for one release."""
        warn_renamed("ShortcutAudit.family", "read .words")
        return self.words

    @property
    def before(self) -> np.ndarray:
        return np.array([a.probability for a in next(iter(self.attributions.values()))])

    @property
    def effect(self) -> float:
        """Mean fall of p(intent) when the words are removed."""
        return float((self.before - self.after_removal).mean())

    @property
    def share(self) -> float:
        return max(self.shares.values())

    @property
    def baselines_disagree(self) -> bool:
        return len(self.shares) > 1 and max(self.shares.values()) - min(self.shares.values()) > 0.1

    def baseline_table(self, max_share: float) -> str:
        """Each baseline's share, and its messages that had not converged at at_most_steps (word scores still
        estimated off by more than 2% of the largest score, or completeness error over 1%)."""
        rows = [(b, s, "above" if s > max_share else "below",
                 f"{sum(not a.converged for a in self.attributions[b])} / {len(self.attributions[b])}",
                 max(a.word_error for a in self.attributions[b]),
                 max(a.relative_delta for a in self.attributions[b])) for b, s in self.shares.items()]
        return format_table(("IG baseline", "words' share", f"vs {max_share:.2f}", "not converged",
                             "worst word error (est.)", "worst |delta| / gap"), rows)

    def worst_table(self, k: int = WORST) -> str:
        attributions = next(iter(self.attributions.values()))
        audited = set(self.words)
        per_example = [sum(max(s, 0.0) for w, s in zip(a.words, a.scores) if normalize_word(w) in audited)
                       for a in attributions]
        order = np.argsort(-np.array(per_example), kind="stable")[:k]
        rows = [(clip(attributions[i].text), attributions[i].probability, self.after_removal[i],
                 attributions[i].top_words()) for i in order]
        return format_table(("message", f"p({self.intent})", "without words", "word scores (IG, logit units)"), rows)



def _words(caller: str, words) -> tuple[str, ...] | None:
    """None (found by the audit), or a non-empty list of words (one word alone too), normalised."""
    words = valid.words(caller, "words", words, optional=True, example="['word', 'its synonym'] (None: the audit "
                        "finds the word type with the largest share)")
    return None if words is None else tuple(sorted({normalize_word(w) for w in words}))


def _audit(caller: str, model, examples, intent, words, baselines, at_least_examples, at_most_steps) -> ShortcutAudit:
    at_least_examples = valid.count(caller, "at_least_examples", at_least_examples)
    at_most_steps = valid.count(caller, "at_most_steps", at_most_steps, minimum=DEFAULT_STEPS)
    audited = _words(caller, words)
    texts = valid.texts(caller, examples)
    intent = valid.intent(caller, model, intent)
    baselines = valid.baselines(caller, model, baselines)
    if audited is not None and not any(normalize_word(w) in audited for t in texts for w in t.split()):
        raise MangaAssistInputError(
            f"{caller}: none of the {len(texts)} messages contains a word of {list(audited)}.",
            "Audit messages that contain the words (e.g. a slice built around them).")
    # attributions over all the messages (one cached computation per baseline, shared by every audit of
    # the same messages and intent), then restricted to the messages that contain one of the words
    every = {b: integrated_gradients(model, texts, intent, b, at_most_steps=at_most_steps) for b in baselines}
    discovered = audited is None
    if discovered:
        ranked = dominant_word_types(every[baselines[0]], at_least_examples)
        if not ranked:
            raise MangaAssistInputError(f"{caller}: no word occurs in {at_least_examples} or more of the "
                                        f"{len(texts)} messages.", "Audit more messages, or lower at_least_examples.")
        audited = (ranked[0][0],)
    keep = [i for i, t in enumerate(texts) if any(normalize_word(w) in audited for w in t.split())]
    found = {b: [a[i] for i in keep] for b, a in every.items()}
    shares = {b: words_share(a, set(audited)).share for b, a in found.items()}
    removed = [remove_words(texts[i], audited) or model.tokenizer.unk_token for i in keep]
    after = model.forward(removed).probabilities[:, model.label2id[intent]]
    return ShortcutAudit(intent, audited, shares, found, after, discovered)


@renamed_keywords(family="words", min_examples="at_least_examples", max_steps="at_most_steps")
def lexical_shortcut_audit(model, examples, *, intent: str, words: Sequence[str] | None = None,
                           baselines: Sequence[str] = ("pad",), at_least_examples: int = 3,
                           at_most_steps: int = MAX_STEPS) -> ShortcutAudit:
    """The figures of assert_no_lexical_shortcut, without the verdict."""
    return _audit("lexical_shortcut_audit", model, examples, intent, words, baselines, at_least_examples, at_most_steps)


@Family.ATTRIBUTION.gate(page="attribution.md", chart=TokenHeatmap,
                         checks="IG share of `intent` on a group of `words`, confirmed causally by removing them")
@renamed_keywords(family="words", min_examples="at_least_examples", max_steps="at_most_steps")
def assert_no_lexical_shortcut(model, examples, *, intent: str, words: Sequence[str] | None = None,
                               max_share: float = 0.5, min_effect: float = 0.1,
                               baselines: Sequence[str] = ("pad",), at_least_examples: int = 3,
                               at_most_steps: int = MAX_STEPS) -> ShortcutAudit:
    """The share of intent's positive IG attribution on `words` (pooled over the messages that contain
    one) must stay <= max_share, unless removing the words lowers p(intent) by less
    than min_effect on average (then attribution points at a word the decision does not need).

    examples: a GoldenSet or a list of messages (labels are not needed). words=None: audit the single
    word type (met in >= at_least_examples messages) with the largest share. Several baselines ("pad",
    "mask", "unk"): the finding must hold under each; the failure shows every baseline's share and
    says where they disagree. IG starts at 16 steps and doubles, up to at_most_steps, for each message
    whose completeness error is over 1%. Returns the ShortcutAudit.
    """
    __tracebackhide__ = True
    caller = "assert_no_lexical_shortcut"
    max_share = valid.share(caller, "max_share", max_share)
    min_effect = valid.share(caller, "min_effect", min_effect)
    audit = _audit(caller, model, examples, intent, words, baselines, at_least_examples, at_most_steps)
    what = f"the word type {audit.words[0]!r} (found by the audit)" if audit.discovered else \
        f"the words {list(audit.words)}"
    disagreement = ("\nthe baselines disagree on the share: read the figures with care" if audit.baselines_disagree
                    else "")
    # the verdict needs both figures: the share decides when it is within max_share; above it, the causal
    # effect decides (a share over the limit passes when removing the words barely moves the intent), and
    # the row shows that figure against min_effect, so the row never reads "0.5041 <= 0.5000 pass"
    largest = "; largest over the IG baselines" if len(audit.shares) > 1 else ""
    if audit.share <= max_share:
        metric, value, limit, comparison = (
            f"share of {intent}'s positive attribution on {what} ({len(audit.before)} messages{largest}; removing "
            f"{'it' if audit.discovered else 'them'} lowers p({intent}) by {audit.effect:.3f}, min_effect {min_effect:g})", audit.share, max_share, "<=")
    else:
        metric, value, limit, comparison = (
            f"fall of p({intent}) when {what} {'is' if audit.discovered else 'are'} removed ({len(audit.before)} messages; its share of {intent}'s "
            f"positive attribution {audit.share:.4f}{largest} > max_share {max_share:g}, so this effect decides)",
            audit.effect, min_effect, "<")
    check(caller, metric, value, limit, comparison, payload=_heatmap(audit),
          evidence=lambda: audit.baseline_table(max_share) + disagreement + "\n\nworst messages:\n" + audit.worst_table(),
          hint=f"the model routes to {intent} on these words rather than on the request: add training messages "
               f"where they appear in other intents' contexts (targeted augmentation) and retrain.")
    return audit


def _heatmap(audit: ShortcutAudit, k: int = WORST) -> TokenHeatmap:
    """The messages leaning most on the audited words, word by word, for the HTML report's heatmaps."""
    attributions = next(iter(audit.attributions.values()))
    audited = set(audit.words)
    weight = [sum(max(s, 0.0) for w, s in zip(a.words, a.scores) if normalize_word(w) in audited) for a in attributions]
    order = np.argsort(-np.array(weight), kind="stable")[:k]
    return TokenHeatmap(rows=tuple(
        HeatmapRow(words=tuple((w, float(sc)) for w, sc in zip(attributions[i].words, attributions[i].scores)),
                   note=f"p({audit.intent}) {attributions[i].probability:.2f}, without the words "
                        f"{audit.after_removal[i]:.2f}") for i in order))


@Family.ATTRIBUTION.gate(page="attribution.md", checks="IG word scores batched equal those of each message alone")
@renamed_keywords(max_difference="max_score_diff")  # the old names, for one release
def assert_attribution_batch_invariant(model, examples, *, intent: str, max_score_diff: float = 1e-3,
                                       baselines: Sequence[str] = ("pad",)) -> float:
    """Word scores computed with all the messages in one padded batch must equal those of each message
    alone, within max_score_diff (relative to the largest |score|), under every IG baseline given.
    examples: a GoldenSet or a list of messages of different lengths. Returns the largest difference."""
    __tracebackhide__ = True
    caller = "assert_attribution_batch_invariant"
    max_score_diff = valid.number(caller, "max_score_diff", max_score_diff, low=0.0, high=1.0)
    texts = valid.texts(caller, examples, minimum=2)
    intent = valid.intent(caller, model, intent)
    baselines = valid.baselines(caller, model, baselines)
    if len({len(t) for t in texts}) < 2:
        raise MangaAssistInputError(f"{caller} needs messages of different lengths (padding is what it checks).",
                                    "Pass a short and a long message at least.")
    difference = max(attribution_batch_invariance(model, texts, intent, b) for b in baselines)
    check(caller, f"largest word-score difference, batched vs alone ({len(texts)} messages, "
                  f"IG baseline{'s' if len(baselines) > 1 else ''} {', '.join(baselines)}), relative",
          difference, max_score_diff, "<=", 
          hint="padding or batch composition changes the attributions: check that the attention "
               "mask reaches every layer and that the model is in eval mode.")
    return difference


@Family.ATTRIBUTION.gate(page="attribution.md", checks="share of `intent`'s conductance mass carried by `layer`")
def assert_layer_conductance_share(model, examples, *, intent: str, layer: int, min_share: float | None = None,
                                   max_share: float | None = None) -> LayerConductance:
    """The share of intent's absolute conductance mass (captum LayerConductance, pooled over the
    messages) carried by encoder layer `layer` must lie within [min_share, max_share] (give one or both).
    examples: a GoldenSet or a list of messages."""
    __tracebackhide__ = True
    caller = "assert_layer_conductance_share"
    min_share = valid.share(caller, "min_share", min_share, optional=True)
    max_share = valid.share(caller, "max_share", max_share, optional=True)
    valid.limits_given(caller, min_share=min_share, max_share=max_share)
    layer = valid.layer(caller, model, layer, encoder="conductance")
    texts = valid.texts(caller, examples)
    intent = valid.intent(caller, model, intent)
    result = layer_conductance(model, texts, intent)
    share = float(result.shares[layer - 1])
    for limit, comparison in ((min_share, ">="), (max_share, "<=")):
        if limit is not None:
            check(caller, f"share of {intent}'s conductance mass at {layer_name(layer)} ({len(texts)} messages)",
                  share, limit, comparison, evidence=lambda: result.table(gated=layer),
                  hint="the layers that carry this intent's evidence moved: compare with the previous "
                       "model's table (discriminative learning rates, frozen layers).")
    return result
