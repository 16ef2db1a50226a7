"""How linear CKA between two fixed models depends on the number of examples it is measured on (#12.6).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cka_sample_size.py [--reference artifacts/reference]

The [CLS] states of every layer are computed once on the whole validation set (the activation sweep,
cached under --cache-dir), then CKA is measured on random subsamples of n messages (several seeds),
biased (plain CKA, Kornblith et al., 2019) and debiased (unbiased HSIC, Song et al., 2012), for the
fine-tuned model against its previous snapshot and against its pre-trained start. The golden set
(fixtures/golden.jsonl) is measured whole beside them. Prints a Markdown table per pair: mean (and
standard deviation over seeds) per layer and n; n = the whole set has one value.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (50, 100, 154, 300, 1000)
SEEDS = 10


def read_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def states(model_dir: Path, texts: list[str], cache_dir: Path) -> np.ndarray:
    from pytest_mangaassist.analysis.sweep import activation_sweep
    from pytest_mangaassist.loading.model import IntentModel

    model = IntentModel.load(model_dir, cache_dir=cache_dir)
    return activation_sweep(model, texts).cls_states


def measure(a: np.ndarray, b: np.ndarray, sizes, seeds: int) -> dict:
    """{(n, debiased): (layers, seeds) array}."""
    from pytest_mangaassist.analysis.cka import cka_per_layer

    out = {}
    total = len(a)
    for n in (*sizes, total):
        draws = 1 if n == total else seeds
        for debiased in (False, True):
            values = []
            for seed in range(draws):
                idx = np.arange(total) if n == total else np.random.default_rng(seed).choice(total, n, replace=False)
                values.append(cka_per_layer(a[idx], b[idx], debiased))
            out[(n, debiased)] = np.array(values).T
    return out


def table(title: str, results: dict, golden: dict, n_golden: int, layers: int) -> str:
    head = ["n", "estimator"] + [f"L{l}" for l in range(1, layers)]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = sorted(results) + [("golden", d) for d in (False, True)]
    for n, debiased in rows:
        values = golden[(n_golden, debiased)] if n == "golden" else results[(n, debiased)]
        cells = []
        for l in range(1, layers):
            v = values[l]
            cells.append(f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")
        label = f"{n_golden} (golden set)" if n == "golden" else str(n)
        lines.append(f"| {label} | {'debiased' if debiased else 'biased'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--golden", type=Path, default=ROOT / "fixtures" / "golden.jsonl")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".pytest_cache" / "d" / "mangaassist-bench")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--json", type=Path, help="also write the raw per-seed values here")
    args = parser.parse_args()

    started = time.perf_counter()
    valid = read_texts(args.reference / "data" / "valid.jsonl")
    golden = read_texts(args.golden)
    tuned = states(args.reference / "finetuned", valid, args.cache_dir)
    tuned_golden = states(args.reference / "finetuned", golden, args.cache_dir)
    raw = {}
    print(f"validation set: {len(valid)} messages; golden set: {len(golden)}; seeds per subsample size: {args.seeds}")
    print("layer 0 (embeddings) is omitted: its [CLS] state is one constant vector, CKA undefined.\n")
    for other in ("previous", "pretrained"):
        other_valid = states(args.reference / other, valid, args.cache_dir)
        other_golden = states(args.reference / other, golden, args.cache_dir)
        results = measure(tuned, other_valid, [n for n in SIZES if n < len(valid)], args.seeds)
        on_golden = measure(tuned_golden, other_golden, (), 1)
        print(table(f"finetuned vs {other}", results, on_golden, len(golden), tuned.shape[1]) + "\n")
        raw[other] = {f"{n}-{'debiased' if d else 'biased'}": v.tolist() for (n, d), v in results.items()}
        raw[other].update({f"golden-{'debiased' if d else 'biased'}": v.tolist() for (n, d), v in on_golden.items()})
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
