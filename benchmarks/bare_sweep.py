"""The bare script the deep-dive benchmark compares against: what a user pays without the plugin, run as its
own process (benchmarks/deep_dive.py times it from outside, interpreter start to exit).

    python benchmarks/bare_sweep.py [--reference artifacts/reference]

Plain transformers: import torch and transformers, load both models' tokenizers and weights, and run the
deep dive's forward sweep over the validation set: batches of 64 messages sorted by token length, no grad,
eager attention and max length 128 as the plugin's sweeps use, logits only. Nothing of pytest_mangaassist is
imported.
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

BATCH_SIZE = 64
MAX_LENGTH = 128


def sweep(folder: Path, texts: list[str]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True,
                                                               attn_implementation="eager").eval()
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH_SIZE):
            batch = tokenizer([texts[i] for i in order[start:start + BATCH_SIZE]], padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")
            model(**batch).logits.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=Path(__file__).resolve().parents[1] / "artifacts" / "reference")
    reference = parser.parse_args().reference
    with open(reference / "data" / "valid.jsonl", encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    for model in ("finetuned", "pretrained"):
        sweep(reference / model, texts)


if __name__ == "__main__":
    main()
