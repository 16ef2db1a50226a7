"""Representation gates on real small models: CKA, layer probes (with control tasks), activation patching,
the logit lens, and the sweep cache."""

import numpy as np
import pytest

from pytest_mangaassist import (GateFailure, IntentModel, MangaAssistInputError, assert_cka_above,
                                assert_patching_recovers, assert_probe_f1_above, linear_cka, load_golden_set)
from pytest_mangaassist.analysis.logit_lens import LogitLensResult, lens_logits
from pytest_mangaassist.analysis.patching import pair_errors_with_donors, patching_recovery
from pytest_mangaassist.analysis.sweep import activation_sweep
from pytest_mangaassist.gates.representation import assert_decision_forms_by, decision_lens


@pytest.fixture(scope="module")
def models(small_model, reinit_model, small_reference):
    valid = load_golden_set(small_reference / "data" / "train.jsonl")  # the small build's largest set
    return IntentModel.load(small_model), IntentModel.load(reinit_model), IntentModel.load(
        small_reference / "pretrained"), valid


def test_cka_gate_matches_linear_cka_on_independently_computed_states(models):
    model, _, pretrained, valid = models
    cka = assert_cka_above(model, pretrained, 1, 0.0, valid)
    a = model.forward(valid.texts, batch_size=7, cls_states=True).cls_states
    b = pretrained.forward(valid.texts, batch_size=7, cls_states=True).cls_states
    assert cka[1:] == pytest.approx([linear_cka(a[:, l], b[:, l]) for l in (1, 2)], abs=1e-6)
    assert np.isnan(cka[0])  # [CLS] at the embeddings is one constant vector: CKA is undefined
    with pytest.raises(MangaAssistInputError, match="undefined at embeddings"):
        assert_cka_above(model, pretrained, 0, 0.5, valid)


def test_cka_gate_passes_on_itself_and_fails_on_a_reinitialised_top_layer(models):
    model, reinit, _, valid = models
    assert assert_cka_above(model, model, -1, 0.999, valid)[-1] == pytest.approx(1.0)
    with pytest.raises(GateFailure) as info:  # the re-initialised layer measures about 0.71 here
        assert_cka_above(reinit, model, -1, 0.9, valid)
    message = str(info.value)
    assert message.startswith("assert_cka_above: linear CKA at layer 2")
    for row in ("embeddings", "layer 1", "layer 2  "):
        assert row in message  # every layer's CKA, not just the failing one
    assert info.value.value < 0.9
    assert assert_cka_above(reinit, model, 1, 0.999, valid)[1] == pytest.approx(1.0)  # below it, untouched


def test_probe_f1_matches_a_direct_scikit_learn_probe(models):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    model, _, _, valid = models
    result = assert_probe_f1_above(model, -1, 0.0, valid)
    states = model.forward(valid.texts, cls_states=True).cls_states[:, -1]
    labels = np.array(valid.intents)
    train, test = train_test_split(np.arange(len(labels)), test_size=0.3, random_state=0, stratify=labels)
    scaler = StandardScaler().fit(states[train])
    probe = LogisticRegression(max_iter=1000, random_state=0).fit(scaler.transform(states[train]), labels[train])
    expected = f1_score(labels[test], probe.predict(scaler.transform(states[test])), average="macro")
    assert result.f1[-1] == pytest.approx(expected, abs=0.01)
    assert result.f1[0] < 0.1  # [CLS] at the embeddings is the same vector for every message
    assert result.f1[-1] > 0.6


def test_probe_failure_shows_the_curve_and_where_separability_jumps(models):
    model, _, _, valid = models
    result = assert_probe_f1_above(model, 1, 0.0, valid)
    with pytest.raises(GateFailure) as info:
        assert_probe_f1_above(model, 1, result.f1[1] + 0.01, valid)
    message = str(info.value)
    assert "probe macro-F1 at layer 1" in message and "separability jumps most at" in message
    assert message.count("\n") > 5


def test_probe_reports_its_interval_and_selectivity_against_the_control_task(models):
    from sklearn.metrics import f1_score

    model, _, _, valid = models
    result = assert_probe_f1_above(model, -1, 0.0, valid)
    for layer in range(3):  # the interval is around the F1 of the stored held-out predictions
        rate = result.f1_rate(layer)
        assert rate == pytest.approx(f1_score(result.test_labels, result.predicted[layer], average="macro"))
        assert rate == pytest.approx(result.f1[layer]) and rate.low <= rate <= rate.high and rate.n == result.n_test
    assert result.selectivity == pytest.approx(np.subtract(result.f1, result.control_f1))
    assert result.control_f1[0] < 0.1  # one constant [CLS] vector memorises nothing
    # measured on the small model: layer 1 F1 0.81 / control 0.70 (selectivity 0.11), layer 2 0.97 / 0.61 (0.36)
    assert result.selectivity[2] > result.selectivity[1]
    assert "control F1" in result.table() and "selectivity" in result.table()
    assert_probe_f1_above(model, 2, 0.9, valid, min_selectivity=0.25)
    with pytest.raises(GateFailure, match=r"probe selectivity \(F1 0\.\d+ - control F1 0\.\d+\) at layer 1"):
        assert_probe_f1_above(model, 1, 0.5, valid, min_selectivity=0.25)
    with pytest.raises(GateFailure, match="95% lower bound of the probe macro-F1 at layer 2"):
        assert_probe_f1_above(model, 2, result.f1_rate(2).low + 0.005, valid, bound="lower")


def test_logit_lens_reads_the_decision_at_the_top_and_finds_where_it_forms(models):
    model, _, _, valid = models
    lens = decision_lens(model, valid)
    states = model.forward(valid.texts[:50], cls_states=True)
    top = lens_logits(model, states.cls_states)[:, -1]
    assert np.abs(top - states.logits).max() < 1e-4  # the head on the top [CLS] state is the model's output
    assert (lens.decision == activation_sweep(model, valid.texts).logits.argmax(axis=1)).all()
    assert (lens.formed_at[lens.lens_predicted[:, 0] != lens.decision] >= 1).all()
    assert_decision_forms_by(model, -1, valid, min_share=1.0)
    with pytest.raises(GateFailure) as info:
        assert_decision_forms_by(model, 1, valid)
    message = str(info.value)
    assert message.startswith("assert_decision_forms_by: share of") and "LATE" in message and "forms by" in message


def test_decision_layer_is_the_lowest_layer_of_a_stable_run_to_the_top():
    predicted = np.array([[0, 1, 1, 1], [1, 1, 0, 1], [2, 2, 2, 2], [0, 0, 0, 3], [2, 2, 0, 0]])
    lens = LogitLensResult(("a", "b", "c", "d"), predicted)
    assert list(lens.formed_at) == [1, 3, 0, 3, 2]
    assert lens.formed_share("b") == pytest.approx([0, 0.5, 0.5, 1.0])
    assert lens.forms_by("b", 0.5) == 1 and lens.forms_by("b", 0.9) == 3
    # every "c" decision is read from the embeddings up, but there the lens also reads "c" for an "a" message
    assert lens.formed_share("c") == pytest.approx([1, 1, 1, 1])
    assert lens.precision("c") == pytest.approx([0.5, 0.5, 1, 1])
    assert lens.forms_by("c", 0.9) == 2


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_adapter_head_reproduces_the_logits_of_bert_and_roberta(tmp_path, family):
    import torch
    from transformers import (AutoTokenizer, BertConfig, BertForSequenceClassification, RobertaConfig,
                              RobertaForSequenceClassification)

    from pytest_mangaassist.domain import INTENTS
    from mangaassist_reference.convert import minilm_dir

    labels = dict(enumerate(INTENTS))
    sizes = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    hf = (BertForSequenceClassification(BertConfig(**sizes)) if family == "bert" else
          RobertaForSequenceClassification(RobertaConfig(max_position_embeddings=130, pad_token_id=0, **sizes)))
    model = IntentModel(hf, AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True))
    out = model.forward(["where is my order?", "hi", "is there a sale on omnibus editions"], cls_states=True)
    assert np.abs(lens_logits(model, out.cls_states)[:, -1] - out.logits).max() < 1e-5


def test_probes_refuse_too_few_examples(models, small_golden):
    model, _, _, _ = models
    tiny = load_golden_set(small_golden).only_slice("jp_en")
    with pytest.raises(MangaAssistInputError, match="at least 10 examples per intent"):
        assert_probe_f1_above(model, 1, 0.5, tiny)


def test_patching_pairs_each_error_with_a_correct_donor_of_its_true_intent():
    predicted = ["a", "b", "a", "a", "c", "b"]
    truth = ["a", "a", "a", "b", "c", "b"]
    pairs, unpatchable = pair_errors_with_donors(predicted, truth, seed=3)
    assert [e for e, _ in pairs] == [1, 3]
    for error, donor in pairs:
        assert predicted[donor] == truth[donor] == truth[error]
    assert pairs == pair_errors_with_donors(predicted, truth, seed=3)[0]
    assert unpatchable == 0
    assert pair_errors_with_donors(["b"], ["a"], 0) == ([], 1)


def test_patching_is_a_no_op_at_the_embeddings_and_decisive_at_the_top(models):
    # the fine-tuned model: its errors span several intents and every intent has correct donors (a
    # re-initialised model can route everything to one intent and leave nothing to patch from)
    model, _, _, valid = models
    result = patching_recovery(model, valid)
    assert result.n_errors >= 5 and not result.unpatchable
    assert result.recovered[0] == 0  # every [CLS] embedding is the same vector
    assert result.recovered[-1] == result.n_errors  # the last [CLS] state is the decision
    assert patching_recovery(model, valid) == result  # seeded


def test_patching_gate_fails_with_the_per_layer_table(models):
    model, _, _, valid = models
    with pytest.raises(GateFailure) as info:
        assert_patching_recovers(model, 0, 0.5, valid)
    message = str(info.value)
    assert "patching correction rate at embeddings" in message and "errors corrected" in message
    assert assert_patching_recovers(model, -1, 1.0, valid).rate(2) == 1.0


def test_unknown_layer_is_an_input_error(models):
    model, _, _, valid = models
    with pytest.raises(MangaAssistInputError, match=r"layer 3 does not exist.*1\.\.2"):
        assert_cka_above(model, model, 3, 0.5, valid)


SWEEP_COUNTER = """
import json, pathlib
import pytest
from pytest_mangaassist.loading.model import IntentModel

CALLS = []
original = IntentModel.forward

def counting(self, texts, *args, **kwargs):
    CALLS.append(len(texts))
    return original(self, texts, *args, **kwargs)

IntentModel.forward = counting

def pytest_sessionfinish(session):
    pathlib.Path("calls.json").write_text(json.dumps(CALLS))
"""

SUITE = """
from pytest_mangaassist import assert_accuracy_above, assert_cka_above, assert_probe_f1_above

def test_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, 0.0)

def test_cka(intent_model, baseline_model, golden_set):
    assert_cka_above(intent_model, baseline_model, -1, 0.99, golden_set)

def test_probe(intent_model, validation_set):
    assert_probe_f1_above(intent_model, -1, 0.0, validation_set)
"""


def test_one_sweep_per_model_and_dataset_reused_from_disk_by_the_next_run(pytester, small_reference):
    import json

    pytester.makeconftest(SWEEP_COUNTER)
    pytester.makepyfile(SUITE)
    args = [f"--model-path={small_reference / 'finetuned'}", f"--baseline-path={small_reference / 'finetuned'}",
            f"--golden-set={small_reference / 'data' / 'golden.jsonl'}",
            f"--validation-set={small_reference / 'data' / 'train.jsonl'}"]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    first = json.loads((pytester.path / "calls.json").read_text())
    golden_size = len(load_golden_set(small_reference / "data" / "golden.jsonl"))
    # the baseline is the same checkpoint: same weights hash, so its sweep comes from the first one's cache
    assert sorted(first) == sorted([golden_size, 1500]), "one sweep per (model content, dataset)"
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    assert json.loads((pytester.path / "calls.json").read_text()) == [], "the second run reads the disk cache"
    assert list((pytester.path / ".pytest_cache" / "d" / "mangaassist").glob("sweep-*.npz"))
