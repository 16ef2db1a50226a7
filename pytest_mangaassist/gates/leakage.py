"""Leakage gate: no golden message may also sit, verbatim or nearly, in the training data.

A golden message the model trained on tests its memory, and the accuracy measured on it means nothing.
Similarity is analysis.leakage's: the cosine of TF-IDF character 3-5-gram vectors (scikit-learn), nearest
training message by NearestNeighbors; exact duplicates always count.
"""

from __future__ import annotations

from ..analysis.leakage import MAX_SIMILARITY, SIMILARITY, LeakedPair, near_duplicates, pairs_table
from ..loading.golden import GoldenSet
from . import validation as valid
from .records import Family, check



def _name(examples, default: str) -> str:
    return examples.source if isinstance(examples, GoldenSet) else default


@Family.DATA.gate(page="slices.md",
                  checks="no golden message has an identical or near-identical (TF-IDF character 3-5-gram cosine "
                         "above `max_similarity`) training message; lists the pairs. Reads no model: its first two "
                         "parameters are the two data sets")
def assert_no_leakage(golden, train, *, max_similarity: float = MAX_SIMILARITY) -> list[LeakedPair]:
    """No message of golden (a GoldenSet or a list of messages) may have a message of train (the training
    data, same types) more similar than max_similarity, nor an exact duplicate there. Returns the pairs."""
    __tracebackhide__ = True
    caller = "assert_no_leakage"
    golden_texts = valid.texts(caller, golden, "golden")
    train_texts = valid.texts(caller, train, "train")
    max_similarity = valid.number(caller, "max_similarity", max_similarity, low=0.0, high=1.0, high_open=True)
    pairs = near_duplicates(golden_texts, train_texts, max_similarity)
    exact = sum(p.exact for p in pairs)
    check(caller, f"golden messages of {_name(golden, 'golden')} ({len(golden_texts)}) with a training message of "
          f"{_name(train, 'train')} ({len(train_texts)}) above similarity {max_similarity:g} or identical "
          f"({exact} exact; similarity: {SIMILARITY})", len(pairs), 0, "<=", 
          evidence=lambda: "leaked pairs, most similar first:\n" + pairs_table(pairs),
          hint="replace each leaked golden message with a fresh one the model never trained on (or drop the "
               "training copy and retrain); `python -m pytest_mangaassist slices add --train` refuses them up front.")
    return pairs
