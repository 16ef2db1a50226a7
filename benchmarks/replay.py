"""Traffic replay speed and memory (issue #15), measured side by side in one run on the reference models.

1. bare ONNX Runtime: only the forward passes of both models over the replay's own batches (pre-tokenized,
   sorted by length, padded to each batch's longest message): the floor the replay cannot beat;
2. the embedded engine: the whole replay (read and parse the shard, tokenize, batch, both forward passes,
   the top intent and its probability, routes and figures); target within 1.2x of (1);
3. Ray Data on a local cluster on this machine: the same replay; target within 1.5x of (2), identical figures;
4. peak resident memory of the embedded replay, each size in a fresh process: it must not grow with the
   traffic (target: 10^6 messages under 2 GiB).

    python benchmarks/replay.py [--messages 100000] [--rss 10000 100000 1000000] [--no-ray] [--reference DIR]
                                [--rss-reference DIR]

The load average is printed with the figures: on a shared machine only the ratios mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def served_models(reference: Path, exports: Path):
    from pytest_mangaassist import IntentModel
    from pytest_mangaassist.cache.traffic import served_model

    models = [IntentModel.load(reference / name) for name in ("previous", "finetuned")]
    return models, [served_model(model, exports) for model in models]


def bare_forward_passes(served, traffic) -> float:
    """Seconds of session.run alone over the replay's batches (tokenized and padded beforehand, not timed)."""
    from pytest_mangaassist.loading.replay import CHUNK_BATCHES, _Sessions

    sessions = _Sessions(served)
    feeds = []
    for shard in traffic.shards:
        for texts in traffic.texts(shard, traffic.batch_size * CHUNK_BATCHES):
            for m, model in enumerate(served):
                ids = sessions.encoders[(model.tokenizer_json, model.max_length)].encode(texts)
                lengths = np.array([len(row) for row in ids])
                order = np.argsort(lengths, kind="stable")
                for start in range(0, len(ids), traffic.batch_size):
                    idx = order[start:start + traffic.batch_size]
                    width = int(lengths[idx].max())
                    input_ids = np.zeros((len(idx), width), dtype=np.int64)
                    mask = np.zeros_like(input_ids)
                    for row, i in enumerate(idx):
                        input_ids[row, :lengths[i]], mask[row, :lengths[i]] = ids[i], 1
                    feeds.append((m, {"input_ids": input_ids, "attention_mask": mask}))
    runs = [runtime.session for runtime in sessions.runtimes]
    started = time.perf_counter()
    for m, feed in feeds:
        runs[m].run(None, feed)
    return time.perf_counter() - started


def replay(served, labels, traffic, engine):
    from pytest_mangaassist import MANGAASSIST_ROUTING
    from pytest_mangaassist.analysis.traffic import compare_routes
    from pytest_mangaassist.loading.replay import predict_embedded, predict_ray

    shards = list(range(len(traffic.shards)))
    started = time.perf_counter()
    predicted = (predict_ray if engine == "ray" else predict_embedded)(served, traffic, shards)
    joined = [tuple(np.concatenate([getattr(predicted[(m, s)], f) for s in shards])
                    for f in ("intents", "confidences")) for m in (0, 1)]
    comparison = compare_routes(labels, MANGAASSIST_ROUTING, *joined)
    rate = comparison.flip_rate()
    figures = (rate.estimate, rate.low, rate.high, comparison.flip_matrix().tolist(),
               [(s.route, s.shift, s.low, s.high) for s in comparison.route_shifts()])
    return time.perf_counter() - started, figures


RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from mangaassist_reference.traffic import write_traffic
sys.path.insert(0, {root!r})
from benchmarks.replay import replay, served_models
from pytest_mangaassist import load_traffic
n, folder = int(sys.argv[1]), Path(sys.argv[2])
models, served = served_models(Path({reference!r}), Path({exports!r}))
traffic = load_traffic(write_traffic(folder / f"t{{n}}.jsonl", n, seed=11))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seconds, _ = replay(served, models[0].labels, traffic, "embedded")
print(json.dumps({{"n": n, "seconds": seconds, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   "before_replay_kib": before}}))
"""


def peak_rss(sizes, reference: Path, exports: Path, folder: Path) -> list[dict]:
    code = RSS_CHILD.format(root=str(ROOT), reference=str(reference), exports=str(exports))
    out = []
    for n in sizes:
        done = subprocess.run([sys.executable, "-c", code, str(n), str(folder)], capture_output=True, text=True,
                              check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {n:>9,} messages: peak RSS {out[-1]['peak_kib'] / 1024:,.0f} MiB (before the replay "
              f"{out[-1]['before_replay_kib'] / 1024:,.0f} MiB), {out[-1]['seconds']:.0f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rss", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--exports", type=Path, default=None,
                        help="folder of the models' ONNX exports, reused between runs (default: a new temporary one)")
    parser.add_argument("--rss-reference", type=Path, default=None,
                        help="models of the memory runs (default --reference; artifacts/test-models/small is ~4x "
                             "faster where the machine cannot replay 10^6 messages of the full model in time)")
    args = parser.parse_args()

    from mangaassist_reference.traffic import write_traffic
    from pytest_mangaassist import load_traffic

    work = Path(tempfile.mkdtemp(prefix="mangaassist-replay-bench-"))
    exports = args.exports or work / "exports"
    print(load_average(), flush=True)
    models, served = served_models(args.reference, exports)
    traffic = load_traffic(write_traffic(work / "traffic.jsonl", args.messages, seed=5))
    labels = models[0].labels
    print(f"{len(traffic):,} messages, both reference models (previous, finetuned), batch {traffic.batch_size}",
          flush=True)

    bare = bare_forward_passes(served, traffic)
    print(f"bare ORT forward passes: {bare:.1f} s ({2 * len(traffic) / bare:,.0f} forward passes/s); "
          f"{load_average()}", flush=True)
    embedded, figures = replay(served, labels, traffic, "embedded")
    print(f"embedded replay:         {embedded:.1f} s ({len(traffic) / embedded:,.0f} messages/s, both models); "
          f"ratio to bare {embedded / bare:.2f} (target <= 1.2); {load_average()}", flush=True)
    if not args.no_ray:
        on_ray, ray_figures = replay(served, labels, traffic.with_engine("ray"), "ray")
        print(f"ray, local cluster:      {on_ray:.1f} s (Ray start-up included); ratio to embedded "
              f"{on_ray / embedded:.2f} (target <= 1.5); figures identical: {ray_figures == figures}; "
              f"{load_average()}", flush=True)
    print(f"flip rate {figures[0]:.4f} [{figures[1]:.4f}, {figures[2]:.4f}]", flush=True)
    if args.rss:
        print("peak resident memory of the embedded replay (a fresh process per size):", flush=True)
        rss_reference = args.rss_reference or args.reference
        print(f"  (models: {rss_reference})", flush=True)
        served_models(rss_reference, exports)  # exported here: each sized process then measures the replay alone
        peak_rss(args.rss, rss_reference, exports, work)
    print(load_average(), flush=True)


if __name__ == "__main__":
    main()
