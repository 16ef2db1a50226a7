"""Latency of the reference model at batch 1: PyTorch eager against ONNX Runtime, measured side by side in
one run, plus onnxruntime's graph optimisation levels and int8 dynamic quantisation, each with its routing
parity on the golden set (a variant that routes any message differently is not kept).

    python benchmarks/latency.py [--reference artifacts/reference] [--seq-len 32] [--threads 1]

Every runtime gets the same fixed input (batch 1, --seq-len tokens) and thread count; the runs are
interleaved (round robin, --rounds times) so that load on a shared machine hits every variant alike, and
the figures are taken over all rounds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def variants(model, folder: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pytest_mangaassist import OnnxModel, TorchRuntime, export_onnx

    onnx_path = export_onnx(model, folder / "model.onnx")
    int8_path = folder / "model.int8.onnx"
    quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8)
    fp32 = OnnxModel.load(onnx_path)
    return {
        "pytorch eager": TorchRuntime(model),
        "onnxruntime, optimisations off": fp32.with_optimization("off"),
        "onnxruntime, basic optimisations": fp32.with_optimization("basic"),
        "onnxruntime, all optimisations (default)": fp32,
        "onnxruntime int8 dynamic, all optimisations": OnnxModel.load(int8_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from pytest_mangaassist import IntentModel, TorchRuntime, load_golden_set, measure_latency
    from pytest_mangaassist.analysis.parity import parity_probe, runtime_parity
    from pytest_mangaassist.errors import format_table

    model = IntentModel.load(args.reference / "finetuned")
    golden = load_golden_set(ROOT / "fixtures" / "golden.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = variants(model, Path(tmp))
        probe = parity_probe(model, golden.texts)
        parity = {name: runtime_parity(TorchRuntime(model), rt, model, probe) for name, rt in runtimes.items()}
        samples = {name: [] for name in runtimes}
        delayed = {name: [] for name in runtimes}  # per round: share of calls that waited for a core
        for _ in range(args.rounds):
            for name, runtime in runtimes.items():
                result = measure_latency(runtime, 1, args.seq_len, args.threads, at_least_calls=100, at_most_calls=100)
                samples[name].extend(result.samples_ms)
                delayed[name].append(result.contention.delayed_share)
    eager_p95 = np.percentile(samples["pytorch eager"], 95)
    rows = []
    for name, values in samples.items():
        p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
        kept = not parity[name].route_mismatches
        rows.append((name, len(values), f"{p50:.2f}", f"{p95:.2f}", f"{p95 / eager_p95:.2f}x",
                     f"{np.mean(delayed[name]):.0%}",
                     f"{parity[name].max_abs_diff:.1e}", len(parity[name].route_mismatches),
                     "kept" if kept else "dropped (routes differ)"))
    print(f"batch 1, {args.seq_len} tokens, {args.threads} thread(s), {args.rounds} interleaved rounds of 100 calls; "
          f"parity over {len(parity['pytorch eager'].rows)} probe examples (golden set + lengths + padding)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; 'delayed': calls that waited for a core "
          "(analysis/contention.py), a share above a few % means the P95s measure the machine as much as the runtime")
    print(format_table(("runtime", "calls", "p50 ms", "p95 ms", "p95 / eager", "delayed", "max |logit diff|",
                        "routes differ", "verdict"), rows))


if __name__ == "__main__":
    main()
