"""The disk cache is untrusted input: altered, planted, truncated and renamed entries and planted artifacts
never reach a verdict; keys carry library versions; the analyses are pure and the cache owner wraps them
with one generic codec."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from pytest_mangaassist import IntentModel, load_golden_set
from pytest_mangaassist.cache import analyses, artifacts, codec, store

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_mangaassist"


# -- the codec ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Inner:
    name: str
    scores: np.ndarray
    weight: float | None


@dataclasses.dataclass(frozen=True)
class Everything:
    matrix: np.ndarray
    ragged: list[np.ndarray]
    value: float
    count: int
    flag: bool
    label: str
    maybe: np.ndarray | None
    absent: list[np.ndarray] | None
    words: tuple[str, ...]
    nested: tuple[tuple[str, ...], ...]
    pairs: tuple[tuple[int, int], ...]
    by_name: dict[str, float]
    items: list[Inner]
    empty: tuple[Inner, ...]


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def test_one_codec_round_trips_every_field_kind_exactly():
    value = Everything(
        matrix=np.arange(6, dtype=np.float32).reshape(2, 3), ragged=[np.ones((2, 3)), np.zeros((1, 3)), np.ones((0, 3))],
        value=float("nan"), count=-3, flag=True, label="isekai\x00\ud800 ", maybe=np.array([1, 2], dtype=np.int64),
        absent=None, words=("a", "", "sale!"), nested=(("x", "y"), (), ("z",)), pairs=((1, 2), (3, 4)),
        by_name={"mixed batches": 1e-6, "padded to 128": 0.0},
        items=[Inner("first", np.array([0.5, -1.0]), None), Inner("second", np.zeros(0), 2.0)], empty=())
    arrays = codec.encode(value, Everything)
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as stored:  # through a real npz, no pickles
        back = codec.decode({k: stored[k] for k in stored.files}, Everything)
    assert same(back, value)
    many = dataclasses.replace(value, items=value.items * 100, ragged=value.ragged * 100, nested=value.nested * 100)
    assert len(codec.encode(many, Everything)) == len(arrays)  # columns, not one array per list item


def test_the_codec_refuses_arrays_that_do_not_fit_the_type():
    arrays = codec.encode([Inner("a", np.ones(2), 1.0)], list[Inner])
    with pytest.raises((KeyError, ValueError, TypeError)):
        codec.decode({k: v for k, v in arrays.items() if not k.endswith("scores.flat")}, list[Inner])
    arrays["v.name.len"] = np.array([99])
    with pytest.raises(ValueError):
        codec.decode(arrays, list[Inner])
    with pytest.raises(TypeError, match="does not handle"):
        codec.encode(object(), object)


# -- entries: authenticated, unreadable ones are misses --------------------------------------------------
def compute_counting(calls: list):
    def compute():
        calls.append(1)
        return {"logits": np.arange(4.0)}
    return compute


def tamper_altered(path: Path) -> None:
    """Same header, payload re-encoded with other figures: the MAC no longer matches."""
    blob = path.read_bytes()
    buffer = io.BytesIO()
    np.savez(buffer, logits=np.full(4, 42.0))
    path.write_bytes(blob[:store.HEADER] + buffer.getvalue())


def tamper_unsigned(path: Path) -> None:
    """A valid plain .npz planted under the entry's name."""
    buffer = io.BytesIO()
    np.savez(buffer, logits=np.full(4, 42.0))
    path.write_bytes(buffer.getvalue())


def tamper_truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def tamper_empty(path: Path) -> None:
    path.write_bytes(b"")


def tamper_flipped(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-30] ^= 0x01
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("tamper", [tamper_altered, tamper_unsigned, tamper_truncated, tamper_empty, tamper_flipped])
def test_an_entry_that_does_not_verify_is_recomputed_replaced_and_named(tmp_path, monkeypatch, tamper):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    calls: list = []
    first = store.load_or_compute(tmp_path, "sweep-abc", compute_counting(calls))
    path = store.entry_path(tmp_path, "sweep-abc")
    tamper(path)
    with pytest.warns(store.CacheWarning, match=f"cache entry {path}.*recomputed and replaced"):
        again = store.load_or_compute(tmp_path, "sweep-abc", compute_counting(calls))
    assert len(calls) == 2 and np.array_equal(again["logits"], first["logits"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # replaced: it verifies again, silently
        assert np.array_equal(store.load_or_compute(tmp_path, "sweep-abc", compute_counting(calls))["logits"],
                              first["logits"])
    assert len(calls) == 2


def test_an_entry_renamed_to_another_key_does_not_verify(tmp_path, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    store.write_entry(tmp_path, "sweep-model-a", {"logits": np.full(4, 1.0)})
    store.entry_path(tmp_path, "sweep-model-a").rename(store.entry_path(tmp_path, "sweep-model-b"))
    assert store.read_entry(tmp_path, "sweep-model-b") == (None, store.ALTERED)


def test_a_cache_key_from_the_environment_stops_a_forger_who_reads_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, "ci-secret-" + "a" * 32)
    store.write_entry(tmp_path, "sweep-x", {"logits": np.full(4, 1.0)})
    assert not (tmp_path / store.KEY_FILE).exists()  # nothing in the folder to steal
    forged_key = os.urandom(32)  # whatever key the forger signs with, it is not the secret
    buffer = io.BytesIO()
    np.savez(buffer, logits=np.full(4, 42.0))
    payload = buffer.getvalue()
    store.entry_path(tmp_path, "sweep-x").write_bytes(
        store.MAGIC + store.key_id(forged_key) + store.mac(forged_key, "entry", "sweep-x", payload) + payload)
    assert store.read_entry(tmp_path, "sweep-x") == (None, store.OTHER_KEY)
    monkeypatch.setenv(store.KEY_ENV, "another-secret-" + "b" * 32)
    store.write_entry(tmp_path, "sweep-y", {"logits": np.full(4, 1.0)})
    monkeypatch.setenv(store.KEY_ENV, "ci-secret-" + "a" * 32)
    assert store.read_entry(tmp_path, "sweep-y") == (None, store.OTHER_KEY)


def test_the_folder_key_is_made_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    key = store.signing_key(tmp_path)
    assert store.signing_key(tmp_path) == key and len(key) == 32
    assert (tmp_path / store.KEY_FILE).stat().st_mode & 0o077 == 0


def test_orphaned_temporary_files_are_removed_and_fresh_ones_kept(tmp_path):
    old = store.temporary_path(tmp_path / "sweep-abc.entry")
    fresh = store.temporary_path(tmp_path / "onnx-abc.onnx", suffix=".onnx")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert store.remove_orphans(tmp_path) == [old]
    assert not old.exists() and fresh.exists()


def test_entries_hold_no_pickles(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        store.write_entry(tmp_path, "bad", {"x": np.array([{"a": 1}], dtype=object)})


# -- keys ----------------------------------------------------------------------------------------------
def test_keys_include_the_library_versions_and_the_plugins(monkeypatch):
    from importlib.metadata import version

    versions = dict(store.library_versions())
    for name in ("torch", "transformers", "captum", "onnxruntime", "onnx", "numpy", "scikit-learn",
                 "pytest-mangaassist"):
        assert versions[name] == version(name)

    class Model:
        content_hash, max_length = "abc", 128

    before = store.model_key(Model(), "sweep", "x")
    upgraded = tuple((n, "999.0" if n == "torch" else v) for n, v in store.library_versions())
    monkeypatch.setattr(store, "library_versions", lambda: upgraded)
    store.environment_key.cache_clear()
    try:
        assert store.model_key(Model(), "sweep", "x") != before
    finally:
        monkeypatch.undo()
        store.environment_key.cache_clear()
    assert store.model_key(Model(), "sweep", "x") == before


def test_the_export_names_change_with_the_library_versions(monkeypatch):
    class Model:
        content_hash, max_length = "abc", 128

    before = artifacts.onnx_export_path(Model(), "/c").name
    monkeypatch.setattr(store, "library_versions", lambda: (("onnx", "0.0.1"),))
    store.environment_key.cache_clear()
    try:
        assert artifacts.onnx_export_path(Model(), "/c").name != before
    finally:
        monkeypatch.undo()
        store.environment_key.cache_clear()


# -- purity and the cache owner ------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["sweep", "attribution", "conductance", "invariance"])
def test_the_analyses_import_no_cache(module):
    tree = ast.parse((PACKAGE / "analysis" / f"{module}.py").read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if "cache" in name or "pytest" in name or "gates" in name]


def test_cached_analyses_keep_the_pure_names_and_signatures():
    from pytest_mangaassist.analysis import attribution, conductance, invariance, sweep

    for module, name in [(sweep, "activation_sweep"), (sweep, "attention_sweep"), (sweep, "token_state_sweep"),
                         (attribution, "integrated_gradients"), (attribution, "attribution_batch_invariance"),
                         (conductance, "layer_conductance"), (invariance, "batch_invariance")]:
        cached = getattr(analyses, name)
        assert cached.__name__ == name
        assert inspect.signature(cached) == inspect.signature(getattr(module, name))


@pytest.fixture(scope="module")
def golden(small_golden):
    return load_golden_set(small_golden)


TEXTS = ["hi", "is this isekai tankobon on sale?", "where is my order"]


def run_all(model, golden):
    return {"sweep": analyses.activation_sweep(model, TEXTS), "attentions": analyses.attention_sweep(model, TEXTS),
            "tokens": analyses.token_state_sweep(model, TEXTS),
            "ig": analyses.integrated_gradients(model, TEXTS, "promotion", at_most_steps=16),
            "conductance": analyses.layer_conductance(model, TEXTS, "promotion", n_steps=8),
            "invariance": analyses.batch_invariance(model, golden.texts, at_most_texts=6),
            "ig invariance": analyses.attribution_batch_invariance(model, TEXTS[:2], "promotion"),
            "lens": analyses.decision_lens(model, golden), "patching": analyses.patching(model, golden),
            "probes": analyses.probe_f1(model, golden),
            "cka": analyses.cka_per_layer_between(model, golden.texts, model, True)}


def test_cached_analyses_equal_the_pure_ones_and_a_warm_run_loads_no_weights(small_model, golden, tmp_path):
    from pytest_mangaassist.analysis.attribution import integrated_gradients
    from pytest_mangaassist.analysis.conductance import layer_conductance
    from pytest_mangaassist.analysis.sweep import activation_sweep

    cold = run_all(IntentModel.load(small_model, cache_dir=tmp_path), golden)
    pure = IntentModel.load(small_model)  # no cache at all
    assert same(cold["sweep"], activation_sweep(pure, TEXTS))
    assert same(cold["ig"], integrated_gradients(pure, TEXTS, "promotion", at_most_steps=16))
    assert same(cold["conductance"], layer_conductance(pure, TEXTS, "promotion", n_steps=8))
    names = {p.name.split("-")[0] for p in tmp_path.glob(f"*{store.ENTRY_SUFFIX}")}
    assert {"activation_sweep", "attention_sweep", "token_state_sweep", "integrated_gradients", "layer_conductance",
            "batch_invariance", "attribution_batch_invariance", "decision_lens", "patching", "probe_f1",
            "cka_per_layer_between"} <= names
    warm_model = IntentModel.load(small_model, cache_dir=tmp_path)  # a fresh object: only the disk can answer
    with warnings.catch_warnings():
        warnings.simplefilter("error", store.CacheWarning)
        warm = run_all(warm_model, golden)
    assert warm_model._hf_model is None  # every figure came from the disk
    for name in cold:
        assert same(warm[name], cold[name]), name
    # the sweep loaded from disk is the one the pure analyses read (shared memo)
    assert activation_sweep(warm_model, TEXTS) is warm["sweep"] and warm_model._hf_model is None


def test_without_a_cache_folder_nothing_is_written(small_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = IntentModel.load(small_model)  # cache_dir=None: memory only
    first = analyses.activation_sweep(model, TEXTS)
    assert analyses.activation_sweep(model, TEXTS) is first
    assert list(tmp_path.iterdir()) == []


# -- artifacts: verified before loading ------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(small_model):
    return IntentModel.load(small_model)


def plant_torchscript(path: Path) -> bytes:
    import torch

    class Planted(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return torch.full((input_ids.shape[0], 10), 7.0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Planted()), str(path))
    return path.read_bytes()


def test_a_planted_serving_artifact_is_never_loaded(model, tmp_path, monkeypatch):
    import torch

    from pytest_mangaassist.loading.runtimes import tokenize

    monkeypatch.delenv(store.KEY_ENV, raising=False)
    target = artifacts.serving_artifact_path(model, tmp_path)
    planted = plant_torchscript(target)
    loaded_bytes = []
    real_load = torch.jit.load

    def recording_load(source, *args, **kwargs):
        loaded_bytes.append(source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes())
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", recording_load)
    with pytest.warns(store.CacheWarning, match=f"{target.name}.*no signature"):
        artifact = artifacts.load_cached_serving_artifact(model, tmp_path)
    assert planted not in loaded_bytes and target.read_bytes() != planted
    ids, mask = tokenize(model, TEXTS)
    assert np.allclose(artifact.logits(ids, mask), model.forward(TEXTS).logits, atol=1e-4)
    # a signed artifact altered afterwards is caught the same way, and a verified one is reused silently
    stamp = target.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error", store.CacheWarning)
        assert artifacts.cached_serving_artifact(model, tmp_path) == target and target.stat().st_mtime_ns == stamp
    plant_torchscript(target)
    with pytest.warns(store.CacheWarning, match="failed verification"):
        artifacts.cached_serving_artifact(model, tmp_path)
    assert target.read_bytes() != planted


def test_a_planted_onnx_export_is_rebuilt_before_loading(model, tmp_path, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    first = artifacts.load_cached_onnx(model, tmp_path)
    target = artifacts.onnx_export_path(model, tmp_path)
    good = target.read_bytes()
    target.write_bytes(good[:-100] + b"\0" * 100)
    with pytest.warns(store.CacheWarning, match="failed verification"):
        again = artifacts.load_cached_onnx(model, tmp_path)
    assert artifacts._verified_bytes(target)[1] is None and again.labels == first.labels
    ids, mask = np.array([[101, 102]]), np.array([[1, 1]])
    assert np.allclose(again.logits(ids, mask), first.logits(ids, mask), atol=1e-5)


def test_a_torchscript_load_failure_shows_the_whole_cause(tmp_path):
    from pytest_mangaassist import MangaAssistInputError, ServingArtifact
    from pytest_mangaassist.loading.runtimes import cause

    message = cause(RuntimeError("\nUnknown builtin op: neuron::forward_v2.\nCould not find any similar ops."))
    assert message == "RuntimeError: Unknown builtin op: neuron::forward_v2.\nCould not find any similar ops."
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(MangaAssistInputError) as error:
        ServingArtifact.load(garbage)
    assert "RuntimeError: PytorchStreamReader failed" in str(error.value)


def test_the_pypi_placeholder_of_torch_neuronx_is_named_once(tmp_path, monkeypatch):
    from pytest_mangaassist.loading import export

    package = tmp_path / "torch_neuronx"
    package.mkdir()
    (package / "__init__.py").write_text(
        'raise ImportError("WRONG PACKAGE: this is a placeholder; install torch-neuronx from the Neuron repository")')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch_neuronx", raising=False)
    monkeypatch.setattr(export, "_neuron_warned", False)
    with pytest.warns(export.NeuronPlaceholderWarning, match="placeholder.*torch.jit.trace.*pip uninstall torch-neuronx"):
        assert export.torch_neuronx() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export.torch_neuronx() is None  # once


def test_torch_neuronx_simply_absent_is_silent(monkeypatch):
    from pytest_mangaassist.loading import export

    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(export, "_neuron_warned", False)
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)  # import torch_neuronx raises ImportError
    monkeypatch.setattr(importlib.metadata, "version", not_installed)  # and no distribution of that name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export.torch_neuronx() is None
    assert not export._neuron_warned


# -- through pytest, as a user runs it -----------------------------------------------------------------
VERDICT_TEST = """
import numpy as np
from pytest_mangaassist.cache.analyses import activation_sweep

def test_accuracy_gate(intent_model, golden_set):
    logits = activation_sweep(intent_model, golden_set.texts).logits
    truth = np.array([intent_model.labels.index(i) for i in golden_set.intents])
    accuracy = float((logits.argmax(axis=1) == truth).mean())
    assert accuracy >= {threshold}, f"accuracy {{accuracy:.4f}} below {threshold}"
"""


def sweep_entries(pytester) -> list[Path]:
    return sorted((pytester.path / ".pytest_cache" / "d" / "mangaassist").glob(f"activation_sweep-*{store.ENTRY_SUFFIX}"))


def plant_perfect_logits(path: Path, golden, labels) -> None:
    """A valid .npz (the codec's layout) whose logits route every message to its true intent."""
    with np.load(io.BytesIO(path.read_bytes()[store.HEADER:]), allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["v.logits"] = np.eye(len(labels), dtype=np.float32)[[labels.index(i) for i in golden.intents]] * 50
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(path.read_bytes()[:store.HEADER] + buffer.getvalue())


def test_a_tampered_cache_never_turns_a_failing_gate_green(pytester, small_model, small_golden, golden, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    model = IntentModel.load(small_model, cache_dir=pytester.path / ".pytest_cache" / "d" / "mangaassist")
    labels = list(model.labels)
    logits = model.forward(golden.texts).logits
    accuracy = float((logits.argmax(axis=1) == np.array([labels.index(i) for i in golden.intents])).mean())
    threshold = round(min(accuracy + 0.05, 0.999), 3)  # the model fails it; perfect logits would pass it
    pytester.makepyfile(test_verdict=VERDICT_TEST.format(threshold=threshold))
    args = (f"--model-path={small_model}", f"--golden-set={small_golden}")
    # the entry a first run would write, written here (a run costs a torch import and a model load); each run
    # below names it and leaves it byte for byte as it was, so an entry the plugin would not read fails the test
    analyses.activation_sweep(model, golden.texts)
    [entry] = sweep_entries(pytester)
    good = entry.read_bytes()

    def unsigned(path):
        plant_perfect_logits(path, golden, labels)
        path.write_bytes(path.read_bytes()[store.HEADER:])
        with np.load(path, allow_pickle=False) as planted:  # trusted, it would pass the gate at 1.000
            assert (planted["v.logits"].argmax(axis=1) == [labels.index(i) for i in golden.intents]).all()

    # the plant (a valid .npz whose logits pass every message) and a truncated entry (a crash before);
    # an entry altered in place, renamed or signed with another key: test_an_entry_that_does_not_verify_...
    for tamper, why in [(unsigned, "no signature"), (tamper_truncated, "failed verification")]:
        tamper(entry)
        orphan = store.temporary_path(entry)  # a writer killed an hour ago
        os.utime(orphan, (time.time() - 3600,) * 2)
        result = pytester.runpytest_subprocess(*args)
        out = result.stdout.str()
        result.assert_outcomes(failed=1)
        assert f"accuracy {accuracy:.4f} below {threshold}" in out  # same figure, same verdict
        assert entry.name in out and why in out and "recomputed and replaced" in out
        assert "Traceback" not in out
        assert entry.read_bytes() == good  # replaced by the recomputed (deterministic) entry
        assert not orphan.exists()


def test_a_planted_serving_artifact_is_not_run_by_the_plugin(pytester, small_model, model, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    pytester.makepyfile(test_serving="""
        import numpy as np
        from pytest_mangaassist.loading.runtimes import tokenize

        def test_serving_logits(serving_artifact, intent_model):
            ids, mask = tokenize(intent_model, ["where is my order", "hi"])
            served = serving_artifact.logits(ids, mask)
            assert np.allclose(served, intent_model.forward(["where is my order", "hi"]).logits, atol=1e-4), served
        """)
    # the signed artifact a first run would leave, made here (a run costs a torch import and a model load); the
    # run below names it, so a plugin that cached elsewhere fails the test
    folder = pytester.path / ".pytest_cache" / "d" / "mangaassist"
    target = artifacts.cached_serving_artifact(model, folder)
    planted = plant_torchscript(target)
    result = pytester.runpytest_subprocess(f"--model-path={small_model}")
    result.assert_outcomes(passed=1)
    assert target.name in result.stdout.str() and "failed verification" in result.stdout.str()
    assert list(folder.glob("serving-*.pt")) == [target] and target.read_bytes() != planted
