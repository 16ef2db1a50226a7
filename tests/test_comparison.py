"""Candidate-versus-production gates: negative flips and McNemar's paired test on real small models, and a
candidate that is worse on one slice only."""

import numpy as np
import pytest

from pytest_mangaassist import GateFailure, IntentModel, MangaAssistInputError, load_golden_set
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
    comparison = paired_comparison(model, previous, golden)
    for name in golden.slice_names:
        mask = np.array([ex.slice == name for ex in golden])
        summary = comparison.summary(comparison.mask(slice=name))
        assert summary.negative_flips == int(((before == truth) & (now != truth) & mask).sum())
        assert summary.positive_flips == int(((before != truth) & (now == truth) & mask).sum())
        assert summary.flip_rate == pytest.approx((before != now)[mask].mean())
    rare = comparison.summary(comparison.mask(intents=["escalation"]))
    assert rare.n == golden.intents.count("escalation")


def test_a_candidate_worse_on_one_slice_fails_there_and_passes_everywhere_else(models):
    model, _, golden = models
    worse = WorseOnOneSlice(model, golden, "adversarial")
    for name in golden.slice_names:
        if name != "adversarial" and len(golden.only_slice(name)) >= 10:
            assert assert_not_worse(worse, model, golden, slice=name).negative_flips == 0
            assert_no_negative_flips(worse, model, golden, slice=name, max_rate=0.0)
    with pytest.raises(GateFailure) as info:
        assert_not_worse(worse, model, golden, slice="adversarial")
    message = str(info.value)
    right_before = [ex for ex, p in zip(golden, model.predict(golden.texts)) if ex.slice == "adversarial"
                    and p == ex.intent]
    n = len(golden.only_slice("adversarial"))
    assert message.startswith("assert_not_worse: McNemar exact p-value of 'the candidate is no worse' on slice "
                              f"'adversarial' ({n} examples: {len(right_before)} negative vs 0 positive flips")
    assert info.value.value == pytest.approx(0.5 ** len(right_before)) and info.value.value < 0.05
    assert "negative flips (the baseline was right, the candidate is wrong;" in message
    comparison = paired_comparison(worse, model, golden)
    listed = comparison.negative_flip_rows(comparison.mask(slice="adversarial"))
    assert len(listed) == len(right_before) and listed[0][0][:50] in message  # the flipped examples are listed
    assert f"{min(15, len(listed))} of {len(listed)} shown" in message
    with pytest.raises(GateFailure, match="negative-flip rate on slice 'adversarial'") as info:
        assert_no_negative_flips(worse, model, golden, slice="adversarial", max_rate=0.05)
    assert info.value.value == pytest.approx(len(right_before) / n)


def test_the_previous_snapshot_is_a_real_paired_comparison(models):
    model, previous, golden = models
    summary = assert_not_worse(model, previous, golden)  # the final epoch is not worse than the one before
    assert summary.n == len(golden) and summary.flip_rate > 0
    table = paired_comparison(model, previous, golden).table("intent")
    assert "neg rate 95% CI" in table and "escalation" in table and "(all)" in table


def test_bad_input_names_the_problem(models):
    model, previous, golden = models
    with pytest.raises(MangaAssistInputError, match="no slice 'anime'"):
        assert_no_negative_flips(model, previous, golden, slice="anime")
    with pytest.raises(MangaAssistInputError, match="too few to decide: the gate needs at least 10"):
        assert_no_negative_flips(model, previous, golden.only_slice("indirect"))
    with pytest.raises(MangaAssistInputError, match="bound='lower' is not one of"):
        assert_no_negative_flips(model, previous, golden, bound="lower")
