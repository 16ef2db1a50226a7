"""Cost of the deep-dive gate file against the forward-pass floor, measured side by side in one run.

    python benchmarks/deep_dive.py [--reference artifacts/reference]

floor: one bare forward sweep (batched, length-bucketed, no grad, logits only) of the fine-tuned and
the pre-trained model over the validation set, in this process, models already loaded.
cold:  `pytest example_suite/test_deep_dive.py` in a fresh process with an empty cache directory
       (interpreter start, imports, model loading, sweeps, CKA, probes, patching).
warm:  the same command again, reusing the disk cache the cold run wrote.
Targets (issue #3): cold <= 1.3 x floor, warm <= 0.2 x floor.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def forward_floor(reference: Path, texts: list[str]) -> float:
    from pytest_mangaassist import IntentModel

    models = [IntentModel.load(reference / "finetuned"), IntentModel.load(reference / "pretrained")]
    for model in models:
        model.hf_model  # weights load lazily: load them before the clock starts
    started = time.perf_counter()
    for model in models:
        model.forward(texts)
    return time.perf_counter() - started


def suite_run(reference: Path, cache_dir: str) -> float:
    command = [sys.executable, "-m", "pytest", str(ROOT / "example_suite" / "test_deep_dive.py"), "-q", "-o", f"cache_dir={cache_dir}",
               f"--model-path={reference / 'finetuned'}", f"--pretrained-path={reference / 'pretrained'}",
               f"--validation-set={reference / 'data' / 'valid.jsonl'}"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"the deep-dive file failed:\n{result.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    args = parser.parse_args()
    from pytest_mangaassist import load_golden_set

    texts = load_golden_set(args.reference / "data" / "valid.jsonl").texts
    floor = forward_floor(args.reference, texts)
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = suite_run(args.reference, cache_dir)
        warm = suite_run(args.reference, cache_dir)
    print(f"examples: {len(texts)}")
    print(f"forward floor, 2 models: {floor:6.1f} s")
    print(f"deep-dive file, cold:    {cold:6.1f} s  = {cold / floor:.2f} x floor  (target <= 1.3)")
    print(f"deep-dive file, warm:    {warm:6.1f} s  = {warm / floor:.2f} x floor  (target <= 0.2)")


if __name__ == "__main__":
    main()
