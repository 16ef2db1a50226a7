"""Failure-slice discovery: groups of examples on which a model errs more than on the rest.

Candidates come from two sources:
- the model's own representation: the misclassified examples' [CLS] states are clustered (scikit-learn
  KMeans on unit-length states) and each cluster's region (the examples whose nearest error centroid it
  is, within the distance that holds 90% of its errors) is a candidate;
- text features fixed before any error is seen (SliceFeatures): romanized Japanese, a trigger word of
  another intent, a product title, a length bucket, and the slice tags the data already has.

Every candidate gets its size, its error rate with the exact (Clopper-Pearson) interval, its lift over the
overall error rate, the one-sided Fisher exact p-value of "its error rate is higher than the rest's"
(scipy.stats.fisher_exact) and that p-value adjusted with Benjamini-Hochberg across all tested candidates
(scipy.stats.false_discovery_control), and is named by its most distinctive words (class-based TF-IDF
of its messages against the rest, on scikit-learn's CountVectorizer counts).

Honesty of the cluster p-values: a cluster is built from errors, so testing it on the errors that built it
would find "significant" slices in pure noise. The clusters are therefore fitted on the errors of half of
the examples (even positions) and tested only on the other half (odd positions); text-feature slices do
not look at errors and are tested on all examples. Everything is seeded: same model and data, same result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import MangaAssistInputError, clip, format_table, renamed_keywords, warn_renamed
from ..loading.golden import GoldenExample, GoldenSet
from .intervals import Rate, binomial_rate

MIN_ERRORS = 5  # fewer misclassified examples than this cannot make a slice worth testing
CLUSTER_RADIUS_QUANTILE = 0.9
ERRORS_PER_CLUSTER = 8  # about this many fitted errors per cluster, so a cluster is a pattern, not one message
MAX_CLUSTERS = 30
NAME_WORDS = 3


@dataclass(frozen=True)
class SliceFeatures:
    """The text features whose slices are tested: words are matched whole and case-insensitively.

    romanized: words of romanized Japanese; triggers: intent -> words that suggest that intent (a message
    with a trigger of an intent it is not labelled with is in that intent's trigger slice); titles:
    product titles; length_edges: word-count bucket edges (a bucket is [edge_i, edge_i+1))."""

    romanized: tuple[str, ...] = ()
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    titles: tuple[str, ...] = ()
    length_edges: tuple[int, ...] = (1, 6, 12, 20)


@dataclass(frozen=True)
class SliceCandidate:
    name: str  # a slice tag: lowercase letters, digits and hyphens
    kind: str  # cluster, title, trigger, romanized, tag or length
    rule: str  # what puts a message in it, in words
    members: tuple[int, ...]  # positions (in the examples) on which it was tested
    errors: int
    error_rate: Rate
    base_rate: float  # error rate of all the examples it was tested among (its pool)
    p_value: float  # one-sided Fisher exact: errs more than the rest
    p_adjusted: float  # Benjamini-Hochberg over all tested candidates
    words: tuple[str, ...]  # most distinctive words, best first
    worst: tuple[tuple[str, str, str, float], ...]  # (text, expected, predicted, confidence), most confident first

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def lift(self) -> float:
        """Error rate over the error rate of all the examples it was tested among."""
        return self.lift_bound("point")

    def lift_bound(self, bound: str) -> float:
        """The lift of the point estimate, or of the lower or upper end of the error rate's interval."""
        rate = self.error_rate.bound(bound)
        return rate / self.base_rate if self.base_rate else (math.inf if rate else 1.0)


@dataclass(frozen=True)
class SliceDiscovery:
    """Candidates, most significant first (adjusted p, then raw p, then lift, then name)."""

    golden: GoldenSet
    candidates: tuple[SliceCandidate, ...]
    n_errors: int
    error_rate: float
    at_least_size: int

    @property
    def min_size(self) -> int:
        """Deprecated name of `at_least_size`, kept for one release."""
        warn_renamed("SliceDiscovery.min_size", "read .at_least_size")
        return self.at_least_size

    def significant(self, fdr: float = 0.05) -> list[SliceCandidate]:
        """Candidates whose Benjamini-Hochberg adjusted p-value is below fdr: the false discovery rate among
        them is at most fdr."""
        return [c for c in self.candidates if c.p_adjusted < fdr]

    def table(self, limit: int | None = None, fdr: float | None = None) -> str:
        shown = self.candidates[:limit]
        rows = [(c.name, c.kind, c.size, c.errors, c.error_rate.estimate, c.error_rate.interval(), f"{c.lift:.2f}",
                 f"{c.p_value:.2g}", f"{c.p_adjusted:.2g}", ("*" if fdr is not None and c.p_adjusted < fdr else ""),
                 ", ".join(c.words)) for c in shown]
        header = ("slice", "kind", "n", "errors", "error rate", "95% interval", "lift", "p", "p BH", "",
                  "distinctive words")
        return (f"{len(self.candidates)} candidate slices tested (min size {self.at_least_size}) on {len(self.golden)} "
                f"examples, {self.n_errors} errors (error rate {self.error_rate:.3f}); p: one-sided Fisher exact "
                f"'worse than the rest', p BH: Benjamini-Hochberg across all {len(self.candidates)}"
                + (f"; * significant at FDR {fdr:g}" if fdr is not None else "") + "\n" + format_table(header, rows))

    def examples_of(self, candidate: SliceCandidate) -> list[GoldenExample]:
        """The candidate's messages in the golden-set format, "slice" set to its name."""
        return [GoldenExample(ex.text, ex.intent, candidate.name, ex.also)
                for ex in (self.golden.examples[i] for i in candidate.members)]

    def worst_table(self, candidate: SliceCandidate) -> str:
        rows = [(clip(text), expected, predicted, conf) for text, expected, predicted, conf in candidate.worst]
        return format_table(("text", "expected", "predicted", "confidence"), rows)


@dataclass(frozen=True, eq=False)
class _Found:
    """A candidate before testing: how it was made, its members, and the examples it is compared among."""

    kind: str
    rule: str
    key: str  # its name after the kind ("" for a cluster: named by its words)
    members: tuple[int, ...]
    pool: np.ndarray


@renamed_keywords(min_size="at_least_size")  # the old name, for one release
def discover_slices(states: np.ndarray, golden: GoldenSet, predicted: Sequence[str], confidence: np.ndarray,
                    features: SliceFeatures, *, at_least_size: int = 10, n_worst: int = 5, seed: int = 0) -> SliceDiscovery:
    """Candidate failure slices of a model's predictions on golden (states: one [CLS] vector per example)."""
    from scipy.stats import false_discovery_control

    states, confidence = np.asarray(states, dtype=np.float64), np.asarray(confidence, dtype=np.float64)
    wrong = np.array([p != ex.intent for p, ex in zip(predicted, golden)], dtype=bool)
    if wrong.sum() < MIN_ERRORS:
        raise MangaAssistInputError(
            f"The model makes {int(wrong.sum())} error(s) on the {len(golden)} examples of {golden.source}: too few "
            f"to form a slice (discovery needs at least {MIN_ERRORS}).",
            "Discover on a larger or harder labelled set (e.g. the validation set); a model this accurate on these "
            "examples has no failure slice to find in them.")
    texts = golden.texts
    found = [*_cluster_slices(states, wrong, seed), *_feature_slices(golden, features)]
    tested = _distinct([candidate for candidate in found if len(candidate.members) >= at_least_size])
    if not tested:
        raise MangaAssistInputError(f"No candidate slice of {golden.source} has {at_least_size} or more examples.",
                                    "Lower at_least_size, or discover on a larger labelled set.")
    p_values = [_worse_than_rest(c.members, wrong, c.pool) for c in tested]
    adjusted = false_discovery_control(p_values, method="bh")
    namer = _DistinctiveWords(texts)
    candidates = []
    for found_slice, p, p_bh in zip(tested, p_values, adjusted):
        kind, rule, key, members, pool = (found_slice.kind, found_slice.rule, found_slice.key, found_slice.members,
                                          found_slice.pool)
        words = namer.top(members, pool)
        errors = int(wrong[list(members)].sum())
        rate = binomial_rate(errors, len(members))
        base = wrong[pool].mean()
        worst = sorted(((texts[i], golden.examples[i].intent, predicted[i], float(confidence[i]))
                        for i in members if wrong[i]), key=lambda row: (-row[3], row[0]))[:n_worst]
        candidates.append(SliceCandidate(_slug(kind, key or "-".join(words[:NAME_WORDS])), kind, rule, members,
                                         errors, rate, float(base), float(p),
                                         float(p_bh), words, tuple(worst)))
    candidates = _unique_names(candidates)
    candidates.sort(key=lambda c: (c.p_adjusted, c.p_value, -c.lift, c.name))
    return SliceDiscovery(golden, tuple(candidates), int(wrong.sum()), float(wrong.mean()), at_least_size)


# -- candidates from the representation -----------------------------------------------------------------
def _cluster_slices(states: np.ndarray, wrong: np.ndarray, seed: int) -> list[_Found]:
    """One candidate per cluster region: fitted on the even positions' errors, tested on the odd positions."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    unit = normalize(states)
    fit_half = np.arange(len(wrong)) % 2 == 0
    fit_errors = np.flatnonzero(fit_half & wrong)
    n_clusters = min(MAX_CLUSTERS, len(fit_errors) // ERRORS_PER_CLUSTER)
    if n_clusters < 2:
        return []
    kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(unit[fit_errors])
    distances = kmeans.transform(unit)  # every example to every error centroid
    nearest = distances.argmin(axis=1)
    test_half = np.flatnonzero(~fit_half)
    out = []
    for c in range(n_clusters):
        own = distances[fit_errors[kmeans.labels_ == c], c]
        radius = np.quantile(own, CLUSTER_RADIUS_QUANTILE)
        members = tuple(int(i) for i in test_half if nearest[i] == c and distances[i, c] <= radius)
        out.append(_Found("cluster", f"[CLS] state (unit length) within distance {radius:.3f} of error centroid {c}, "
                          "tested on the held-out half", "", members, test_half))
    return out


# -- candidates from text features ------------------------------------------------------------------------
def _words_pattern(words: Sequence[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(w.lower()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){'(?:' + alternatives + ')'}(?![\w])")


def _feature_slices(golden: GoldenSet, features: SliceFeatures) -> list[_Found]:
    lowered = [t.lower() for t in golden.texts]
    everyone = np.arange(len(lowered))

    def matching(pattern: re.Pattern, keep=lambda i: True) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(lowered) if pattern.search(t) and keep(i))

    out = [_Found("title", f"mentions the title {title!r}", title, matching(_words_pattern([title])), everyone)
           for title in features.titles]
    for intent, words in sorted(features.triggers.items()):
        members = matching(_words_pattern(words), lambda i, intent=intent: golden.examples[i].intent != intent)
        out.append(_Found("trigger", f"has a trigger word of {intent} ({', '.join(words)}) but is not labelled "
                          f"{intent}", intent, members, everyone))
    if features.romanized:
        out.append(_Found("romanized", "has romanized Japanese (" + ", ".join(features.romanized[:6]) + ", ...)",
                          "japanese", matching(_words_pattern(features.romanized)), everyone))
    out += [_Found("tag", f"tagged slice {name!r}", name, tuple(i for i, ex in enumerate(golden) if ex.slice == name),
                   everyone) for name in golden.slice_names]
    counts = [len(t.split()) for t in lowered]
    edges = [*features.length_edges, math.inf]
    for low, high in zip(edges, edges[1:]):
        bounded = high != math.inf
        out.append(_Found("length", f"{low} to {high - 1} words" if bounded else f"{low} words or more",
                          f"{low}-{high - 1}-words" if bounded else f"{low}-plus-words",
                          tuple(i for i, n in enumerate(counts) if low <= n < high), everyone))
    return out


def _distinct(found: list[_Found]) -> list[_Found]:
    """Candidates with the same members are one candidate (the first found: clusters, then features)."""
    seen, out = set(), []
    for candidate in found:
        if candidate.members not in seen:
            seen.add(candidate.members)
            out.append(candidate)
    return out


def _worse_than_rest(members: tuple[int, ...], wrong: np.ndarray, pool: np.ndarray) -> float:
    """One-sided Fisher exact test on (in slice / rest of the pool) x (wrong / right)."""
    from scipy.stats import fisher_exact

    inside = np.zeros(len(wrong), dtype=bool)
    inside[list(members)] = True
    in_pool = np.zeros(len(wrong), dtype=bool)
    in_pool[pool] = True
    rest = in_pool & ~inside
    a, b = int((inside & wrong).sum()), int((inside & ~wrong).sum())
    c, d = int((rest & wrong).sum()), int((rest & ~wrong).sum())
    return float(fisher_exact([[a, b], [c, d]], alternative="greater").pvalue)


# -- names ------------------------------------------------------------------------------------------------
class _DistinctiveWords:
    """Class-based TF-IDF (Grootendorst, BERTopic) of a slice's messages against the rest of the pool:
    weight(t) = tf(t, slice) / words(slice) * log(1 + mean words per class / tf(t, slice + rest)), kept only
    for terms at least twice as frequent in the slice as in the rest. scikit-learn counts the terms (CountVectorizer,
    unigrams and bigrams); it has no class-based weighting, so the formula is written here."""

    def __init__(self, texts: Sequence[str]):
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer = CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w[\w']*\b", lowercase=True)
        self.counts = self.vectorizer.fit_transform(texts).tocsr()
        self.terms = self.vectorizer.get_feature_names_out()

    def top(self, members: tuple[int, ...], pool: np.ndarray, k: int = 5) -> tuple[str, ...]:
        inside = np.zeros(self.counts.shape[0], dtype=bool)
        inside[list(members)] = True
        in_pool = np.zeros_like(inside)
        in_pool[pool] = True
        tf_in = np.asarray(self.counts[inside].sum(axis=0)).ravel()
        tf_out = np.asarray(self.counts[in_pool & ~inside].sum(axis=0)).ravel()
        words_in, words_out = max(tf_in.sum(), 1), max(tf_out.sum(), 1)
        weight = tf_in / words_in * np.log1p(((words_in + words_out) / 2) / np.maximum(tf_in + tf_out, 1))
        weight[tf_in / words_in < 2 * tf_out / words_out] = 0  # distinctive: at least twice as frequent
        chosen: list[str] = []
        for i in sorted(np.flatnonzero(weight), key=lambda i: (-weight[i], self.terms[i])):
            term = str(self.terms[i])
            if not any(term in other or other in term for other in chosen):
                chosen.append(term)
            if len(chosen) == k:
                break
        return tuple(chosen)


def _slug(kind: str, key: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")
    return f"{kind}-{words}" if words else kind


def _unique_names(candidates: list[SliceCandidate]) -> list[SliceCandidate]:
    """Two clusters with the same words get -2, -3... in discovery order (deterministic)."""
    seen: dict[str, int] = {}
    out = []
    for c in candidates:
        seen[c.name] = seen.get(c.name, 0) + 1
        out.append(c if seen[c.name] == 1 else replace(c, name=f"{c.name}-{seen[c.name]}"))
    return out
