"""Monthly retrain gate: accuracy on the hand-written golden set, rare-intent recall, hard slices.

Thresholds are the team's production bar (source analysis, Doc 01: 92.1% accuracy at promotion;
JP-EN raised from 52% to 81%; rare intents recovered). The golden set's slices are small, so a
slice floor sits a little under the overall bar; issue #7 adds confidence intervals.
"""

import pytest

from pytest_mangaassist import RARE_INTENTS, assert_accuracy_above, assert_recall_above


def test_golden_set_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.90)


def test_rare_intents_are_recalled(intent_model, golden_set):
    # escalation, return_request, promotion: a missed one strands a customer or misroutes money
    assert_recall_above(intent_model, golden_set, min_recall=0.85, intents=RARE_INTENTS)


def test_every_intent_is_recalled(intent_model, golden_set):
    assert_recall_above(intent_model, golden_set, min_recall=0.75)


@pytest.mark.parametrize("slice_name, floor", [
    ("jp_en", 0.80),         # romanized Japanese mixed with English
    ("manga_jargon", 0.85),  # isekai, seinen, tankobon, omnibus...
    ("adversarial", 0.85),   # "sale" inside a return question, "help" outside escalation
    ("indirect", 0.85),      # frustration without "human" or "agent"
    ("multi_intent", 0.70),  # routed to the more urgent of two intents
])
def test_slice_accuracy(intent_model, golden_set, slice_name, floor):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=floor, slice=slice_name)
