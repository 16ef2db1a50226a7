"""Monthly retrain gate: accuracy on the hand-written golden set, rare-intent recall, hard slices, each with
its confidence interval.

Thresholds are the team's production bar (source analysis, Doc 01: 92.1% accuracy at promotion;
JP-EN raised from 52% to 81%; rare intents recovered). A few hundred golden messages make a point
threshold flaky, so each bar is also stated on the lower end of the 95% interval (exact binomial for
accuracy and recall, seeded bootstrap for macro-F1): the model must clear it with confidence, not by luck.
A lower bound cannot reach a high bar on a small slice (a perfect 20/20 has lower bound 0.83), so the
lower floors are what the sample can support; the gates refuse slices too small to decide.

The reference model's figures on fixtures/golden.jsonl, with their intervals: docs/figures.md (regenerated
from a run by scripts/figures.sh).
"""

import pytest

from pytest_mangaassist import (RARE_INTENTS, GateFailure, assert_accuracy_above, assert_batch_invariant,
                                assert_macro_f1_above, assert_recall_above, evaluate, rates_table)

pytestmark = pytest.mark.gate("monthly")  # tier: every retrain


def test_golden_set_accuracy(intent_model, golden_set, mangaassist_record):
    evaluation = evaluate(intent_model, golden_set)
    rates = {"accuracy": evaluation.accuracy_rate(), "macro-F1": evaluation.macro_f1_rate(),
             **{f"slice {name}": rate for name, rate in evaluation.slice_accuracy_rates().items()},
             **{f"recall {name}": rate for name, rate in evaluation.recall_rates().items()}}
    mangaassist_record("golden-set rates with 95% intervals", rates_table(rates, "value", key="metric"))
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.90)
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.87, bound="lower")


def test_macro_f1(intent_model, golden_set):
    # every intent weighs the same, so a collapse of one rare intent shows even when accuracy holds
    assert_macro_f1_above(intent_model, golden_set, min_f1=0.87, bound="lower")


def test_rare_intents_are_recalled(intent_model, golden_set):
    # escalation, return_request, promotion: a missed one strands a customer or misroutes money
    assert_recall_above(intent_model, golden_set, min_recall=0.85, intents=RARE_INTENTS)
    # 14-20 messages each: a lower bound of 0.85 would need 23 perfect ones; 0.55 is what they support
    assert_recall_above(intent_model, golden_set, min_recall=0.55, intents=RARE_INTENTS, bound="lower")


def test_every_intent_is_recalled(intent_model, golden_set):
    assert_recall_above(intent_model, golden_set, min_recall=0.75)


@pytest.mark.parametrize("slice_name, floor, lower_floor", [
    # romanized Japanese mixed with English (20 messages): 18 right, the interval's lower end under 0.70
    ("jp_en", 0.80, 0.70),  # 19 of 20 since the JP-EN retrain (docs/slices.md): 95% lower bound 0.751
    ("manga_jargon", 0.85, 0.55),  # isekai, seinen, tankobon, omnibus... (11)
    ("adversarial", 0.85, 0.70),   # "sale" inside a return question, "help" outside escalation (19)
])
def test_slice_accuracy(intent_model, golden_set, slice_name, floor, lower_floor):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=floor, slice=slice_name)
    assert_accuracy_above(intent_model, golden_set, min_accuracy=lower_floor, slice=slice_name, bound="lower")


@pytest.mark.parametrize("slice_name, floor", [
    ("indirect", 0.85),      # frustration without "human" or "agent" (9 messages)
    ("multi_intent", 0.70),  # routed to the more urgent of two intents (8)
])
def test_small_slice_accuracy(intent_model, golden_set, slice_name, floor):
    # Below the gates' minimum of 10 messages one message moves accuracy 11-12 points, and the gate refuses
    # to decide. Reviewed exception until these slices grow: point estimate only, at_least_examples=8.
    assert_accuracy_above(intent_model, golden_set, min_accuracy=floor, slice=slice_name, at_least_examples=8)


def test_logits_do_not_depend_on_batching(intent_model, golden_set, mangaassist_record):
    # every gate reads batched, padded sweeps as if each message ran alone (measured: max diff ~3e-6)
    result = assert_batch_invariant(intent_model, golden_set)
    mangaassist_record(f"batch invariance ({result.n_texts} golden messages)", result.table())
