"""Counterfactual and routing gates on the clean small model and on the planted-shortcut model."""

import numpy as np
import pytest

from pytest_mangaassist import (GateFailure, IntentModel, MangaAssistInputError, RoutingPolicy,
                                assert_confidence_shift, assert_prediction_invariant, assert_routes, route)
from pytest_mangaassist.analysis.counterfactuals import remove_words
from pytest_mangaassist.domain import COMMERCE_SUPPORT, MANGAASSIST_ROUTING

from attribution_helpers import NON_PROMOTION, shortcut_checkpoint, with_trigger


@pytest.fixture(scope="module")
def shortcut_model(tmp_path_factory):
    return IntentModel.load(shortcut_checkpoint())


@pytest.fixture(scope="module")
def clean_model(small_model):
    return IntentModel.load(small_model)


def trigger_pairs():
    return list(zip(NON_PROMOTION, with_trigger(NON_PROMOTION)))


def test_removal_takes_whole_words_whatever_their_punctuation():
    assert remove_words("Sale! can I return this sale item?", ["sale"]) == "can I return this item?"


def flip_rate(model, pairs):
    """The share of pairs whose predicted intent changes, computed here without the gate."""
    before = model.forward([a for a, _ in pairs]).probabilities.argmax(axis=1)
    after = model.forward([b for _, b in pairs]).probabilities.argmax(axis=1)
    return float(np.mean(before != after))


def test_prediction_invariance_passes_clean_and_fails_on_the_shortcut(clean_model, shortcut_model):
    pairs = trigger_pairs()
    clean, shortcut = flip_rate(clean_model, pairs), flip_rate(shortcut_model, pairs)
    assert clean < shortcut  # the planted trigger flips more edits than on the clean model
    limit = (clean + shortcut) / 2
    assert assert_prediction_invariant(clean_model, pairs, max_flip_rate=limit) == pytest.approx(clean)
    with pytest.raises(GateFailure) as info:
        assert_prediction_invariant(shortcut_model, pairs, max_flip_rate=limit)
    message = str(info.value)
    assert message.startswith("assert_prediction_invariant: share of edits that change the intent "
                              f"({len(pairs)} edits, {round(shortcut * len(pairs))} changed)")
    assert "promotion" in message and "tbh" in message  # the flipped edits, with the new intent


def test_confidence_shift_matches_direct_probabilities_and_catches_the_shortcut(clean_model, shortcut_model):
    pairs = trigger_pairs()
    k = clean_model.label2id["promotion"]
    before = clean_model.forward([a for a, _ in pairs]).probabilities[:, k]
    after = clean_model.forward([b for _, b in pairs]).probabilities[:, k]
    direct = after - before
    limit = float(direct.max()) + 0.01  # just above the clean model's largest shift
    shift = assert_confidence_shift(clean_model, pairs, intent="promotion", max_shift=limit)
    assert shift == pytest.approx(direct, abs=1e-6)
    with pytest.raises(GateFailure, match=r"largest shift of p\(promotion\)"):
        assert_confidence_shift(shortcut_model, pairs, intent="promotion", max_shift=limit)
    floor = float(direct.min()) + 0.01  # just above the clean model's smallest shift: that edit misses it
    with pytest.raises(GateFailure, match=r"smallest shift of p\(promotion\)") as info:
        assert_confidence_shift(clean_model, pairs, intent="promotion", min_shift=floor)
    assert f"({len(pairs)} edits, {int((direct < floor).sum())} outside the limit)" in str(info.value)
    with pytest.raises(MangaAssistInputError, match="min_shift or max_shift"):
        assert_confidence_shift(clean_model, pairs, intent="promotion")
    with pytest.raises(MangaAssistInputError, match="min_shift=0.5 is above max_shift=0.1"):
        assert_confidence_shift(clean_model, pairs, intent="promotion", min_shift=0.5, max_shift=0.1)
    with pytest.raises(MangaAssistInputError, match="max_shift must be a number in \\[-1, 1\\]"):
        assert_confidence_shift(clean_model, pairs, intent="promotion", max_shift=1.5)


def test_routing_applies_class_thresholds_and_the_fallback(clean_model):
    texts = ["any coupons for the One Piece box set?", "where is my order #48213"]
    probs = clean_model.forward(texts).probabilities
    routed = route(clean_model, texts, MANGAASSIST_ROUTING)
    for r, p in zip(routed, probs):
        top = clean_model.labels[int(np.argmax(p))]
        threshold = MANGAASSIST_ROUTING.thresholds.get(top, MANGAASSIST_ROUTING.default_threshold)
        assert r.route == (top if p.max() >= threshold else COMMERCE_SUPPORT)
    strict = RoutingPolicy(thresholds={label: 1.01 for label in clean_model.labels}, default_fallback="human_review")
    assert_routes(clean_model, texts, expected="human_review", policy=strict)
    with pytest.raises(GateFailure, match="share of messages routed to 'order_status'") as info:
        assert_routes(clean_model, texts[1], expected="order_status", policy=strict)
    assert "threshold" in str(info.value)
    with pytest.raises(MangaAssistInputError, match="neither an intent nor a fallback"):
        assert_routes(clean_model, texts[0], expected="promo")
    with pytest.raises(MangaAssistInputError, match="does not know"):
        route(clean_model, texts, RoutingPolicy(thresholds={"promo": 0.5}))
    with pytest.raises(MangaAssistInputError, match="policy must be None or a RoutingPolicy"):
        assert_routes(clean_model, texts, expected="promotion", policy={"promotion": 0.75})
    promotion = MANGAASSIST_ROUTING.thresholds["promotion"]
    assert MANGAASSIST_ROUTING.route("promotion", promotion - 0.01) == COMMERCE_SUPPORT
    assert MANGAASSIST_ROUTING.route("promotion", promotion) == "promotion"


def test_routing_policy_is_importable_from_the_package():
    import pytest_mangaassist

    assert pytest_mangaassist.MANGAASSIST_ROUTING is MANGAASSIST_ROUTING


def test_pairs_are_validated(clean_model):
    with pytest.raises(MangaAssistInputError, match="non-empty list of"):
        assert_prediction_invariant(clean_model, [])
    with pytest.raises(MangaAssistInputError, match="pairs"):
        assert_prediction_invariant(clean_model, [("only one side",)])
    with pytest.raises(MangaAssistInputError, match="max_flip_rate must be a number in \\[0, 1\\]"):
        assert_prediction_invariant(clean_model, trigger_pairs(), max_flip_rate=-0.1)
