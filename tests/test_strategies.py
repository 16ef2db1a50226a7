"""Hypothesis strategies: what they draw, that they are reproducible, and that a failing property on
the planted-shortcut model shrinks to a minimal counterexample."""

import pytest
from hypothesis import find, given, settings
from hypothesis.errors import NoSuchExample

from pytest_mangaassist import GateFailure, IntentModel, MangaAssistInputError, assert_prediction_invariant
from mangaassist_reference.shortcut import TRIGGER
from pytest_mangaassist.domain import CODE_SWITCHES, ESCALATION_WORDS, JARGON_KINDS, PROMOTION_TRIGGERS
from pytest_mangaassist.strategies import (MODEL_SETTINGS, code_switched, indirect_frustration, manga_jargon_swaps,
                                           trigger_insertions, word_swaps)

from attribution_helpers import NON_PROMOTION, shortcut_checkpoint

DRAWS = settings(MODEL_SETTINGS, max_examples=40)


@DRAWS
@given(pair=manga_jargon_swaps(["is this isekai any good?", "the seinen omnibus, do you have it"]))
def test_jargon_swaps_change_one_term_within_its_kind(pair):
    original, edited = pair
    assert original != edited
    kinds = [{t for t in terms if t in original.lower()} for terms in JARGON_KINDS.values()]
    swapped = [{t for t in terms if t in edited.lower()} for terms in JARGON_KINDS.values()]
    assert any(a != b and a and b for a, b in zip(kinds, swapped))  # a term replaced by another of its kind
    multiword = any(" " in t for terms in JARGON_KINDS.values() for t in terms if t in original or t in edited)
    assert len(original.split()) == len(edited.split()) or multiword


@DRAWS
@given(pair=code_switched(["do you have volume 3, please", "thanks, is there a new Naruto book"]))
def test_code_switching_replaces_english_fragments_with_romaji(pair):
    original, edited = pair
    assert original != edited
    assert any(jp in edited for _, jp in CODE_SWITCHES)


@DRAWS
@given(pair=trigger_insertions(["can I return volume 3?"]))
def test_trigger_insertion_keeps_the_message_and_adds_a_trigger(pair):
    original, edited = pair
    assert original.rstrip("?") in edited
    assert any(w in edited for w in PROMOTION_TRIGGERS)


@DRAWS
@given(text=indirect_frustration())
def test_indirect_frustration_never_names_a_human_or_agent(text):
    assert not any(word in text.lower().split() for word in ESCALATION_WORDS)


def test_draws_are_reproducible():
    def draws():
        seen = []

        @MODEL_SETTINGS
        @given(text=indirect_frustration())
        def collect(text):
            seen.append(text)

        collect()
        return seen

    assert draws() == draws()


def test_strategies_reject_bases_they_cannot_edit():
    with pytest.raises(MangaAssistInputError, match="manga_jargon_swaps: none of the messages contains a term of "
                                                    "the word groups \\(isekai, "):
        manga_jargon_swaps(["where is my order"])
    with pytest.raises(MangaAssistInputError, match="code_switched: no message contains a switchable phrase"):
        code_switched(["xyz"])
    with pytest.raises(MangaAssistInputError, match="word_swaps: none of the messages contains a term of the word "
                                                    "groups \\(reboot, restart\\)"):
        word_swaps(["my password expired"], {"verb": ("reboot", "restart")})
    with pytest.raises(MangaAssistInputError, match="no base messages"):
        trigger_insertions([])


def test_a_failing_property_on_the_shortcut_model_shrinks_to_a_minimal_edit(tmp_path_factory):
    model = IntentModel.load(shortcut_checkpoint())
    tbh = trigger_insertions(NON_PROMOTION, triggers=(TRIGGER,))

    def flips(pair):
        try:
            assert_prediction_invariant(model, [pair])
        except GateFailure:
            return True
        return False

    try:
        minimal = find(tbh, flips, settings=settings(MODEL_SETTINGS, max_examples=60))
    except NoSuchExample:  # pragma: no cover - the shortcut model always flips
        pytest.fail("no trigger insertion flips the shortcut model")
    original, edited = minimal
    # shrunk to the simplest edit (the bare trigger in front) of the first base message it flips
    assert edited == f"{TRIGGER}: {original}"
    first = NON_PROMOTION.index(original)
    assert not any(flips((base, f"{TRIGGER}: {base}")) for base in NON_PROMOTION[:first])
