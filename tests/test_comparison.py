"""Candidate-versus-production gates: negative flips and McNemar's paired test on real small models, and a
candidate that is worse on one slice only."""

import numpy as np
import pytest

from pytest_mangaassist import GateFailure, IntentModel, MangaAssistInputError, load_golden_set
from pytest_mangaassist.analysis.intervals import MIN_EXAMPLES
from pytest_mangaassist.gates.comparison import assert_no_negative_flips, assert_not_worse, paired_comparison
from pytest_mangaassist.loading.model import ForwardResult


class WorseOnOneSlice:
    """The small model, except that it routes every message of one slice to the intent after the true one:
    a candidate that regressed on that slice only."""

    def __init__(self, model, golden, slice_name):
        self.model, self.labels, self.max_length = model, model.labels, model.max_length
        self.source, self.cache_dir, self._memo = f"{model.source} (worse on {slice_name})", None, {}
        self.content_hash = f"{model.content_hash}-worse-on-{slice_name}"
        self.sabotaged = {ex.text: model.label2id[ex.intent] for ex in golden if ex.slice == slice_name}

    def memo(self, key, compute):
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def forward(self, texts, **kwargs):
        result = self.model.forward(texts, **kwargs)
        logits = result.logits.copy()
        for row, text in enumerate(texts):
            if text in self.sabotaged:
                logits[row, (self.sabotaged[text] + 1) % len(self.labels)] = logits[row].max() + 5.0
        return ForwardResult(logits, result.cls_states)


@pytest.fixture(scope="module")
def models(small_reference):
    golden = load_golden_set(small_reference / "data" / "golden.jsonl")
    model = IntentModel.load(small_reference / "finetuned")
    return model, IntentModel.load(small_reference / "previous"), golden


def test_flip_counts_match_an_independent_count(models):
    model, previous, golden = models
    now, before = np.array(model.predict(golden.texts)), np.array(previous.predict(golden.texts))
    truth = np.array(golden.intents)
    comparison = paired_comparison(model, golden, against=previous)
    for name in golden.slice_names:
        mask = np.array([ex.slice == name for ex in golden])
        summary = comparison.summary(comparison.mask(slice=name))
        assert summary.negative_flips == int(((before == truth) & (now != truth) & mask).sum())
        assert summary.positive_flips == int(((before != truth) & (now == truth) & mask).sum())
        assert summary.flip_rate == pytest.approx((before != now)[mask].mean())
    rare = comparison.summary(comparison.mask(intents=["escalation"]))
    assert rare.n == golden.intents.count("escalation")
    assert rare.production_accuracy == pytest.approx(
        (before == truth)[np.array(golden.intents) == "escalation"].mean())


def test_the_former_baseline_names_still_read_the_production_model_with_a_warning(models):
    model, previous, golden = models
    comparison = paired_comparison(model, golden, against=previous)
    summary = comparison.summary(comparison.mask())
    with pytest.warns(DeprecationWarning, match=r"PairedComparison.baseline is deprecated .* read .production"):
        assert comparison.baseline is comparison.production
    with pytest.warns(DeprecationWarning, match=r"PairedSummary.baseline_accuracy is deprecated .* read "
                                                r".production_accuracy"):
        assert summary.baseline_accuracy == summary.production_accuracy
    assert "production acc" in comparison.table() and "baseline" not in comparison.table()


def test_a_candidate_worse_on_one_slice_fails_there_and_passes_everywhere_else(models):
    model, _, golden = models
    worse = WorseOnOneSlice(model, golden, "adversarial")
    for name in golden.slice_names:
        if name != "adversarial" and len(golden.only_slice(name)) >= MIN_EXAMPLES:
            assert assert_not_worse(worse, golden, against=model, slice=name).negative_flips == 0
            assert_no_negative_flips(worse, golden, against=model, slice=name, max_negative_flip_rate=0.0)
    with pytest.raises(GateFailure) as info:
        assert_not_worse(worse, golden, against=model, slice="adversarial")
    message = str(info.value)
    right_before = [ex for ex, p in zip(golden, model.predict(golden.texts)) if ex.slice == "adversarial"
                    and p == ex.intent]
    n = len(golden.only_slice("adversarial"))
    assert message.startswith("assert_not_worse: McNemar exact p-value of 'the candidate is no worse', comparing "
                              f"intents, on slice 'adversarial' ({n} examples: {len(right_before)} negative vs 0 positive flips")
    assert info.value.value == pytest.approx(0.5 ** len(right_before)) and info.value.value < 0.05
    assert "negative flips (the production model was right, the candidate is wrong;" in message
    comparison = paired_comparison(worse, golden, against=model)
    listed = comparison.negative_flip_rows(comparison.mask(slice="adversarial"))
    assert len(listed) == len(right_before) and listed[0][0][:50] in message  # the flipped examples are listed
    assert f"{min(15, len(listed))} of {len(listed)} shown" in message
    with pytest.raises(GateFailure, match="negative-flip rate of intents on slice 'adversarial'") as info:
        assert_no_negative_flips(worse, golden, against=model, slice="adversarial", max_negative_flip_rate=0.05)
    assert info.value.value == pytest.approx(len(right_before) / n)


def test_the_previous_snapshot_is_a_real_paired_comparison(models):
    model, previous, golden = models
    summary = assert_not_worse(model, golden, against=previous)  # the final epoch is not worse than the one before
    assert summary.n == len(golden) and summary.flip_rate > 0
    table = paired_comparison(model, golden, against=previous).table("intent")
    assert "neg rate 95% CI" in table and "escalation" in table and "(all)" in table


def test_bad_input_names_the_problem(models):
    model, previous, golden = models
    with pytest.raises(MangaAssistInputError, match="no slice 'anime'"):
        assert_no_negative_flips(model, golden, against=previous, slice="anime")
    small = min(golden.slice_names, key=lambda name: len(golden.only_slice(name)))
    n = len(golden.only_slice(small))
    assert n < MIN_EXAMPLES
    with pytest.raises(MangaAssistInputError, match=f"has {n} examples, too few to decide: the gate needs at least "
                                                    f"{MIN_EXAMPLES}"):
        assert_no_negative_flips(model, golden.only_slice(small), against=previous)
    with pytest.raises(MangaAssistInputError, match="against must be a model"):
        assert_not_worse(model, golden, against=None)
    with pytest.raises(MangaAssistInputError, match="assert_not_worse: examples must be a GoldenSet"):
        assert_not_worse(model, golden.texts, against=previous)


BAD_VALUES = [
    (assert_no_negative_flips, dict(max_negative_flip_rate=-0.1), "max_negative_flip_rate", "in [0, 1]"),
    (assert_no_negative_flips, dict(max_negative_flip_rate="0"), "max_negative_flip_rate", "in [0, 1]"),
    (assert_no_negative_flips, dict(bound="lower"), "bound", "'point', 'upper'"),
    (assert_no_negative_flips, dict(at_least_examples=-5), "at_least_examples", ">= 1"),
    (assert_no_negative_flips, dict(intents="refund"), "intent", "not a label"),
    (assert_not_worse, dict(min_p_value=1.5), "min_p_value", "in [0, 1]"),
    (assert_not_worse, dict(min_p_value=float("nan")), "min_p_value", "in [0, 1]"),
    (assert_not_worse, dict(slice=["jp_en"]), "slice", "name of a slice"),
]


@pytest.mark.parametrize("gate, kwargs, parameter, accepted", BAD_VALUES,
                         ids=[f"{g.__name__}-{k}" for g, k, _, _ in BAD_VALUES])
def test_every_parameter_is_validated(models, gate, kwargs, parameter, accepted):
    model, previous, golden = models
    with pytest.raises(MangaAssistInputError) as info:
        gate(model, golden, against=previous, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{gate.__name__}: {parameter}") and accepted in message
    assert repr(next(iter(kwargs.values())))[:20] in message
