"""results.json: the run's figures for CI and for later comparison: every test with its outcome and every
gate record as the gate made it (raw, not folded; each record's JSON is GateRecord.to_json), the inputs
with their content hashes, and the library versions."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path

from .runlog import RunLog

PACKAGES = ("pytest-mangaassist", "torch", "transformers", "captum", "scikit-learn", "onnx", "onnxruntime",
            "matplotlib", "pytest")


def file_hash(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def policy_hash(policy) -> str | None:
    """The routing policy's content (thresholds, fallbacks, defaults), whichever file or profile it came from."""
    if policy is None:
        return None
    content = [dict(policy.thresholds), dict(policy.fallbacks), policy.default_threshold, policy.default_fallback]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def versions() -> dict[str, str | None]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def results(log: RunLog, inputs: dict) -> dict:
    """The JSON document: outcomes, inputs (None: not given), versions, and per test every gate record."""
    tests = [{"nodeid": t.nodeid, "outcome": t.outcome, "seconds": round(t.duration, 3), "line": t.line,
              "message": t.message,
              "gates": [json.loads(r.to_json()) for r in t.records], "tables": [list(x) for x in t.tables]}
             for t in log.tests.values()]
    outcomes: dict[str, int] = {}
    for t in log.tests.values():
        outcomes[t.outcome] = outcomes.get(t.outcome, 0) + 1
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(log.started)),
            "seconds": round(time.time() - log.started, 1), "outcomes": outcomes, "inputs": inputs,
            "versions": versions(), "tests": tests}


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str, allow_nan=True), encoding="utf-8")
    return path
