"""Batch invariance: a message's logits must not depend on which other messages share its batch or on how
far it is padded.

Every sweep batches messages by length and pads them; the gates then read each message's logits as if
it had run alone. That holds only if padding is fully masked and the attention back-end computes each
row independently of the batch shape (fused or flash kernels may pick different reduction orders per
shape, and a missing or wrong attention mask shows up exactly here). This runs the same messages
alone, in shuffled mixed-length batches, and padded to the tokenizer's maximum length, and reports the
largest logit difference from the single-message run and any message whose routed intent changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table, renamed_keywords

TOLERANCE = 1e-4  # logits; float32 reduction-order noise of the eager CPU path measured ~1e-6
MIXED_BATCH_SIZE = 8
MAX_TEXTS = 24


@dataclass(frozen=True)
class InvarianceResult:
    tolerance: float
    n_texts: int
    max_abs_diff: dict[str, float]  # per condition ("mixed batches", "padded to N"), against running alone
    route_changes: tuple[tuple[str, str, str, str], ...]  # (condition, text, route alone, route in condition)

    @property
    def ok(self) -> bool:
        return not self.route_changes and all(d <= self.tolerance for d in self.max_abs_diff.values())

    def table(self) -> str:
        rows = [(condition, f"{diff:.1e}", "ok" if diff <= self.tolerance else "OVER")
                for condition, diff in self.max_abs_diff.items()]
        table = format_table(("condition (vs each message alone)", "max |logit diff|", f"tol {self.tolerance:g}"),
                             rows)
        if self.route_changes:
            table += "\n\nrouted intent changed:\n" + format_table(
                ("condition", "text", "alone", "in batch"), [(c, t[:50], a, b) for c, t, a, b in self.route_changes])
        return table

    def warning(self, source: str) -> str:
        """The one-paragraph warning the plugin shows when the check fails."""
        return (f"pytest-mangaassist: the logits of {source} depend on batch composition or padding beyond "
                f"{self.tolerance:g} ({self.n_texts} messages); batched gate results may differ from single-message "
                f"serving. Load the model with attn_implementation='eager' or check the attention mask.\n"
                + self.table())


def _logits(model, texts: list[str], padding) -> np.ndarray:
    import torch

    batch = model.tokenizer(texts, padding=padding, truncation=True, max_length=model.max_length,
                            return_tensors="pt").to(model.device)
    with torch.inference_mode():
        return model.hf_model(**batch).logits.float().cpu().numpy()


@renamed_keywords(max_texts="at_most_texts")  # the old name, for one release
def batch_invariance(model, texts, tolerance: float = TOLERANCE, at_most_texts: int = MAX_TEXTS,
                     seed: int = 0) -> InvarianceResult:
    """Up to at_most_texts of texts (a seeded sample), alone vs in mixed batches vs padded to max_length."""
    import torch

    threads = torch.get_num_threads()
    # single-message forwards are too small to share out: with other processes on the cores, OpenMP's
    # fan-out made each one ~18x slower (measured on 2 cores); every condition runs on the same one thread
    torch.set_num_threads(1)
    try:
        return _compare_conditions(model, list(texts), tolerance, at_most_texts, seed)
    finally:
        torch.set_num_threads(threads)


def _compare_conditions(model, texts: list[str], tolerance: float, at_most_texts: int, seed: int) -> InvarianceResult:
    rng = np.random.default_rng(seed)
    texts = [texts[i] for i in sorted(rng.choice(len(texts), size=min(at_most_texts, len(texts)), replace=False))]
    alone = np.concatenate([_logits(model, [t], True) for t in texts])
    order = rng.permutation(len(texts))  # neighbours of different lengths, so most rows are padded
    mixed = np.empty_like(alone)
    for start in range(0, len(texts), MIXED_BATCH_SIZE):
        idx = order[start:start + MIXED_BATCH_SIZE]
        mixed[idx] = _logits(model, [texts[i] for i in idx], True)
    conditions = {"mixed batches": mixed, f"padded to {model.max_length}": _logits(model, texts, "max_length")}
    labels = model.labels
    changes = tuple((name, texts[i], labels[alone[i].argmax()], labels[logits[i].argmax()])
                    for name, logits in conditions.items() for i in range(len(texts))
                    if alone[i].argmax() != logits[i].argmax())
    diffs = {name: float(np.abs(logits - alone).max()) for name, logits in conditions.items()}
    return InvarianceResult(tolerance, len(texts), diffs, changes)
