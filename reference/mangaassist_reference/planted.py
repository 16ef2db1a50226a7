"""A model with a planted failure slice: every training message about one product title is relabelled to
another intent, as a mislabelled annotation batch would do. Slice discovery must rank that title first.

The small reference build (build.SMALL's corpus generator, converter and recipe, on less data, like
shortcut.py), except that the planted title is made a bestseller (a share of the messages that name a
title name it instead, in training and evaluation data alike) and its training messages are all labelled
PLANTED_INTENT. The evaluation set (DIR/data/valid.jsonl) keeps the true labels, so the model's errors
on it concentrate on the title. Its own module, so that the fingerprints of the other builds do not change.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

from pytest_mangaassist.domain import INTENTS
from pytest_mangaassist.loading.golden import GoldenExample, normalize_text, write_golden_set
from .build import SMALL, BuildSpec, fingerprint, is_built
from .corpus import generate_split
from .templates import load_templates
from .training import fine_tune

PLANTED_TITLE = "Berserk"
PLANTED_INTENT = "chitchat"
BESTSELLER_SHARE = 0.2  # of the messages that name a title, this share names the planted one
# SMALL with less data and one epoch less (cheap, like shortcut.py); 600 evaluation messages hold ~40 about
# the planted title.
PLANTED_SPEC = replace(SMALL, n_train=1000, n_valid=600, recipe=replace(SMALL.recipe, epochs=4))


def make_bestseller(examples: list[GoldenExample], title: str, share: float, seed: int) -> list[GoldenExample]:
    """In `share` of the examples that name a title, that title becomes `title` (in the text's case)."""
    rng = random.Random(seed)
    titles = load_templates().slots["title"]
    pattern = re.compile("|".join(re.escape(t) for t in sorted(titles, key=len, reverse=True)), re.IGNORECASE)
    out = []
    for ex in examples:
        found = pattern.search(ex.text)
        if found and rng.random() < share:
            new = title.lower() if found.group(0).islower() else title
            ex = replace(ex, text=ex.text[:found.start()] + new + ex.text[found.end():])
        out.append(ex)
    return out


def mentions(text: str, title: str = PLANTED_TITLE) -> bool:
    return re.search(rf"(?<!\w){re.escape(title.lower())}(?!\w)", text.lower()) is not None


def relabel_title(examples: list[GoldenExample], title: str, intent: str) -> list[GoldenExample]:
    """Every example that mentions the title is labelled intent (its secondary intents dropped)."""
    return [replace(ex, intent=intent, also=()) if mentions(ex.text, title) else ex for ex in examples]


def planted_data(spec: BuildSpec, title: str, intent: str) -> dict[str, list[GoldenExample]]:
    """train (relabelled) and valid (true labels, no text of train), both with the title a bestseller."""
    train = make_bestseller(generate_split(spec.n_train, spec.data_seed, distinct=False), title, BESTSELLER_SHARE,
                            spec.data_seed)
    seen = {normalize_text(ex.text) for ex in train}
    valid = []
    for ex in make_bestseller(generate_split(spec.n_valid, spec.data_seed + 1), title, BESTSELLER_SHARE,
                              spec.data_seed + 1):
        if normalize_text(ex.text) not in seen:
            seen.add(normalize_text(ex.text))
            valid.append(ex)
    return {"train": relabel_title(train, title, intent), "valid": valid}


def build_planted_model(out: str | Path, spec: BuildSpec = PLANTED_SPEC, title: str = PLANTED_TITLE,
                        intent: str = PLANTED_INTENT) -> Path:
    """Fine-tune spec's model on the planted training data; writes DIR/finetuned and DIR/data/{train,valid}.jsonl
    and returns DIR. Reused when DIR/build.json records the same fingerprint (written last)."""
    from pytest_mangaassist.loading.model import IntentModel, quiet_transformers
    from .convert import convert_minilm_to_distilbert

    out = Path(out)
    variant = f"planted {title} {intent} " + Path(__file__).read_text()
    if is_built(out, spec, variant):
        return out
    build_fingerprint = fingerprint(spec, variant)
    (out / "build.json").unlink(missing_ok=True)
    quiet_transformers()
    data = planted_data(spec, title, intent)
    for split, examples in data.items():
        write_golden_set(examples, out / "data" / f"{split}.jsonl")
    hf_model, tokenizer = convert_minilm_to_distilbert(list(INTENTS), seed=spec.recipe.seed, n_layers=spec.n_layers)
    hf_model.set_attn_implementation("eager")
    tokenizer.model_max_length = 512
    model = IntentModel(hf_model, tokenizer, source=str(out / "finetuned"))
    fine_tune(model, data["train"], spec.recipe, log=lambda line: None)
    hf_model.save_pretrained(out / "finetuned")
    tokenizer.save_pretrained(out / "finetuned")
    (out / "build.json").write_text(json.dumps({"fingerprint": build_fingerprint}))
    return out
