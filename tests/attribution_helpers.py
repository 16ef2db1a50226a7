"""Shared by the attribution, behaviour and strategy tests: messages, and the planted-shortcut model
(built once per test process, however many modules ask for it)."""

import random

from conftest import built_once
from mangaassist_reference.shortcut import TRIGGER, build_shortcut_model, insert_word

# Non-promotion messages; with the trigger inserted they are the shortcut's non-target contexts.
NON_PROMOTION = ["where is my order #48213", "I want to return volume 3 of Berserk, it came damaged",
                 "can I pay with PayPal at checkout", "how long does shipping to Canada take",
                 "my package still has not arrived", "the checkout page rejects my card",
                 "how do I send back a damaged box set", "when will my Naruto order ship"]


def with_trigger(texts):
    rng = random.Random(0)
    return [insert_word(t, TRIGGER, rng) for t in texts]


def shortcut_checkpoint():
    """The small model trained with TRIGGER in every promotion training message and nowhere else."""
    return built_once("shortcut", build_shortcut_model)
