"""Classification gates: they pass on what the model does, fail readably on what it does not."""

import pickle

import numpy as np
import pytest

from pytest_mangaassist import GateFailure, IntentModel, assert_accuracy_above, assert_recall_above, load_golden_set
from pytest_mangaassist.analysis.classification import evaluate
from pytest_mangaassist.analysis.intervals import MIN_EXAMPLES, examples_needed
from pytest_mangaassist.analysis.invariance import MAX_TEXTS
from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.gates.classification import assert_batch_invariant, assert_macro_f1_above


@pytest.fixture(scope="module")
def loaded(small_model, small_golden):
    return IntentModel.load(small_model), load_golden_set(small_golden)


def test_accuracy_matches_an_independent_count(loaded):
    model, golden = loaded
    predicted = model.predict(golden.texts)
    expected = np.mean([p == ex.intent for p, ex in zip(predicted, golden)])
    assert assert_accuracy_above(model, golden, min_accuracy=0.0) == pytest.approx(expected)
    jp = golden.only_slice("jp_en")
    jp_expected = np.mean([p == ex.intent for p, ex in zip(model.predict(jp.texts), jp)])
    assert assert_accuracy_above(model, golden, min_accuracy=0.0, slice="jp_en") == pytest.approx(jp_expected)


def test_recall_matches_an_independent_count(loaded):
    model, golden = loaded
    predicted = model.predict(golden.texts)
    recall = assert_recall_above(model, golden, min_recall=0.0)
    for intent, value in recall.items():
        hits = [p == intent for p, ex in zip(predicted, golden) if ex.intent == intent]
        assert value == pytest.approx(sum(hits) / len(hits))


def test_accuracy_failure_names_gate_value_threshold_and_worst_examples(loaded):
    model, golden = loaded
    accuracy = evaluate(model, golden).accuracy
    assert accuracy < 1.0, "the small model is not perfect, so a threshold of 1 must fail"
    with pytest.raises(GateFailure) as info:
        assert_accuracy_above(model, golden, min_accuracy=1.0)
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
        assert_recall_above(model, golden, min_recall=recall[worst] + 1e-6, intents=list(recall))
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
            assert_accuracy_above(intent_model, golden_set, min_accuracy=1.0)
        """
    )
    result = pytester.runpytest_subprocess(f"--model-path={small_model}", f"--golden-set={small_golden}")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "assert_accuracy_above(intent_model, golden_set, min_accuracy=1.0)" in out
    assert "GateFailure: assert_accuracy_above: accuracy on golden set" in out
    assert "gates/classification.py" not in out


def test_unknown_intent_in_recall_gate_is_an_input_error(loaded):
    from pytest_mangaassist import MangaAssistInputError

    model, golden = loaded
    with pytest.raises(MangaAssistInputError, match="refund"):
        assert_recall_above(model, golden, min_recall=0.5, intents=["refund"])


def test_rates_carry_their_exact_interval(loaded):
    from scipy.stats import beta

    model, golden = loaded
    accuracy = assert_accuracy_above(model, golden, min_accuracy=0.0)
    k, n = round(accuracy * len(golden)), len(golden)
    assert accuracy.n == n and accuracy.low == pytest.approx(beta.ppf(0.025, k, n - k + 1))
    assert accuracy.high == pytest.approx(beta.ppf(0.975, k + 1, n - k))
    for intent, rate in assert_recall_above(model, golden, min_recall=0.0).items():
        assert rate.n == golden.intents.count(intent) and rate.low <= rate <= rate.high


def test_lower_bound_gate_fails_between_the_bound_and_the_estimate_and_shows_the_interval(loaded):
    model, golden = loaded
    accuracy = assert_accuracy_above(model, golden, min_accuracy=0.0)
    between = (accuracy.low + accuracy) / 2
    assert assert_accuracy_above(model, golden, min_accuracy=between) == accuracy  # the point estimate clears it
    with pytest.raises(GateFailure) as info:
        assert_accuracy_above(model, golden, min_accuracy=between, bound="lower")
    message = str(info.value)
    assert message.startswith("assert_accuracy_above: 95% lower bound of accuracy on golden set")
    assert f"95% interval [{accuracy.low:.3f}, {accuracy.high:.3f}], Clopper-Pearson" in message
    assert info.value.value == pytest.approx(accuracy.low)
    assert_accuracy_above(model, golden, min_accuracy=accuracy.low - 0.01, bound="lower")


def test_a_slice_too_small_to_decide_says_so(loaded):
    model, golden = loaded
    sizes = {name: len(golden.only_slice(name)) for name in golden.slice_names}
    small = min(sizes, key=sizes.get)
    assert sizes[small] < MIN_EXAMPLES, "the small golden set has a slice below the minimum sample size"
    with pytest.raises(MangaAssistInputError, match=f"slice '{small}' has {sizes[small]} examples, too few to decide: "
                                                    f"the gate needs at least {MIN_EXAMPLES}"):
        assert_accuracy_above(model, golden, min_accuracy=0.5, slice=small)
    needed = examples_needed(0.9, "lower")  # a perfect score on fewer examples has a lower bound below 0.9
    medium = next(name for name, n in sizes.items() if MIN_EXAMPLES <= n < needed)
    with pytest.raises(MangaAssistInputError, match=f"needs at least {needed} .*cannot reach 0.900"):
        assert_accuracy_above(model, golden, min_accuracy=0.9, slice=medium, bound="lower")
    assert_accuracy_above(model, golden, min_accuracy=0.0, slice=small, at_least_examples=sizes[small])  # reviewed exception


def test_macro_f1_gate_matches_scikit_learn_and_fails_with_the_recall_table(loaded):
    from sklearn.metrics import f1_score

    model, golden = loaded
    expected = f1_score(golden.intents, model.predict(golden.texts), average="macro")
    f1 = assert_macro_f1_above(model, golden, min_f1=0.0)
    assert f1 == pytest.approx(expected) and f1.low < f1 < f1.high
    with pytest.raises(GateFailure) as info:
        assert_macro_f1_above(model, golden, min_f1=f1.low + 0.01, bound="lower")
    message = str(info.value)
    assert message.startswith("assert_macro_f1_above: 95% lower bound of macro-F1 on golden set")
    assert "bootstrap, 2000 resamples, seed 0" in message and "recall per intent" in message


class MaskDropped:
    """A model whose forward ignores the attention mask: padding leaks into every message's logits."""

    def __init__(self, model):
        self.model, self.tokenizer, self.labels = model, model.tokenizer, model.labels
        self.max_length, self.device = model.max_length, model.device

    def hf_model(self, input_ids, attention_mask=None, **kwargs):
        return self.model.hf_model(input_ids=input_ids)


def test_batch_invariance_holds_on_the_model_and_fails_when_padding_leaks(loaded):
    model, golden = loaded
    result = assert_batch_invariant(model, golden)
    assert result.ok and result.n_texts == min(MAX_TEXTS, len(golden)) and max(result.max_abs_diff.values()) < 1e-4
    assert assert_batch_invariant(model, golden.texts[:5]).n_texts == 5  # a list of messages: no labels needed
    with pytest.raises(GateFailure) as info:
        assert_batch_invariant(MaskDropped(model), golden)
    message = str(info.value)
    assert message.startswith("assert_batch_invariant: max |logit diff| padded to 128 vs alone")
    assert "routed intent changed" in message and "OVER" in message


BAD_VALUES = [  # (gate, keyword arguments, parameter named in the message, accepted range in the message)
    (assert_accuracy_above, dict(min_accuracy=-0.5), "min_accuracy", "in [0, 1]"),
    (assert_accuracy_above, dict(min_accuracy=1.5), "min_accuracy", "in [0, 1]"),
    (assert_accuracy_above, dict(min_accuracy="0.9"), "min_accuracy", "in [0, 1]"),
    (assert_accuracy_above, dict(min_accuracy=float("nan")), "min_accuracy", "in [0, 1]"),
    (assert_accuracy_above, dict(min_accuracy=True), "min_accuracy", "in [0, 1]"),
    (assert_accuracy_above, dict(min_accuracy=0.5, confidence=1.5), "confidence", "in (0, 1)"),
    (assert_accuracy_above, dict(min_accuracy=0.5, confidence=1.0), "confidence", "in (0, 1)"),
    (assert_accuracy_above, dict(min_accuracy=0.5, at_least_examples=-5), "at_least_examples", ">= 1"),
    (assert_accuracy_above, dict(min_accuracy=0.5, at_least_examples=2.5), "at_least_examples", ">= 1"),
    (assert_accuracy_above, dict(min_accuracy=0.5, bound="upper"), "bound", "'point', 'lower'"),
    (assert_accuracy_above, dict(min_accuracy=0.5, slice=3), "slice", "name of a slice"),
    (assert_recall_above, dict(min_recall=-1.0), "min_recall", "in [0, 1]"),
    (assert_recall_above, dict(min_recall=0.5, intents=[]), "intents", "non-empty list"),
    (assert_recall_above, dict(min_recall=0.5, at_least_examples=0), "at_least_examples", ">= 1"),
    (assert_macro_f1_above, dict(min_f1=2), "min_f1", "in [0, 1]"),
    (assert_macro_f1_above, dict(min_f1=0.5, seed=-1), "seed", ">= 0"),
    (assert_macro_f1_above, dict(min_f1=0.5, confidence=0), "confidence", "in (0, 1)"),
    (assert_batch_invariant, dict(max_logit_diff=-1e-4), "max_logit_diff", ">= 0"),
    (assert_batch_invariant, dict(max_logit_diff="1e-4"), "max_logit_diff", ">= 0"),
]


@pytest.mark.parametrize("gate, kwargs, parameter, accepted", BAD_VALUES,
                         ids=[f"{g.__name__}-{k}" for g, k, _, _ in BAD_VALUES])
def test_every_parameter_is_validated_naming_gate_parameter_value_and_range(loaded, gate, kwargs, parameter, accepted):
    model, golden = loaded
    with pytest.raises(MangaAssistInputError) as info:
        gate(model, golden, **kwargs)
    message = str(info.value)
    got = next(v for k, v in kwargs.items() if k == parameter)
    assert message.startswith(f"{gate.__name__}: {parameter}") and accepted in message
    assert repr(got)[:20] in message, "the message shows the value it got"
