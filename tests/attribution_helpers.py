"""Shared by the attribution, behaviour and strategy tests: messages, and the planted-shortcut model
(built once per test process, however many modules ask for it)."""

import functools
import random
from pathlib import Path

from pytest_mangaassist.reference.shortcut import TRIGGER, build_shortcut_model, insert_word

# Non-promotion messages; with the trigger inserted they are the shortcut's non-target contexts.
NON_PROMOTION = ["where is my order #48213", "I want to return volume 3 of Berserk, it came damaged",
                 "can I pay with PayPal at checkout", "how long does shipping to Canada take",
                 "my package still has not arrived", "the checkout page rejects my card",
                 "how do I send back a damaged box set", "when will my Naruto order ship"]


def with_trigger(texts):
    rng = random.Random(0)
    return [insert_word(t, TRIGGER, rng) for t in texts]


@functools.lru_cache(maxsize=None)
def shortcut_checkpoint(basetemp: str) -> Path:
    """The small model trained with TRIGGER in every promotion training message and nowhere else."""
    return build_shortcut_model(Path(basetemp) / "shortcut-model")
