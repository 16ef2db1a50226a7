"""pytest plugin of benchmarks/deep_dive.py: where a deep-dive run spends its time, by part.

    pytest -p deep_dive_breakdown ...   (benchmarks/ on PYTHONPATH; DEEP_DIVE_BREAKDOWN=file.json)

Wraps the functions that do each part in timers, each counting its own time only (a part called inside
another is taken out of the outer one), CPU (this process, every thread) and wall; imports are one part
wherever they happen. The wrappers cost microseconds per call and the wrapped functions run a few hundred
times in all, so the run measured is the run timed. Written to DEEP_DIVE_BREAKDOWN at the end of the run.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import importlib._bootstrap as bootstrap
import json
import os
import time
from collections import defaultdict

# (part, module, attribute): attributes looked up at call time (module functions called by global name, methods)
PARTS = (
    ("settings: golden sets, checkpoints", "pytest_mangaassist.config.settings", "load_settings"),
    ("weights", "pytest_mangaassist.loading.model", "IntentModel._load_weights"),
    ("tokenizers", "pytest_mangaassist.loading.model", "IntentModel._load_tokenizer"),
    ("self-check: logits alone/batched/padded", "pytest_mangaassist.analysis.invariance", "_compare_conditions"),
    ("self-check: IG word scores batched", "pytest_mangaassist.analysis.attribution", "attribution_batch_invariance"),
    ("activation sweeps (forward passes)", "pytest_mangaassist.loading.model", "IntentModel.forward"),
    ("probes: fits", "pytest_mangaassist.analysis.probes", "_probe_layers"),
    ("probes: bootstrap intervals", "pytest_mangaassist.analysis.probes", "_f1_rate"),
    ("patching: patched runs", "pytest_mangaassist.analysis.patching", "patched_logits"),
    ("CKA", "pytest_mangaassist.analysis.cka", "linear_cka"),
    ("logit lens", "pytest_mangaassist.analysis.logit_lens", "lens_logits"),
    ("cache: read and verify", "pytest_mangaassist.cache.store", "read_entry"),
    ("cache: write and sign", "pytest_mangaassist.cache.store", "write_entry"),
)
IMPORTS = "imports (torch, transformers, scikit-learn, scipy, ...)"

_cpu: dict[str, float] = defaultdict(float)
_wall: dict[str, float] = defaultdict(float)
_stack: list[list[float]] = []  # per open part: [cpu of its children, wall of its children]
_started = (time.process_time(), time.perf_counter())


def _timed(part: str, function):
    @functools.wraps(function)  # signature and annotations too: cache.analyses reads them
    def timed(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        _stack.append([0.0, 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            children = _stack.pop()
            spent_cpu, spent_wall = time.process_time() - cpu, time.perf_counter() - wall
            _cpu[part] += spent_cpu - children[0]
            _wall[part] += spent_wall - children[1]
            if _stack:
                _stack[-1][0] += spent_cpu
                _stack[-1][1] += spent_wall

    return timed


def _install() -> None:
    # the import system looks _find_and_load up on importlib._bootstrap for every import of a new module
    bootstrap._find_and_load = _timed(IMPORTS, bootstrap._find_and_load)
    for part, module_name, attribute in PARTS:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for step in path:
            owner = getattr(owner, step)
        if hasattr(owner, name):  # a part that an older version does not have counts 0 (comparisons across commits)
            setattr(owner, name, _timed(part, getattr(owner, name)))


def _write() -> None:
    cpu, wall = time.process_time() - _started[0], time.perf_counter() - _started[1]
    parts = {part: (_cpu[part], _wall[part]) for part in (IMPORTS, *(p for p, _, _ in PARTS))}
    parts["everything else (pytest, reporting, glue)"] = (cpu - sum(_cpu.values()), wall - sum(_wall.values()))
    with open(os.environ["DEEP_DIVE_BREAKDOWN"], "w") as fh:
        json.dump({"cpu": cpu, "wall": wall, "parts": parts}, fh)


_install()
atexit.register(_write)
