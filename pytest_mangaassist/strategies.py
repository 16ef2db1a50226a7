"""Hypothesis strategies for MangaAssist messages, to fuzz the behaviour and attribution gates.

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
The vocabularies the strategies draw from (jargon, code switches, trigger phrases, frustration
phrases) are MangaAssist's, in pytest_mangaassist.domain.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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


def manga_jargon_swaps(texts: Sequence[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with one jargon term swapped for another of its kind) for messages that
    contain jargon; the intent should not change (a seinen question is a seinen-or-shojo question)."""
    candidates = [(t, term, kind) for t in _bases(texts, "manga_jargon_swaps")
                  for kind, terms in JARGON_KINDS.items() for term in terms if _has_phrase(t, term)]
    if not candidates:
        raise MangaAssistInputError("manga_jargon_swaps: none of the messages contains a jargon term "
                                    f"({', '.join(t for terms in JARGON_KINDS.values() for t in terms)}).",
                                    "Pass manga-jargon messages, e.g. golden_set.only_slice('manga_jargon').texts.")

    @st.composite
    def swap(draw):
        text, term, kind = draw(st.sampled_from(candidates))
        new = draw(st.sampled_from([t for t in JARGON_KINDS[kind] if t != term]))
        return text, _replace_phrase(text, term, new)

    return swap()


def code_switched(texts: Sequence[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with one or more English fragments in romanized Japanese); shrinks to one fragment."""
    bases = [(t, [i for i, (en, _) in enumerate(CODE_SWITCHES) if _has_phrase(t, en)])
             for t in _bases(texts, "code_switched")]
    bases = [(t, found) for t, found in bases if found]
    if not bases:
        raise MangaAssistInputError("code_switched: no message contains a switchable English fragment "
                                    f"({', '.join(en for en, _ in CODE_SWITCHES)}).",
                                    "Pass plain English messages of the intents you fuzz.")

    @st.composite
    def switch(draw):
        text, found = draw(st.sampled_from(bases))
        chosen = draw(st.lists(st.sampled_from(found), min_size=1, max_size=len(found), unique=True))
        edited = text
        for i in sorted(chosen):
            edited = _replace_phrase(edited, *CODE_SWITCHES[i])
        return text, edited

    return switch()


def trigger_insertions(texts: Sequence[str], triggers: Sequence[str] = PROMOTION_TRIGGERS) -> st.SearchStrategy[tuple[str, str]]:
    """(message, message with a trigger word put in a phrase at its start or end): for return,
    checkout or order messages, the intent should not become promotion."""
    bases = _bases(texts, "trigger_insertions")

    @st.composite
    def insert(draw):
        text = draw(st.sampled_from(bases))
        phrase = draw(st.sampled_from(TRIGGER_PHRASES)).format(w=draw(st.sampled_from(list(triggers))))
        at_end = draw(st.booleans())
        return text, (f"{text.rstrip('?.! ')}, {phrase}" if at_end else f"{phrase}: {text}")

    return insert()


@st.composite
def indirect_frustration(draw) -> str:
    """An escalation phrased without 'human' / 'agent' / 'person' / 'representative'."""
    opener = draw(st.sampled_from(FRUSTRATION_OPENERS))
    ask = draw(st.sampled_from(FRUSTRATION_ASKS))
    ending = draw(st.sampled_from(FRUSTRATION_ENDINGS))
    first = draw(st.booleans())
    return f"{opener}, {ask}{ending}" if first else f"{ask[0].upper() + ask[1:]}. {opener}{ending}"
