"""Representation gates on real small models: CKA, layer probes (with control tasks), activation patching,
the logit lens, and the sweep cache."""

import numpy as np
import pytest

from pytest_mangaassist import (GateFailure, IntentModel, MangaAssistInputError, assert_cka_above,
                                assert_patching_recovers, assert_probe_f1_above, linear_cka, load_golden_set)
from pytest_mangaassist.analysis.intervals import macro_f1_rate
from pytest_mangaassist.analysis.logit_lens import LogitLensResult, lens_logits
from pytest_mangaassist.analysis.patching import pair_errors_with_donors, patched_logits, patching_recovery
from pytest_mangaassist.analysis.sweep import activation_sweep
from pytest_mangaassist.analysis.cka import MIN_BIASED_CKA_EXAMPLES, MIN_CKA_EXAMPLES
from pytest_mangaassist.analysis.intervals import MIN_EXAMPLES
from pytest_mangaassist.cache.analyses import MIN_PROBE_EXAMPLES_PER_INTENT
from pytest_mangaassist.gates.representation import (assert_decision_forms_by,
                                                     decision_lens, patching)
from pytest_mangaassist.loading.golden import GoldenSet


@pytest.fixture(scope="module")
def models(small_model, reinit_model, small_reference):
    valid = load_golden_set(small_reference / "data" / "train.jsonl", allow_duplicates=True)  # the largest set
    return IntentModel.load(small_model), IntentModel.load(reinit_model), IntentModel.load(
        small_reference / "pretrained"), valid


def test_cka_gate_matches_linear_cka_on_independently_computed_states(models):
    model, _, pretrained, valid = models
    a = model.forward(valid.texts, batch_size=7, cls_states=True).cls_states
    b = pretrained.forward(valid.texts, batch_size=7, cls_states=True).cls_states
    layers = range(1, model.num_layers + 1)
    for debiased in (False, True):
        cka = assert_cka_above(model, valid, against=pretrained, layer=1, min_cka=0.0, debiased=debiased)
        assert cka[1:] == pytest.approx([linear_cka(a[:, l], b[:, l], debiased) for l in layers], abs=1e-6)
        assert np.isnan(cka[0])  # [CLS] at the embeddings is one constant vector: CKA is undefined
    default = assert_cka_above(model, valid, against=pretrained, layer=1, min_cka=0.0)
    assert default[1:] == pytest.approx([linear_cka(a[:, l], b[:, l], debiased=True) for l in layers], abs=1e-6)
    with pytest.raises(MangaAssistInputError, match="undefined at embeddings"):
        assert_cka_above(model, valid, against=pretrained, layer=0, min_cka=0.5)


def test_cka_gate_passes_on_itself_and_fails_on_a_reinitialised_top_layer(models):
    model, reinit, _, valid = models
    top = model.num_layers
    assert assert_cka_above(model, valid, against=model, layer=-1, min_cka=0.999)[-1] == pytest.approx(1.0)
    cka = assert_cka_above(reinit, valid, against=model, layer=-1, min_cka=0.0)
    assert cka[top] < 0.9  # the re-initialised top layer
    with pytest.raises(GateFailure) as info:
        assert_cka_above(reinit, valid, against=model, layer=-1, min_cka=0.9)
    message = str(info.value)
    assert message.startswith(f"assert_cka_above: debiased linear CKA at layer {top} ({len(valid)} examples")
    for row in ["embeddings"] + [f"layer {l}  " for l in range(1, top + 1)]:
        assert row in message  # every layer's CKA, not just the failing one
    assert info.value.value == pytest.approx(cka[top])
    below = assert_cka_above(reinit, valid, against=model, layer=top - 1, min_cka=0.999)
    assert below[top - 1] == pytest.approx(1.0)  # below it, untouched


def test_cka_gate_reads_texts_as_well_as_a_golden_set_and_refuses_too_few(models):
    model, _, pretrained, valid = models
    texts = valid.texts[:MIN_CKA_EXAMPLES]
    from_texts = assert_cka_above(model, texts, against=pretrained, layer=-1, min_cka=0.0)
    subset = GoldenSet.from_examples(valid.examples[:MIN_CKA_EXAMPLES])
    assert from_texts[1:] == pytest.approx(assert_cka_above(model, subset, against=pretrained, layer=-1,
                                                            min_cka=0.0)[1:], abs=1e-9)
    with pytest.raises(MangaAssistInputError, match=f"debiased CKA on {MIN_CKA_EXAMPLES - 1} examples is too few to "
                                                    f"gate: the gate needs at least {MIN_CKA_EXAMPLES}"):
        assert_cka_above(model, texts[:-1], against=pretrained, layer=-1, min_cka=0.0)
    assert MIN_BIASED_CKA_EXAMPLES > MIN_CKA_EXAMPLES  # plain CKA drifts with n: it needs more
    with pytest.raises(MangaAssistInputError, match=rf"plain \(debiased=False\) CKA on {MIN_CKA_EXAMPLES} examples "
                                                    f"is too few to gate: the gate needs at least "
                                                    f"{MIN_BIASED_CKA_EXAMPLES} .*rises as the number of examples"):
        assert_cka_above(model, texts, against=pretrained, layer=-1, min_cka=0.0, debiased=False)
    assert_cka_above(model, valid.texts[:MIN_BIASED_CKA_EXAMPLES], against=pretrained, layer=-1, min_cka=0.0,
                     debiased=False)


def test_debiased_cka_does_not_drift_with_the_number_of_examples_where_plain_cka_does(models):
    model, _, pretrained, valid = models
    a = activation_sweep(model, valid.texts).cls_states[:, -1]
    b = activation_sweep(pretrained, valid.texts).cls_states[:, -1]
    rng = np.random.default_rng(0)
    full = {d: linear_cka(a, b, d) for d in (False, True)}
    small = {d: np.mean([linear_cka(a[i], b[i], d) for i in (rng.choice(len(a), 50, replace=False)
                                                             for _ in range(10))]) for d in (False, True)}
    assert small[False] - full[False] > 3 * abs(small[True] - full[True])


def test_cka_gate_records_a_typed_curve(models):
    from pytest_mangaassist.gates.records import Curve, Family, collecting

    model, _, pretrained, valid = models
    with collecting() as records:
        cka = assert_cka_above(model, valid, against=pretrained, layer=-1, min_cka=0.0)
    (record,) = records
    assert record.family is Family.REPRESENTATION and isinstance(record.payload, Curve)
    assert record.payload.gated == f"layer {model.num_layers}" and len(record.payload.x) == model.num_layers + 1
    (series,) = record.payload.series.values()
    assert series[0] is None and series[1:] == pytest.approx(cka[1:])  # nan (undefined) becomes a gap


def test_probe_f1_matches_a_direct_scikit_learn_probe(models):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    model, _, _, valid = models
    result = assert_probe_f1_above(model, valid, layer=-1, min_f1=0.0)
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
    result = assert_probe_f1_above(model, valid, layer=1, min_f1=0.0)
    assert_probe_f1_above(model, valid, layer=1, min_f1=result.f1[1])
    with pytest.raises(GateFailure) as info:
        assert_probe_f1_above(model, valid, layer=1, min_f1=result.f1[1] + 0.01)
    message = str(info.value)
    assert "probe macro-F1 at layer 1" in message and "separability jumps most at" in message
    assert message.count("\n") > 5


def test_probe_reports_its_interval_and_selectivity_against_the_control_task(models):
    from sklearn.metrics import f1_score

    model, _, _, valid = models
    result = assert_probe_f1_above(model, valid, layer=-1, min_f1=0.0)
    for layer in range(model.num_layers + 1):  # the interval is around the F1 of the stored held-out predictions
        rate = result.f1_rate(layer)
        assert rate == pytest.approx(f1_score(result.test_labels, result.predicted[layer], average="macro"))
        assert rate == pytest.approx(result.f1[layer]) and rate.low <= rate <= rate.high and rate.n == result.n_test
        # the interval stored with the probes (and cached with them) is the bootstrap made from its predictions
        fresh = macro_f1_rate(result.test_labels, result.predicted[layer])
        assert (rate.low, rate.high, rate.method) == (fresh.low, fresh.high, fresh.method)
    assert result.selectivity == pytest.approx(np.subtract(result.f1, result.control_f1))
    assert result.control_f1[0] < 0.1  # one constant [CLS] vector memorises nothing
    # measured on the small model: layer 1 F1 0.81-0.85 / control 0.58-0.70 (selectivity 0.11-0.27), layer 2
    # 0.97 / 0.61 (0.36)
    assert result.selectivity[2] > result.selectivity[1]
    assert "control F1" in result.table() and "selectivity" in result.table()
    assert_probe_f1_above(model, valid, layer=2, min_f1=0.9, min_selectivity=0.25)
    # a limit just above layer 1's selectivity (which depends on the weights the machine's BLAS trained)
    with pytest.raises(GateFailure, match=r"probe selectivity \(F1 0\.\d+ - control F1 0\.\d+\) at layer 1"):
        assert_probe_f1_above(model, valid, layer=1, min_f1=0.5, min_selectivity=result.selectivity[1] + 0.02)
    with pytest.raises(GateFailure, match="95% lower bound of the probe macro-F1 at layer 2"):
        assert_probe_f1_above(model, valid, layer=2, min_f1=result.f1_rate(2).low + 0.005, bound="lower")


def test_logit_lens_reads_the_decision_at_the_top_and_finds_where_it_forms(models):
    model, _, _, valid = models
    lens = decision_lens(model, valid)
    states = model.forward(valid.texts[:50], cls_states=True)
    top = lens_logits(model, states.cls_states)[:, -1]
    assert np.abs(top - states.logits).max() < 1e-4  # the head on the top [CLS] state is the model's output
    assert (lens.decision == activation_sweep(model, valid.texts).logits.argmax(axis=1)).all()
    assert (lens.formed_at[lens.lens_predicted[:, 0] != lens.decision] >= 1).all()
    below_top = model.num_layers - 1
    late = [i for i, n in lens.counts().items() if n >= MIN_EXAMPLES and lens.forms_by(i, 0.9) > below_top]
    assert late, "in the small model the head reads no decision below the top layer"
    with pytest.raises(GateFailure) as info:
        assert_decision_forms_by(model, valid, layer=below_top)
    message = str(info.value)
    assert message.startswith("assert_decision_forms_by: share of") and "LATE" in message and "forms by" in message
    assert message.count("LATE") == len(late)
    with pytest.raises(GateFailure):  # the lens reads no labels: a list of messages gives the same verdict
        assert_decision_forms_by(model, valid.texts, layer=below_top)


def test_decision_gate_fails_an_intent_whose_share_is_high_only_because_the_lens_reads_it_everywhere(models):
    model, _, _, valid = models
    lens = decision_lens(model, valid)
    below_top = model.num_layers - 1
    # measured on the small model: below the top the head reads one intent for (nearly) every message, so all
    # of that intent's decisions look formed there while the lens is imprecise for it
    everywhere = [i for i in lens.counts() if lens.formed_share(i)[below_top] >= 0.9
                  and lens.precision(i)[below_top] < 0.9]
    assert everywhere
    with pytest.raises(GateFailure, match=rf"precision 0\.\d+; forms by layer {model.num_layers}") as info:
        assert_decision_forms_by(model, valid, layer=below_top, intents=everywhere[:1])
    assert info.value.value == pytest.approx(lens.precision(everywhere[0])[below_top])


def test_decision_gate_passes_where_every_intent_has_formed_and_fails_one_layer_lower(models, monkeypatch):
    import pytest_mangaassist.gates.representation as gates

    model, _, _, valid = models
    top = model.num_layers
    decision = np.arange(len(valid)) % 2  # two intents; intent 0 forms at layer 1, intent 1 at the embeddings
    predicted = np.repeat(decision[:, None], top + 1, axis=1)
    predicted[decision == 0, 0] = 2  # read as a third intent at the embeddings
    lens = LogitLensResult(tuple(model.labels), predicted)
    monkeypatch.setattr(gates, "decision_lens", lambda model, texts: lens)
    assert_decision_forms_by(model, valid, layer=1, min_share=1.0)
    assert_decision_forms_by(model, valid, layer=0, intents=[model.labels[1]], min_share=1.0)
    with pytest.raises(GateFailure, match=f"share of '{model.labels[0]}' decisions formed by embeddings"):
        assert_decision_forms_by(model, valid, layer=0, min_share=1.0)


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
    with pytest.raises(MangaAssistInputError, match=f"at least {MIN_PROBE_EXAMPLES_PER_INTENT} examples per intent"):
        assert_probe_f1_above(model, tiny, layer=1, min_f1=0.5)


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


def _full_forward_patched_logits(model, texts, layer, donor_cls):
    """The reference computation: a full forward pass from the embeddings with a hook replacing position 0 of
    `layer`'s output (patching_recovery's implementation before it resumed from recorded layer states)."""
    import torch

    module = model.embeddings if layer == 0 else model.layers[layer - 1]
    replacement = torch.as_tensor(donor_cls, dtype=torch.float32)

    def patch(_module, _inputs, output):
        hidden = output.clone()
        hidden[:, 0, :] = replacement
        return hidden

    handle = module.register_forward_hook(patch)
    try:
        with torch.inference_mode():
            return model.hf_model(**model.encode(texts)).logits.float().numpy()
    finally:
        handle.remove()


def test_resumed_patching_equals_patching_by_a_full_forward_pass(models):
    model, _, _, valid = models
    result = patching_recovery(model, valid, batch_size=16)
    sweep = activation_sweep(model, valid.texts)
    by_length = sorted(result.pairs, key=lambda pair: len(valid.texts[pair[0]]))
    recovered = [0] * (model.num_layers + 1)
    for start in range(0, len(by_length), 16):
        chunk = by_length[start:start + 16]
        texts = [valid.texts[e] for e, _ in chunk]
        donors = sweep.cls_states[[d for _, d in chunk]]
        truth = np.array([model.label2id[valid.intents[e]] for e, _ in chunk])
        resumed = patched_logits(model, texts, donors)
        assert len(resumed) == model.num_layers + 1
        # a patch below the top changes the logits: not a no-op (by 100 times the tolerance of the comparison below;
        # the small model's smallest chunk moves 0.009)
        assert np.abs(resumed[1] - resumed[0]).max() > 1e-3
        for layer in range(model.num_layers + 1):
            full = _full_forward_patched_logits(model, texts, layer, donors[:, layer])
            np.testing.assert_allclose(resumed[layer], full, rtol=0, atol=1e-5)
            recovered[layer] += int((full.argmax(axis=1) == truth).sum())
    assert result.recovered == tuple(recovered)
    assert model.layers == model.adapter.layers(model.hf_model)  # every layer is back in place after resuming


def test_patching_gate_fails_with_the_per_layer_table(models):
    model, _, _, valid = models
    result = patching(model, valid)
    below_top = model.num_layers - 1
    assert result.rate(below_top) < 0.05  # measured on the small model: only the top [CLS] state carries it
    with pytest.raises(GateFailure) as info:
        assert_patching_recovers(model, valid, layer=below_top, min_rate=0.05)
    message = str(info.value)
    assert f"patching correction rate at layer {below_top} ({result.n_errors} errors" in message
    assert "errors corrected" in message and f"{result.recovered[-1]} / {result.n_errors}" in message
    with pytest.raises(GateFailure, match="patching correction rate at embeddings"):
        assert_patching_recovers(model, valid, layer=0, min_rate=0.01)


def test_patching_gate_reads_the_layer_it_is_given(models, monkeypatch):
    import pytest_mangaassist.gates.representation as gates
    from pytest_mangaassist.analysis.patching import PatchingResult

    model, _, _, valid = models
    recovered = tuple(range(model.num_layers + 1))  # layer l corrects l of the errors
    n_errors = 2 * model.num_layers
    monkeypatch.setattr(gates, "patching", lambda model, examples, seed: PatchingResult(recovered, n_errors, 0, ()))
    for layer in range(model.num_layers + 1):
        rate = layer / n_errors
        assert_patching_recovers(model, valid, layer=layer, min_rate=rate)
        assert_patching_recovers(model, valid, layer=layer - model.num_layers - 1, min_rate=rate)  # from the top
        with pytest.raises(GateFailure):
            assert_patching_recovers(model, valid, layer=layer, min_rate=rate + 1 / (2 * n_errors))


BAD_VALUES = [  # (gate, keyword arguments, parameter named in the message, accepted range in the message)
    (assert_cka_above, dict(layer=-1, min_cka=-0.5), "min_cka", "in [0, 1]"),
    (assert_cka_above, dict(layer=-1, min_cka="0.9"), "min_cka", "in [0, 1]"),
    (assert_cka_above, dict(layer="top", min_cka=0.5), "layer", "whole number"),
    (assert_cka_above, dict(layer=-1, min_cka=0.5, debiased="yes"), "debiased", "True or False"),
    (assert_probe_f1_above, dict(layer=-1, min_f1=1.5), "min_f1", "in [0, 1]"),
    (assert_probe_f1_above, dict(layer=-1, min_f1=0.5, confidence=1.5), "confidence", "in (0, 1)"),
    (assert_probe_f1_above, dict(layer=-1, min_f1=0.5, bound="upper"), "bound", "'point', 'lower'"),
    (assert_probe_f1_above, dict(layer=-1, min_f1=0.5, min_selectivity=2.0), "min_selectivity", "in [-1, 1]"),
    (assert_probe_f1_above, dict(layer=1.0, min_f1=0.5), "layer", "whole number"),
    (assert_patching_recovers, dict(layer=-1, min_rate=-1.0), "min_rate", "in [0, 1]"),
    (assert_patching_recovers, dict(layer=-1, min_rate=0.5, seed=-3), "seed", ">= 0"),
    (assert_decision_forms_by, dict(layer=-1, min_share=float("nan")), "min_share", "in [0, 1]"),
    (assert_decision_forms_by, dict(layer=-1, at_least_examples=-5), "at_least_examples", ">= 1"),
    (assert_decision_forms_by, dict(layer=-1, intents="refund"), "intents", "not a label"),
]


@pytest.mark.parametrize("gate, kwargs, parameter, accepted", BAD_VALUES,
                         ids=[f"{g.__name__}-{'-'.join(k)}" for g, k, _, _ in BAD_VALUES])
def test_every_parameter_is_validated_naming_gate_parameter_value_and_range(models, gate, kwargs, parameter,
                                                                             accepted):
    model, _, pretrained, valid = models
    if gate is assert_cka_above:
        kwargs = dict(kwargs, against=pretrained)
    with pytest.raises(MangaAssistInputError) as info:
        gate(model, valid, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{gate.__name__}: {parameter}") and accepted in message
    assert repr(kwargs[parameter])[:20] in message, "the message shows the value it got"


@pytest.mark.parametrize("gate, kwargs", [(assert_probe_f1_above, dict(layer=-1, min_f1=0.5)),
                                          (assert_patching_recovers, dict(layer=-1, min_rate=0.5))])
def test_gates_that_read_labels_refuse_a_list_of_texts_clearly(models, gate, kwargs):
    model, _, _, valid = models
    with pytest.raises(MangaAssistInputError) as info:
        gate(model, valid.texts, **kwargs)
    assert str(info.value).startswith(f"{gate.__name__}: examples must be a GoldenSet (labelled messages); got list")
    assert "a list of texts has no labels" in str(info.value)


def test_cka_gate_refuses_a_missing_other_model(models):
    model, _, _, valid = models
    with pytest.raises(MangaAssistInputError, match="assert_cka_above: against must be a model .*got NoneType"):
        assert_cka_above(model, valid, against=None, layer=-1, min_cka=0.5)


def test_unknown_layer_is_an_input_error(models):
    model, _, _, valid = models
    with pytest.raises(MangaAssistInputError, match=rf"layer {model.num_layers + 1} does not exist.*1\.\.{model.num_layers}"):
        assert_cka_above(model, valid, against=model, layer=model.num_layers + 1, min_cka=0.5)


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
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.0)

def test_cka(intent_model, production_model, validation_set):
    assert_cka_above(intent_model, validation_set, against=production_model, layer=-1, min_cka=0.99)

def test_probe(intent_model, validation_set):
    assert_probe_f1_above(intent_model, validation_set, layer=-1, min_f1=0.0)
"""


def test_one_sweep_per_model_and_dataset_reused_from_disk_by_the_next_run(pytester, small_reference):
    import json

    from pytest_mangaassist.loading.golden import duplicate_groups, write_golden_set

    pytester.makeconftest(SWEEP_COUNTER)
    pytester.makepyfile(SUITE)
    # the small build's largest set, without its repeated messages (a validation set large enough for CKA)
    train = load_golden_set(small_reference / "data" / "train.jsonl", allow_duplicates=True)
    repeats = {i for group in duplicate_groups(train.texts) for i in group[1:]}
    validation = pytester.path / "validation.jsonl"
    write_golden_set((ex for i, ex in enumerate(train) if i not in repeats), validation)
    golden = small_reference / "data" / "golden.jsonl"
    args = [f"--model-path={small_reference / 'finetuned'}", f"--production-path={small_reference / 'finetuned'}",
            f"--golden-set={golden}", f"--validation-set={validation}"]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    first = json.loads((pytester.path / "calls.json").read_text())
    sizes = [len(load_golden_set(golden)), len(load_golden_set(validation))]
    assert sizes[1] >= MIN_CKA_EXAMPLES
    # the baseline is the same checkpoint: same weights hash, so its sweep comes from the first one's cache
    assert sorted(first) == sorted(sizes), "one sweep per (model content, dataset)"
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    assert json.loads((pytester.path / "calls.json").read_text()) == [], "the second run reads the disk cache"
    assert list((pytester.path / ".pytest_cache" / "d" / "mangaassist").glob("activation_sweep-*.entry"))
