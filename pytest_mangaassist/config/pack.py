"""The gate pack's limits: one table, each limit also an ini key (mangaassist_pack_<name>).

The pack (pytest_mangaassist/pack/test_pack.py, run with --mangaassist-pack or `python -m pytest_mangaassist
check DIR`) reads every limit from here; docs/gates.md prints this table. The defaults are the floors and
bounds a retrain of a fine-tuned text classifier is expected to clear on a golden set of a few hundred
examples; a suite tightens or loosens one in its ini file as a reviewed decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import MangaAssistInputError


@dataclass(frozen=True)
class PackLimit:
    name: str
    default: float
    low: float  # accepted range (inclusive)
    high: float
    means: str

    @property
    def ini_key(self) -> str:
        return f"mangaassist_pack_{self.name}"


PACK_LIMITS = (
    PackLimit("min_accuracy", 0.85, 0.0, 1.0, "accuracy on the golden set (point estimate)"),
    PackLimit("min_recall", 0.70, 0.0, 1.0, "recall of every label with examples in the golden set"),
    PackLimit("max_logit_diff", 1e-4, 0.0, math.inf, "batch invariance: largest |logit| difference, batched vs alone"),
    PackLimit("max_share", 0.5, 0.0, 1.0, "shortcut audit: largest share of a label's positive IG attribution on "
                                          "one word type, where removing it costs the label >= min_effect"),
    PackLimit("min_effect", 0.1, 0.0, 1.0, "shortcut audit: mean fall of p(label) when the word is removed"),
    PackLimit("max_lift", 3.0, 1.0, math.inf, "weak slices: error rate of a significantly worse slice over the "
                                              "whole set's"),
    PackLimit("min_slice_size", 20, 5, math.inf, "weak slices: smallest slice tested"),
    PackLimit("max_onnx_logit_diff", 1e-3, 0.0, math.inf, "ONNX parity: largest |logit| difference vs PyTorch"),
    PackLimit("max_p95_ms", 50.0, 0.0, math.inf, "ONNX latency: P95 at batch 1, 32 tokens, 1 thread (ms)"),
    PackLimit("max_negative_flip_rate", 0.02, 0.0, 1.0, "negative flips against --production-path"),
    PackLimit("min_p_value", 0.05, 0.0, 1.0, "not worse: McNemar one-sided p-value against --production-path"),
    # fine-tuning moves the top layer most: the reference model's measures 0.49 against its pre-trained start
    PackLimit("min_cka", 0.3, 0.0, 1.0, "debiased CKA of the top layer against --pretrained-path on the validation "
                                        "set"),
    PackLimit("min_probe_f1", 0.5, 0.0, 1.0, "top-layer probe macro-F1 on the validation set"),
    PackLimit("min_selectivity", 0.1, -1.0, 1.0, "top-layer probe F1 minus its control task's"),
    PackLimit("max_similarity", 0.9, 0.0, 1.0, "leakage: largest similarity of a golden message to --training-set"),
    PackLimit("max_flip_rate", 0.05, 0.0, 1.0, "traffic agreement: share of --traffic messages whose route changes "
                                               "against --production-path"),
)


def add_ini(parser) -> None:
    for limit in PACK_LIMITS:
        parser.addini(limit.ini_key, f"gate pack: {limit.means} (default {limit.default:g})", default=None)


def resolve(config) -> dict[str, float]:
    """Every limit: the ini key's value where set, else the default; a bad value stops the run (exit 4)."""
    out = {}
    for limit in PACK_LIMITS:
        raw = config.getini(limit.ini_key)
        if raw in (None, ""):
            out[limit.name] = limit.default
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not limit.low <= value <= limit.high:
            raise MangaAssistInputError(f"ini key {limit.ini_key} = {raw!r} is not a number in "
                                        f"[{limit.low:g}, {limit.high:g}].",
                                        f"Set {limit.ini_key} to a number in that range ({limit.means}), or remove "
                                        f"it for the default {limit.default:g}.")
        out[limit.name] = value
    return out


def table() -> str:
    """The limits as a markdown table (docs/gates.md is checked against it)."""
    rows = [f"| `{l.name}` | {l.default:g} | `{l.ini_key}` | {l.means} |" for l in PACK_LIMITS]
    return "\n".join(["| limit | default | ini key | bounds |", "|---|---|---|---|", *rows])
