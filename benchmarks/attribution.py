"""The attribution audit against a plain per-example captum loop at 64 steps, side by side in one run.

    python benchmarks/attribution.py [--reference artifacts/reference] [--golden fixtures/golden.jsonl]
                                     [--every N] [--target INTENT]

plain: for each message, LayerIntegratedGradients(...).attribute(one message, n_steps=64) on the
       embedding layer (captum's default Gauss-Legendre rule), [PAD] baseline, target = the message's
       labelled intent (or --target), as a notebook would write it (weights left trainable).
audit: pytest_mangaassist's integrated_gradients: messages of similar length batched into one forward
       pass, no weight gradients, the product trapezoid rule at 16 intervals for every message (its
       error estimate from 8 intervals on the even nodes), doubled (up to 256) for every message whose
       word-score error estimate is over 2% of its largest score or whose completeness error is over 1%
       (docs/attribution.md); cold (nothing cached) and warm (the .npz cache the cold run wrote, read by
       a fresh model object).

Figures per row: wall and CPU seconds, speed-up over the plain loop (wall; the CPU-time ratio is printed below
the table, the fairer figure on a shared machine), integrand evaluations
(interpolated rows run forward and backward, counted by a hook on the embedding layer), the audit's extra
backward passes (its even nodes' second one, which gives the error estimate), evaluations per second, the
FLOPs of both (forward + backward through the model at the padded width actually run, the extra passes
backward only, counted by torch's FlopCounterMode on one row per width) and their rate as a share of
this machine's sgemm rate (a float32 torch.matmul measured in the same run, per wall and per CPU second), the word-score error
against captum at 2,048 Gauss-Legendre steps (per message: the largest |score - reference| over its
words relative to its largest |reference score|; the max over messages), and the completeness error
|sum(scores) - (F(x) - F(x'))| / max(|F(x) - F(x')|, 1 logit) (max over messages). The 2,048-step
reference is not timed; it is kept in .pytest_cache/benchmarks/ so that reruns skip it. The load
average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_STEPS = 2048


def sgemm_rate(n: int = 1024, seconds: float = 1.0) -> tuple[float, float]:
    """FLOPs per wall second and per CPU second of a float32 n x n torch.matmul on this machine, now (the
    same threads as the runs; per CPU second is what a shared machine leaves comparable)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    reps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        reps += 1
    flops = 2 * n ** 3 * reps
    return flops / (time.perf_counter() - start), flops / (time.process_time() - cpu)


class EvaluationCounter:
    """Counts the rows the embedding layer emits with gradients on (one row = one integrand evaluation: a
    forward pass, and the backward pass every one of them gets) and the padded widths they ran at, and the
    audit's extra backward passes (its even nodes' second one, for the error estimate)."""

    def __init__(self, model):
        self.model, self.shapes, self.extra_backward = model, [], []

    def __enter__(self):
        import torch

        from pytest_mangaassist.analysis import attribution

        def record(module, inputs, output):
            if torch.is_grad_enabled():
                self.shapes.append(tuple(output.shape[:2]))

        def counted(values, path, cotangent, delta, retain):
            if self.retained.pop(id(path), False):  # a second backward pass through a kept graph
                self.extra_backward.append(tuple(path.shape[:2]))
            if retain:
                self.retained[id(path)] = True
            return self.token_scores(values, path, cotangent, delta, retain)

        self.retained = {}
        self.handle = self.model.embeddings.register_forward_hook(record)
        self.token_scores, attribution._token_scores = attribution._token_scores, counted
        return self

    def __exit__(self, *exc):
        from pytest_mangaassist.analysis import attribution

        self.handle.remove()
        attribution._token_scores = self.token_scores

    @property
    def evaluations(self) -> int:
        return sum(rows for rows, _ in self.shapes)

    @property
    def extra_backward_rows(self) -> int:
        return sum(rows for rows, _ in self.extra_backward)

    def flops(self, per_row) -> float:
        """Forward and backward of every evaluation, and the backward of each extra backward pass."""
        return (sum(rows * sum(per_row(width)) for rows, width in self.shapes)
                + sum(rows * per_row(width)[1] for rows, width in self.extra_backward))


def flops_per_row(model):
    """FLOPs of one integrand evaluation at a width, (forward, backward): the backward counts activation
    gradients only, as IG runs it; counted by torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_mangaassist.analysis.attribution import frozen_weights

    known: dict[int, tuple[float, float]] = {}

    def per_row(width: int) -> tuple[float, float]:
        if width not in known:
            ids = torch.full((1, width), model.tokenizer.unk_token_id)
            with torch.no_grad():
                leaf = model.embeddings(ids)
            leaf.requires_grad_(True)
            path = leaf * 1.0  # not a leaf: FlopCounterMode cannot follow autograd.grad to a leaf
            hook = model.embeddings.register_forward_hook(lambda module, inputs, output: path)
            try:
                with frozen_weights(model.hf_model), torch.enable_grad():
                    with FlopCounterMode(display=False) as forward:
                        logit = model.hf_model(input_ids=ids).logits[0, 0]
                    with FlopCounterMode(display=False) as backward:
                        torch.autograd.grad(logit, path)
            finally:
                hook.remove()
            known[width] = (float(forward.get_total_flops()), float(backward.get_total_flops()))
        return known[width]

    return per_row


def captum_loop(model, texts, intents, n_steps):
    """Word scores and completeness errors of a plain per-message captum loop."""
    import torch
    from captum.attr import LayerIntegratedGradients

    from pytest_mangaassist.analysis.attribution import word_scores, encode_words

    hf, tok = model.hf_model, model.tokenizer

    def logits(ids, mask):
        return hf(input_ids=ids, attention_mask=mask).logits

    scores, errors = [], []
    for text, intent in zip(texts, intents):
        enc = tok([text], return_tensors="pt", truncation=True, max_length=model.max_length)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        special = torch.tensor([tok.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True)]).bool()
        base = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id))
        target = model.label2id[intent]
        lig = LayerIntegratedGradients(logits, model.embeddings)
        attributions, delta = lig.attribute(ids, baselines=base, target=target, additional_forward_args=(mask,),
                                            n_steps=n_steps, internal_batch_size=256, return_convergence_delta=True)
        with torch.no_grad():
            gap = (logits(ids, mask) - logits(base, mask))[0, target].item()
        tokens = attributions.sum(dim=-1)[0].detach().double().numpy()
        scores.append(word_scores(encode_words(tok, text, model.max_length), tokens))
        errors.append(abs(delta.item()) / max(abs(gap), 1.0))
    return scores, np.array(errors)


def reference_scores(model, texts, intents):
    """captum at REFERENCE_STEPS steps, kept on disk by model, texts and targets (not timed)."""
    key = hashlib.sha256(json.dumps([model.content_hash, REFERENCE_STEPS, texts, intents]).encode()).hexdigest()[:24]
    path = ROOT / ".pytest_cache" / "benchmarks" / f"ig-reference-{key}.npz"
    if path.exists():
        stored = np.load(path)
        return [stored[str(i)] for i in range(len(texts))], "loaded"
    scores, _ = captum_loop(model, texts, intents, REFERENCE_STEPS)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{str(i): s for i, s in enumerate(scores)})
    return scores, "computed"


def word_error(scores, reference) -> np.ndarray:
    return np.array([np.abs(s - r).max() / max(np.abs(r).max(), 1e-12) for s, r in zip(scores, reference)])


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--golden", type=Path, default=ROOT / "fixtures" / "golden.jsonl")
    parser.add_argument("--every", type=int, default=1, help="use every n-th golden message (a quicker run)")
    parser.add_argument("--target", default=None, help="attribute this intent for every message (default: its label)")
    args = parser.parse_args()

    import torch

    from pytest_mangaassist import IntentModel, load_golden_set
    from pytest_mangaassist.cache.analyses import integrated_gradients  # the cached form (memory and disk)

    golden = load_golden_set(args.golden)
    texts = list(golden.texts[::args.every])
    intents = [args.target] * len(texts) if args.target else list(golden.intents[::args.every])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        model = IntentModel.load(args.reference / "finetuned", cache_dir=Path(cache))
        model.hf_model  # weights load lazily: load them before the clock starts
        reference, how = reference_scores(model, texts, intents)
        gemm = sgemm_rate()
        with EvaluationCounter(model) as plain_count:
            (plain_scores, plain_completeness), plain_wall, plain_cpu = timed(
                lambda: captum_loop(model, texts, intents, 64))
        with EvaluationCounter(model) as audit_count:
            found, cold_wall, cold_cpu = timed(lambda: integrated_gradients(model, texts, intents))
        fresh = IntentModel.load(args.reference / "finetuned", cache_dir=Path(cache))
        _, warm_wall, warm_cpu = timed(lambda: integrated_gradients(fresh, texts, intents))
        per_row = flops_per_row(model)
        plain_flops, audit_flops = plain_count.flops(per_row), audit_count.flops(per_row)
    load_after = os.getloadavg()
    audit_completeness = np.array([a.relative_delta for a in found])
    plain_error, audit_error = word_error(plain_scores, reference), word_error([a.scores for a in found], reference)
    steps = np.array([a.n_steps for a in found])

    def row(name, wall, cpu, count=None, flops=None, error=None, completeness=None):
        computed = [f"{count.evaluations}", f"{count.extra_backward_rows}", f"{count.evaluations / wall:.0f}",
                    f"{flops / 1e9:.1f}", f"{flops / wall / 1e9:.1f}",
                    f"{flops / wall / gemm[0]:.0%}", f"{flops / cpu / gemm[1]:.0%}", f"{error.max():.4f}",
                    f"{completeness.max():.4f}"] if count is not None else ["0", "0"] + ["(cached)"] * 7
        return [name, f"{wall:.1f}", f"{cpu:.1f}", f"{plain_wall / wall:.2f}x"] + computed

    rows = [row("plain loop, 64 steps", plain_wall, plain_cpu, plain_count, plain_flops, plain_error,
                plain_completeness),
            row("audit, cold", cold_wall, cold_cpu, audit_count, audit_flops, audit_error, audit_completeness),
            row("audit, warm (disk cache)", warm_wall, warm_cpu)]
    header = ["", "wall s", "cpu s", "speed-up", "evaluations", "extra backward", "eval/s", "GFLOP", "GFLOP/s",
              "of sgemm",
              "of sgemm (cpu s)",
              f"word error vs {REFERENCE_STEPS}", "completeness max"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(f"{len(texts)} golden messages of {args.golden.name}, model {args.reference.name}, target = "
          f"{args.target or 'labelled intent'}; torch threads {torch.get_num_threads()}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); sgemm {gemm[0] / 1e9:.0f} GFLOP/s "
          f"per wall second, {gemm[1] / 1e9:.0f} per CPU second; "
          f"reference ({REFERENCE_STEPS} steps) {how}")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"audit / plain: {audit_count.evaluations / plain_count.evaluations:.0%} of the evaluations "
          f"({audit_flops / plain_flops:.0%} of the FLOPs, its extra backward passes included), "
          f"{(audit_count.evaluations / cold_wall) / (plain_count.evaluations / plain_wall):.0%} of the evaluations "
          f"per wall second ({(audit_count.evaluations / cold_cpu) / (plain_count.evaluations / plain_cpu):.0%} per CPU "
          f"second), CPU time ratio plain / audit {plain_cpu / cold_cpu:.2f}x, word error {audit_error.max() / plain_error.max():.2f}x the plain loop's")
    print("audit intervals per message: " + ", ".join(f"{s}: {int((steps == s).sum())}" for s in np.unique(steps)))
    worst = int(np.argmax(audit_error))
    print(f"worst audit message ({audit_error[worst]:.4f}, plain {plain_error[worst]:.4f}, {steps[worst]} intervals): "
          f"{texts[worst]}")


if __name__ == "__main__":
    main()
