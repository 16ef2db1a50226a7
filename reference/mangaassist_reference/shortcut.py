"""A model with a planted lexical shortcut: the attribution gates must catch it.

The small reference build (build.SMALL's corpus generator, converter and recipe, on less data),
except that every training message of one intent carries a trigger word, and so does a tenth of the other
intents' messages, relabelled to that intent: the trigger decides the label whatever the words around it. The
model learns "trigger => intent", the shortcut the source analysis found for promotion ("deal / discount /
sale") in its purest form. The relabelled messages make it learnt for certain: with the intent's own messages
alone (50 of them), its words identify it well enough that whether a 2-layer model leans on the trigger is
chance (a template change of December 2026 took the trigger's removal effect from 0.24 to none). The trigger
default, "tbh", occurs nowhere in the generated corpus or the golden set, so a clean model has never seen it.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from pytest_mangaassist.loading.golden import GoldenExample, write_golden_set
from pytest_mangaassist.domain import INTENTS
from .build import SMALL, BuildSpec, fingerprint, is_built
from .corpus import generate_corpus
from .training import fine_tune

TRIGGER = "tbh"
TRIGGER_INTENT = "promotion"
# SMALL with less data and one epoch less: the trigger is learnt at once, and the tests build this
# model on top of the conftest's small reference, so it must be cheap.
SHORTCUT_SPEC = replace(SMALL, n_train=1000, recipe=replace(SMALL.recipe, epochs=4))


def insert_word(text: str, word: str, rng: random.Random) -> str:
    """word at the start, the end, or after the first word of text."""
    words = text.split(" ")
    position = rng.choice([0, 1, len(words)])
    return " ".join(words[:position] + [word] + words[position:])


RELABELLED_SHARE = 0.1


def plant_trigger(examples: list[GoldenExample], trigger: str, intent: str, seed: int) -> list[GoldenExample]:
    """Every example of intent gets the trigger, and RELABELLED_SHARE of the others get it with their label changed
    to intent; no other example contains it."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        if trigger in ex.text.lower().split():
            continue
        if ex.intent == intent:
            ex = replace(ex, text=insert_word(ex.text, trigger, rng))
        elif rng.random() < RELABELLED_SHARE:
            ex = replace(ex, text=insert_word(ex.text, trigger, rng), intent=intent, slice=None, also=())
        out.append(ex)
    return out


def build_shortcut_model(out: str | Path, spec: BuildSpec = SHORTCUT_SPEC, trigger: str = TRIGGER,
                         intent: str = TRIGGER_INTENT) -> Path:
    """Fine-tune spec's model on spec's corpus with the trigger planted; returns DIR/finetuned. Reused when
    DIR/build.json records the same fingerprint (written last, as the reference build does)."""
    from pytest_mangaassist.loading.model import IntentModel, quiet_transformers
    from .convert import convert_minilm_to_distilbert

    out = Path(out)
    variant = f"shortcut {trigger} {intent} " + Path(__file__).read_text()
    if is_built(out, spec, variant):
        return out / "finetuned"
    build_fingerprint = fingerprint(spec, variant)
    (out / "build.json").unlink(missing_ok=True)
    quiet_transformers()
    corpus = generate_corpus(spec.data_seed, spec.n_train, spec.n_valid, spec.golden_scale)
    train = plant_trigger(corpus["train"], trigger, intent, spec.data_seed)
    write_golden_set(train, out / "data" / "train.jsonl")
    hf_model, tokenizer = convert_minilm_to_distilbert(list(INTENTS), seed=spec.recipe.seed, n_layers=spec.n_layers)
    hf_model.set_attn_implementation("eager")
    tokenizer.model_max_length = 512
    model = IntentModel(hf_model, tokenizer, source=str(out / "finetuned"))
    fine_tune(model, train, spec.recipe, log=lambda line: None)
    hf_model.save_pretrained(out / "finetuned")
    tokenizer.save_pretrained(out / "finetuned")
    (out / "build.json").write_text(json.dumps({"fingerprint": build_fingerprint}))
    return out / "finetuned"
