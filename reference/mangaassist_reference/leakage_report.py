"""The build's leakage check: golden messages that also sit, verbatim or nearly, in the training data.

A derived step (derived.py): it reads DIR/data/train.jsonl, the generated golden set (DIR/data/golden.jsonl)
and every hand-written set (build.HAND_WRITTEN: fixtures/golden.jsonl, golden_slices.jsonl, review.jsonl,
check.jsonl, shortcut_contexts.jsonl), and writes DIR/leakage.json with every leaked pair (analysis.leakage: TF-IDF
character n-gram cosine, exact duplicates always). It reports and does not fail the build: the golden sets are
the team's to fix, and the example suite's leakage gate (example_suite/test_data_gates.py) is where a leak fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pytest_mangaassist.analysis.leakage import MAX_SIMILARITY, SIMILARITY, near_duplicates
from pytest_mangaassist.loading.golden import load_golden_set
from .build import HAND_WRITTEN, HELD_OUT, BuildSpec

REPORT = "leakage.json"


def leakage_report(train: Path, golden_sets: dict[str, Path], max_similarity: float = MAX_SIMILARITY) -> dict:
    """{name: {path, messages, leaked, pairs}} for each golden set against the training data."""
    train_texts = load_golden_set(train, allow_duplicates=True).texts
    report = {"train": str(train), "max_similarity": max_similarity, "similarity": SIMILARITY, "golden_sets": {}}
    for name, path in golden_sets.items():
        golden = load_golden_set(path)
        pairs = near_duplicates(golden.texts, train_texts, max_similarity)
        report["golden_sets"][name] = {
            "path": str(path), "messages": len(golden), "leaked": len(pairs),
            "pairs": [{"golden_line": p.query_index + 1, "golden": p.query, "train_line": p.match_index + 1,
                       "train": p.match, "similarity": round(p.similarity, 4), "exact": p.exact} for p in pairs]}
    return report


def check_leakage(out: Path, spec: BuildSpec, log: Callable[[str], None]) -> None:
    """The derived step: DIR/leakage.json, and one log line per golden set."""
    golden_sets = {"generated": out / "data" / "golden.jsonl"}
    for path in HAND_WRITTEN:
        if path.is_file():  # the golden set keeps its name of earlier reports: "fixtures"
            golden_sets["fixtures" if path == HELD_OUT else path.stem] = path
    report = leakage_report(out / "data" / "train.jsonl", golden_sets)
    (out / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, found in report["golden_sets"].items():
        exact = sum(p["exact"] for p in found["pairs"])
        log(f"  leakage: {found['leaked']} of {found['messages']} {name} golden messages ({found['path']}) have a "
            f"training message above similarity {MAX_SIMILARITY} ({exact} exact); pairs in {out / REPORT}")
