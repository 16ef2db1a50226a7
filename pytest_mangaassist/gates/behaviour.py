"""Behaviour gates (the source analysis' LIT section): counterfactual edits and routing thresholds.

An edit is an (original, edited) pair. assert_prediction_invariant: the edit must not change the
predicted intent (a synonym swap, a language switch, an inserted trigger word in an unrelated question).
assert_confidence_shift: the edit must move one intent's probability by at least / at most a
given amount. assert_routes: with the class-specific thresholds of a RoutingPolicy, a message
must reach the expected route (an intent, or the fallback when confidence is below threshold).
"""

from __future__ import annotations

import numpy as np

from ..analysis.counterfactuals import Routing, RoutingPolicy, edit_effect, route
from ..domain import routing_policy
from ..errors import MangaAssistInputError, clip, format_table
from . import validation as valid
from .records import Family, check

WORST = 8



@Family.BEHAVIOUR.gate(page="attribution.md",
                       checks="`examples` are `(original, edited)` pairs: the share whose predicted intent changes")
def assert_prediction_invariant(model, examples, *, max_flip_rate: float = 0.0) -> float:
    """The share of edits that change the predicted intent must be <= max_flip_rate.
    examples: (original, edited) message pairs (one pair alone too). Returns the share."""
    __tracebackhide__ = True
    caller = "assert_prediction_invariant"
    max_flip_rate = valid.share(caller, "max_flip_rate", max_flip_rate)
    pairs = valid.pairs(caller, examples)
    effect = edit_effect(model, pairs)
    before, after = effect.predicted("before"), effect.predicted("after")
    flipped = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
    rate = len(flipped) / len(pairs)
    rows = [(clip(effect.originals[i]), clip(effect.edited[i]), before[i], after[i],
             float(effect.after[i].max())) for i in flipped[:WORST]]
    check(caller, f"share of edits that change the intent ({len(pairs)} edits, {len(flipped)} changed)",
          rate, max_flip_rate, "<=", 
          evidence=lambda: format_table(("original", "edited", "before", "after", "confidence"), rows),
          hint="the model reacts to a word that should not decide the intent: add training messages "
               "with such edits under the original label (targeted augmentation).")
    return rate


@Family.BEHAVIOUR.gate(page="attribution.md", checks="every edit moves p(intent) into [min_shift, max_shift]")
def assert_confidence_shift(model, examples, *, intent: str, min_shift: float | None = None,
                            max_shift: float | None = None) -> np.ndarray:
    """Every edit must move p(intent) (edited minus original) into [min_shift, max_shift] (give one or both;
    a shift of a probability lies in [-1, 1]). examples: (original, edited) message pairs.

    e.g. min_shift=0.3: adding a phrase that asks for the intent must raise its probability by 0.3;
    max_shift=0.1: adding a trigger word to an unrelated question must not raise it by more than 0.1.
    Returns the shifts.
    """
    __tracebackhide__ = True
    caller = "assert_confidence_shift"
    min_shift = valid.number(caller, "min_shift", min_shift, low=-1.0, high=1.0, optional=True)
    max_shift = valid.number(caller, "max_shift", max_shift, low=-1.0, high=1.0, optional=True)
    valid.limits_given(caller, min_shift=min_shift, max_shift=max_shift)
    pairs = valid.pairs(caller, examples)
    intent = valid.intent(caller, model, intent)
    effect = edit_effect(model, pairs)
    shift = effect.shift(intent)
    k = model.label2id[intent]
    for limit, comparison, bad, worst in ((min_shift, ">=", lambda s: s < min_shift, np.argsort(shift)),
                                          (max_shift, "<=", lambda s: s > max_shift, np.argsort(-shift))):
        if limit is None:
            continue
        measured = float(shift.min() if comparison == ">=" else shift.max())
        rows = [(clip(effect.originals[i]), clip(effect.edited[i]), effect.before[i, k], effect.after[i, k],
                 f"{shift[i]:+.3f}") for i in worst[:WORST] if bad(shift[i])]
        check(caller, f"{'smallest' if comparison == '>=' else 'largest'} shift of p({intent}) "
                      f"({len(pairs)} edits, {int(bad(shift).sum())} outside the limit)",
              measured, limit, comparison, 
              evidence=format_table(("original", "edited", "p before", "p after", "shift"), rows),
              hint="the edit moves the intent's confidence the wrong amount: add contrastive training "
                   "pairs like these, or review whether the limit matches the routing policy.")
    return shift


@Family.BEHAVIOUR.gate(page="attribution.md",
                       checks="routing with class-specific thresholds and fallbacks reaches `expected`")
def assert_routes(model, examples, *, expected: str, policy: RoutingPolicy | None = None) -> list[Routing]:
    """Every message must be routed to `expected` (a label or a fallback route) under the policy (default:
    the suite's --routing-policy, else the profile of the model's label set, else argmax; the row names
    which). examples: one message, a list of messages or a GoldenSet. Returns each message's routing."""
    __tracebackhide__ = True
    caller = "assert_routes"
    valid.loaded_model(caller, model)
    policy = routing_policy(model.labels, valid.policy(caller, policy))
    texts = valid.texts(caller, [examples] if isinstance(examples, str) else examples)
    routes = {policy.default_fallback, *policy.fallbacks.values(), *model.labels}
    if not isinstance(expected, str) or expected not in routes:
        raise MangaAssistInputError(f"{caller}: expected={expected!r} is neither an intent nor a fallback route.",
                                    f"Routes under this policy: {', '.join(sorted(routes))}.")
    routed = route(model, texts, policy)
    wrong = [r for r in routed if r.route != expected]
    rows = [(clip(r.text), r.intent, r.confidence, policy.thresholds.get(r.intent, policy.default_threshold),
             r.route) for r in wrong[:WORST]]
    check(caller, f"share of messages routed to {expected!r} ({len(texts)} messages, {len(wrong)} elsewhere; "
                  f"routing: {policy.source})",
          1 - len(wrong) / len(texts), 1.0, ">=", 
          evidence=lambda: format_table(("message", "top label", "confidence", "threshold", "route"), rows),
          hint="either the label is wrong (see the top label) or its confidence is below the "
               "policy's threshold for it; fix the data, or change the threshold as a reviewed decision.")
    return routed
