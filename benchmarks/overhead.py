"""What the plugin and the main job cost in wall time: figures, not targets.

    python benchmarks/overhead.py [--rounds 5] [--reference artifacts/reference] [--suite] [--force]

1. The plugin's overhead on a test file that imports no torch: `pytest FILE` against
   `pytest -p no:mangaassist FILE`, in fresh processes, interleaved round by round so that load on a shared
   machine hits both alike; medians, their ratio and difference.
2. The main job (scripts/gate.sh: build the reference model if needed, then `pytest example_suite`):
   its first run is the reference build, read from DIR/build.json ("seconds", recorded when it was built; the
   build is never rerun here), plus one example-suite run; the warm rerun is the build's reuse check (timed
   only where DIR's build is current: otherwise the CLI would rebuild) plus the example-suite run again.
   The example suite is timed only with --suite and only on a quiet machine (a busy one times the other
   processes; its latency gate would say so): --force times it anyway. The suite's ini turns the plugin's
   disk cache off, so its warm rerun recomputes every figure, as the release gate's CI run does.
The load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A file of plain tests, as a team's non-model tests look: no torch, no fixtures of the plugin.
TORCH_FREE_FILE = '''
import json

import pytest


@pytest.mark.parametrize("n", range(40))
def test_round_trip(n):
    assert json.loads(json.dumps({"n": n})) == {"n": n}
'''


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def timed(command: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: tests failed (a suite's verdict), still a timed run
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def plugin_overhead(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_plain.py").write_text(TORCH_FREE_FILE)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp, "test_plain.py"]
        runs = {"with the plugin": [], "-p no:mangaassist": []}
        for _ in range(rounds):
            runs["with the plugin"].append(timed(base, folder))
            runs["-p no:mangaassist"].append(timed(base + ["-p", "no:mangaassist"], folder))
    with_plugin, without = (statistics.median(v) for v in runs.values())
    print(f"plugin overhead, a torch-free file of 40 tests, median of {rounds} interleaved runs ({load()}):")
    for name, values in runs.items():
        print(f"  pytest {name:<20} {statistics.median(values):6.2f} s  (runs {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  overhead: {with_plugin - without:+.2f} s per pytest run, {with_plugin / without:.2f}x")


def quiet_enough() -> tuple[bool, str]:
    from pytest_mangaassist.analysis.contention import quiet_probe

    probe = quiet_probe(threads=2)
    quiet = not probe.busy and os.getloadavg()[0] <= 0.5 * os.cpu_count()
    return quiet, f"{'quiet' if quiet else 'busy'}: {probe.describe()}"


def main_job(reference: Path, run_suite: bool, force: bool) -> None:
    from mangaassist_reference.build import FULL, is_built

    record = json.loads((reference / "build.json").read_text())
    print(f"main job on {reference} ({load()}):")
    print(f"  first run, reference build: {record['seconds']:.0f} s (DIR/build.json, recorded when it was built; "
          "not rebuilt here)")
    if is_built(reference, FULL):
        seconds = timed([sys.executable, "-m", "mangaassist_reference", "build", "--out", str(reference)], ROOT)
        print(f"  warm rerun, build reuse check: {seconds:.1f} s")
    else:
        print("  warm rerun, build reuse check: not timed (the build's fingerprint is not current: the CLI would "
              "rebuild; run scripts/gate.sh once first)")
    if not run_suite:
        print("  example suite: not timed (pass --suite; it takes minutes of both cores)")
        return
    quiet, why = quiet_enough()
    if not quiet and not force:
        print(f"  example suite: not timed, the machine is {why} (--force times it anyway)")
        return
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    suite = [sys.executable, "-m", "pytest", "example_suite", f"--model-path={reference / 'finetuned'}",
             f"--pretrained-path={reference / 'pretrained'}", f"--production-path={reference / 'previous'}",
             f"--validation-set={reference / 'data' / 'valid.jsonl'}", "-q", "-p", "no:cacheprovider"]
    print(f"  example suite ({why}):")
    for run in ("first run", "warm rerun"):
        print(f"    {run}: {timed(suite, ROOT, env):.0f} s ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reference", type=Path, default=ROOT / "artifacts" / "reference")
    parser.add_argument("--suite", action="store_true", help="time the example suite too (minutes)")
    parser.add_argument("--force", action="store_true", help="time the example suite on a busy machine too")
    args = parser.parse_args()
    plugin_overhead(args.rounds)
    main_job(args.reference, args.suite, args.force)


if __name__ == "__main__":
    main()
