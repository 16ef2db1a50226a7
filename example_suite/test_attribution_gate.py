"""Monthly attribution gate (source analysis: Captum, LIT, BertViz and Ecco sections).

What accuracy hid, turned into gates:
  1. promotion must not fire on "deal / discount / sale" inside return and checkout questions;
  2. escalation must not hang on "human / agent / person" (and must catch indirect frustration);
  3. "return" must mean different things in "return my order" and "return to this series";
  4. routing: promotion auto-routes only at confidence >= 0.75, else the commerce-support fallback;
  5. hypothesis fuzzing of the same properties (derandomized: the same edits on every run).
A shortcut finding needs attribution (IG share above the limit) AND a causal effect (removing the
words lowers the intent's probability): see assert_no_lexical_shortcut.
"""

from itertools import product
from pathlib import Path

import pytest
from hypothesis import given

from pytest_mangaassist import (GateFailure, RoutingPolicy, assert_attention_shift, assert_no_lexical_shortcut,
                                assert_prediction_invariant, assert_routes, assert_token_senses_separate,
                                load_golden_set)
from pytest_mangaassist.analysis.counterfactuals import remove_words
from pytest_mangaassist.domain import FRUSTRATION_ASKS, FRUSTRATION_ENDINGS, FRUSTRATION_OPENERS
from pytest_mangaassist.strategies import (MODEL_SETTINGS, code_switched, frustration_message, indirect_frustration,
                                          trigger_insertions)

pytestmark = pytest.mark.gate("monthly")  # tier: every retrain: attribution and counterfactuals

CONTEXTS = load_golden_set(Path(__file__).parent.parent / "fixtures" / "shortcut_contexts.jsonl")
PROMOTION_WORDS = ["deal", "deals", "discount", "discounted", "sale", "sales"]
ESCALATION_WORDS = ["human", "humans", "agent", "person"]
MAX_SHARE = 0.5  # of the intent's positive attribution on the words...
MIN_EFFECT = 0.10  # ...and removing the words lowers p(intent) by this much on average: a shortcut
MAX_STEPS = 64  # IG steps per message at most (16, 32, 64: raised while completeness error > 1%)

RETURN_AN_ORDER = ["I want to return my order", "how do I return this damaged volume", "can I return the box set",
                   "I need to return a book that came with missing pages", "return my last order please"]
RETURN_TO_A_SERIES = ["I want to return to this series", "time to return to One Piece, which volume is next",
                      "I always return to Berserk when I am bored", "planning to return to Vinland Saga after a break",
                      "I return to this manga every summer"]


def uses_escalation_words(text):
    return any(w.strip("?.,!:").lower() in ESCALATION_WORDS for w in text.split())


def _with_words(examples, words, intents=None):
    return [ex.text for ex in examples if (intents is None or ex.intent in intents)
            and any(w.strip("?.,!:").lower() in words for w in ex.text.split())]


@pytest.fixture(scope="module")
def sale_in_return_and_checkout(golden_set):
    examples = list(golden_set.only_slice("adversarial")) + list(CONTEXTS)
    return _with_words(examples, PROMOTION_WORDS, ("return_request", "checkout_payment"))


def test_promotion_does_not_fire_on_sale_words_in_return_and_checkout(intent_model, sale_in_return_and_checkout,
                                                                       mangaassist_record):
    audit = assert_no_lexical_shortcut(intent_model, sale_in_return_and_checkout, intent="promotion",
                                       words=PROMOTION_WORDS, max_share=MAX_SHARE, min_effect=MIN_EFFECT, baselines=("pad", "mask", "unk"),
                                       at_most_steps=MAX_STEPS)
    mangaassist_record(f"promotion attribution on deal/discount/sale ({len(audit.before)} return/checkout messages, "
                       f"removing them lowers p(promotion) by {audit.effect:.3f})",
                       audit.baseline_table(MAX_SHARE) + "\n" + audit.worst_table(4))


@pytest.fixture(scope="module")
def escalations(golden_set):
    """Every escalation of the golden set and the contexts file: one attribution run serves both audits."""
    return [ex.text for ex in list(golden_set) + list(CONTEXTS) if ex.intent == "escalation"]


def test_escalation_does_not_hang_on_human_or_agent(intent_model, escalations, mangaassist_record):
    audit = assert_no_lexical_shortcut(intent_model, escalations, intent="escalation", words=ESCALATION_WORDS,
                                       max_share=MAX_SHARE, min_effect=MIN_EFFECT, at_most_steps=MAX_STEPS)
    mangaassist_record(f"escalation attribution on human/agent/person ({len(audit.before)} escalations that use "
                       f"them, removing them lowers p(escalation) by {audit.effect:.3f})",
                       audit.baseline_table(MAX_SHARE) + "\n" + audit.worst_table(4))


def test_no_single_word_dominates_escalation(intent_model, escalations, mangaassist_record):
    audit = assert_no_lexical_shortcut(intent_model, escalations, intent="escalation", max_share=MAX_SHARE,
                                       min_effect=MIN_EFFECT, at_most_steps=MAX_STEPS)
    mangaassist_record(f"escalation's most attributed word type: {audit.words[0]!r} (share {audit.share:.3f}, "
                       f"removal effect {audit.effect:.3f})", audit.worst_table(4))


# Honest failures on the reference model (docs/slices.md records them with their figures): the golden product
# question "is the Monster perfect edition on sale the same as the one without the discount" is routed to
# promotion and only removing "sale"/"discount" makes it a product question; the fuzzer's "can you osusume a new
# isekai" flips recommendation to product discovery; indirect frustration that reads as a late order (below).
# strict: when a retrain fixes them, the run says so and the marks must go. raises=GateFailure: only the gate's
# own failure is the expected one (a bug's TypeError is a failure); and where a limit can say how bad the known
# failure is, a passing twin of the test caps it, so a model that gets worse fails the run.
@pytest.mark.parametrize("known_flips", [
    pytest.param(0, marks=pytest.mark.xfail(strict=True, raises=GateFailure, reason=(
        "reference model: 'on sale ... without the discount' product question is routed to promotion"))),
    1,  # the cap: that one edit, and no other
])
def test_adversarial_golden_examples_keep_their_intent_without_the_trigger_words(intent_model, golden_set,
                                                                                 known_flips):
    adversarial = golden_set.only_slice("adversarial")
    pairs = [(t, remove_words(t, PROMOTION_WORDS + ["help"])) for t in adversarial.texts]
    edits = [(a, b) for a, b in pairs if a != b]
    assert_prediction_invariant(intent_model, edits, max_flip_rate=known_flips / len(edits))


# escalation routes as in production (at any confidence); every other intent to one route: "not escalation"
ESCALATION_OR_NOT = RoutingPolicy(thresholds={"escalation": 0.0}, default_threshold=float("inf"),
                                  default_fallback="not_escalation")


# fixed by the second slice-loop retrain (docs/slices.md): "can I ship to a different person than the buyer" was
# routed to escalation (0.56 before it; shipping at 0.68 after)
@pytest.mark.parametrize("example", [pytest.param(ex, id=ex.text) for ex in CONTEXTS
                                     if ex.intent != "escalation" and uses_escalation_words(ex.text)])
def test_trigger_words_elsewhere_do_not_route_to_escalation(intent_model, example):
    # one test per message: a misroute names its message, and a known one can be strict-xfailed alone while every
    # other message must still stay out of escalation
    assert_routes(intent_model, example.text, expected="not_escalation", policy=ESCALATION_OR_NOT)


def test_return_has_two_senses_in_the_top_layers(intent_model, mangaassist_record):
    # the reference model separates the two senses from layer 4 up, clearly more than the pre-trained encoder
    # (the per-layer table is recorded: docs/figures.md)
    result = assert_token_senses_separate(intent_model, RETURN_AN_ORDER, contrast=RETURN_TO_A_SERIES, word="return",
                                          from_layer=4, min_separation=0.13)
    mangaassist_record("'return': order vs series contexts, cosine distance per layer", result.table(4))


def test_fine_tuning_moved_attention_onto_manga_words(intent_model, pretrained_model, golden_set):
    jargon = golden_set.only_slice("manga_jargon")
    words = ["isekai", "seinen", "shonen", "shojo", "josei", "tankobon", "omnibus", "kanzenban", "volume", "vol"]
    # the best head of layer 5 puts a little more attention on these words than the pre-trained encoder (figure:
    # docs/figures.md); far from the source analysis' +0.38, so a floor, not a target
    assert_attention_shift(intent_model, jargon, against=pretrained_model, words=words, layer=5, min_shift=0.01)


# "is there a discount code for first orders?" was a promotion under the policy's 0.75 threshold (0.65) before the
# second slice-loop retrain (docs/slices.md); 0.81 after it
@pytest.mark.parametrize("text", ["any deals on the One Piece box set this week?",
                                  "is there a discount code for first orders?"])
def test_clear_promotions_auto_route(intent_model, text):
    assert_routes(intent_model, text, expected="promotion")


def test_sale_inside_a_return_or_checkout_is_not_routed_to_promotion(intent_model, golden_set):
    examples = [ex for ex in list(golden_set.only_slice("adversarial")) + list(CONTEXTS)
                if ex.intent in ("return_request", "checkout_payment") and _with_words([ex], PROMOTION_WORDS)]
    for intent in ("return_request", "checkout_payment"):
        assert_routes(intent_model, [ex.text for ex in examples if ex.intent == intent], expected=intent)


RETURNS_AND_CHECKOUT = ["can I return volume 3 of Berserk", "how do I send back a damaged box set",
                        "my card was declined at checkout", "can I pay with PayPal at checkout",
                        "I want a refund for my last order"]


@MODEL_SETTINGS
@given(pair=trigger_insertions(RETURNS_AND_CHECKOUT))
def test_fuzz_sale_words_do_not_flip_returns_and_checkout(intent_model, pair):
    assert_prediction_invariant(intent_model, [pair])


@pytest.mark.xfail(strict=True, raises=GateFailure,
                   reason="reference model: 'can you osusume a new isekai' becomes product_discovery")
@MODEL_SETTINGS
@given(pair=code_switched(["do you have volume 3 of Frieren, please", "where is my order, thank you",
                           "can you recommend a new isekai", "how much is this box set"]))
def test_fuzz_code_switching_keeps_the_intent(intent_model, pair):
    assert_prediction_invariant(intent_model, [pair])


# "I've been waiting for days" with "can someone real look at this" reads as a late order: of the strategy's 504
# messages (every opener, ask, ending and order), the reference model routes 7 of that pair's 12 to order_status
# (the production model before it: 3, its first one among them; docs/slices.md). strict: the run says when a
# retrain fixes it; the twin below caps it: every other pair routes to escalation.
@pytest.mark.xfail(strict=True, raises=GateFailure, reason=(
    "reference model: \"Can someone real look at this. I've been waiting for days\" routes to order_status (0.76)"))
@MODEL_SETTINGS
@given(text=indirect_frustration())
def test_fuzz_indirect_frustration_routes_to_escalation(intent_model, text):
    assert_routes(intent_model, text, expected="escalation")


KNOWN_LATE_ORDER = ("I've been waiting for days", "can someone real look at this")


def test_every_other_indirect_frustration_routes_to_escalation(intent_model):
    texts = [frustration_message(opener, ask, ending, opener_first)
             for opener, ask, ending, opener_first in product(FRUSTRATION_OPENERS, FRUSTRATION_ASKS,
                                                             FRUSTRATION_ENDINGS, (True, False))
             if (opener, ask) != KNOWN_LATE_ORDER]
    assert_routes(intent_model, texts, expected="escalation")
