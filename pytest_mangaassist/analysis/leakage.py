"""Leakage: evaluation messages that also sit, verbatim or nearly, in another set (the training data).

A golden message the model trained on measures memory, not generalisation. The similarity of two messages
is the cosine of their TF-IDF vectors over character 3- to 5-grams inside word boundaries, lowercased,
apostrophes dropped and other punctuation read as a space (scikit-learn TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5),
sublinear_tf=True), fitted on both sets): robust to case, punctuation, a typo or a changed number, it is
1.0 for the same words and falls fast as words change. Each query's most similar message of the other set
comes from scikit-learn NearestNeighbors(metric="cosine"). Exact duplicates (equal after the golden
loader's normalize_text) are flagged as such and always count, whatever the threshold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import clip, format_table
from ..loading.golden import normalize_text

# Above this similarity two messages are one message reworded by a typo, a case change or a number
# (docs/slices.md shows the measured distribution on the reference data).
MAX_SIMILARITY = 0.9
SIMILARITY = ("cosine similarity of TF-IDF character 3-5-gram vectors (scikit-learn TfidfVectorizer, "
              "analyzer='char_wb', lowercased, apostrophes dropped, punctuation ignored)")


def _words_only(text: str) -> str:
    """Lowercased, every run of punctuation a space: "Box-set?!" and "box set" are the same words. Apostrophes
    are dropped, not spaced: "what's" and "whats" are one word as chat writes it (as a space, "what s" missed a
    golden message repeated in training at 0.83)."""
    return re.sub(r"[\W_]+", " ", re.sub(r"['\u2019]", "", text.lower())).strip()


@dataclass(frozen=True)
class LeakedPair:
    query_index: int  # position in the queries (e.g. the golden set)
    query: str
    match_index: int  # position in the other set (e.g. the training data)
    match: str
    similarity: float
    exact: bool


def nearest_similarities(queries: Sequence[str], corpus: Sequence[str]) -> list[tuple[int, float]]:
    """For each query, (position of its most similar corpus message, their similarity)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), preprocessor=_words_only, sublinear_tf=True)
    vectorizer.fit([*queries, *corpus])
    index = NearestNeighbors(n_neighbors=1, metric="cosine").fit(vectorizer.transform(corpus))
    distances, positions = index.kneighbors(vectorizer.transform(queries))
    return [(int(p), float(min(1.0, max(0.0, 1.0 - d)))) for p, d in zip(positions[:, 0], distances[:, 0])]


def near_duplicates(queries: Sequence[str], corpus: Sequence[str], max_similarity: float = MAX_SIMILARITY
                    ) -> list[LeakedPair]:
    """The queries whose nearest corpus message is an exact duplicate or more similar than max_similarity,
    most similar first (then in query order)."""
    if not queries or not corpus:
        return []
    exact = {}
    for i, text in enumerate(corpus):
        exact.setdefault(normalize_text(text), i)
    pairs = []
    for q, (text, (match, similarity)) in enumerate(zip(queries, nearest_similarities(queries, corpus))):
        same = exact.get(normalize_text(text))
        if same is not None:
            pairs.append(LeakedPair(q, text, same, corpus[same], 1.0, True))
        elif similarity > max_similarity:
            pairs.append(LeakedPair(q, text, match, corpus[match], similarity, False))
    return sorted(pairs, key=lambda p: (-p.similarity, p.query_index))


def near_duplicates_within(texts: Sequence[str], max_similarity: float = MAX_SIMILARITY) -> list[LeakedPair]:
    """Each text that repeats an earlier text of the same list, exactly or more similar than max_similarity:
    (later, earlier) pairs, in order. Keeping the first of each group keeps one of each message."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    if len(texts) < 2:
        return []
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), preprocessor=_words_only,
                              sublinear_tf=True).fit_transform(texts)
    similarity = cosine_similarity(vectors)
    pairs = []
    for later in range(1, len(texts)):
        earlier = int(similarity[later, :later].argmax())
        exact = normalize_text(texts[later]) == normalize_text(texts[earlier])
        if exact or similarity[later, earlier] > max_similarity:
            value = 1.0 if exact else float(min(1.0, similarity[later, earlier]))
            pairs.append(LeakedPair(later, texts[later], earlier, texts[earlier], value, exact))
    return pairs


def pairs_table(pairs: Sequence[LeakedPair], query_name: str = "golden", match_name: str = "train",
                limit: int | None = 20, query_lines: Sequence[int] | None = None,
                match_lines: Sequence[int] | None = None) -> str:
    """One row per pair: where each message is (line numbers where given, else 1-based positions), the two texts
    and their similarity."""
    def where(i: int, lines) -> int:
        return lines[i] if lines is not None else i + 1

    rows = [(where(p.query_index, query_lines), clip(p.query), where(p.match_index, match_lines), clip(p.match),
             "exact" if p.exact else f"{p.similarity:.3f}") for p in pairs[:limit]]
    more = f"\n... and {len(pairs) - limit} more" if limit is not None and len(pairs) > limit else ""
    header = (f"{query_name} {'line' if query_lines is not None else '#'}", query_name,
              f"{match_name} {'line' if match_lines is not None else '#'}", match_name, "similarity")
    return format_table(header, rows) + more
