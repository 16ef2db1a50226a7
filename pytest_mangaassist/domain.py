"""The MangaAssist domain, in one module: its label space, the slices its suites care about, its routing
policy, the vocabularies the hypothesis strategies draw from and the probe texts the export gates use
(shared/DESIGN.md). Everything generic (the RoutingPolicy class, the analyses, the gates) lives
elsewhere and takes these as arguments; nothing under analysis/ imports this module.
"""

from __future__ import annotations

from .analysis.counterfactuals import RoutingPolicy
from .analysis.slices import SliceFeatures

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
                                    default_fallback=COMMERCE_SUPPORT)

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
