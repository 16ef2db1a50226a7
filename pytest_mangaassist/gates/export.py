"""Export and serving gates: ONNX structure, runtime parity (ONNX, compiled serving artifact) and P95 latency.

The model under test in PyTorch eager mode is the reference every other runtime must match: every gate
takes it first and the artifact under `artifact=` (the onnx_model or serving_artifact fixture).
"""

from __future__ import annotations

import math
import time

from ..analysis.contention import wait_until_quiet
from ..analysis.latency import (LatencyResult, LatencyVerdict, RuntimeCannotRun, latency_verdict,
                                 measure_latency)
from ..analysis.onnx_structure import OnnxStructure, inspect_onnx_structure
from ..analysis.parity import ParityResult, parity_probe, runtime_parity
from ..domain import profile_for
from ..errors import renamed_keywords
from ..loading.model import IntentModel
from ..loading.runtimes import OnnxModel, ServingArtifact, TorchRuntime
from . import validation as valid
from .records import Family, LatencySamples, StructureChecks, check

# fp32 exports of the reference model agree to ~5e-6; int8 needs an explicit, wider bound
MAX_LOGIT_DIFF = 1e-3


def _model(caller: str, model) -> IntentModel:
    """The model the artifact was exported from: an IntentModel, whose PyTorch logits are the reference."""
    return valid.of_type(caller, "model", model, IntentModel, "the IntentModel under test (the intent_model fixture)",
                     f"Pass the model first and the artifact as artifact=, e.g. {caller}(intent_model, "
                     "artifact=onnx_model).")


def _artifact(caller: str, artifact, kind: type, fixture: str):
    return valid.of_type(caller, "artifact", artifact, kind, f"a {kind.__name__} (the {fixture} fixture)",
                     f"Pass artifact={fixture}, or load one with pytest_mangaassist.{kind.__name__}.load(path).")


@Family.EXPORT.gate(page="export.md", chart=StructureChecks, reads="onnx",
                    checks="the ONNX graph's inputs, dynamic axes, attention blocks, head rows, mask reachability "
                           "and label order")
def assert_onnx_structure(model, *, artifact) -> OnnxStructure:
    """The ONNX graph `artifact` (an OnnxModel: the onnx_model fixture) keeps the serving contract of the
    model under test; every failed property is named. The label order is read from the ONNX metadata,
    else from a Hugging Face config.json beside the file (the table says which)."""
    __tracebackhide__ = True
    caller = "assert_onnx_structure"
    model = _model(caller, model)
    artifact = _artifact(caller, artifact, OnnxModel, "onnx_model")
    structure = inspect_onnx_structure(artifact, model, probe_words=profile_for(model.labels).structure_words)
    failed = structure.failed
    named = f" ({', '.join(c.name for c in failed)})" if failed else ""
    check(caller, f"properties failed of {len(structure.checks)}{named}", len(failed), 0, "==",
          
          payload=StructureChecks(checks=tuple(structure.checks)),
          evidence=f"{artifact.source} vs {model.source}\n{structure.table()}",
          hint="re-export from the model under test with both inputs, dynamic batch and sequence axes and the "
               "label map in the metadata or a config.json beside the file (pytest_mangaassist.export_onnx "
               "does all three), and do not run shape-freezing optimisation scripts on the graph you ship.")
    return structure


@Family.EXPORT.gate(page="export.md", reads="onnx",
                    checks="logits and routes of ONNX Runtime against PyTorch on a probe set built to break exports")
@renamed_keywords(max_length="at_most_length")  # the old names, for one release
def assert_onnx_parity(model, examples=None, *, artifact, max_logit_diff: float = MAX_LOGIT_DIFF,
                       at_most_length: int | None = None) -> ParityResult:
    """ONNX Runtime's logits (artifact: the onnx_model fixture) agree with PyTorch's within max_logit_diff,
    and every routed intent is the same, over batch sizes, sequence lengths 1..at_most_length and padding.
    examples: a GoldenSet or a list of messages; None: the probe texts of the model's label-set profile
    (domain.profile_for), domain-free texts of varied shapes for a label set no profile knows."""
    __tracebackhide__ = True
    return _assert_parity("assert_onnx_parity", model, examples, artifact, OnnxModel, "onnx_model",
                          max_logit_diff, at_most_length)


@Family.EXPORT.gate(page="export.md", reads="serving", checks="the same for the compiled TorchScript / Neuron artifact")
@renamed_keywords(max_length="at_most_length")  # the old names, for one release
def assert_serving_parity(model, examples=None, *, artifact, max_logit_diff: float = MAX_LOGIT_DIFF,
                          at_most_length: int | None = None) -> ParityResult:
    """The compiled serving artifact (TorchScript / Neuron; the serving_artifact fixture) agrees with
    PyTorch like assert_onnx_parity."""
    __tracebackhide__ = True
    return _assert_parity("assert_serving_parity", model, examples, artifact, ServingArtifact, "serving_artifact",
                          max_logit_diff, at_most_length)


def _assert_parity(caller: str, model, examples, artifact, kind: type, fixture: str, max_logit_diff,
                   at_most_length) -> ParityResult:
    __tracebackhide__ = True
    max_logit_diff = valid.number(caller, "max_logit_diff", max_logit_diff, low=0.0, high=math.inf, high_open=True)
    # at least [CLS] + 1 piece + [SEP]
    at_most_length = valid.count(caller, "at_most_length", at_most_length, minimum=3, optional=True)
    model = _model(caller, model)
    texts = list(profile_for(model.labels).parity_texts) if examples is None else valid.texts(caller, examples)
    artifact = _artifact(caller, artifact, kind, fixture)
    result = runtime_parity(TorchRuntime(model), artifact, model, parity_probe(model, texts, at_most_length))
    evidence = f"{artifact.source} vs PyTorch ({model.source}): {result.summary()}\n{result.table()}"
    hint = ("a difference that grows with padding or with lengths the export never saw points at the attention "
            "mask or a frozen sequence length (run assert_onnx_structure); the same difference everywhere at a "
            "different route points at the label order or another model's weights.")
    check(caller, f"examples routed to a different intent (of {len(result.rows)})", len(result.route_mismatches), 0,
          "==", evidence=evidence, hint=hint)
    check(caller, f"max |logit difference| over {len(result.rows)} examples", result.max_abs_diff, max_logit_diff,
          "<=", evidence=evidence, hint=hint)
    return result


@Family.LATENCY.gate(page="export.md", chart=LatencySamples,
                     checks="P95 latency (with its interval) of an `IntentModel`, `onnx_model` or "
                            "`serving_artifact`; a busy machine is named, and a P95 over budget there ends as \"not "
                            "measurable on this machine now\"")
@renamed_keywords(min_calls="at_least_calls", max_calls="at_most_calls", max_seconds="at_most_seconds",
               max_wait_seconds="at_most_wait_seconds")
def assert_latency_p95(model, *, max_p95_ms: float, batch_size: int = 1, seq_len: int = 32, threads: int = 1,
                       at_least_calls: int = 200, at_most_calls: int = 5000, at_most_seconds: float = 15.0,
                       at_most_wait_seconds: float = 30.0) -> LatencyResult:
    """P95 latency of `model` (an IntentModel = PyTorch eager, the onnx_model or the serving_artifact fixture)
    at batch_size x seq_len tokens on `threads` threads must be <= max_p95_ms. Timed calls: at least
    at_least_calls, at most at_most_calls, stopping once the P95 is pinned down or after at_most_seconds. A runtime
    that cannot run the input fails the gate with its own message. A P95 over budget on a machine too
    busy to measure it (analysis/contention.py) is timed again once the machine looks quiet, for up to
    at_most_wait_seconds; still busy, the gate fails as not measurable on this machine now, never as a budget
    miss. Returns the measurement (p50/p95/p99, CPU time, contention)."""
    __tracebackhide__ = True
    caller = "assert_latency_p95"
    max_p95_ms = valid.number(caller, "max_p95_ms", max_p95_ms, low=0.0, high=math.inf, low_open=True, high_open=True)
    batch_size = valid.count(caller, "batch_size", batch_size)
    seq_len = valid.count(caller, "seq_len", seq_len)
    threads = valid.count(caller, "threads", threads)
    at_least_calls = valid.count(caller, "at_least_calls", at_least_calls)
    at_most_calls = valid.count(caller, "at_most_calls", at_most_calls, minimum=at_least_calls)
    at_most_seconds = valid.number(caller, "at_most_seconds", at_most_seconds, low=0.0, high=math.inf, low_open=True,
                                   high_open=True)
    at_most_wait_seconds = valid.number(caller, "at_most_wait_seconds", at_most_wait_seconds, low=0.0, high=math.inf,
                                high_open=True)
    valid.of_type(caller, "model", model, (IntentModel, OnnxModel, ServingArtifact, TorchRuntime),
              "an IntentModel, OnnxModel or ServingArtifact (the intent_model, onnx_model or serving_artifact fixture)",
              f"Pass the runtime to time first, e.g. {caller}(onnx_model, max_p95_ms=15).")
    shape = f"batch {batch_size}, {seq_len} tokens"
    deadline = time.monotonic() + at_most_wait_seconds
    attempts: list[LatencyResult] = []
    while True:
        try:
            result = measure_latency(model, batch_size, seq_len, threads, at_least_calls=at_least_calls,
                                     at_most_calls=at_most_calls, at_most_seconds=at_most_seconds)
        except RuntimeCannotRun as failure:  # no latency to compare: the verdict is a failure, whatever the limit
            check(caller, f"p95 latency in ms ({shape})", float("inf"), max_p95_ms, "<=", 
                  passed=False, evidence=f"{failure.source} cannot run this shape: {failure.cause[:300]}",
                  hint="run assert_onnx_structure: a frozen batch or sequence axis is the usual cause.")
            raise  # not reached: check() raised GateFailure on passed=False
        attempts.append(result)
        verdict = latency_verdict(result, max_p95_ms)
        if verdict is not LatencyVerdict.NOT_MEASURABLE or not wait_until_quiet(deadline, threads):
            break
    _record_latency(caller, result, verdict, attempts, shape, max_p95_ms, at_most_seconds, at_most_wait_seconds)
    return result


def _record_latency(caller: str, result: LatencyResult, verdict: LatencyVerdict, attempts: list[LatencyResult],
                    shape: str, max_p95_ms: float, at_most_seconds: float, at_most_wait_seconds: float) -> None:
    __tracebackhide__ = True
    low, high = result.p95_interval
    hint = ("compare runtimes with benchmarks/latency.py; onnxruntime's graph optimisations are on by default, "
            "int8 dynamic quantisation is faster but must pass assert_onnx_parity with its own max_logit_diff.")
    if verdict is LatencyVerdict.NOT_MEASURABLE:
        hint = ("run the latency gate in isolation: alone on the machine (no other jobs, not under xdist), e.g. "
                "`pytest PATH -k latency -p no:xdist` as a CI step of its own on a dedicated runner, or raise "
                "at_most_wait_seconds to wait longer for a quiet moment.")
    notes = _latency_notes(result, verdict, attempts, max_p95_ms, at_most_seconds, at_most_wait_seconds)
    check(caller, _latency_metric(result, verdict, shape), result.p95, max_p95_ms, "<=", 
          interval=(low, high), passed=verdict is LatencyVerdict.WITHIN_BUDGET,
          payload=LatencySamples(samples_ms=tuple(round(float(x), 4) for x in result.samples_ms), p50_ms=result.p50,
                                 p99_ms=result.p99, budget_ms=max_p95_ms, contention=result.contention,
                                 verdict=verdict.value, attempts=len(attempts)),
          evidence="\n".join([result.table(), *notes]), hint=hint)


def _latency_metric(result: LatencyResult, verdict: LatencyVerdict, shape: str) -> str:
    """What was timed, and how busy the machine was where that matters: the summary's metric column."""
    metric = f"p95 latency in ms ({result.runtime}, {shape}, {result.threads} thread(s), {result.n_calls} timed calls"
    if verdict is LatencyVerdict.NOT_MEASURABLE:
        return metric + f"; {verdict.value}: machine busy, {result.contention.summary()})"
    if result.contention is not None and result.contention.busy:
        return metric + f"; measured on a busy machine: {result.contention.summary()})"
    return metric + ")"


def _latency_notes(result: LatencyResult, verdict: LatencyVerdict, attempts: list[LatencyResult], max_p95_ms: float,
                   at_most_seconds: float, at_most_wait_seconds: float) -> list[str]:
    low, high = result.p95_interval
    notes = []
    if not result.stable:
        notes.append(f"the P95 did not settle within {result.precision:.0%} (95% CI {low:.2f}-{high:.2f} ms) in "
                     f"{at_most_seconds:g} s: the machine is noisy; rerun the latency gates alone (not under xdist) "
                     "before acting.")
    if len(attempts) > 1:
        notes.append("timed again after the machine looked quiet; earlier attempts: " + "; ".join(
            f"p95 {a.p95:.2f} ms, {a.contention.describe()}" for a in attempts[:-1]))
    busy = result.contention is not None and result.contention.busy
    if verdict is LatencyVerdict.OVER_BUDGET and busy:
        notes.append(f"the machine was busy, but the calls' own CPU time is over the budget too (p95 "
                     f"{result.cpu_p95:.2f} ms > {max_p95_ms:g} ms): waiting for a core does not explain the miss.")
    if verdict is LatencyVerdict.NOT_MEASURABLE:
        cpu = (f"The calls' own CPU time (p95 {result.cpu_p95:.2f} ms) is within the budget, so the model may well "
               "meet it." if result.threads == 1 else
               f"With {result.threads} threads the CPU time per call (p95 {result.cpu_p95:.2f} ms, all threads) does "
               "not bound the wall time.")
        notes.append(f"NOT MEASURABLE ON THIS MACHINE NOW: other processes kept the runtime waiting for a core, so "
                     f"this P95 measures them more than the model; the machine did not quiet down within "
                     f"at_most_wait_seconds={at_most_wait_seconds:g} s ({len(attempts)} attempt(s)). {cpu}")
    return notes
