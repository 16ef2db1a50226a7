"""Behaviour gates (the source analysis' LIT section): counterfactual edits and routing thresholds.

An edit is an (original, edited) pair. assert_prediction_invariant: the edit must not change the
predicted intent (a manga-jargon swap, code-switching, an inserted "sale" in a return question).
assert_confidence_shift: the edit must move one intent's probability by at least / at most a
given amount. assert_routes: with the class-specific thresholds of a RoutingPolicy, a message
must reach the expected route (an intent, or the fallback when confidence is below threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis.counterfactuals import MANGAASSIST_ROUTING, Routing, RoutingPolicy, edit_effect, route
from ..errors import MangaAssistInputError, format_table
from .records import check
from .attribution import check_intent

WORST = 8
FAMILY = "behaviour"


def _clip(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _pairs(pairs, caller: str) -> list[tuple[str, str]]:
    if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(t, str) for t in pairs):
        return [pairs]  # one pair
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise MangaAssistInputError(f"{caller}: expected a non-empty list of (original, edited) pairs, got {pairs!r}.",
                                    "Pass e.g. [(\"can I return this\", \"can I return this sale item\")].")
    return [tuple(p) for p in pairs]


def assert_prediction_invariant(model, pairs, max_flip_rate: float = 0.0) -> float:
    """The share of edits that change the predicted intent must be <= max_flip_rate. Returns it."""
    __tracebackhide__ = True
    pairs = _pairs(pairs, "assert_prediction_invariant")
    effect = edit_effect(model, pairs)
    before, after = effect.predicted("before"), effect.predicted("after")
    flipped = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
    rate = len(flipped) / len(pairs)
    rows = [(_clip(effect.originals[i]), _clip(effect.edited[i]), before[i], after[i],
             float(effect.after[i].max())) for i in flipped[:WORST]]
    check("assert_prediction_invariant", f"share of edits that change the intent ({len(pairs)} edits, "
                                         f"{len(flipped)} changed)", rate, max_flip_rate, "<=", family=FAMILY,
          evidence=lambda: format_table(("original", "edited", "before", "after", "confidence"), rows),
          hint="the model reacts to a word that should not decide the intent: add training messages "
               "with such edits under the original label (targeted augmentation).")
    return rate


def assert_confidence_shift(model, pairs, intent: str, min_shift: float | None = None,
                            max_shift: float | None = None) -> np.ndarray:
    """Every edit must move p(intent) (edited minus original) into [min_shift, max_shift].

    e.g. min_shift=0.3: adding "any coupons?" must raise promotion by 0.3; max_shift=0.1: adding "sale"
    to a return question must not raise promotion by more than 0.1. Returns the shifts.
    """
    __tracebackhide__ = True
    caller = "assert_confidence_shift"
    check_intent(model, intent, caller)
    if min_shift is None and max_shift is None:
        raise MangaAssistInputError(f"{caller}: give min_shift, max_shift or both.", "e.g. max_shift=0.1.")
    pairs = _pairs(pairs, caller)
    effect = edit_effect(model, pairs)
    shift = effect.shift(intent)
    k = model.label2id[intent]
    for limit, comparison, bad, worst in ((min_shift, ">=", lambda s: s < min_shift, np.argsort(shift)),
                                          (max_shift, "<=", lambda s: s > max_shift, np.argsort(-shift))):
        if limit is None:
            continue
        measured = float(shift.min() if comparison == ">=" else shift.max())
        rows = [(_clip(effect.originals[i]), _clip(effect.edited[i]), effect.before[i, k], effect.after[i, k],
                 f"{shift[i]:+.3f}") for i in worst[:WORST] if bad(shift[i])]
        check(caller, f"{'smallest' if comparison == '>=' else 'largest'} shift of p({intent}) "
                      f"({len(pairs)} edits, {int(bad(shift).sum())} outside the limit)",
              measured, limit, comparison, family=FAMILY,
              evidence=format_table(("original", "edited", "p before", "p after", "shift"), rows),
              hint="the edit moves the intent's confidence the wrong amount: add contrastive training "
                   "pairs like these, or review whether the limit matches the routing policy.")
    return shift


def assert_routes(model, text: str | Sequence[str], expected: str,
                  policy: RoutingPolicy = MANGAASSIST_ROUTING) -> list[Routing]:
    """The message(s) must be routed to `expected` (an intent or a fallback route) under the policy."""
    __tracebackhide__ = True
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise MangaAssistInputError(f"assert_routes: expected a message or a list of messages, got {text!r}.",
                                    "Pass a non-empty string, or a list of them.")
    routes = {policy.default_fallback, *policy.fallbacks.values(), *model.labels}
    if expected not in routes:
        raise MangaAssistInputError(f"assert_routes: {expected!r} is neither an intent nor a fallback route.",
                                    f"Routes under this policy: {', '.join(sorted(routes))}.")
    routed = route(model, texts, policy)
    wrong = [r for r in routed if r.route != expected]
    rows = [(_clip(r.text), r.intent, r.confidence, policy.thresholds.get(r.intent, policy.default_threshold),
             r.route) for r in wrong[:WORST]]
    check("assert_routes", f"share of messages routed to {expected!r} ({len(texts)} messages)",
          1 - len(wrong) / len(texts), 1.0, ">=", family=FAMILY,
          evidence=lambda: format_table(("message", "top intent", "confidence", "threshold", "route"), rows),
          hint="either the intent is wrong (see the top intent) or its confidence is below the "
               "policy's threshold for it; fix the data, or change the threshold as a reviewed decision.")
    return routed
