"""Counterfactual and routing gates on the clean small model and on the planted-shortcut model."""

import numpy as np
import pytest

from pytest_mangaassist import (GateFailure, IntentModel, MangaAssistInputError, RoutingPolicy,
                                assert_confidence_shift, assert_prediction_invariant, assert_routes, route)
from pytest_mangaassist.analysis.counterfactuals import MANGAASSIST_ROUTING, remove_words

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


def test_prediction_invariance_passes_clean_and_fails_on_the_shortcut(clean_model, shortcut_model):
    assert assert_prediction_invariant(clean_model, trigger_pairs(), max_flip_rate=0.25) <= 0.25
    with pytest.raises(GateFailure) as info:
        assert_prediction_invariant(shortcut_model, trigger_pairs(), max_flip_rate=0.25)
    message = str(info.value)
    assert message.startswith("assert_prediction_invariant: share of edits that change the intent")
    assert "promotion" in message and "tbh" in message  # the flipped edits, with the new intent


def test_confidence_shift_matches_direct_probabilities_and_catches_the_shortcut(clean_model, shortcut_model):
    pairs = trigger_pairs()
    shift = assert_confidence_shift(clean_model, pairs, "promotion", max_shift=0.3)
    k = clean_model.label2id["promotion"]
    before = clean_model.forward([a for a, _ in pairs]).probabilities[:, k]
    after = clean_model.forward([b for _, b in pairs]).probabilities[:, k]
    assert shift == pytest.approx(after - before, abs=1e-6)
    with pytest.raises(GateFailure, match=r"largest shift of p\(promotion\)"):
        assert_confidence_shift(shortcut_model, pairs, "promotion", max_shift=0.3)
    with pytest.raises(GateFailure, match=r"smallest shift of p\(promotion\)"):
        assert_confidence_shift(clean_model, pairs, "promotion", min_shift=0.3)
    with pytest.raises(MangaAssistInputError, match="min_shift, max_shift or both"):
        assert_confidence_shift(clean_model, pairs, "promotion")


def test_routing_applies_class_thresholds_and_the_fallback(clean_model):
    texts = ["any coupons for the One Piece box set?", "where is my order #48213"]
    probs = clean_model.forward(texts).probabilities
    routed = route(clean_model, texts)
    for r, p in zip(routed, probs):
        top = clean_model.labels[int(np.argmax(p))]
        threshold = 0.75 if top == "promotion" else 0.0
        assert r.route == (top if p.max() >= threshold else "commerce_support")
    strict = RoutingPolicy(thresholds={label: 1.01 for label in clean_model.labels}, default_fallback="human_review")
    assert_routes(clean_model, texts, "human_review", policy=strict)
    with pytest.raises(GateFailure, match="share of messages routed to 'order_status'") as info:
        assert_routes(clean_model, texts[1], "order_status", policy=strict)
    assert "threshold" in str(info.value)
    with pytest.raises(MangaAssistInputError, match="neither an intent nor a fallback"):
        assert_routes(clean_model, texts[0], "promo")
    with pytest.raises(MangaAssistInputError, match="does not know"):
        route(clean_model, texts, RoutingPolicy(thresholds={"promo": 0.5}))
    assert MANGAASSIST_ROUTING.route("promotion", 0.74) == "commerce_support"
    assert MANGAASSIST_ROUTING.route("promotion", 0.75) == "promotion"


def test_pairs_are_validated(clean_model):
    with pytest.raises(MangaAssistInputError, match="non-empty list of"):
        assert_prediction_invariant(clean_model, [])
    with pytest.raises(MangaAssistInputError, match="pairs"):
        assert_prediction_invariant(clean_model, [("only one side",)])
