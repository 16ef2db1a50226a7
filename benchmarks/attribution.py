"""The attribution audit over the golden set against a plain per-example captum loop at 64 steps.

    python benchmarks/attribution.py [--reference artifacts/reference] [--golden fixtures/golden.jsonl] [--every N]

plain: for each message, LayerIntegratedGradients(...).attribute(one message, n_steps=64) on the
       embedding layer, [PAD] baseline, target = the message's labelled intent, as a notebook would
       write it (weights left trainable).
audit: pytest_mangaassist's integrated_gradients: messages of similar length batched into one captum
       call, no weight gradients, 16 steps first and twice the steps (up to 256) for every message
       whose convergence delta exceeds 1% of max(|F(x) - F(x')|, 1 logit); cold (nothing cached) and
       warm (the .npz cache the cold run wrote, read by a fresh model object).
Completeness error = |delta| / max(|F(x) - F(x')|, 1 logit), per message; the table prints its
median, 95th percentile and maximum for both. Both run in this process, one after the other.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(model, texts, intents, n_steps=64):
    import torch
    from captum.attr import LayerIntegratedGradients

    hf, tok = model.hf_model, model.tokenizer

    def logits(ids, mask):
        return hf(input_ids=ids, attention_mask=mask).logits

    errors = []
    for text, intent in zip(texts, intents):
        enc = tok([text], return_tensors="pt", truncation=True, max_length=model.max_length)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        special = torch.tensor([tok.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True)]).bool()
        base = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id))
        target = model.label2id[intent]
        lig = LayerIntegratedGradients(logits, model.embeddings)
        _, delta = lig.attribute(ids, baselines=base, target=target, additional_forward_args=(mask,),
                                 n_steps=n_steps, return_convergence_delta=True)
        with torch.no_grad():
            gap = (logits(ids, mask) - logits(base, mask))[0, target].item()
        errors.append(abs(delta.item()) / max(abs(gap), 1.0))
    return np.array(errors)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--golden", type=Path, default=ROOT / "fixtures" / "golden.jsonl")
    parser.add_argument("--every", type=int, default=1, help="use every n-th golden message (a quicker run)")
    args = parser.parse_args()

    from pytest_mangaassist import IntentModel, load_golden_set
    from pytest_mangaassist.cache.analyses import integrated_gradients  # the cached form (memory and disk)

    golden = load_golden_set(args.golden)
    texts, intents = golden.texts[::args.every], golden.intents[::args.every]
    with tempfile.TemporaryDirectory() as cache:
        model = IntentModel.load(args.reference / "finetuned", cache_dir=Path(cache))
        model.hf_model  # weights load lazily: load them before the clock starts
        plain, plain_wall, plain_cpu = timed(lambda: plain_loop(model, texts, intents))
        found, cold_wall, cold_cpu = timed(lambda: integrated_gradients(model, texts, intents))
        fresh = IntentModel.load(args.reference / "finetuned", cache_dir=Path(cache))
        _, warm_wall, warm_cpu = timed(lambda: integrated_gradients(fresh, texts, intents))
    audit = np.array([a.relative_delta for a in found])
    steps = np.array([a.n_steps for a in found])

    def row(name, errors, wall, cpu):
        q = (np.median(errors), np.quantile(errors, 0.95), errors.max()) if errors is not None else ("", "", "")
        return [name, f"{wall:.1f}", f"{cpu:.1f}", f"{plain_wall / wall:.2f}x"] + [
            f"{v:.4f}" if v != "" else "(cached)" for v in q]

    rows = [row("plain loop, 64 steps", plain, plain_wall, plain_cpu),
            row("audit, cold", audit, cold_wall, cold_cpu),
            row("audit, warm (disk cache)", None, warm_wall, warm_cpu)]
    header = ["", "wall s", "cpu s", "speed-up", "error median", "error p95", "error max"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(f"{len(texts)} golden messages, target = labelled intent")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("audit steps per message: " + ", ".join(f"{s}: {int((steps == s).sum())}" for s in np.unique(steps)))
    print(f"messages over 1% error: plain {int((plain > 0.01).sum())}, audit {int((audit > 0.01).sum())}")


if __name__ == "__main__":
    main()
