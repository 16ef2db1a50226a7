"""Attribution gates (the source analysis' Captum section): lexical shortcuts, layer conductance,
and the check that attribution figures do not depend on how messages are batched.

A shortcut finding needs two pieces of evidence: Integrated Gradients puts more than max_share of
the intent's positive attribution on a word family, AND taking those words out of the messages
lowers the intent's probability by at least min_effect on average (the causal confirmation).
Attribution alone can point at a word the decision does not depend on; removal alone cannot say
which word to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis.attribution import (MAX_STEPS, baseline_token_id, batch_invariance, dominant_word_types, family_share,
                                    integrated_gradients, normalize_word)
from ..analysis.conductance import LayerConductance, layer_conductance
from ..analysis.counterfactuals import remove_words
from ..analysis.layers import layer_name, resolve_layer
from ..errors import MangaAssistInputError, format_table
from ..loading.golden import GoldenSet
from .records import check

WORST = 6
FAMILY = "attribution"


def example_texts(examples, caller: str) -> list[str]:
    """Texts of a GoldenSet or of a list of strings; an empty or mistyped input is an input error."""
    if isinstance(examples, GoldenSet):
        texts = examples.texts
    elif isinstance(examples, (list, tuple)) and all(isinstance(t, str) for t in examples):
        texts = list(examples)
    else:
        raise MangaAssistInputError(f"{caller}: examples must be a GoldenSet or a list of strings, got "
                                    f"{type(examples).__name__}.",
                                    "Pass the golden_set fixture (or a slice of it) or a list of messages.")
    if not texts:
        raise MangaAssistInputError(f"{caller}: no examples to measure.", "Pass at least one message.")
    return texts


def check_intent(model, intent: str, caller: str) -> None:
    if intent not in model.labels:
        raise MangaAssistInputError(f"{caller}: unknown intent {intent!r} for the model {model.source}.",
                                    f"Use one of its labels: {', '.join(model.labels)}.")


@dataclass(frozen=True)
class ShortcutAudit:
    intent: str
    family: tuple[str, ...]
    shares: dict  # baseline -> pooled share of the intent's positive attribution on the family
    attributions: dict  # baseline -> list[Attribution], over the messages that contain the family
    after_removal: np.ndarray  # p(intent) with the family's words removed, per message
    discovered: bool  # family found by the audit (no family given)

    @property
    def before(self) -> np.ndarray:
        return np.array([a.probability for a in next(iter(self.attributions.values()))])

    @property
    def effect(self) -> float:
        """Mean fall of p(intent) when the family's words are removed."""
        return float((self.before - self.after_removal).mean())

    @property
    def share(self) -> float:
        return max(self.shares.values())

    @property
    def baselines_disagree(self) -> bool:
        return len(self.shares) > 1 and max(self.shares.values()) - min(self.shares.values()) > 0.1

    def baseline_table(self, max_share: float) -> str:
        """Each baseline's share, and its messages whose completeness error stayed over 1% at max_steps."""
        rows = [(b, s, "above" if s > max_share else "below",
                 f"{sum(not a.converged for a in self.attributions[b])} / {len(self.attributions[b])}",
                 max(a.relative_delta for a in self.attributions[b])) for b, s in self.shares.items()]
        return format_table(("IG baseline", "family share", f"vs {max_share:.2f}", "not converged",
                             "worst |delta| / gap"), rows)

    def worst_table(self, k: int = WORST) -> str:
        attributions = next(iter(self.attributions.values()))
        fam = set(self.family)
        per_example = [sum(max(s, 0.0) for w, s in zip(a.words, a.scores) if normalize_word(w) in fam)
                       for a in attributions]
        order = np.argsort(-np.array(per_example), kind="stable")[:k]
        rows = [(_clip(attributions[i].text), attributions[i].probability, self.after_removal[i],
                 attributions[i].top_words()) for i in order]
        return format_table(("message", f"p({self.intent})", "without family", "word scores (IG, logit units)"), rows)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def lexical_shortcut_audit(model, examples, intent: str, family: Sequence[str] | None = None,
                           baselines: Sequence[str] = ("pad",), min_examples: int = 3,
                           max_steps: int = MAX_STEPS) -> ShortcutAudit:
    """The figures of assert_no_lexical_shortcut, without the verdict."""
    caller = "assert_no_lexical_shortcut"
    texts = example_texts(examples, caller)
    check_intent(model, intent, caller)
    if not baselines:
        raise MangaAssistInputError(f"{caller}: no IG baseline given.", "Pass baselines=('pad',) or more.")
    for baseline in baselines:
        baseline_token_id(model.tokenizer, baseline)
    if family is not None:
        family = tuple(sorted({normalize_word(w) for w in family}))
        if not any(normalize_word(w) in family for t in texts for w in t.split()):
            raise MangaAssistInputError(
                f"{caller}: none of the {len(texts)} messages contains a word of {list(family)}.",
                "Audit messages that contain the family's words (e.g. the adversarial slice).")
    # attributions over all the messages (one cached computation per baseline, shared by every audit of
    # the same messages and intent), then restricted to the messages that contain the family
    every = {b: integrated_gradients(model, texts, intent, b, max_steps=max_steps) for b in baselines}
    discovered = family is None
    if discovered:
        ranked = dominant_word_types(every[baselines[0]], min_examples)
        if not ranked:
            raise MangaAssistInputError(f"{caller}: no word occurs in {min_examples} or more of the "
                                        f"{len(texts)} messages.", "Audit more messages, or lower min_examples.")
        family = (ranked[0][0],)
    family = tuple(sorted({normalize_word(w) for w in family}))
    keep = [i for i, t in enumerate(texts) if any(normalize_word(w) in family for w in t.split())]
    found = {b: [a[i] for i in keep] for b, a in every.items()}
    shares = {b: family_share(a, set(family)).share for b, a in found.items()}
    removed = [remove_words(texts[i], family) or model.tokenizer.unk_token for i in keep]
    after = model.forward(removed).probabilities[:, model.label2id[intent]]
    return ShortcutAudit(intent, family, shares, found, after, discovered)


def assert_no_lexical_shortcut(model, examples, intent: str, family: Sequence[str] | None = None,
                               max_share: float = 0.5, min_effect: float = 0.1,
                               baselines: Sequence[str] = ("pad",), min_examples: int = 3,
                               max_steps: int = MAX_STEPS) -> ShortcutAudit:
    """The share of intent's positive IG attribution on the word family (pooled over the messages that
    contain it) must stay <= max_share, unless removing the family's words lowers p(intent) by less
    than min_effect on average (then attribution points at a word the decision does not need).

    family=None: audit the single word type (met in >= min_examples messages) with the largest share.
    Several baselines ("pad", "mask", "unk"): the finding must hold under each; the failure shows
    every baseline's share and says where they disagree. IG starts at 16 steps and doubles, up to
    max_steps, for each message whose completeness error is over 1%. Returns the ShortcutAudit.
    """
    __tracebackhide__ = True
    audit = lexical_shortcut_audit(model, examples, intent, family, baselines, min_examples, max_steps)
    what = f"the word type {audit.family[0]!r} (found by the audit)" if audit.discovered else \
        f"the family {list(audit.family)}"
    disagreement = ("\nthe baselines disagree on the share: read the figures with care" if audit.baselines_disagree
                    else "")
    check("assert_no_lexical_shortcut",
          f"share of {intent}'s positive attribution on {what} ({len(audit.before)} messages; "
          f"{'largest over the IG baselines; ' if len(audit.shares) > 1 else ''}removing it lowers "
          f"p({intent}) by {audit.effect:.3f} on average)", audit.share, max_share, "<=", family=FAMILY,
          passed=not (audit.share > max_share and audit.effect >= min_effect), data=_heatmap_data(audit),
          evidence=lambda: audit.baseline_table(max_share) + disagreement + "\n\nworst messages:\n" + audit.worst_table(),
          hint=f"the model routes to {intent} on these words rather than on the request: add training messages "
               f"where they appear in other intents' contexts (targeted augmentation) and retrain.")
    return audit


def _heatmap_data(audit: ShortcutAudit, k: int = WORST) -> dict:
    """The messages leaning most on the family, word by word, for the HTML report's heatmaps."""
    attributions = next(iter(audit.attributions.values()))
    family = set(audit.family)
    weight = [sum(max(s, 0.0) for w, s in zip(a.words, a.scores) if normalize_word(w) in family) for a in attributions]
    order = np.argsort(-np.array(weight), kind="stable")[:k]
    return {"tokens": [{"words": [[w, float(sc)] for w, sc in zip(attributions[i].words, attributions[i].scores)],
                        "note": f"p({audit.intent}) {attributions[i].probability:.2f}, without the family "
                                f"{audit.after_removal[i]:.2f}"} for i in order]}


def assert_attribution_batch_invariant(model, texts: Sequence[str], intent: str, tolerance: float = 1e-3,
                                       baseline: str = "pad") -> float:
    """Word scores computed with all texts in one padded batch must equal those of each text alone,
    within tolerance (relative to the largest |score|). Returns the measured difference."""
    __tracebackhide__ = True
    texts = example_texts(list(texts), "assert_attribution_batch_invariant")
    check_intent(model, intent, "assert_attribution_batch_invariant")
    if len({len(t) for t in texts}) < 2:
        raise MangaAssistInputError("assert_attribution_batch_invariant needs texts of different lengths "
                                    "(padding is what it checks).", "Pass a short and a long message at least.")
    difference = batch_invariance(model, texts, intent, baseline)
    check("assert_attribution_batch_invariant",
          f"largest word-score difference, batched vs alone ({len(texts)} texts), relative",
          difference, tolerance, "<=", family=FAMILY,
          hint="padding or batch composition changes the attributions: check that the attention "
               "mask reaches every layer and that the model is in eval mode.")
    return difference


def assert_layer_conductance_share(model, examples, intent: str, layer: int, min_share: float | None = None,
                                   max_share: float | None = None) -> LayerConductance:
    """The share of intent's absolute conductance mass (captum LayerConductance, pooled over the
    messages) carried by encoder layer `layer` must lie within [min_share, max_share]."""
    __tracebackhide__ = True
    caller = "assert_layer_conductance_share"
    texts = example_texts(examples, caller)
    check_intent(model, intent, caller)
    layer = resolve_layer(layer, model.num_layers, caller)
    if layer == 0:
        raise MangaAssistInputError(f"{caller}: conductance is measured at encoder layers 1..{model.num_layers}.",
                                    "Gate an encoder layer (1.., or -1 for the last).")
    if min_share is None and max_share is None:
        raise MangaAssistInputError(f"{caller}: give min_share, max_share or both.", "e.g. min_share=0.2.")
    result = layer_conductance(model, texts, intent)
    share = float(result.shares[layer - 1])
    for limit, comparison in ((min_share, ">="), (max_share, "<=")):
        if limit is not None:
            check(caller, f"share of {intent}'s conductance mass at {layer_name(layer)} ({len(texts)} messages)",
                  share, limit, comparison, family=FAMILY, evidence=lambda: result.table(gated=layer),
                  hint="the layers that carry this intent's evidence moved: compare with the previous "
                       "model's table (discriminative learning rates, frozen layers).")
    return result
