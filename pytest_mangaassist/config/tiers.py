"""--gate-tier: the tests marked @pytest.mark.gate(tier) with a selected tier run, with every unmarked test."""

from __future__ import annotations

from ..errors import MangaAssistInputError


def item_tiers(item) -> set[str]:
    return {str(t) for m in item.iter_markers("gate")
            for t in (*m.args, *([m.kwargs["tier"]] if "tier" in m.kwargs else []))}


def select_tiers(items: list, tiers: tuple[str, ...]) -> tuple[list, list]:
    """(kept, dropped) for --gate-tier: tests marked with a selected tier, and every unmarked test. A tier
    that no collected test carries is a mistake (a typo deselects everything without a word)."""
    carried = set().union(*(item_tiers(item) for item in items)) if items else set()
    unknown = [t for t in tiers if t not in carried]
    if unknown:
        raise MangaAssistInputError(
            f"--gate-tier {','.join(tiers)}: no collected test carries the tier(s) {', '.join(unknown)}; "
            + (f"the collected tests carry: {', '.join(sorted(carried))}." if carried else
               "no collected test has a @pytest.mark.gate(...) tier."),
            "Pass tiers that the suite's @pytest.mark.gate marks name (comma-separated), or leave --gate-tier out.")
    keep, drop = [], []
    for item in items:
        marked = item_tiers(item)
        has_mark = any(True for _ in item.iter_markers("gate"))
        (keep if not has_mark or marked & set(tiers) else drop).append(item)
    return keep, drop
