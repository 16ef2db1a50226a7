"""Weak-slice gate: no discovered slice of the examples may be significantly worse than the rest.

Discovery (analysis.slices, on the model's own [CLS] states and on text features) tests many candidate
slices at once, so a slice counts as found only when its Benjamini-Hochberg adjusted p-value is below fdr
(the expected share of false discoveries among the slices found is at most fdr). A found slice fails the
gate when its lift over the overall error rate exceeds max_lift (or its error rate exceeds max_error_rate);
with bound="lower", the lower end of its exact error-rate interval must (the slice is worse with confidence,
not by the luck of a few messages). The failure lists each failing slice with its figures and examples.
"""

from __future__ import annotations

from ..analysis.slices import SliceCandidate, SliceDiscovery, SliceFeatures
from ..cache.analyses import discover_slices
from ..errors import MangaAssistInputError, renamed_keywords
from . import validation as valid
from .records import Family, check

SHOWN = 5
BOUNDS = ("point", "lower")


def _limit(caller: str, max_lift, max_error_rate) -> tuple[str, float]:
    if (max_lift is None) == (max_error_rate is None):
        raise MangaAssistInputError(f"{caller}: give exactly one of max_lift or max_error_rate (got "
                                    f"max_lift={max_lift!r}, max_error_rate={max_error_rate!r}).",
                                    "Pass e.g. max_lift=3.0 (a slice may err at most 3x as often as the whole "
                                    "set) or max_error_rate=0.2.")
    if max_lift is not None:
        return "lift", valid.number(caller, "max_lift", max_lift, low=1.0)
    return "error rate", valid.share(caller, "max_error_rate", max_error_rate)


def _measure(candidate: SliceCandidate, what: str, bound: str) -> float:
    return candidate.error_rate.bound(bound) if what == "error rate" else candidate.lift_bound(bound)


def _interval(candidate: SliceCandidate | None, what: str) -> tuple[float, float] | None:
    """The exact interval of the gated figure: the error rate's, or the lift's (the same ends over the base rate)."""
    if candidate is None:
        return None
    if what == "error rate":
        return candidate.error_rate.low, candidate.error_rate.high
    return candidate.lift_bound("lower"), candidate.lift_bound("upper")


@Family.CLASSIFICATION.gate(page="slices.md",
                            checks="no discovered slice (error clusters in the model's [CLS] space, romanized "
                                   "Japanese, trigger words, product titles, length buckets, tags) of `at_least_size`+ "
                                   "examples that is significantly worse than the rest after Benjamini-Hochberg (FDR"
                                   " `fdr`) has a lift above `max_lift` (or an error rate above `max_error_rate`; "
                                   "give exactly one); `bound=\"lower\"` gates the lower end of the exact interval")
@renamed_keywords(min_size="at_least_size")  # the old names, for one release
def assert_no_weak_slice(model, examples, *, at_least_size: int = 20, max_lift: float | None = None,
                         max_error_rate: float | None = None, fdr: float = 0.05, bound: str = "point",
                         features: SliceFeatures | None = None, seed: int = 0) -> SliceDiscovery:
    """Every discovered slice of at least at_least_size examples that is significantly worse than the rest (BH
    adjusted p < fdr) must have lift <= max_lift (or error rate <= max_error_rate). Returns the discovery."""
    __tracebackhide__ = True
    caller = "assert_no_weak_slice"
    golden = valid.golden(caller, examples, model)
    at_least_size = valid.count(caller, "at_least_size", at_least_size, minimum=5)
    what, limit = _limit(caller, max_lift, max_error_rate)
    fdr = valid.number(caller, "fdr", fdr, low=0.0, high=1.0, low_open=True, high_open=True)
    valid.choice(caller, "bound", bound, BOUNDS)
    seed = valid.count(caller, "seed", seed, minimum=0)
    if features is not None and not isinstance(features, SliceFeatures):
        raise MangaAssistInputError(f"{caller}: features must be None or a SliceFeatures; got "
                                    f"{type(features).__name__}.", "Leave features out for the profile of the model's label set "
                                    "(domain.profile_for).")
    discovery = discover_slices(model, golden, at_least_size=at_least_size, features=features, seed=seed)
    found = discovery.significant(fdr)
    weak = [c for c in found if _measure(c, what, bound) > limit]
    worst = max(found, key=lambda c: _measure(c, what, bound), default=None)
    value = _measure(worst, what, bound) if worst is not None else 0.0
    measured = f"{what}" if bound == "point" else f"95% lower bound of the {what}"
    where = (f"worst of {len(found)} slice(s) significantly worse than the rest (BH FDR {fdr:g}) among "
             f"{len(discovery.candidates)} tested on {golden.source} ({len(golden)} examples, overall error "
             f"rate {discovery.error_rate:.3f})")
    if worst is not None:
        where += (f": {worst.name!r}, n={worst.size}, error rate {worst.error_rate.describe()}, lift "
                  f"{worst.lift:.2f}, p BH {worst.p_adjusted:.2g}")

    def evidence() -> str:
        parts = [f"{len(weak)} weak slice(s):"]
        for c in weak[:SHOWN]:
            parts.append(f"slice {c.name!r} ({c.rule}): n={c.size}, {c.errors} errors, error rate "
                         f"{c.error_rate.describe()}, lift {c.lift:.2f}, p {c.p_value:.2g}, p BH {c.p_adjusted:.2g}; "
                         f"distinctive words: {', '.join(c.words)}\n" + discovery.worst_table(c))
        return "\n\n".join(parts) + "\n\nall candidates:\n" + discovery.table(limit=15, fdr=fdr)

    check(caller, f"{measured} of the {where}", value, limit, "<=", 
          interval=_interval(worst, what), evidence=evidence,
          hint="collect messages like the slice's, review them (python -m pytest_mangaassist slices discover "
               "writes them in the golden-set format), add them to the golden set with `slices add`, and add "
               "training examples like them before retraining.")
    return discovery
