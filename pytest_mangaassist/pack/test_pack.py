"""The gate pack: the standard post-training checks of a text classifier, with no test file of your own.

    pytest --model-path=DIR --golden-set=golden.jsonl --mangaassist-pack
    python -m pytest_mangaassist check DIR --golden-set=golden.jsonl

The plugin adds this module to the run's test paths (plugin._collect_pack), so every check is an ordinary
test: select with -k (`-k "not latency"`), see it in the terminal summary, results.json and report.html.
Every limit comes from the one table of config/pack.py (ini keys mangaassist_pack_<limit>). Checks that
need an input you did not give (--production-path, --pretrained-path, --validation-set, --training-set,
--traffic) are skipped, their reason naming the option.
"""

from __future__ import annotations

import pytest

from pytest_mangaassist import (assert_accuracy_above, assert_batch_invariant, assert_cka_above,
                                assert_latency_p95, assert_no_leakage, assert_no_lexical_shortcut,
                                assert_no_negative_flips, assert_no_weak_slice, assert_not_worse,
                                assert_onnx_parity, assert_onnx_structure, assert_probe_f1_above,
                                assert_recall_above, assert_traffic_agreement)
from pytest_mangaassist.analysis.intervals import MIN_EXAMPLES
from pytest_mangaassist.plugin import PACK_LIMITS, SETTINGS

SHORTCUT_MIN_MESSAGES = 3  # the audit needs a word met in 3 messages of the label


def _golden_labels(config) -> list[str]:
    """The labels the shortcut audit runs on: the model's, in its order, with enough golden messages."""
    settings = config.stash.get(SETTINGS, None)
    if settings is None or settings.model is None or settings.golden_set is None:
        return []
    intents = settings.golden_set.intents
    return [label for label in settings.model.labels if intents.count(label) >= SHORTCUT_MIN_MESSAGES]


def _compared(config) -> list[str]:
    """Negative flips and McNemar compare intents, and routes too when a routing policy is in force."""
    from pytest_mangaassist.domain import profile_for

    settings = config.stash.get(SETTINGS, None)
    has_policy = settings is not None and (settings.routing_policy is not None or (
        settings.model is not None and profile_for(settings.model.labels).routing is not None))
    return ["intents", "routes"] if has_policy else ["intents"]


def pytest_generate_tests(metafunc):
    if "label" in metafunc.fixturenames:
        metafunc.parametrize("label", _golden_labels(metafunc.config))
    if "compared" in metafunc.fixturenames:
        metafunc.parametrize("compared", _compared(metafunc.config))


@pytest.fixture(scope="session")
def limits(request) -> dict[str, float]:
    return request.config.stash[PACK_LIMITS]


def test_accuracy(intent_model, golden_set, limits):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=limits["min_accuracy"])


def test_recall_per_label(intent_model, golden_set, limits):
    """Every label with at least MIN_EXAMPLES golden examples (fewer cannot decide a rate)."""
    counts = {label: golden_set.intents.count(label) for label in intent_model.labels}
    decidable = [label for label, n in counts.items() if n >= MIN_EXAMPLES]
    assert_recall_above(intent_model, golden_set, min_recall=limits["min_recall"], intents=decidable or None)


def test_batch_invariance(intent_model, golden_set, limits):
    assert_batch_invariant(intent_model, golden_set, max_logit_diff=limits["max_logit_diff"])


def test_no_shortcut(intent_model, golden_set, limits, label):
    """No single word type carries more than max_share of the label's attribution on its golden messages
    while removing it costs the label at least min_effect."""
    assert_no_lexical_shortcut(intent_model, golden_set.only_intent(label), intent=label,
                               max_share=limits["max_share"], min_effect=limits["min_effect"],
                               at_least_examples=SHORTCUT_MIN_MESSAGES)


def test_no_weak_slice(intent_model, golden_set, limits):
    assert_no_weak_slice(intent_model, golden_set, at_least_size=int(limits["min_slice_size"]),
                         max_lift=limits["max_lift"])


def test_onnx_structure(intent_model, onnx_model):
    assert_onnx_structure(intent_model, artifact=onnx_model)


def test_onnx_parity(intent_model, golden_set, onnx_model, limits):
    assert_onnx_parity(intent_model, golden_set, artifact=onnx_model, max_logit_diff=limits["max_onnx_logit_diff"])


def test_latency_p95(onnx_model, limits):
    assert_latency_p95(onnx_model, max_p95_ms=limits["max_p95_ms"])


@pytest.mark.mangaassist_optional("production_model")
def test_no_negative_flips(intent_model, golden_set, production_model, limits, compared):
    assert_no_negative_flips(intent_model, golden_set, against=production_model, compare=compared,
                             max_negative_flip_rate=limits["max_negative_flip_rate"])


@pytest.mark.mangaassist_optional("production_model")
def test_not_worse(intent_model, golden_set, production_model, limits, compared):
    assert_not_worse(intent_model, golden_set, against=production_model, compare=compared,
                     min_p_value=limits["min_p_value"])


@pytest.mark.mangaassist_optional("pretrained_model", "validation_set")
def test_cka_top_layer(intent_model, validation_set, pretrained_model, limits):
    assert_cka_above(intent_model, validation_set, against=pretrained_model, layer=-1, min_cka=limits["min_cka"])


@pytest.mark.mangaassist_optional("validation_set")
def test_probe_top_layer(intent_model, validation_set, limits):
    assert_probe_f1_above(intent_model, validation_set, layer=-1, min_f1=limits["min_probe_f1"],
                          min_selectivity=limits["min_selectivity"])


@pytest.mark.mangaassist_optional("training_set")
def test_no_leakage(golden_set, training_set, limits):
    assert_no_leakage(golden_set, training_set, max_similarity=limits["max_similarity"])


@pytest.mark.mangaassist_optional("production_model", "traffic")
def test_traffic_agreement(intent_model, traffic, production_model, limits):
    assert_traffic_agreement(intent_model, traffic, against=production_model, max_flip_rate=limits["max_flip_rate"])
