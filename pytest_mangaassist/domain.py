"""The MangaAssist label space and the slices its suites care about (shared/DESIGN.md)."""

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
