"""Hypothesis strategies that edit messages, to fuzz the behaviour and attribution gates.

Each edit strategy draws an (original, edited) pair from base messages you give, so a property
such as "the edit does not change the intent" can be checked with assert_prediction_invariant;
on failure hypothesis shrinks to the simplest edit (first base message, first replacement, one
switched fragment), which the lists below order from plain to elaborate.

    from hypothesis import given
    from pytest_mangaassist.strategies import MODEL_SETTINGS, trigger_insertions

    @MODEL_SETTINGS
    @given(pair=trigger_insertions(["can I return volume 3?"]))
    def test_sale_does_not_make_a_return_a_promotion(intent_model, pair):
        assert_prediction_invariant(intent_model, [pair])

MODEL_SETTINGS: no deadline (a model call is not a unit-test-sized function), derandomized (the
same examples on every run and machine, so a gate run is reproducible), the too_slow and
function-scoped-fixture health checks off, and few examples (every example is a forward pass).
The generic strategies take their vocabulary as an argument: word_swaps(texts, groups) (a word for another
of its group), phrase_switches(texts, switches) (a phrase for its translation or variant) and
trigger_insertions(texts, triggers, phrases). The MangaAssist profile's strategies are those with its
vocabularies (pytest_mangaassist.domain) filled in: manga_jargon_swaps, code_switched, trigger_insertions'
default triggers and indirect_frustration; a suite of another label set passes its own words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .domain import (CODE_SWITCHES, FRUSTRATION_ASKS, FRUSTRATION_ENDINGS, FRUSTRATION_OPENERS, JARGON_KINDS,
                     PROMOTION_TRIGGERS, TRIGGER_PHRASES)
from .errors import MangaAssistInputError

MODEL_SETTINGS = settings(deadline=None, derandomize=True, max_examples=25, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags=re.IGNORECASE) is not None


def _replace_phrase(text: str, phrase: str, new: str) -> str:
    return re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", new, text, count=1, flags=re.IGNORECASE)


def _bases(texts: Sequence[str], caller: str) -> list[str]:
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise MangaAssistInputError(f"{caller}: no base messages.", "Pass a non-empty list of messages.")
    return texts


def word_swaps(texts: Sequence[str], groups: Mapping[str, Sequence[str]], *,
               caller: str = "word_swaps") -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with one term swapped for another of its group) for messages that contain a term
    of a group; the intent should not change (groups: name -> interchangeable terms)."""
    candidates = [(t, term, kind) for t in _bases(texts, caller)
                  for kind, terms in groups.items() for term in terms if _has_phrase(t, term)]
    if not candidates:
        raise MangaAssistInputError(f"{caller}: none of the messages contains a term of the word groups "
                                    f"({', '.join(t for terms in groups.values() for t in terms)}).",
                                    "Pass messages that contain the groups' terms (e.g. a slice built around "
                                    "them).")

    @st.composite
    def swap(draw):
        text, term, kind = draw(st.sampled_from(candidates))
        new = draw(st.sampled_from([t for t in groups[kind] if t != term]))
        return text, _replace_phrase(text, term, new)

    return swap()


def manga_jargon_swaps(texts: Sequence[str]) -> st.SearchStrategy[tuple[str, str]]:
    """word_swaps with the MangaAssist profile's jargon (a genre for a genre, a format for a format): a
    seinen question is a seinen-or-shojo question."""
    return word_swaps(texts, JARGON_KINDS, caller="manga_jargon_swaps")


def phrase_switches(texts: Sequence[str], switches: Sequence[tuple[str, str]], *,
                    caller: str = "phrase_switches") -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with one or more phrases replaced by their switch, e.g. a translation); shrinks to
    one phrase. switches: (phrase, replacement) pairs."""
    bases = [(t, [i for i, (en, _) in enumerate(switches) if _has_phrase(t, en)])
             for t in _bases(texts, caller)]
    bases = [(t, found) for t, found in bases if found]
    if not bases:
        raise MangaAssistInputError(f"{caller}: no message contains a switchable phrase "
                                    f"({', '.join(en for en, _ in switches)}).",
                                    "Pass messages that contain the phrases you switch.")

    @st.composite
    def switch(draw):
        text, found = draw(st.sampled_from(bases))
        chosen = draw(st.lists(st.sampled_from(found), min_size=1, max_size=len(found), unique=True))
        edited = text
        for i in sorted(chosen):
            edited = _replace_phrase(edited, *switches[i])
        return text, edited

    return switch()


def code_switched(texts: Sequence[str]) -> st.SearchStrategy[tuple[str, str]]:
    """phrase_switches with the MangaAssist profile's English fragments and their romanized Japanese."""
    return phrase_switches(texts, CODE_SWITCHES, caller="code_switched")


def trigger_insertions(texts: Sequence[str], triggers: Sequence[str] = PROMOTION_TRIGGERS,
                       phrases: Sequence[str] = TRIGGER_PHRASES) -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with a trigger word put in a phrase ("{w}" marks the word) at its start or end): the
    intent should not become the trigger's. The defaults are the MangaAssist profile's (promotion triggers
    in a return, checkout or order message); pass your own triggers for another label set."""
    bases = _bases(texts, "trigger_insertions")

    @st.composite
    def insert(draw):
        text = draw(st.sampled_from(bases))
        phrase = draw(st.sampled_from(list(phrases))).format(w=draw(st.sampled_from(list(triggers))))
        at_end = draw(st.booleans())
        return text, (f"{text.rstrip('?.! ')}, {phrase}" if at_end else f"{phrase}: {text}")

    return insert()


@st.composite
def indirect_frustration(draw) -> str:
    """The MangaAssist profile's escalation phrased without 'human' / 'agent' / 'person' / 'representative'."""
    opener = draw(st.sampled_from(FRUSTRATION_OPENERS))
    ask = draw(st.sampled_from(FRUSTRATION_ASKS))
    ending = draw(st.sampled_from(FRUSTRATION_ENDINGS))
    first = draw(st.booleans())
    return frustration_message(opener, ask, ending, first)


def frustration_message(opener: str, ask: str, ending: str, opener_first: bool) -> str:
    """One message of indirect_frustration's space: "opener, ask" or "Ask. opener", then the ending."""
    return f"{opener}, {ask}{ending}" if opener_first else f"{ask[0].upper() + ask[1:]}. {opener}{ending}"
