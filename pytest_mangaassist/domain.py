"""Domain profiles: what a label set brings beyond its labels (routing policy, slice features, probe texts,
fuzzing vocabularies), and the one profile shipped, MangaAssist's, in one module.

A model meets a profile only when its labels are the profile's label set (the same names, any order):
a model with other labels gets the generic defaults below, derived from nothing domain-specific, and
routes by argmax unless the suite declares a routing policy (--routing-policy FILE, ini
mangaassist_routing_policy; the plugin makes it the gates' default with `using_routing_policy`).
Everything generic (the RoutingPolicy class, the analyses, the gates) lives elsewhere and takes these
as arguments; nothing under analysis/ imports this module.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from .analysis.counterfactuals import RoutingPolicy
from .analysis.slices import SliceFeatures
from .errors import MangaAssistInputError

INTENTS = (
    "product_discovery",
    "recommendation",
    "product_question",
    "order_status",
    "return_request",
    "shipping",
    "checkout_payment",
    "promotion",
    "escalation",
    "chitchat",
)

RARE_INTENTS = ("escalation", "return_request", "promotion")

SLICES = ("manga_jargon", "jp_en", "multi_intent", "adversarial", "indirect")

# -- routing ------------------------------------------------------------------------------------------
COMMERCE_SUPPORT = "commerce_support"  # the fallback route: a human commerce-support queue
# The source analysis' decision: promotion auto-routes only at >= 0.75, else commerce support.
MANGAASSIST_ROUTING = RoutingPolicy(thresholds={"promotion": 0.75}, fallbacks={"promotion": COMMERCE_SUPPORT},
                                    default_fallback=COMMERCE_SUPPORT, source="the MangaAssist profile's policy")

# -- vocabularies of the hypothesis strategies (pytest_mangaassist.strategies) ------------------------
# Manga jargon, by kind: a swap stays within a kind (a genre for a genre, a format for a format).
JARGON_KINDS = {
    "genre": ("isekai", "seinen", "shonen", "shojo", "josei", "iyashikei", "mecha", "horror", "romance"),
    "format": ("tankobon", "omnibus", "kanzenban", "bunkoban", "wideban", "artbook", "box set", "hardcover"),
}

# English fragments and their romanized Japanese, as MangaAssist's JP-EN traffic mixes them.
CODE_SWITCHES = (
    ("please", "onegaishimasu"), ("thank you", "arigatou"), ("thanks", "arigatou"), ("do you have", "arimasu ka"),
    ("is there", "arimasu ka"), ("this", "kono"), ("how much", "ikura"), ("new", "atarashii"), ("book", "hon"),
    ("volume", "kan"), ("excuse me", "sumimasen"), ("I want", "hoshii desu"), ("where", "doko"),
    ("recommend", "osusume"), ("order", "chuumon"),
)

# Ways a promotion trigger word lands in a message that is not about a promotion.
TRIGGER_PHRASES = ("{w}", "I got it on {w}", "it was a {w}", "the {w} one", "bought during the {w}", "({w} item)")
PROMOTION_TRIGGERS = ("sale", "deal", "discount")

# Indirect frustration: an escalation without "human", "agent", "person" or "representative".
FRUSTRATION_OPENERS = ("this is the third time I'm asking", "I've been waiting for days", "nothing is working",
                       "I keep getting the same answer", "still no reply", "this is ridiculous",
                       "I have explained this twice already")
FRUSTRATION_ASKS = ("who can actually fix this", "I need someone who can help", "please escalate this",
                    "I want to talk to whoever is in charge", "get me to someone higher up",
                    "can someone real look at this")
FRUSTRATION_ENDINGS = ("", ".", "!", " I'm so done", " this is unacceptable", " seriously")
ESCALATION_WORDS = ("human", "agent", "person", "representative")

# -- probe texts of the export gates -----------------------------------------------------------------
# The parity gates' messages when none are given: varied lengths, JP-EN, jargon, punctuation.
PARITY_PROBE_TEXTS = (
    "hi",
    "where is my order?",
    "Can I return this if the sale price changes?",
    "do you have the One Piece omnibus volume 3 in stock",
    "kono manga no tsuzuki wa itsu deru? the next volume of Frieren please",
    "I've been waiting three weeks, nobody answers my emails and the tracking page hasn't moved since Tuesday.",
    "recommend me a dark seinen like Berserk or Vinland Saga but shorter, maybe under ten tankobon volumes",
    "my card was charged twice at checkout!!",
    "is there a discount code for first orders",
    "ship to Osaka? how long does EMS take",
    "thanks, that's all",
    "I want to speak to a person",
)
# The words assert_onnx_structure cycles through to build inputs of shapes the export never saw.
STRUCTURE_PROBE_WORDS = ("one", "piece", "volume", "twelve", "omnibus", "edition", "please")

# -- text features of failure-slice discovery (analysis.slices) ------------------------------------------
# Romanized Japanese as MangaAssist's JP-EN traffic writes it (whole words; "no", "wa", "ga" are left out:
# they are English words or letters too).
ROMANIZED_WORDS = tuple(sorted({jp for _, jp in CODE_SWITCHES} | {
    "desu", "masu", "arimasu", "dekimasu", "kudasai", "onegai", "sumimasen", "arigatou", "itsu", "nani", "nan",
    "mada", "zaiko", "shinkan", "kanketsu", "haisou", "hassou", "henpin", "shiharai", "yoyaku", "kyanseru",
    "yoroshiku", "oshiete", "omoshiroi", "yomitai", "kaitai", "todokanai", "watashi", "nihongo"}))
# Words that suggest an intent: in a message labelled with another intent they are the adversarial case.
INTENT_TRIGGER_WORDS = {
    "promotion": (*PROMOTION_TRIGGERS, "discounted", "coupon", "promo", "voucher"),
    "escalation": (*ESCALATION_WORDS, "manager", "supervisor"),
    "return_request": ("return", "refund", "send back"),
}
# The catalogue's best-selling titles: a title's messages can fail together (a new release, a mislabelled batch).
PRODUCT_TITLES = (
    "One Piece", "Naruto", "Berserk", "Chainsaw Man", "Jujutsu Kaisen", "Spy x Family", "Vinland Saga", "Frieren",
    "Re:Zero", "Mushoku Tensei", "Attack on Titan", "Demon Slayer", "My Hero Academia", "Tokyo Ghoul", "Blue Lock",
    "Haikyu", "Oshi no Ko", "Dandadan", "Kaiju No. 8", "Vagabond", "Monster", "20th Century Boys", "Nana",
    "Fruits Basket", "Sailor Moon", "Dragon Ball", "Bleach", "Hunter x Hunter", "Fullmetal Alchemist", "Death Note",
    "Solo Leveling", "Tokyo Revengers", "Mob Psycho 100", "One Punch Man", "Yotsuba", "Slam Dunk", "Akira",
    "Made in Abyss", "Goodnight Punpun", "Dorohedoro", "Hell's Paradise", "Fire Force", "Blue Period", "Kaguya-sama",
    "Horimiya", "Mashle", "Sakamoto Days", "Witch Hat Atelier", "Dungeon Meshi", "The Apothecary Diaries",
    "Ranma 1/2", "Inuyasha", "Gantz", "Parasyte", "Uzumaki", "Planetes", "Pluto", "Golden Kamuy", "Kingdom", "Bakuman")
MANGAASSIST_SLICE_FEATURES = SliceFeatures(romanized=ROMANIZED_WORDS, triggers=INTENT_TRIGGER_WORDS,
                                           titles=PRODUCT_TITLES)


# -- profiles --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """A label set's domain knowledge: the gates use it only for a model whose labels are exactly `labels`."""

    name: str
    labels: tuple[str, ...]
    routing: RoutingPolicy | None = None  # None: argmax unless the suite declares a policy
    slice_features: SliceFeatures = field(default_factory=SliceFeatures)
    parity_texts: tuple[str, ...] = ()
    structure_words: tuple[str, ...] = ()


MANGAASSIST = Profile("MangaAssist", INTENTS, MANGAASSIST_ROUTING, MANGAASSIST_SLICE_FEATURES, PARITY_PROBE_TEXTS,
                      STRUCTURE_PROBE_WORDS)
PROFILES = (MANGAASSIST,)

# The defaults of a model no profile knows: no domain words, only shapes (lengths, punctuation, digits,
# accents, repeats) that exercise tokenization, padding and truncation in any English-script domain.
GENERIC_PARITY_TEXTS = (
    "hi",
    "ok?",
    "Thanks!",
    "I need some help with this, please.",
    "It stopped working again this morning and I don't know why",
    "Can you check number 12345 for me",
    "no no no no no no no no no no no no no no no no",
    "Where can I find the settings? I looked everywhere (twice) and found nothing...",
    "café, naïve, résumé — accents and dashes",
    "A much longer message that goes on for a while, with several clauses, some numbers like 3, 14 and 2026, "
    "and enough words to be cut at the model's maximum length when that length is short.",
)
GENERIC_STRUCTURE_WORDS = ("one", "two", "three", "please", "help", "thanks", "again")
GENERIC = Profile("generic", (), None, SliceFeatures(), GENERIC_PARITY_TEXTS, GENERIC_STRUCTURE_WORDS)


def profile_for(labels: Sequence[str]) -> Profile:
    """The profile of this label set (same names, any order), else GENERIC."""
    return next((p for p in PROFILES if set(p.labels) == set(labels)), GENERIC)


# -- the routing policy in force ----------------------------------------------------------------------------
ARGMAX = RoutingPolicy(source="argmax (no routing policy declared: every message goes to its top label; declare "
                              "one with --routing-policy FILE or the ini key mangaassist_routing_policy)")
_suite_policy: ContextVar[RoutingPolicy | None] = ContextVar("mangaassist_routing_policy", default=None)


@contextlib.contextmanager
def using_routing_policy(policy: RoutingPolicy | None):
    """Inside the block, gates given no policy use this one (the plugin wraps each test in the suite's)."""
    token = _suite_policy.set(policy)
    try:
        yield
    finally:
        _suite_policy.reset(token)


def routing_policy(labels: Sequence[str], policy: RoutingPolicy | None = None) -> RoutingPolicy:
    """The policy a gate routes by: the one given, else the suite's, else the label set's profile's, else argmax.
    The policy's `source` says which, for the row."""
    chosen = policy or _suite_policy.get() or profile_for(labels).routing or ARGMAX
    check_policy_labels(chosen, labels)
    return chosen


def check_policy_labels(policy: RoutingPolicy, labels: Sequence[str]) -> None:
    """Every label a policy names is one of the model's; an unknown one is named with the closest label."""
    unknown = sorted((set(policy.thresholds) | set(policy.fallbacks)) - set(labels))
    if unknown:
        close = [difflib.get_close_matches(u, list(labels), n=1) for u in unknown]
        guesses = [f"{u!r} -> {c[0]!r}" for u, c in zip(unknown, close) if c]
        raise MangaAssistInputError(
            f"The routing policy ({policy.source}) names label(s) {unknown} the model does not know"
            + (f" (did you mean {', '.join(guesses)}?)" if guesses else "") + ".",
            f"Name only the model's labels ({', '.join(labels)}) in the policy's thresholds and fallbacks.")


POLICY_KEYS = {"thresholds": dict, "fallbacks": dict, "default_threshold": (int, float), "default_fallback": str}


def load_routing_policy(path: Path) -> RoutingPolicy:
    """A routing policy from a JSON file: {"thresholds": {label: min confidence}, "fallbacks": {label: route},
    "default_threshold": 0.0, "default_fallback": "fallback"} (every key optional)."""
    from .loading.jsonfile import read_json

    raw = read_json(path, f"--routing-policy {path}")
    example = ('{"thresholds": {"LABEL": 0.75}, "fallbacks": {"LABEL": "human_review"}, '
               '"default_fallback": "human_review"}')
    problems = [] if isinstance(raw, dict) else ["it is not a JSON object"]
    if not problems:
        problems += [f"unknown key {k!r}" for k in raw if k not in POLICY_KEYS]
        problems += [f"{k!r} must be a {getattr(t, '__name__', 'number')}" for k, t in POLICY_KEYS.items()
                     if k in raw and (not isinstance(raw[k], t) or isinstance(raw[k], bool))]
    if not problems:
        thresholds, fallbacks = raw.get("thresholds", {}), raw.get("fallbacks", {})
        problems += [f"threshold of {k!r} must be a number in [0, 1]" for k, t in thresholds.items()
                     if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1]
        problems += [f"fallback of {k!r} must be a route name" for k, r in fallbacks.items()
                     if not isinstance(r, str) or not r.strip()]
        if not 0 <= raw.get("default_threshold", 0.0) <= 1:
            problems.append("'default_threshold' must be in [0, 1]")
    if problems:
        raise MangaAssistInputError(f"--routing-policy {path}: {'; '.join(problems)}.",
                                    f"Write the policy as a JSON object like {example}.")
    return RoutingPolicy(thresholds={k: float(t) for k, t in raw.get("thresholds", {}).items()},
                         fallbacks=dict(raw.get("fallbacks", {})),
                         default_threshold=float(raw.get("default_threshold", 0.0)),
                         default_fallback=raw.get("default_fallback", "fallback"), source=f"policy {path}")
