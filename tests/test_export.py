"""Export and serving gates: the clean export passes; each broken artifact is caught, by name."""

import json
import math
import re
import shutil

import numpy as np
import pytest
from scipy.stats import binom

from pytest_mangaassist import (GateFailure, IntentModel, MangaAssistInputError, OnnxModel, ServingArtifact,
                                assert_latency_p95, assert_onnx_parity, assert_onnx_structure,
                                compile_serving_artifact, load_golden_set, parity_probe)
from pytest_mangaassist.analysis.contention import assess_contention, usable_cores
from pytest_mangaassist.analysis.latency import LatencyResult, LatencyVerdict, latency_verdict, quantile_interval
from pytest_mangaassist.analysis.onnx_structure import LABEL_ORDER
from mangaassist_reference import defects

RELEASE_FILE = """
from pytest_mangaassist import (assert_latency_p95, assert_onnx_parity, assert_onnx_structure,
                                assert_serving_parity)

def test_structure(onnx_model, intent_model):
    assert_onnx_structure(intent_model, artifact=onnx_model)

def test_onnx_parity(onnx_model, intent_model):
    assert_onnx_parity(intent_model, artifact=onnx_model)

def test_serving_parity(serving_artifact, intent_model):
    assert_serving_parity(intent_model, artifact=serving_artifact)

def test_latency(onnx_model):
    assert_latency_p95(onnx_model, max_p95_ms=1000, seq_len=16, at_least_calls=50, at_most_seconds=2)
"""
RELEASE_TESTS = RELEASE_FILE.count("\ndef test_")


@pytest.fixture(scope="module")
def model(small_model):
    return IntentModel.load(small_model)


@pytest.fixture(scope="module")
def broken(small_model, tmp_path_factory):
    """Each broken artifact the issue names, built from the small model by the project's defect builders."""
    out = tmp_path_factory.mktemp("broken")
    return {
        "static": defects.onnx_static_shape(small_model, out / "static.onnx"),
        "no_mask": defects.onnx_without_mask(small_model, out / "no_mask.onnx"),
        "swapped": defects.onnx_swapped_label_rows(small_model, out / "swapped.onnx", rows=(0, 1)),
    }


def test_clean_export_passes_every_gate_and_is_exported_once(pytester, small_model):
    pytester.makepyfile(test_release=RELEASE_FILE)
    result = pytester.runpytest_subprocess(f"--model-path={small_model}")
    result.assert_outcomes(passed=RELEASE_TESTS)
    exports = list((pytester.path / ".pytest_cache" / "d" / "mangaassist").glob("onnx-*.onnx"))
    assert len(exports) == 1
    stamp = exports[0].stat().st_mtime_ns
    pytester.runpytest_subprocess(f"--model-path={small_model}", "-k", "structure").assert_outcomes(passed=1)
    assert exports[0].stat().st_mtime_ns == stamp  # the second run reused the cached export


def test_static_shape_export_and_a_serving_artifact_of_another_model_fail(pytester, small_reference, broken,
                                                                          tmp_path):
    other = compile_serving_artifact(IntentModel.load(small_reference / "pretrained"), tmp_path / "other.pt")
    pytester.makepyfile(test_release=RELEASE_FILE)
    result = pytester.runpytest_subprocess(f"--model-path={small_reference / 'finetuned'}",
                                           f"--onnx-path={broken['static']}", f"--serving-artifact={other}")
    out = result.stdout.str()
    result.assert_outcomes(failed=RELEASE_TESTS)
    assert re.search(r"assert_onnx_structure: properties failed of \d+ \(batch and sequence axes are symbolic, "
                     r"runs at unseen batch/sequence shapes\)", out)
    assert "input_ids sequence = " in out
    assert "assert_onnx_parity: examples routed to a different intent" in out
    assert "the candidate failed on" in out and "INVALID_ARGUMENT" in out
    assert "assert_serving_parity: examples routed to a different intent" in out
    assert "assert_latency_p95: p95 latency in ms (batch 1, 16 tokens) = inf" in out and "cannot run this shape" in out


def test_dropped_mask_is_caught_by_structure_and_parity(model, broken):
    onnx = OnnxModel.load(broken["no_mask"])
    with pytest.raises(GateFailure) as structure:
        assert_onnx_structure(model, artifact=onnx)
    assert "(attention_mask is a graph input, attention_mask reaches every attention block)" in str(structure.value)
    with pytest.raises(GateFailure) as parity:
        assert_onnx_parity(model, artifact=onnx)
    # without the mask, padding changes the answer: the failing rows are the padded ones
    worst = str(parity.value).split("max |diff|")[1]
    assert "ladder together" in worst or "padded to" in worst or "mixed" in worst


def test_swapped_label_rows_are_named(model, broken):
    onnx = OnnxModel.load(broken["swapped"])
    with pytest.raises(GateFailure) as structure:
        assert_onnx_structure(model, artifact=onnx)
    message = str(structure.value)
    assert f"row 0 holds {model.labels[1]}; row 1 holds {model.labels[0]}" in message
    with pytest.raises(GateFailure) as parity:
        assert_onnx_parity(model, artifact=onnx)
    assert "routed to a different intent" in str(parity.value)


def test_metadata_label_order_is_checked(model, standard_export, tmp_path):
    import onnx

    # export_onnx is the standard export plus metadata, and set_model_props below replaces all metadata
    path = tmp_path / "meta.onnx"
    proto = onnx.load(str(standard_export))
    labels = list(model.labels)
    labels[2], labels[3] = labels[3], labels[2]
    onnx.helper.set_model_props(proto, {"id2label": json.dumps(labels)})
    onnx.save(proto, str(path))
    onnx_model = OnnxModel.load(path)
    with pytest.raises(GateFailure) as structure_error:
        assert_onnx_structure(model, artifact=onnx_model)
    assert f"ONNX metadata: 2: {labels[2]} (model {model.labels[2]})" in str(structure_error.value)
    with pytest.raises(GateFailure) as parity_error:
        assert_onnx_parity(model, artifact=onnx_model)
    parity_error = parity_error.value
    assert "routed to a different intent" in str(parity_error)  # the server would name the wrong intent


def test_bad_artifacts_are_refused_with_the_fix(pytester, small_model, tmp_path, broken):
    garbage_onnx, garbage_pt = tmp_path / "garbage.onnx", tmp_path / "garbage.pt"
    garbage_onnx.write_bytes(b"not a protobuf at all" * 10)
    garbage_pt.write_bytes(b"PK\x03\x04 truncated")
    pytester.makepyfile(test_release=RELEASE_FILE)
    result = pytester.runpytest_subprocess(f"--model-path={small_model}", f"--onnx-path={garbage_onnx}",
                                           f"--serving-artifact={garbage_pt}", "-k", "structure or serving")
    out = result.stdout.str()
    result.assert_outcomes(errors=2)
    assert "could not be read as a valid ONNX model" in out and "could not be loaded as a TorchScript module" in out
    assert out.count("fix:") >= 2 and "Traceback" not in out


def test_onnx_of_a_model_with_other_labels_is_refused(model, broken, tmp_path):
    import onnx

    from pytest_mangaassist import MangaAssistInputError
    from pytest_mangaassist.loading.runtimes import check_artifact_matches

    proto = onnx.load(str(broken["no_mask"]))
    onnx.helper.set_model_props(proto, {"id2label": json.dumps(["yes", "no"])})
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(MangaAssistInputError, match="artifact of a different model"):
        check_artifact_matches(OnnxModel.load(tmp_path / "other.onnx"), model, "--onnx-path")


def test_neuron_compile_path(model, tmp_path):
    pytest.importorskip("torch_neuronx", reason="torch-neuronx is not installed here (no Neuron SDK / Inferentia "
                                                "host): the torch_neuronx.trace path of compile_serving_artifact "
                                                "is untested on this machine")
    artifact = ServingArtifact.load(compile_serving_artifact(model, tmp_path / "neuron.pt"))
    assert artifact.compiler == "torch_neuronx" and artifact.static_shape is not None
    from pytest_mangaassist import assert_serving_parity

    assert_serving_parity(model, artifact=artifact)


def test_parity_probe_varies_batch_length_and_padding(model, small_golden):
    from pytest_mangaassist.analysis.parity import MIXED_BATCH_SIZES

    length = 64
    batches = parity_probe(model, load_golden_set(small_golden).texts, at_most_length=length)
    sizes = {len(b.texts) for b in batches}
    assert {1, *MIXED_BATCH_SIZES} <= sizes
    lengths = [len(model.tokenizer.tokenize(t)) for b in batches for t in b.texts]
    assert min(lengths) == 1 and max(lengths) == length - 2  # one word piece up to the length with [CLS], [SEP]
    assert any(b.pad_to == length for b in batches)


def test_quantile_interval_has_its_stated_coverage():
    samples = np.arange(1, 201, dtype=float)  # order statistics are the ranks themselves
    low, high = quantile_interval(samples, 0.95)
    # independent: P(rank(low) <= Q < rank(high)) for the 0.95 quantile = binomial mass between the ranks
    coverage = binom.cdf(high - 1, 200, 0.95) - binom.cdf(low - 1, 200, 0.95)
    assert coverage >= 0.95
    assert low < np.percentile(samples, 95) < high


def test_latency_failure_reports_percentiles_calls_and_threads(model):
    with pytest.raises(GateFailure) as info:
        assert_latency_p95(model, max_p95_ms=1e-6, seq_len=8, at_least_calls=50, at_most_seconds=1)
    message = str(info.value)
    assert message.startswith("assert_latency_p95: p95 latency in ms (pytorch, batch 1, 8 tokens, 1 thread(s), ")
    assert "required <= 1.00e-06" in message
    for column in ("p50 ms", "p95 ms", "p95 95% CI", "p99 ms", "calls"):
        assert column in message
    result = assert_latency_p95(model, max_p95_ms=1e6, seq_len=8, at_least_calls=50, at_most_seconds=1)
    assert result.n_calls >= 50 and result.p50 <= result.p95 <= result.p99


@pytest.mark.parametrize("budget", [math.inf, math.nan, 0.0, -5.0, "15"])
def test_latency_budget_must_be_a_finite_positive_number(model, budget):
    with pytest.raises(MangaAssistInputError, match="assert_latency_p95: max_p95_ms must be a number in \\(0, inf\\)"):
        assert_latency_p95(model, max_p95_ms=budget)


def test_a_runtime_that_cannot_run_the_input_fails_whatever_the_budget(broken):
    """The issue's UnboundLocalError: an infinite budget with a failing runtime. An infinite budget is now
    refused; any finite one, however large, fails on a runtime that cannot run the shape, with its message."""
    static = OnnxModel.load(broken["static"])
    with pytest.raises(GateFailure) as info:
        assert_latency_p95(static, max_p95_ms=1e300, seq_len=16, at_least_calls=50, at_most_seconds=1)
    message = str(info.value)
    assert message.startswith("assert_latency_p95: p95 latency in ms (batch 1, 16 tokens) = inf")
    assert "cannot run this shape" in message and "INVALID_ARGUMENT" in message  # onnxruntime's own words


def _standard_export(model, path):
    """torch.onnx.export as a user or optimum runs it: no label map in the ONNX metadata."""
    import torch

    from pytest_mangaassist.loading.export import example_inputs, logits_module, run_exporter

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.max_length)
    run_exporter(logits_module(model), example_inputs(model), path, ["input_ids", "attention_mask"],
                 ({0: batch, 1: sequence}, {0: batch, 1: sequence}))
    return path


@pytest.fixture(scope="module")
def standard_export(model, tmp_path_factory):
    import onnx

    path = _standard_export(model, tmp_path_factory.mktemp("standard") / "model.onnx")
    assert not [p.key for p in onnx.load(str(path)).metadata_props if p.key == "id2label"]
    return path


def _label_row(structure):
    """The structure table's label-order property."""
    return next(c for c in structure.checks if c.name == LABEL_ORDER)


def test_a_standard_export_with_config_json_beside_it_passes(model, small_model, standard_export, tmp_path):
    folder = tmp_path / "optimum-style"
    folder.mkdir()
    shutil.copy(standard_export, folder / "model.onnx")
    shutil.copy(small_model / "config.json", folder / "config.json")  # as save_pretrained / optimum write it
    structure = assert_onnx_structure(model, artifact=OnnxModel.load(folder / "model.onnx"))
    row = _label_row(structure)
    assert row.ok and "from the config.json beside the file" in row.found
    assert "from the config.json beside the file" in structure.table()  # the table says which source it read
    assert not structure.failed
    assert assert_onnx_parity(model, artifact=OnnxModel.load(folder / "model.onnx")).max_abs_diff <= 1e-3


def test_a_standard_export_fails_only_without_a_label_source_or_on_disagreement(model, small_model, standard_export,
                                                                              tmp_path):
    import onnx

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(standard_export, alone / "model.onnx")
    with pytest.raises(GateFailure, match=r"properties failed of \d+ \(" + re.escape(LABEL_ORDER) + r"\)") as info:
        assert_onnx_structure(model, artifact=OnnxModel.load(alone / "model.onnx"))
    assert "no id2label in the ONNX metadata; no config.json beside the file" in str(info.value)

    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(standard_export, swapped / "model.onnx")
    config = json.loads((small_model / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert labels == list(model.labels)
    labels[0], labels[1] = labels[1], labels[0]
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    (swapped / "config.json").write_text(json.dumps(config))
    with pytest.raises(GateFailure) as info:
        assert_onnx_structure(model, artifact=OnnxModel.load(swapped / "model.onnx"))
    assert f"config.json beside the file: 0: {labels[0]} (model {model.labels[0]})" in str(info.value)

    # the metadata says the model's order, the config.json beside it another: the two disagree, which fails
    proto = onnx.load(str(standard_export))
    onnx.helper.set_model_props(proto, {"id2label": json.dumps(list(model.labels))})
    onnx.save(proto, str(swapped / "model.onnx"))
    with pytest.raises(GateFailure) as info:
        assert_onnx_structure(model, artifact=OnnxModel.load(swapped / "model.onnx"))
    message = str(info.value)
    assert "config.json beside the file: 0:" in message and "ONNX metadata:" not in message


def test_export_gates_refuse_swapped_or_missing_arguments(model, broken):
    onnx_model = OnnxModel.load(broken["no_mask"])
    with pytest.raises(MangaAssistInputError, match="model must be the IntentModel under test"):
        assert_onnx_structure(onnx_model, artifact=model)  # the old order: artifact first
    with pytest.raises(MangaAssistInputError, match="artifact must be a OnnxModel"):
        assert_onnx_parity(model, artifact="model.onnx")
    with pytest.raises(MangaAssistInputError, match="max_logit_diff must be a number in \\[0, inf\\)"):
        assert_onnx_parity(model, artifact=onnx_model, max_logit_diff=math.nan)
    with pytest.raises(MangaAssistInputError, match="examples must be a GoldenSet"):
        assert_onnx_parity(model, "where is my order", artifact=onnx_model)


# -- latency on a busy machine: the verdict names the contention, never a plain budget miss ---------------
def recorded_timing(waited_share_of_calls: float, others_running: list[int], cpu_ms: float = 10.0,
                    cores: int = 2, calls: int = 400) -> LatencyResult:
    """A timing as measure_latency records it: calls costing cpu_ms of CPU (with a little jitter), a share of
    them kept waiting 8 ms for a core (their wall time grows by the wait), other runnable tasks per block."""
    rng = np.random.default_rng(0)
    cpu = cpu_ms + rng.normal(0, 0.05 * cpu_ms, calls).clip(-cpu_ms / 2)
    waited = np.where(rng.random(calls) < waited_share_of_calls, 8.0, 0.0)
    wall = cpu + waited + 0.01
    contention = assess_contention(wall, waited, others_running, cores=cores, threads=1, load=1.5)
    return LatencyResult("onnxruntime", "model.onnx", 1, 32, 1, wall, 20, 4.0, 0.10, cpu, contention)


def test_a_quiet_timing_is_not_flagged_and_keeps_the_budget_verdict():
    quiet = recorded_timing(0.01, [0, 1, 0, 1])  # a kernel hiccup in 1% of calls, one other task on 2 cores
    assert not quiet.contention.busy
    assert latency_verdict(quiet, max_p95_ms=quiet.p95 * 0.9) is LatencyVerdict.OVER_BUDGET
    assert latency_verdict(quiet, max_p95_ms=quiet.p95 * 1.1) is LatencyVerdict.WITHIN_BUDGET
    assert "machine quiet: 1% of calls waited for a core" in quiet.table()


def test_a_busy_timing_over_budget_is_not_measurable_unless_its_cpu_time_alone_misses():
    busy = recorded_timing(0.30, [3, 4, 3, 3])
    assert busy.contention.busy and busy.contention.others_running == 3
    assert busy.p95 > 15 > busy.cpu_p95  # 10 ms of CPU per call, 8 ms waits in 30% of calls
    assert latency_verdict(busy, max_p95_ms=15) is LatencyVerdict.NOT_MEASURABLE
    assert latency_verdict(busy, max_p95_ms=5) is LatencyVerdict.OVER_BUDGET  # waiting cannot explain 10 > 5
    assert latency_verdict(busy, max_p95_ms=busy.p95 * 1.01) is LatencyVerdict.WITHIN_BUDGET
    crowded = recorded_timing(0.0, [2, 2, 3, 2])  # no call delayed yet, but no core left for the runtime
    assert crowded.contention.busy and not recorded_timing(0.0, [1, 1, 1, 1]).contention.busy


def test_not_measurable_names_the_contention_and_how_to_run_in_isolation(model, monkeypatch):
    from pytest_mangaassist.gates import export
    from pytest_mangaassist.gates.records import GateRecord, collecting

    monkeypatch.setattr(export, "measure_latency", lambda *args, **kwargs: recorded_timing(0.30, [3, 4, 3, 3]))
    with collecting() as records, pytest.raises(GateFailure) as info:
        assert_latency_p95(model, max_p95_ms=15, at_most_wait_seconds=0)
    message = str(info.value)
    assert message.startswith("assert_latency_p95: p95 latency in ms (onnxruntime, batch 1, 32 tokens, 1 thread(s), "
                              "400 timed calls; not measurable on this machine now: machine busy, 30% of calls "
                              "waited for a core, 3 other tasks runnable on 2 cores)")
    assert "NOT MEASURABLE ON THIS MACHINE NOW" in message and "(p95 10." in message  # the CPU time, in budget
    assert "run the latency gate in isolation" in message and "-p no:xdist" in message
    assert "covers the noise within this run only" in message
    (rec,) = records
    assert rec.payload.verdict == "not measurable on this machine now" and rec.payload.contention.busy
    assert GateRecord.from_json(rec.to_json()) == rec  # the report keeps the contention figures


def test_a_busy_machine_that_quiets_down_is_timed_again(model, monkeypatch):
    from pytest_mangaassist.gates import export
    from pytest_mangaassist.gates.records import collecting

    timings = iter([recorded_timing(0.30, [3, 4, 3, 3]), recorded_timing(0.0, [0, 0, 1, 0])])
    monkeypatch.setattr(export, "measure_latency", lambda *args, **kwargs: next(timings))
    monkeypatch.setattr(export, "wait_until_quiet", lambda deadline, threads: True)
    with collecting() as records:
        result = assert_latency_p95(model, max_p95_ms=15)
    assert not result.contention.busy and records[0].payload.attempts == 2
    assert records[0].payload.verdict == "within budget" and "busy" not in records[0].metric


def test_wait_until_quiet_gives_up_at_its_deadline():
    from pytest_mangaassist.analysis.contention import wait_until_quiet

    assert wait_until_quiet(deadline=0.0, threads=1, clock=lambda: 1.0) is False  # no time left: no probe


# Busy loops on every usable core and one more (three on the machine the suite was written on), started in
# the run under test once its model is loaded: the timed calls wait for a core, and nothing else does (a
# machine kept busy while torch imports slows every other test of the session too).
BUSY_FILE = """
import subprocess
import sys
import time

import pytest

from pytest_mangaassist import assert_latency_p95


@pytest.fixture(scope="module")
def busy_model(intent_model):
    intent_model.hf_model  # weights load lazily: loaded before the loops start, which spin only while timing
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range({loops})]
    time.sleep(0.3)  # started and runnable
    yield intent_model
    for loop in loops:
        loop.kill()
        loop.wait()

def test_within_a_generous_budget(busy_model):
    assert_latency_p95(busy_model, max_p95_ms=1e6, seq_len=8, at_least_calls=50, at_most_seconds=1, at_most_wait_seconds=0)

def test_over_a_budget_no_machine_meets(busy_model):
    assert_latency_p95(busy_model, max_p95_ms=1e-6, seq_len=8, at_least_calls=50, at_most_seconds=1, at_most_wait_seconds=0)
"""


def test_a_busy_machine_is_named_in_the_verdict_and_the_summary(pytester, small_model):
    pytester.makepyfile(test_busy=BUSY_FILE.format(loops=usable_cores() + 1))
    result = pytester.runpytest_subprocess(f"--model-path={small_model}")
    result.assert_outcomes(passed=1, failed=1)
    out = " ".join(result.stdout.str().split())  # the summary table wraps its metric column
    assert "measured on a busy machine:" in out  # the passing gate's row in the summary
    assert "the machine was busy, but the calls' own CPU time is over the budget too" in out
    assert "machine BUSY:" in out and "of calls waited for a core" in out


def test_the_exporter_logs_nothing_through_torchs_trace_logger(monkeypatch, tmp_path):
    """A cold export's draft-export fallback emits one empty DEBUG record per traced event on torch.__trace
    (741 on the reference model): silenced while exporting, the logger as it was afterwards."""
    import logging

    import torch

    from pytest_mangaassist.loading.export import run_exporter

    trace_log, seen = logging.getLogger("torch.__trace"), []

    class Remember(logging.Handler):
        def emit(self, record):
            seen.append(record)

    class Program:
        def save(self, path, external_data=False):
            pass

    def export(*args, **kwargs):
        trace_log.debug("")
        return Program()

    handler = Remember()
    trace_log.addHandler(handler)
    monkeypatch.setattr(torch.onnx, "export", export)
    try:
        run_exporter(None, (), tmp_path / "m.onnx", [], None)
        assert seen == [] and trace_log.disabled is False
        trace_log.debug("")
        assert len(seen) == 1  # outside the export, the logger is untouched
    finally:
        trace_log.removeHandler(handler)
