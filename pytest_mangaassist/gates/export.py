"""Export and serving gates: ONNX structure, runtime parity (ONNX, compiled serving artifact) and P95 latency.

The model under test in PyTorch eager mode is the reference every other runtime must match.
"""

from __future__ import annotations

from ..analysis.latency import LatencyResult, measure_latency
from ..analysis.onnx_structure import OnnxStructure, inspect_onnx_structure
from ..analysis.parity import ParityResult, parity_probe, runtime_parity
from ..errors import MangaAssistInputError
from ..loading.golden import GoldenSet
from .records import check

# Used when a parity gate is given no messages: varied lengths, JP-EN, jargon, punctuation.
DEFAULT_PROBE_TEXTS = (
    "hi",
    "where is my order?",
    "Can I return this if the sale price changes?",
    "do you have the One Piece omnibus volume 3 in stock",
    "kono manga no tsuzuki wa itsu deru? the next volume of Frieren please",
    "I've been waiting three weeks, nobody answers my emails and the tracking page hasn't moved since Tuesday.",
    "recommend me a dark seinen like Berserk or Vinland Saga but shorter, maybe under ten tankobon volumes",
    "my card was charged twice at checkout!!",
    "is there a discount code for first orders",
    "ship to Osaka? how long does EMS take",
    "thanks, that's all",
    "I want to speak to a person",
)
PARITY_ATOL = 1e-3  # fp32 exports of the reference model agree to ~5e-6; int8 needs an explicit, wider bound


def assert_onnx_structure(onnx_model, intent_model) -> OnnxStructure:
    """The ONNX graph keeps the serving contract of intent_model; every failed property is named."""
    __tracebackhide__ = True
    structure = inspect_onnx_structure(onnx_model, intent_model)
    failed = structure.failed
    named = f" ({', '.join(c.name for c in failed)})" if failed else ""
    check("assert_onnx_structure", f"properties failed of {len(structure.checks)}{named}", len(failed), 0, "==",
          family="export", data={"checks": [[c.name, c.ok, c.expected, c.found] for c in structure.checks]},
          evidence=f"{onnx_model.source} vs {intent_model.source}\n{structure.table()}",
          hint="re-export from the model under test with both inputs, dynamic batch and sequence axes and the "
               "label map in the metadata (pytest_mangaassist.loading.export.export_onnx does all three), and do not "
               "run shape-freezing optimisation scripts on the graph you ship.")
    return structure


def assert_onnx_parity(onnx_model, intent_model, examples=None, atol: float = PARITY_ATOL,
                       max_length: int | None = None) -> ParityResult:
    """ONNX Runtime's logits agree with PyTorch's within atol, and every routed intent is the same,
    over batch sizes, sequence lengths 1..max_length and padding."""
    __tracebackhide__ = True
    return _assert_parity("assert_onnx_parity", onnx_model, intent_model, examples, atol, max_length)


def assert_serving_parity(serving_artifact, intent_model, examples=None, atol: float = PARITY_ATOL,
                          max_length: int | None = None) -> ParityResult:
    """The compiled serving artifact (TorchScript / Neuron) agrees with PyTorch like assert_onnx_parity."""
    __tracebackhide__ = True
    return _assert_parity("assert_serving_parity", serving_artifact, intent_model, examples, atol, max_length)


def _texts(examples) -> list[str]:
    if examples is None:
        return list(DEFAULT_PROBE_TEXTS)
    if isinstance(examples, GoldenSet):
        return list(examples.texts)
    if isinstance(examples, str) or not all(isinstance(t, str) for t in examples):
        raise MangaAssistInputError("examples must be a GoldenSet or a list of message strings.",
                                    "Pass the golden_set fixture, a list of texts, or nothing (built-in probe).")
    return list(examples)


def _assert_parity(gate: str, candidate, intent_model, examples, atol: float, max_length: int | None) -> ParityResult:
    __tracebackhide__ = True
    from ..loading.runtimes import TorchRuntime

    result = runtime_parity(TorchRuntime(intent_model), candidate, intent_model,
                            parity_probe(intent_model, _texts(examples), max_length))
    evidence = f"{candidate.source} vs PyTorch ({intent_model.source}): {result.summary()}\n{result.table()}"
    hint = ("a difference that grows with padding or with lengths the export never saw points at the attention "
            "mask or a frozen sequence length (run assert_onnx_structure); the same difference everywhere at a "
            "different route points at the label order or another model's weights.")
    check(gate, f"examples routed to a different intent (of {len(result.rows)})", len(result.route_mismatches), 0,
          "==", family="export", evidence=evidence, hint=hint)
    check(gate, f"max |logit difference| over {len(result.rows)} examples", result.max_abs_diff, atol, "<=",
          family="export", evidence=evidence, hint=hint)
    return result


def assert_latency_p95(runtime, budget_ms: float, batch_size: int = 1, seq_len: int = 32, threads: int = 1,
                       **measure) -> LatencyResult:
    """P95 latency of runtime (IntentModel = PyTorch eager, onnx_model, serving_artifact) at batch_size x
    seq_len tokens on `threads` threads must be <= budget_ms. Returns the measurement (p50/p95/p99)."""
    __tracebackhide__ = True
    try:
        result = measure_latency(runtime, batch_size, seq_len, threads, **measure)
    except MangaAssistInputError:
        raise
    except Exception as exc:  # a runtime that cannot serve the shape has no latency, only a failure
        failure = exc
    else:
        failure = None
    if failure is not None:
        check("assert_latency_p95", f"p95 latency in ms (batch {batch_size}, {seq_len} tokens)", float("inf"),
              budget_ms, "<=", family="latency",
              evidence=f"{getattr(runtime, 'source', runtime)} cannot run this shape: {type(failure).__name__}: "
                       f"{' '.join(str(failure).split())[:300]}",
              hint="run assert_onnx_structure: a frozen batch or sequence axis is the usual cause.")
    low, high = result.p95_interval
    note = ("" if result.stable else
            f"\nthe P95 did not settle within {result.precision:.0%} (95% CI {low:.2f}-{high:.2f} ms) in the time "
            f"budget: the machine is noisy; rerun the latency gates alone (not under xdist) before acting.")
    check("assert_latency_p95", f"p95 latency in ms ({result.runtime}, batch {batch_size}, {seq_len} tokens, "
                                f"{threads} thread(s), {result.n_calls} timed calls)",
          result.p95, budget_ms, "<=", family="latency", interval=(low, high),
          data={"samples_ms": [round(float(x), 4) for x in result.samples_ms], "p50": result.p50, "p99": result.p99},
          evidence=result.table() + note,
          hint="compare runtimes with benchmarks/latency.py; onnxruntime's graph optimisations are on by default, "
               "int8 dynamic quantisation is faster but must pass assert_onnx_parity with its own tolerance.")
    return result
