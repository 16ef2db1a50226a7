"""The reference model: exact conversion, generated corpus, seeded and reusable builds."""

import hashlib
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from pytest_mangaassist.loading.golden import load_golden_set
from pytest_mangaassist.domain import INTENTS, RARE_INTENTS, SLICES
from mangaassist_reference.build import SMALL, build_reference
from mangaassist_reference.corpus import Sampler, generate_corpus
from mangaassist_reference.templates import TEMPLATES

TEXTS = ["Kono manga wa English desu ka for vol 12?", "where is my order",
         "Is this isekai more like Re:Zero or mushoku tensei?", "hi"]


def test_conversion_is_exact_on_every_layer():
    import torch
    from transformers import BertModel

    from mangaassist_reference.convert import convert_minilm_to_distilbert, minilm_dir

    distil, tokenizer = convert_minilm_to_distilbert(list(INTENTS), seed=0)
    bert = BertModel.from_pretrained(minilm_dir(), local_files_only=True).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = bert(**batch, output_hidden_states=True).hidden_states
        got = distil.distilbert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                output_hidden_states=True).hidden_states
    assert len(got) == len(expected) == 7
    real = batch["attention_mask"].bool()
    for layer, (a, b) in enumerate(zip(expected, got)):
        assert (a - b)[real].abs().max().item() < 1e-4, f"layer {layer}"
    assert distil.config.id2label == dict(enumerate(INTENTS))


def test_corpus_golden_is_held_out_and_covers_every_intent_and_slice():
    corpus = generate_corpus(seed=0, n_train=3000, n_valid=1000, golden_scale=0.5)
    train_texts = {ex.text for ex in corpus["train"]}
    assert not train_texts & {ex.text for ex in corpus["valid"]}
    assert not (train_texts | {ex.text for ex in corpus["valid"]}) & {ex.text for ex in corpus["golden"]}
    golden = corpus["golden"]
    assert {ex.intent for ex in golden} == set(INTENTS)
    assert {ex.slice for ex in golden} - {None} == set(SLICES)
    assert all(ex.also and ex.also[0] != ex.intent for ex in golden if ex.slice == "multi_intent")


def test_corpus_has_real_class_imbalance():
    counts = Counter(ex.intent for ex in generate_corpus(0, 6000, 100)["train"])
    uniform = 6000 / len(INTENTS)
    for rare in RARE_INTENTS:  # multi-intent messages add to the urgent intents, so they are not rarer
        assert counts[rare] < 0.7 * uniform and counts[rare] < 0.5 * max(counts.values()), counts


def test_golden_templates_and_titles_never_reach_training():
    train, golden = Sampler(0, golden=False), Sampler(0, golden=True)
    for intent, by_slice in TEMPLATES.items():
        for slice_name in by_slice:
            held, seen = golden.templates[intent][slice_name], train.templates[intent][slice_name]
            assert held and seen, f"{intent}/{slice_name} needs templates on both sides"
            assert not set(held) & set(seen)
    assert not set(golden.slots["title"]) & set(train.slots["title"])


def test_small_build_writes_the_contract_layout(small_reference):
    for folder in ("pretrained", "finetuned"):
        config = json.loads((small_reference / folder / "config.json").read_text())
        assert config["model_type"] == "distilbert"
        assert [config["id2label"][str(i)] for i in range(10)] == list(INTENTS)
        assert (small_reference / folder / "model.safetensors").is_file()
    for split in ("train", "valid", "golden"):
        assert len(load_golden_set(small_reference / "data" / f"{split}.jsonl")) > 0
    quality = json.loads((small_reference / "build.json").read_text())["quality"]
    assert quality["golden_accuracy"] > 0.5, "the small model must have learned the task"


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_give_identical_weights_and_data(tmp_path):
    from dataclasses import replace

    from mangaassist_reference.training import Recipe

    quick = replace(SMALL, n_train=300, recipe=Recipe(epochs=1, base_lr=3e-4, max_length=32))
    build_reference(tmp_path / "a", quick, log=lambda line: None)
    build_reference(tmp_path / "b", quick, log=lambda line: None)
    for part in ("pretrained", "finetuned", "data"):
        assert _digest(tmp_path / "a" / part) == _digest(tmp_path / "b" / part), part


def test_pretrained_and_finetuned_share_the_encoder_shape_but_not_its_weights(small_reference):
    from safetensors.numpy import load_file

    pre = load_file(small_reference / "pretrained" / "model.safetensors")
    fine = load_file(small_reference / "finetuned" / "model.safetensors")
    assert pre.keys() == fine.keys()
    key = "distilbert.transformer.layer.1.ffn.lin1.weight"
    assert not np.array_equal(pre[key], fine[key])


def test_cli_reuses_an_up_to_date_build(small_reference):
    # the CLI builds the full model by default; with --small it must find the session's build current
    result = subprocess.run([sys.executable, "-m", "mangaassist_reference", "build", "--small",
                             "--out", str(small_reference)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_cli_usage_errors_are_short():
    result = subprocess.run([sys.executable, "-m", "mangaassist_reference", "build"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--out" in result.stderr


@pytest.mark.parametrize("spec_change", ["recipe", "data_seed"])
def test_build_fingerprint_changes_with_the_spec(spec_change):
    from dataclasses import replace

    from mangaassist_reference.build import fingerprint
    from mangaassist_reference.training import Recipe

    other = replace(SMALL, recipe=Recipe(epochs=9)) if spec_change == "recipe" else replace(SMALL, data_seed=7)
    assert fingerprint(other) != fingerprint(SMALL)
