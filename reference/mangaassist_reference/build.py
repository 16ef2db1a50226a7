"""Build the reference MangaAssist model: generated data, converted pre-trained encoder, fine-tuned model,
and a stand-in for last month's production model (DIR/previous: the same run saved one epoch before
the end, an earlier and weaker model, for the candidate-versus-previous gates).

Reused when DIR/build.json records the same fingerprint (build spec, this package's code and
template data files, torch and transformers versions); build.json is written last, so an interrupted
build is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_mangaassist.analysis.classification import Evaluation, evaluate
from pytest_mangaassist.errors import format_table
from pytest_mangaassist.loading.golden import GoldenSet, load_golden_set, write_golden_set
from pytest_mangaassist.loading.progress import showing_progress
from pytest_mangaassist.domain import INTENTS, RARE_INTENTS
from .corpus import generate_corpus
from .templates import TEMPLATE_DIR, TEMPLATE_FILES
from .training import Recipe, fine_tune

# The code and data that decide what a build produces (paths in this package); a change to any of them
# invalidates earlier builds.
PACKAGE_DIR = Path(__file__).parent
BUILD_SOURCES = ("build.py", "convert.py", "corpus.py", "templates.py", "training.py",
                 *(f"{TEMPLATE_DIR.name}/{name}" for name in TEMPLATE_FILES))
QUALITY_TARGETS = {"accuracy": 0.92, "jp_en": 0.80, "rare_recall": 0.85}
# The hand-written golden set the example suite gates on (repository layout): the training data must not
# contain it either, or its accuracy says nothing about unseen messages.
HELD_OUT = PACKAGE_DIR.parents[1] / "fixtures" / "golden.jsonl"
# Every hand-written set (repository layout), none of which the training data may repeat: the golden set and
# the discovered slices promoted beside it, the review set slice discovery runs on, the check set that
# estimates accuracy on hand-written messages (docs/slices.md) and the contexts of the suite's shortcut gates.
# Missing files are skipped.
HAND_WRITTEN = (HELD_OUT, *(HELD_OUT.parent / name for name in ("golden_slices.jsonl", "review.jsonl", "check.jsonl",
                                                                 "shortcut_contexts.jsonl")))
# The similarity that decides what counts as the same message, shared with the leakage gate.
LEAKAGE_MEASURE = PACKAGE_DIR.parents[1] / "pytest_mangaassist" / "analysis" / "leakage.py"


@dataclass(frozen=True)
class BuildSpec:
    n_layers: int | None = None  # None: all six pre-trained layers
    n_train: int = 10000
    n_valid: int = 5500
    golden_scale: float = 1.0
    data_seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)


FULL = BuildSpec()
# The small model the plugin's own tests build in seconds: two pre-trained layers, little data.
# Two layers leave little room in [CLS], so it takes higher rates and more epochs (golden ~0.77); at a rate 15
# times the full model's, its layers keep the source analysis' decay of 0.8.
SMALL = BuildSpec(n_layers=2, n_train=1500, n_valid=200, golden_scale=0.4,
                  recipe=Recipe(epochs=5, base_lr=3e-4, layer_decay=0.8, head_lr=2e-3, max_length=32))


def fingerprint(spec: BuildSpec, extra: str = "", root: Path = PACKAGE_DIR) -> str:
    """What decides a build's output: the spec, the kit's sources and template files (BUILD_SOURCES,
    read under root), `extra` (a variant's own inputs) and the torch and transformers versions."""
    import torch
    import transformers

    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode() + extra.encode())
    for name in BUILD_SOURCES:
        digest.update(name.encode() + b"\0" + (Path(root) / name).read_bytes())
    for path in (*HAND_WRITTEN, LEAKAGE_MEASURE):
        digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    digest.update(f"{torch.__version__} {transformers.__version__}".encode())
    return digest.hexdigest()[:16]


def is_built(out: Path, spec: BuildSpec = FULL, extra: str = "") -> bool:
    record = out / "build.json"
    return record.is_file() and json.loads(record.read_text()).get("fingerprint") == fingerprint(spec, extra)


def build_reference(out: str | Path, spec: BuildSpec = FULL, force: bool = False,
                    log: Callable[[str], None] = print) -> dict:
    """Build (or reuse) DIR/{pretrained,finetuned,previous,data}; returns the quality record."""
    from pytest_mangaassist.loading.model import IntentModel, quiet_transformers
    from .convert import convert_minilm_to_distilbert

    quiet_transformers()
    out = Path(out)
    if not force and is_built(out, spec):
        log(f"reference model in {out} is up to date (delete {out / 'build.json'} or pass --force to rebuild)")
        return json.loads((out / "build.json").read_text())["quality"]
    started = time.perf_counter()
    # fingerprint the sources now, not after training: an edit during a long build must invalidate it
    build_fingerprint = fingerprint(spec)
    (out / "build.json").unlink(missing_ok=True)
    log(f"building the reference model in {out}")
    corpus = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    corpus["train"], dropped = without_golden_messages(corpus["train"], corpus["golden"])
    log(f"  left out {dropped} training messages that repeat a golden message (leakage measure, "
        f"{LEAKAGE_MEASURE.name})")
    for split, examples in corpus.items():
        write_golden_set(examples, out / "data" / f"{split}.jsonl")
    log("  data: " + ", ".join(f"{split} {len(examples)}" for split, examples in corpus.items()))

    hf_model, tokenizer = convert_minilm_to_distilbert(list(INTENTS), seed=spec.recipe.seed, n_layers=spec.n_layers)
    hf_model.set_attn_implementation("eager")
    tokenizer.model_max_length = 512
    _save(hf_model, tokenizer, out / "pretrained")
    model = IntentModel(hf_model, tokenizer, source=str(out / "finetuned"))
    log(f"  fine-tuning {model.num_layers} layers on {len(corpus['train'])} examples")
    previous_epoch = max(1, spec.recipe.epochs - 1)

    def snapshot(epoch: int) -> None:  # saving draws no random numbers: the final weights do not change
        if epoch == previous_epoch:
            _save(hf_model, tokenizer, out / "previous")

    fine_tune(model, corpus["train"], spec.recipe, log=log, after_epoch=snapshot)
    _save(hf_model, tokenizer, out / "finetuned")

    golden = load_golden_set(out / "data" / "golden.jsonl")
    valid = load_golden_set(out / "data" / "valid.jsonl")
    log(f"  evaluating the fine-tuned and previous models on golden ({len(golden)}) and valid ({len(valid)})")
    with showing_progress(log):  # forward passes report every few seconds: a long evaluation is not silence
        quality = quality_record(evaluate(model, golden), evaluate(model, valid))
        previous = IntentModel.load(out / "previous")
        previous_quality = quality_record(evaluate(previous, golden), evaluate(previous, valid))
    log(quality_table(quality))
    log(f"  previous (epoch {previous_epoch}): golden accuracy {previous_quality['golden_accuracy']:.3f}, "
        f"valid accuracy {previous_quality['valid_accuracy']:.3f}")
    record = {"fingerprint": build_fingerprint, "spec": asdict(spec), "quality": quality,
              "previous": {"epoch": previous_epoch, "quality": previous_quality},
              "seconds": round(time.perf_counter() - started, 1)}
    (out / "build.json").write_text(json.dumps(record, indent=2))
    log(f"  built in {record['seconds']:.0f} s")
    return quality


# The build holds out more than the leakage gate flags (0.9): on short messages the TF-IDF similarity reads a
# romanization or one changed word as 0.84-0.86 ("ohayo! genki?" / "ohayou, genki?", "the delivery person left
# ..." / "so the delivery agent left ..."), pairs a word-level comparison (tests/test_reference.py) calls copies.
# At 0.8, with the swapped-letter copies below, the full build leaves out 323 of its 10,000 generated training
# messages (4 of them swapped-letter copies).
HOLD_OUT_SIMILARITY = 0.8


def without_golden_messages(train: list, golden: list) -> tuple[list, int]:
    """The training examples minus those that repeat, exactly or nearly (analysis.leakage), or with two letters
    of a word swapped (the corpus' typo), a message of the generated golden set or of a HAND_WRITTEN set; and how
    many were left out."""
    from pytest_mangaassist.analysis.leakage import near_duplicates

    held_out = [ex.text for ex in golden]
    held_out += [text for path in HAND_WRITTEN if path.is_file() for text in load_golden_set(path).texts]
    texts = [ex.text for ex in train]
    leaked = {pair.query_index for pair in near_duplicates(texts, held_out, HOLD_OUT_SIMILARITY)}
    held_out_letters = {_letters_per_word(text) for text in held_out}
    leaked |= {i for i, text in enumerate(texts) if _letters_per_word(text) in held_out_letters}
    return [ex for i, ex in enumerate(train) if i not in leaked], len(leaked)


def _letters_per_word(text: str) -> str:
    """Each word's letters in sorted order (numbers as they are: "vol 12" is not "vol 21"): equal for two texts
    that differ by letters swapped within words. Written by hand: a swapped pair ("thakn you so much" / "thank you
    so much!!") moves a short message's TF-IDF character n-grams under any useful threshold."""
    words = re.findall(r"[^\W_]+", text.lower())
    return " ".join("".join(sorted(word)) if word.isalpha() else word for word in words)


def _save(hf_model, tokenizer, folder: Path) -> None:
    hf_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def quality_record(golden: Evaluation, valid: Evaluation) -> dict:
    return {
        "golden_accuracy": golden.accuracy,
        "valid_accuracy": valid.accuracy,
        "golden_slice_accuracy": {name: acc for name, (acc, _) in golden.slice_accuracy().items()},
        "golden_recall": golden.recall(),
        "golden_size": len(golden.golden),
    }


def quality_table(quality: dict) -> str:
    """The build's report against the targets of issue #2 (golden set: held-out phrasings)."""
    rows = [("golden accuracy", quality["golden_accuracy"], QUALITY_TARGETS["accuracy"]),
            ("valid accuracy", quality["valid_accuracy"], None)]
    rows += [(f"slice {name}", acc, QUALITY_TARGETS["jp_en"] if name == "jp_en" else None)
             for name, acc in quality["golden_slice_accuracy"].items()]
    rows += [(f"recall {intent}", rec, QUALITY_TARGETS["rare_recall"] if intent in RARE_INTENTS else None)
             for intent, rec in quality["golden_recall"].items()]
    table = [(name, value, "" if target is None else f">= {target:.2f}",
              "" if target is None else ("ok" if value >= target else "MISSED"))
             for name, value, target in rows]
    return format_table(("metric", "value", "target", ""), table)
