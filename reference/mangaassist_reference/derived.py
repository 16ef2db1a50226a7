"""Files a build derives from its trained models and data (for example traffic shards or a leakage report).

Each derived step has a fingerprint of its own (its source files, the build spec and the model build's
fingerprint), recorded in DIR/derived.json: adding or editing a step reruns that step, never the training,
whose fingerprint (build.BUILD_SOURCES) does not cover this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .build import FULL, PACKAGE_DIR, BuildSpec, build_reference
from .leakage_report import check_leakage


@dataclass(frozen=True)
class DerivedStep:
    name: str
    sources: tuple[str, ...]  # files of this package that decide the step's output
    run: Callable[[Path, BuildSpec, Callable[[str], None]], None]  # (DIR, spec, log)


def _steps() -> tuple[DerivedStep, ...]:
    """The registered steps, in the order they run (later steps may read what earlier ones wrote)."""
    return (DerivedStep("traffic", ("traffic.py", "corpus.py", "templates.py"), _write_traffic),
            # the similarity measure (analysis/leakage.py) is in the model's fingerprint, which every step's covers
            DerivedStep("leakage", ("leakage_report.py",), check_leakage))


def _write_traffic(out: Path, spec: BuildSpec, log: Callable[[str], None]) -> None:
    """DIR/data/traffic.jsonl: a month of unlabelled messages for the traffic replay gates."""
    from .traffic import TRAFFIC_MESSAGES, write_traffic

    path = write_traffic(out / "data" / "traffic.jsonl", TRAFFIC_MESSAGES, seed=spec.data_seed + 3)
    log(f"  traffic: {TRAFFIC_MESSAGES:,} unlabelled messages in {path}")


def step_fingerprint(step: DerivedStep, spec: BuildSpec, model_fingerprint: str, root: Path = PACKAGE_DIR) -> str:
    digest = hashlib.sha256(json.dumps({"step": step.name, "spec": asdict(spec), "model": model_fingerprint},
                                       sort_keys=True).encode())
    for name in ("derived.py", *step.sources):
        digest.update(name.encode() + b"\0" + (Path(root) / name).read_bytes())
    return digest.hexdigest()[:16]


def build_with_derived(out: str | Path, spec: BuildSpec = FULL, force: bool = False,
                       log: Callable[[str], None] = print) -> dict:
    """build_reference, then every derived step whose recorded fingerprint is not current."""
    out = Path(out)
    quality = build_reference(out, spec, force=force, log=log)
    model_fingerprint = json.loads((out / "build.json").read_text())["fingerprint"]
    record_file = out / "derived.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() and not force else {}
    for step in _steps():
        current = step_fingerprint(step, spec, model_fingerprint)
        if record.get(step.name) == current:
            continue
        record.pop(step.name, None)
        record_file.write_text(json.dumps(record, indent=2))  # a step interrupted now reruns next time
        step.run(out, spec, log)
        record[step.name] = current
        record_file.write_text(json.dumps(record, indent=2))
    return quality
