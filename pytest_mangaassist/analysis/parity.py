"""Parity between two runtimes of one model: logits and routed intents on a probe set built to break
exports — batch sizes from 1 up, sequence lengths from one word piece up to max_length (lengths the
exporter never traced), short messages padded next to long ones, and extra padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MangaAssistInputError, clip, format_table, renamed_keywords

LADDER = (1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 510)  # word pieces, cut at max_length - 2
MIXED_BATCH_SIZES = (2, 7, 16)
TRAFFIC_BATCH = 32


@dataclass(frozen=True)
class ProbeBatch:
    description: str
    texts: tuple[str, ...]
    pad_to: int | None = None  # pad every text to this many tokens (None: to the longest)


@dataclass(frozen=True)
class ParityRow:
    batch: str
    text: str
    tokens: int
    max_abs_diff: float
    expected: str
    served: str


@dataclass(frozen=True)
class ParityResult:
    reference: str
    candidate: str
    rows: tuple[ParityRow, ...]
    n_batches: int
    errors: tuple[str, ...] = ()  # "batch: message" for every batch the candidate could not run

    @property
    def max_abs_diff(self) -> float:
        return max(r.max_abs_diff for r in self.rows)

    @property
    def route_mismatches(self) -> list[ParityRow]:
        return [r for r in self.rows if r.expected != r.served]

    @property
    def lengths(self) -> tuple[int, int]:
        tokens = [r.tokens for r in self.rows]
        return min(tokens), max(tokens)

    def worst(self, k: int = 8) -> list[ParityRow]:
        return sorted(self.rows, key=lambda r: (r.expected == r.served, -r.max_abs_diff))[:k]

    def table(self, k: int = 8) -> str:
        return format_table(("batch", "tokens", "max |diff|", "expected", "served", "text"),
                            [(r.batch, r.tokens, f"{r.max_abs_diff:.2e}", r.expected, r.served, clip(r.text))
                             for r in self.worst(k)])

    def summary(self) -> str:
        low, high = self.lengths
        text = (f"{len(self.rows)} examples in {self.n_batches} batches, {low}-{high} tokens: max |logit diff| "
                f"{self.max_abs_diff:.2e}, {len(self.route_mismatches)} routed differently")
        if self.errors:
            text += f"\nthe candidate failed on {len(self.errors)} batch(es), first: {self.errors[0]}"
        return text


@renamed_keywords(max_length="at_most_length")  # the old name, for one release
def parity_probe(model, texts: list[str], at_most_length: int | None = None) -> list[ProbeBatch]:
    """The probe set, deterministic for given texts: every text once in traffic-sized batches, plus
    the length ladder, singles, mixed-length batches and extra padding, none longer than at_most_length
    tokens (default and cap: the model's max_length)."""
    texts = [t for t in dict.fromkeys(texts) if t.strip()]
    if not texts:
        raise MangaAssistInputError("The parity probe got no texts.", "Pass the golden set (or any messages).")
    length = min(at_most_length or model.max_length, model.max_length)
    tokenizer = model.tokenizer
    by_length = sorted(texts, key=lambda t: (len(tokenizer.tokenize(t)), t))
    batches = [ProbeBatch(f"traffic {len(chunk)}", tuple(chunk))
               for chunk in (texts[i:i + TRAFFIC_BATCH] for i in range(0, len(texts), TRAFFIC_BATCH))]
    ladder = _ladder(tokenizer, by_length, length)
    batches += [ProbeBatch(f"alone, {n} word pieces", (text,)) for n, text in ladder]
    batches.append(ProbeBatch("ladder together", tuple(text for _, text in ladder)))
    spread = [by_length[int(round(i * (len(by_length) - 1) / 15))] for i in range(16)]
    for size in MIXED_BATCH_SIZES:  # shortest next to longest: maximal padding inside one batch
        chosen = spread[:size // 2] + spread[len(spread) - (size - size // 2):]
        batches.append(ProbeBatch(f"mixed {size}", tuple(chosen)))
    batches.append(ProbeBatch(f"padded to {length}", tuple(by_length[:4]), pad_to=length))
    return batches


def _ladder(tokenizer, by_length: list[str], length: int) -> list[tuple[int, str]]:
    """Texts of exactly n word pieces, cut from the messages themselves."""
    pieces = [piece for text in reversed(by_length) for piece in tokenizer.tokenize(text)]
    ladder = []
    for n in sorted({min(n, length - 2, len(pieces)) for n in LADDER}):
        text = tokenizer.convert_tokens_to_string(pieces[:n])
        ladder.append((len(tokenizer.tokenize(text)), text))
    return ladder


def _message(exc: Exception, width: int = 200) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:width]}"


def runtime_parity(reference, candidate, model, batches: list[ProbeBatch]) -> ParityResult:
    """Run every probe batch through both runtimes (same token ids and mask) and compare."""
    from ..loading.runtimes import tokenize

    ref_labels = reference.labels or model.labels
    cand_labels = candidate.labels or model.labels  # the label order the candidate's server would use
    rows, errors = [], []
    for batch in batches:
        ids, mask = tokenize(model, list(batch.texts), batch.pad_to)
        expected = reference.logits(ids, mask)
        try:
            served = candidate.logits(ids, mask)
        except MangaAssistInputError:
            raise
        except Exception as exc:  # a runtime that cannot serve this shape fails parity on it, with its message
            errors.append(f"{batch.description} ({ids.shape[0]} x {ids.shape[1]} tokens): {_message(exc)}")
            rows += [ParityRow(batch.description, text, int(mask[row].sum()), float("inf"),
                               ref_labels[int(expected[row].argmax())], "error") for row, text in enumerate(batch.texts)]
            continue
        if served.shape != expected.shape:
            raise MangaAssistInputError(
                f"{candidate.source} returned logits of shape {served.shape} for a batch of shape {ids.shape}; "
                f"the model gives {expected.shape}.",
                "Check that the artifact is an export of the model under test with its full batch axis.")
        diff = np.abs(served.astype(np.float64) - expected).max(axis=1)
        for row, text in enumerate(batch.texts):
            rows.append(ParityRow(batch.description, text, int(mask[row].sum()), float(diff[row]),
                                  ref_labels[int(expected[row].argmax())], cand_labels[int(served[row].argmax())]))
    return ParityResult(reference.source, candidate.source, tuple(rows), len(batches), tuple(errors))
