"""Monthly gate as a comparison: the candidate (--model-path) against the model in production
(--production-path), example by example on the golden set.

A retrain that keeps accuracy can still lose messages the production model handled (negative flips); the
customers who sent them notice. Rare intents and the adversarial slice are where a flip costs most, so their
negative flips are gated; elsewhere McNemar's exact paired test must not find the candidate worse.

The reference model against its previous snapshot (artifacts/reference/previous, one epoch earlier): the
flip tables are in docs/figures.md (regenerated from a run by scripts/figures.sh).
"""

import pytest

from pytest_mangaassist import RARE_INTENTS, assert_no_negative_flips, assert_not_worse, paired_comparison

pytestmark = pytest.mark.gate("monthly")  # tier: every retrain: the candidate against production


def test_paired_comparison_tables(intent_model, production_model, golden_set, mangaassist_record):
    comparison = paired_comparison(intent_model, golden_set, against=production_model)
    by_slice, by_intent = comparison.table("slice"), comparison.table("intent")
    mangaassist_record("candidate vs production per slice (golden set)", by_slice)
    mangaassist_record("candidate vs production per intent (golden set)", by_intent)
    # the tables compare the two models on every golden message: every slice and every intent has its row
    assert len(comparison.golden) == len(golden_set)
    assert all(ex.slice in by_slice for ex in golden_set if ex.slice)
    assert all(ex.intent in by_intent for ex in golden_set)


def test_no_negative_flips_on_rare_intents(intent_model, production_model, golden_set):
    # escalation, return_request, promotion: at most one of their ~50 golden messages may flip to wrong
    assert_no_negative_flips(intent_model, golden_set, against=production_model, intents=RARE_INTENTS, max_negative_flip_rate=0.02)


def test_no_negative_flips_on_adversarial_messages(intent_model, production_model, golden_set):
    # trigger words in the wrong context: a regression here is a shortcut the retrain picked up (at most 1 of 19)
    assert_no_negative_flips(intent_model, golden_set, against=production_model, slice="adversarial", max_negative_flip_rate=0.06)


def test_candidate_is_not_worse_overall(intent_model, production_model, golden_set):
    assert_not_worse(intent_model, golden_set, against=production_model, min_p_value=0.05)


@pytest.mark.parametrize("slice_name", ["jp_en", "manga_jargon", "adversarial"])
def test_candidate_is_not_worse_on_slice(intent_model, production_model, golden_set, slice_name):
    # indirect and multi_intent (8-9 messages) are too small for a paired test to decide
    assert_not_worse(intent_model, golden_set, against=production_model, slice=slice_name, min_p_value=0.05)
