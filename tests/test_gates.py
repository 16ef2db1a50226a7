"""Classification gates: they pass on what the model does, fail readably on what it does not."""

import pickle

import numpy as np
import pytest

from pytest_mangaassist import GateFailure, IntentModel, assert_accuracy_above, assert_recall_above, load_golden_set
from pytest_mangaassist.analysis.classification import evaluate


@pytest.fixture(scope="module")
def loaded(small_model, small_golden):
    return IntentModel.load(small_model), load_golden_set(small_golden)


def test_accuracy_matches_an_independent_count(loaded):
    model, golden = loaded
    predicted = model.predict(golden.texts)
    expected = np.mean([p == ex.intent for p, ex in zip(predicted, golden)])
    assert assert_accuracy_above(model, golden, 0.0) == pytest.approx(expected)
    jp = golden.only_slice("jp_en")
    jp_expected = np.mean([p == ex.intent for p, ex in zip(model.predict(jp.texts), jp)])
    assert assert_accuracy_above(model, golden, 0.0, slice="jp_en") == pytest.approx(jp_expected)


def test_recall_matches_an_independent_count(loaded):
    model, golden = loaded
    predicted = model.predict(golden.texts)
    recall = assert_recall_above(model, golden, 0.0)
    for intent, value in recall.items():
        hits = [p == intent for p, ex in zip(predicted, golden) if ex.intent == intent]
        assert value == pytest.approx(sum(hits) / len(hits))


def test_accuracy_failure_names_gate_value_threshold_and_worst_examples(loaded):
    model, golden = loaded
    accuracy = evaluate(model, golden).accuracy
    assert accuracy < 1.0, "the small model is not perfect, so a threshold of 1 must fail"
    with pytest.raises(GateFailure) as info:
        assert_accuracy_above(model, golden, 1.0)
    message = str(info.value)
    assert message.startswith(f"assert_accuracy_above: accuracy on golden set ({len(golden)} examples")
    assert f"= {accuracy:.4f}, required >= 1.0000" in message
    assert "most confident mistakes" in message and "most frequent confusions" in message
    worst_text, expected, predicted, _ = evaluate(model, golden).errors(1)[0]
    assert worst_text[:60] in message and expected in message and predicted in message
    assert info.value.value == pytest.approx(accuracy) and info.value.threshold == 1.0


def test_recall_failure_lists_every_intent_and_the_missed_examples(loaded):
    model, golden = loaded
    recall = evaluate(model, golden).recall()
    worst = min(recall, key=recall.get)
    with pytest.raises(GateFailure) as info:
        assert_recall_above(model, golden, recall[worst] + 1e-6, intents=list(recall))
    message = str(info.value)
    assert f"recall of '{worst}'" in message
    for intent in recall:
        assert intent in message
    assert f"missed {worst} examples" in message


def test_gate_failures_survive_pickling_for_xdist():
    failure = GateFailure("assert_x", "metric", 0.5, 0.9, ">=", "evidence", "hint")
    clone = pickle.loads(pickle.dumps(failure))
    assert str(clone) == str(failure) and isinstance(clone, AssertionError)


def test_failure_points_at_the_users_line_not_the_plugin(pytester, small_model, small_golden):
    pytester.makepyfile(
        """
        from pytest_mangaassist import assert_accuracy_above

        def test_gate(intent_model, golden_set):
            assert_accuracy_above(intent_model, golden_set, 1.0)
        """
    )
    result = pytester.runpytest("--model-path", str(small_model), "--golden-set", str(small_golden))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "assert_accuracy_above(intent_model, golden_set, 1.0)" in out
    assert "GateFailure: assert_accuracy_above: accuracy on golden set" in out
    assert "gates/classification.py" not in out


def test_unknown_intent_in_recall_gate_is_an_input_error(loaded):
    from pytest_mangaassist import MangaAssistInputError

    model, golden = loaded
    with pytest.raises(MangaAssistInputError, match="refund"):
        assert_recall_above(model, golden, 0.5, intents=["refund"])
