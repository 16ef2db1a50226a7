"""Quarterly deep dive (source analysis, TransformerLens section): where did fine-tuning change the
encoder, where does the intent decision form, and which layer carries it causally.

Measured on the validation set (--validation-set, 5,500 messages for the reference model):
  1. debiased linear CKA of each layer's [CLS] states, pre-trained vs fine-tuned (plain CKA rises as the
     number of messages falls, so a floor set on one set means nothing on another; the gate refuses fewer
     than 300 messages, benchmarks/cka_sample_size.py);
  2. macro-F1 of a logistic-regression probe on each layer's [CLS] states, with its 95% bootstrap
     interval and its selectivity against a control task (Hewitt & Liang, 2019: labels keyed to the
     message's first word, which only memorising surface identity can predict);
  3. activation patching: share of the model's errors corrected by one layer's [CLS] state
     from a correctly classified message of the true intent;
  4. the logit lens: the model's own head on every layer's [CLS] state, where each decision forms.
The tables are printed in the run's summary. Thresholds: see each test.
"""

import pytest

from pytest_mangaassist import (assert_cka_above, assert_patching_recovers, assert_probe_f1_above, cka_between,
                                cka_table, decision_lens, patching, probe_f1)

pytestmark = pytest.mark.gate("quarterly")  # tier: when a regression is unexplained

# The floors sit between the reference build and the same build with its top layer re-initialised: the
# top-layer CKA against the pre-trained encoder falls from 0.474 to 0.383 and the top probe's F1 below 0.95 (its
# lower bound: 0.743 on the first 1,000 validation messages). This build's tables: docs/figures.md, regenerated
# by scripts/figures.sh; CKA's dependence on sample size: benchmarks/cka_sample_size.py and
# docs/representation.md. The probe floor is on the interval's lower bound, so a point estimate a hair above
# 0.95 by chance does not pass.
TOP_LAYER_CKA_FLOOR = 0.42
TOP_LAYER_PROBE_F1_FLOOR = 0.95
TOP_LAYER_PROBE_SELECTIVITY_FLOOR = 0.4
PATCHING_SECOND_TO_TOP_FLOOR = 0.05


def test_lower_layers_keep_their_pretrained_representation(intent_model, pretrained_model, validation_set,
                                                           mangaassist_record):
    cka = cka_between(intent_model, validation_set, against=pretrained_model)
    mangaassist_record("debiased CKA pre-trained vs fine-tuned ([CLS], validation set)",
                       cka_table(cka, debiased=True))
    # discriminative learning rates keep layers 1-3 close to pre-training (reference: 0.998, 0.995, 0.967)
    for layer in (1, 2, 3):
        assert_cka_above(intent_model, validation_set, against=pretrained_model, layer=layer, min_cka=0.95)


def test_top_layer_adapted_without_being_replaced(intent_model, pretrained_model, validation_set):
    # the top layer must have moved (fine-tuning happened) but still resemble its pre-trained self
    cka = assert_cka_above(intent_model, validation_set, against=pretrained_model, layer=-1,
                           min_cka=TOP_LAYER_CKA_FLOOR)
    assert cka[-1] < 0.95, f"top-layer CKA {cka[-1]:.3f}: the top layer barely changed; was it fine-tuned?"


def test_intent_is_linearly_readable_at_the_top(intent_model, validation_set, mangaassist_record):
    mangaassist_record("probe macro-F1 per layer ([CLS], validation set)", probe_f1(intent_model, validation_set).table())
    assert_probe_f1_above(intent_model, validation_set, layer=-1, min_f1=TOP_LAYER_PROBE_F1_FLOOR, bound="lower",
                          min_selectivity=TOP_LAYER_PROBE_SELECTIVITY_FLOOR)


def test_decision_is_carried_by_the_top_layers(intent_model, validation_set, mangaassist_record):
    result = patching(intent_model, validation_set)
    mangaassist_record(f"activation patching at [CLS] ({result.n_errors} validation errors)", result.table())
    # Logit lens, measured: below the top layer the fine-tuned head reads "escalation" for every message, so
    # no decision is readable by the model's own head before layer 6 (the probes show the information is
    # there, in a basis the head does not read). Recorded as the reference for the next retrain; a suite
    # that expects earlier decisions gates them with assert_decision_forms_by(intent_model, examples, layer=...).
    lens = decision_lens(intent_model, validation_set)
    mangaassist_record("logit lens: share of decisions formed by each layer (validation set)",
                       lens.table([i for i in intent_model.labels if i in lens.counts()], min_share=0.9))
    # (at the top layer patching corrects every error by construction: the top [CLS] state is the decision,
    # so the gate is on the layer below it)
    assert_patching_recovers(intent_model, validation_set, layer=-2, min_rate=PATCHING_SECOND_TO_TOP_FLOOR)
