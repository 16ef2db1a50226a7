"""The reference model: exact conversion, generated corpus, templates as data files, seeded and reusable builds.

Expected sizes come from the build specs and the corpus constants, never from literal corpus numbers."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.loading.golden import load_golden_set
from pytest_mangaassist.domain import INTENTS, RARE_INTENTS, SLICES
from mangaassist_reference.build import (BUILD_SOURCES, FULL, PACKAGE_DIR, SMALL, build_reference, fingerprint,
                                         without_golden_messages)
from mangaassist_reference.corpus import (GOLDEN_MULTI_INTENT, GOLDEN_PER_SLICE, GOLDEN_PER_TEMPLATE, Sampler,
                                          generate_corpus)
from mangaassist_reference.templates import TEMPLATE_DIR, TEMPLATE_FILES, load_templates

ROOT = Path(__file__).resolve().parents[1]

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


def expected_golden_size(scale: float) -> int:
    """What generate_golden plans: per intent and slice, GOLDEN_PER_SLICE scaled, at most GOLDEN_PER_TEMPLATE
    variants of each held-out template; plus the multi-intent messages."""
    held = Sampler(0, golden=True).templates
    return (sum(min(round(GOLDEN_PER_SLICE[slice_] * scale), GOLDEN_PER_TEMPLATE * len(templates))
                for by_slice in held.values() for slice_, templates in by_slice.items())
            + round(GOLDEN_MULTI_INTENT * scale))


@pytest.mark.parametrize("spec", [FULL, SMALL], ids=["full", "small"])
def test_corpus_sizes_follow_the_spec(spec):
    corpus = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    assert {split: len(examples) for split, examples in corpus.items()} == {
        "train": spec.n_train, "valid": spec.n_valid, "golden": expected_golden_size(spec.golden_scale)}


def test_corpus_has_real_class_imbalance():
    n_train = 6000
    counts = Counter(ex.intent for ex in generate_corpus(0, n_train, 100)["train"])
    uniform = n_train / len(INTENTS)
    for rare in RARE_INTENTS:  # multi-intent messages add to the urgent intents, so they are not rarer
        assert counts[rare] < 0.7 * uniform and counts[rare] < 0.5 * max(counts.values()), counts


def test_golden_templates_and_titles_never_reach_training():
    train, golden = Sampler(0, golden=False), Sampler(0, golden=True)
    for intent, by_slice in load_templates().phrasings.items():
        for slice_name in by_slice:
            held, seen = golden.templates[intent][slice_name], train.templates[intent][slice_name]
            assert held and seen, f"{intent}/{slice_name} needs templates on both sides"
            assert not set(held) & set(seen)
    assert not set(golden.slots["title"]) & set(train.slots["title"])


def test_small_build_writes_the_contract_layout(small_reference):
    for folder in ("pretrained", "finetuned"):
        config = json.loads((small_reference / folder / "config.json").read_text())
        assert config["model_type"] == "distilbert"
        assert [config["id2label"][str(i)] for i in range(len(INTENTS))] == list(INTENTS)
        assert (small_reference / folder / "model.safetensors").is_file()
    corpus = generate_corpus(SMALL.data_seed, SMALL.n_train, SMALL.n_valid, SMALL.golden_scale)
    kept, left_out = without_golden_messages(corpus["train"], corpus["golden"])
    assert len(kept) == SMALL.n_train - left_out
    sizes = {"train": len(kept), "valid": SMALL.n_valid, "golden": expected_golden_size(SMALL.golden_scale)}
    for split, size in sizes.items():  # training data may repeat a short message; evaluation splits may not
        assert len(load_golden_set(small_reference / "data" / f"{split}.jsonl", allow_duplicates=split == "train")) == size
    quality = json.loads((small_reference / "build.json").read_text())["quality"]
    assert quality["golden_accuracy"] > 0.5, "the small model must have learned the task"


def test_the_hold_out_drops_a_training_copy_with_two_letters_swapped():
    from pytest_mangaassist.loading.golden import GoldenExample

    golden = [GoldenExample(text="thank you so much!!", intent="chitchat"),
              GoldenExample(text="is Frieren vol 12 out yet", intent="product_question")]
    train = [GoldenExample(text="thakn you so much", intent="chitchat"),  # the corpus' typo: two letters swapped
             GoldenExample(text="Frieren vol 21 is out, right?", intent="product_question"),  # another volume
             GoldenExample(text="thanks a lot for the help with my order", intent="chitchat")]
    kept, left_out = without_golden_messages(train, golden)
    assert [ex.text for ex in kept] == ["Frieren vol 21 is out, right?", "thanks a lot for the help with my order"]
    assert left_out == 1


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_give_identical_weights_and_data(tmp_path):
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
    from mangaassist_reference.training import Recipe

    other = replace(SMALL, recipe=Recipe(epochs=9)) if spec_change == "recipe" else replace(SMALL, data_seed=7)
    assert fingerprint(other) != fingerprint(SMALL)


# --- templates as data files -------------------------------------------------------------------------

# sha256 of each split (split_digest) of generate_corpus(...) for FULL and SMALL. Every digest but one was
# recorded with the templates still in code (commit de10ad5): the move to templates/*.json changed no
# generated byte. The one that differs, FULL's valid split, changed afterwards and on purpose: evaluation
# splits became distinct as the golden-set loader counts texts (normalize_text), which replaced 5 of its
# 5,500 messages; train (hence the weights) and golden stayed identical. After a deliberate template or
# generator edit, check the corpus diff and record the new digests (the build fingerprint changes anyway).
CORPUS_DIGESTS = {
    "full": {"train": "18d9159538ed9064aaa43e66f6d8d8cf88b0d2f8578e36dd0c28d8cf0d91d5c8",
             "valid": "4b3b5ecb0f01bcb916a1b9c1a0b23556cb9883f5ea84defced45f37de26b6396",
             "golden": "44a7ccb36a5682bd52e4f29843941c861c018f2da777030d1a9f05578d11c849"},
    "small": {"train": "a428c2bbafd048d5781b9a5fd52bc96c63b0c6a35826d0d3fea2bf88db290aab",
              "valid": "877de0e114d9d0540710c0438c6d7204540833817f240bd537594cefe3f86c91",
              "golden": "5545a2a3590bf2dd15b6b30a0c4a11d1ffe1d47b4d4e672ba240b90110e6d3f7"},
}


def split_digest(examples) -> str:
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.text, ex.intent, ex.slice, list(ex.also)], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def corpus_digest(corpus) -> dict[str, str]:
    return {split: split_digest(examples) for split, examples in corpus.items()}


@pytest.mark.parametrize("name, spec", [("full", FULL), ("small", SMALL)])
def test_corpus_is_byte_identical_to_the_one_generated_from_templates_in_code(name, spec):
    corpus = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    assert corpus_digest(corpus) == CORPUS_DIGESTS[name]
    again = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    assert again == corpus, "the same seed must give the same corpus"
    other = generate_corpus(spec.data_seed + 1, spec.n_train, spec.n_valid, spec.golden_scale)
    assert corpus_digest(other)["train"] != CORPUS_DIGESTS[name]["train"], "the seed must matter"


@pytest.mark.parametrize("spec", [FULL, SMALL], ids=["full", "small"])
def test_evaluation_splits_are_distinct_as_the_golden_set_loader_counts_them(spec, tmp_path):
    from pytest_mangaassist.loading.golden import normalize_text, write_golden_set

    corpus = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    train = {normalize_text(ex.text) for ex in corpus["train"]}
    for split in ("valid", "golden"):
        write_golden_set(corpus[split], tmp_path / f"{split}.jsonl")
        assert len(load_golden_set(tmp_path / f"{split}.jsonl")) == len(corpus[split])  # refuses duplicates
        assert not train & {normalize_text(ex.text) for ex in corpus[split]}, f"{split} repeats a training text"


def test_templates_are_read_only_data_loaded_on_first_use():
    code = ("import sys, mangaassist_reference.templates as t, mangaassist_reference.corpus, "
            "mangaassist_reference.build; print(t.load_templates.cache_info().currsize)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", "importing the kit must not read the template files"
    templates = load_templates()
    assert load_templates() is templates
    with pytest.raises(TypeError):
        templates.phrasings["chitchat"][None] = ("hi",)
    with pytest.raises(AttributeError):
        templates.phrasings["chitchat"][None].append("hi")
    before = corpus_digest(generate_corpus(0, 300, 50, 0.2))
    Sampler(0, golden=False).templates["chitchat"][None].append("a sampler's pool is its own copy")
    assert corpus_digest(generate_corpus(0, 300, 50, 0.2)) == before


def test_every_template_file_is_package_data_covered_by_the_build_fingerprint():
    on_disk = {p.name for p in TEMPLATE_DIR.glob("*.json")}
    assert on_disk == set(TEMPLATE_FILES), "a template file the loader does not read, or one that is missing"
    assert {f"{TEMPLATE_DIR.name}/{name}" for name in TEMPLATE_FILES} <= set(BUILD_SOURCES)
    declared = _toml(ROOT / "reference" / "pyproject.toml")["tool"]["setuptools"]["package-data"]
    patterns = declared["mangaassist_reference"]
    assert all(any(Path(f"{TEMPLATE_DIR.name}/{name}").match(pattern) for pattern in patterns)
               for name in TEMPLATE_FILES)


def _toml(path):
    import tomllib

    return tomllib.loads(path.read_text())


def _package_copy(tmp_path) -> Path:
    copy = tmp_path / "kit"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("name", TEMPLATE_FILES)
def test_build_fingerprint_changes_with_each_template_file(tmp_path, name):
    copy = _package_copy(tmp_path)
    assert fingerprint(SMALL, root=copy) == fingerprint(SMALL)
    path = copy / TEMPLATE_DIR.name / name
    data = json.loads(path.read_text())
    data["about"] = [*data["about"], "an edit"]  # even a change that no generated message shows
    path.write_text(json.dumps(data))
    assert fingerprint(SMALL, root=copy) != fingerprint(SMALL)


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


BAD_TEMPLATES = {
    "unknown slot": ("phrasings.json", lambda d: d["phrasings"]["chitchat"]["plain"].append("hi {nickname}"),
                     "unknown slot {nickname}"),
    "unknown intent": ("bridges.json", lambda d: d["bridges"].update(refund={"plain": ["money back"]}),
                       "unknown intent 'refund'"),
    "unknown slice": ("phrasings.json", lambda d: d["phrasings"]["chitchat"].update(slang=["yo"]),
                      "unknown slice 'slang'"),
    "bridge without phrasings": ("bridges.json", lambda d: d["bridges"]["chitchat"].update(indirect=["meh"]),
                                 "bridges.chitchat.indirect has no phrasings.chitchat.indirect"),
    "unclosed group": ("phrasings.json", lambda d: d["phrasings"]["chitchat"]["plain"].append("[hi|hello"),
                       "unclosed ["),
    "empty list": ("slots.json", lambda d: d["slots"].update(title=[]), "slots.title is not a non-empty list"),
    "priority": ("surface.json", lambda d: d["priority"].pop(), "priority is not an ordering of every intent"),
}


@pytest.mark.parametrize("case", BAD_TEMPLATES)
def test_bad_template_files_are_refused_naming_the_file_and_the_entry(tmp_path, case):
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, folder)
    name, change, message = BAD_TEMPLATES[case]
    _edit(folder, name, change)
    with pytest.raises(MangaAssistInputError) as caught:
        load_templates(folder)
    assert str(folder / name) in caught.value.problem and message in caught.value.problem
    assert caught.value.fix


def test_a_custom_template_folder_drives_the_sampler(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, folder)
    _edit(folder, "surface.json", lambda d: d.update(greetings=["konnichiwa bot"]))
    sampler = Sampler(0, golden=False, templates=load_templates(folder))
    texts = [sampler.decorate("where is my order", jp=False).lower() for _ in range(300)]
    assert any(text.startswith("konnichiwa bot ") for text in texts)
    assert not any(text.startswith(greeting) for text in texts for greeting in load_templates().greetings
                   if not "konnichiwa bot".startswith(greeting))


def test_jp_en_phrasings_vary_their_romanization_but_not_the_titles_or_english_words():
    sampler = Sampler(0, golden=False)
    phrasing = "koukan shitai, san kai mo henji ga nai, do you have {title}"
    texts = [sampler.fill(phrasing, jp=True) for _ in range(400)]
    assert {text.split(",")[0] for text in texts} >= {"koukan shitai", "kokan shitai", "kookan shitai"}
    assert any("sankai mo" in text for text in texts) and any("san kai mo" in text for text in texts)
    assert any("henjiga nai" in text for text in texts) and any("henji ga nai" in text for text in texts)
    assert all(", do you have " in text for text in texts)  # English words keep their spelling
    titles = sampler.slots["title"]
    assert all(text.split(", do you have ")[1] in titles for text in texts)  # so do the slot values
    assert 0.3 < sum(text == phrasing.replace("{title}", text.split(", do you have ")[1]) for text in texts) / 400 < 0.7
    assert {sampler.fill("koukan shitai, san kai mo") for _ in range(50)} == {"koukan shitai, san kai mo"}


def test_the_built_wheel_ships_the_template_files(tmp_path):
    source = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(ROOT / "reference", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "dist").glob("mangaassist_reference-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mangaassist_reference/{TEMPLATE_DIR.name}/{name}" for name in TEMPLATE_FILES} <= names


# --- derived steps -------------------------------------------------------------------------------------

def test_derived_steps_rerun_alone_when_their_sources_change_and_never_retrain(tmp_path, monkeypatch):
    from mangaassist_reference import derived

    trained = []
    monkeypatch.setattr(derived, "build_reference", lambda out, spec, force, log: trained.append(out) or {})
    (tmp_path / "build.json").write_text(json.dumps({"fingerprint": "model-a"}))
    runs = []
    step = derived.DerivedStep("count", ("corpus.py",), lambda out, spec, log: runs.append(out))
    monkeypatch.setattr(derived, "_steps", lambda: (step,))
    derived.build_with_derived(tmp_path, SMALL, log=lambda line: None)
    derived.build_with_derived(tmp_path, SMALL, log=lambda line: None)
    assert len(runs) == 1, "a current step is reused"
    (tmp_path / "build.json").write_text(json.dumps({"fingerprint": "model-b"}))
    derived.build_with_derived(tmp_path, SMALL, log=lambda line: None)
    assert len(runs) == 2, "a retrained model reruns its derived steps"
    monkeypatch.setattr(derived, "step_fingerprint", lambda *args, **kwargs: "edited")
    derived.build_with_derived(tmp_path, SMALL, log=lambda line: None)
    assert len(runs) == 3 and len(trained) == 4
    assert json.loads((tmp_path / "derived.json").read_text()) == {"count": "edited"}


def test_training_shows_that_it_is_alive(small_reference):
    """Progress lines (step, examples per second, time left) come whenever 5 s of the clock have passed, so
    never more than 10 s apart while steps are short; a fake clock makes every step take 3 s."""
    import re

    from pytest_mangaassist import IntentModel
    from mangaassist_reference.training import Recipe, fine_tune

    train = list(load_golden_set(small_reference / "data" / "train.jsonl", allow_duplicates=True).examples[:40])
    recipe = Recipe(epochs=2, batch_size=8, max_length=32)
    now = [0.0]

    def clock() -> float:
        return now[0]

    lines: list[tuple[float, str]] = []

    def log(line: str) -> None:
        lines.append((now[0], line))

    model = IntentModel.load(small_reference / "pretrained")
    original = model.hf_model.forward

    def slow_forward(*args, **kwargs):  # the clock moves 3 s per training step (one forward each)
        now[0] += 3.0
        return original(*args, **kwargs)

    model.hf_model.forward = slow_forward
    fine_tune(model, train, recipe, log=log, clock=clock)
    progress = [(t, re.fullmatch(r"  epoch (\d)/2, step (\d+)/10: ([\d.]+) examples/s, about (\d+) s left", line))
                for t, line in lines if "examples/s" in line]
    assert all(match for _, match in progress), lines
    times = [0.0] + [t for t, _ in progress]
    assert len(progress) >= 5 and max(b - a for a, b in zip(times, times[1:])) <= 10, lines
    steps = [int(m.group(2)) for _, m in progress]
    assert steps == sorted(set(steps)) and steps[-1] == 10
    _, last = progress[-1]
    assert float(last.group(3)) == pytest.approx(8 / 3, abs=0.05) and last.group(4) == "0"  # 8 examples per 3 s

    lines.clear()
    now[0] = 0.0
    model.hf_model.forward = original  # a clock that stands still: no progress lines, only the epochs'
    fine_tune(IntentModel.load(small_reference / "pretrained"), train, recipe, log=log, clock=clock)
    assert [line for _, line in lines if "examples/s" in line] == []
    assert len(lines) == recipe.epochs


def near_copies(queries, corpus, min_ratio=0.9):
    """(ratio, query, corpus message) for each pair whose lowercased words match by difflib's ratio >= min_ratio:
    a second measure, independent of the TF-IDF near_duplicates the build filters with, so that the build's
    filter is not checked with itself. Pairs sharing fewer than half their words are not compared (no ratio of
    0.9 is possible between them)."""
    import difflib
    import re
    from collections import defaultdict

    def words(text):
        return " ".join(re.findall(r"[^\W_]+", text.lower()))

    corpus_words = [words(t) for t in corpus]
    holding = defaultdict(set)
    for j, text in enumerate(corpus_words):
        for word in set(text.split()):
            holding[word].add(j)
    found = []
    for query in queries:
        mine = words(query)
        shared = Counter(j for word in set(mine.split()) for j in holding[word])
        for j, n in shared.items():
            if 2 * n >= max(len(set(mine.split())), len(set(corpus_words[j].split()))):
                ratio = difflib.SequenceMatcher(None, mine, corpus_words[j], autojunk=False).ratio()
                if ratio >= min_ratio:
                    found.append((ratio, query, corpus[j]))
    return sorted(found, reverse=True)


def test_no_training_message_repeats_a_golden_message(small_reference):
    from mangaassist_reference.build import HAND_WRITTEN

    train = load_golden_set(small_reference / "data" / "train.jsonl", allow_duplicates=True).texts
    # every set the build holds out, checked with a measure the build's filter does not use
    golden = load_golden_set(small_reference / "data" / "golden.jsonl").texts
    golden += [text for path in HAND_WRITTEN if path.is_file() for text in load_golden_set(path).texts]
    assert not near_copies(golden, train)
    corpus = generate_corpus(SMALL.data_seed, SMALL.n_train, SMALL.n_valid, SMALL.golden_scale)
    assert near_copies(golden, [ex.text for ex in corpus["train"]]), "the filter had something to remove"
