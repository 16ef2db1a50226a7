"""The pytest11 entry point: options, fixtures and hooks. Imports nothing heavy.

torch and transformers are imported by the fixtures that need them, on first use, so having
the plugin installed costs unrelated pytest runs nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from .errors import MangaAssistInputError
from .config.settings import Settings, add_options, load_settings

SETTINGS = pytest.StashKey[Settings]()
BASELINE = pytest.StashKey["BaselineStore"]()
RUN_LOG = pytest.StashKey["RunLog"]()


def pytest_addoption(parser):
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from .gates.snapshot import BaselineStore
    from .reporting.reports import RunLog
    from .reporting.session import ReportingSession

    config.addinivalue_line("markers", "gate(*tiers): the gate tiers this test belongs to (e.g. monthly, quarterly, "
                                       "release); select with --gate-tier")
    try:
        settings = config.stash[SETTINGS] = load_settings(config)
        config.stash[BASELINE] = BaselineStore.load(settings.baseline_file, settings.update_baseline)
    except MangaAssistInputError as exc:
        raise pytest.UsageError(f"pytest-mangaassist: {exc}") from None
    config.stash[RUN_LOG] = RunLog()
    config.pluginmanager.register(ReportingSession(config, config.stash[RUN_LOG], settings, config.stash[BASELINE]),
                                  "mangaassist-reporting")


def pytest_collection_modifyitems(config, items):
    """--gate-tier: keep the tests marked with a selected tier (and every unmarked test)."""
    tiers = config.stash[SETTINGS].tiers
    if not tiers:
        return
    keep, drop = [], []
    for item in items:
        marks = [m for m in item.iter_markers("gate")]
        marked = {str(t) for m in marks for t in (*m.args, *([m.kwargs["tier"]] if "tier" in m.kwargs else []))}
        (keep if not marks or marked & set(tiers) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Collect the gates' records, show long analyses' progress and make the baseline available."""
    from .gates.snapshot import _active
    from .loading.progress import showing_progress
    from .gates.records import collecting
    from .reporting.session import GATE_PROPERTY

    token = _active.set(item.config.stash[BASELINE])
    try:
        with collecting() as records, showing_progress(_progress_writer(item.config)):
            try:
                return (yield)
            finally:  # on the item, so the call and teardown reports (JUnit XML reads the latter) carry them
                item.user_properties += [(GATE_PROPERTY, r.to_json()) for r in records]
    finally:
        _active.reset(token)


def _progress_writer(config):
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
        return None

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            terminal.write_line(line)

    return write


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Bad input met inside a test (a model that fails to load on first use, an unknown slice) is
    reported as its message and fix, not as a traceback through the plugin."""
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, MangaAssistInputError):
        report.longrepr = f"pytest-mangaassist: {call.excinfo.value}"
    return report


def pytest_report_header(config):
    settings = config.stash.get(SETTINGS, None)
    if settings is None or settings.model is None:
        return None
    lines = [f"mangaassist: model {settings.model.path} ({settings.model.model_type}, "
             f"{len(settings.model.labels)} labels)"]
    if settings.golden_set is not None:
        lines.append(f"mangaassist: golden set {settings.golden_set.source} ({len(settings.golden_set)} examples)")
    for what, path in (("onnx", settings.onnx_path), ("serving artifact", settings.serving_artifact)):
        if path is not None:
            lines.append(f"mangaassist: {what} {path}")
    if settings.tiers:
        lines.append(f"mangaassist: gate tiers {', '.join(settings.tiers)}")
    return lines


@pytest.fixture(scope="session")
def mangaassist_settings(request) -> Settings:
    return request.config.stash[SETTINGS]


def _load(request, info, flag: str):
    from .loading.model import IntentModel

    if info is None:
        pytest.skip(f"no {flag} given: pass {flag} DIR or set {_ini_key(flag)} in the ini file")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider: memory only
    cache_dir = cache.mkdir("mangaassist") if cache is not None else None
    return IntentModel.from_checkpoint(info, device=request.config.stash[SETTINGS].device, cache_dir=cache_dir)


def _ini_key(flag: str) -> str:
    return "mangaassist_" + flag.lstrip("-").replace("-", "_")


ATTRIBUTION_TOLERANCE = 1e-3  # relative to the largest word score


def _warn_if_batch_dependent(model, settings) -> None:
    """Every sweep and attribution batch pads; the gates read each row as if the message ran alone.
    Checked once per model on the golden set, logits and IG word scores (cached on disk by weight hash,
    so a warm run loads no weights for it); a failure is a warning, since every gate is then suspect."""
    import warnings

    import numpy as np

    from .analysis.attribution import batch_invariance as attribution_invariance
    from .analysis.invariance import TOLERANCE, InvarianceResult, batch_invariance
    from .cache.store import cached_on_model, texts_hash

    if settings.golden_set is None:
        return
    texts = settings.golden_set.texts

    def compute() -> dict:
        result = batch_invariance(model, texts)
        by_length = sorted(set(texts), key=len)
        sample = by_length[:2] + by_length[-1:]  # short messages padded next to the longest
        target = model.labels[0]  # any intent's logit: padding must not change any of them
        return {"conditions": np.array(list(result.max_abs_diff)), "diffs": np.array(list(result.max_abs_diff.values())),
                "changes": np.array([list(c) for c in result.route_changes], dtype=str).reshape(-1, 4),
                "n_texts": np.array(result.n_texts),
                "attribution_diff": np.array(attribution_invariance(model, sample, target))}

    arrays = cached_on_model(model, "invariance", ("invariance-2", texts_hash(texts)), compute)
    result = InvarianceResult(TOLERANCE, int(arrays["n_texts"]),
                              dict(zip(map(str, arrays["conditions"]), map(float, arrays["diffs"]))),
                              tuple(tuple(map(str, row)) for row in arrays["changes"]))
    if not result.ok:
        warnings.warn(pytest.PytestWarning(result.warning(model.source)))
    attribution_diff = float(arrays["attribution_diff"])
    if attribution_diff > ATTRIBUTION_TOLERANCE:
        warnings.warn(pytest.PytestWarning(
            f"pytest-mangaassist: the IG word scores of {model.source} change by {attribution_diff:.1e} (relative) "
            f"when messages are attributed in one padded batch instead of alone (tolerance {ATTRIBUTION_TOLERANCE:g}); "
            "attribution gates may depend on batching. Check the attention mask and eval mode."))


@pytest.fixture(scope="session")
def intent_model(request, mangaassist_settings):
    """The model under test (--model-path), loaded once per session; warns if its logits depend on
    batch composition or padding."""
    model = _load(request, mangaassist_settings.model, "--model-path")
    _warn_if_batch_dependent(model, mangaassist_settings)
    return model


@pytest.fixture(scope="session")
def tokenizer(intent_model):
    return intent_model.tokenizer


@pytest.fixture(scope="session")
def pretrained_model(request, mangaassist_settings):
    """The checkpoint fine-tuning started from (--pretrained-path)."""
    return _load(request, mangaassist_settings.pretrained, "--pretrained-path")


@pytest.fixture(scope="session")
def baseline_model(request, mangaassist_settings):
    """The model in production now (--baseline-path)."""
    model = _load(request, mangaassist_settings.baseline, "--baseline-path")
    _warn_if_batch_dependent(model, mangaassist_settings)
    return model


@pytest.fixture(scope="session")
def golden_set(mangaassist_settings):
    """The golden set (--golden-set, or the suite's mangaassist_golden_set ini key)."""
    if mangaassist_settings.golden_set is None:
        pytest.skip("no golden set: pass --golden-set FILE.jsonl or set mangaassist_golden_set in the ini file")
    return mangaassist_settings.golden_set


@pytest.fixture(scope="session")
def validation_set(mangaassist_settings):
    """The larger labelled set for representation analyses (--validation-set)."""
    if mangaassist_settings.validation_set is None:
        pytest.skip("no validation set: pass --validation-set FILE.jsonl or set mangaassist_validation_set "
                    "in the ini file")
    return mangaassist_settings.validation_set


def _artifact_dir(request) -> Path:
    """Where exports made for this session are kept: pytest's cache (reused by later runs and shared
    by xdist workers, keyed by the model's content hash), else a session temporary folder."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return cache.mkdir("mangaassist")
    return request.getfixturevalue("tmp_path_factory").mktemp("mangaassist-exports")


@pytest.fixture(scope="session")
def onnx_model(request, mangaassist_settings, intent_model):
    """The ONNX graph under test (--onnx-path), else the model under test exported once (cached by
    weight hash), loaded in onnxruntime."""
    from .loading.export import cached_onnx_export
    from .loading.runtimes import OnnxModel, check_artifact_matches

    path = mangaassist_settings.onnx_path
    loaded = OnnxModel.load(path) if path else OnnxModel.load(cached_onnx_export(intent_model, _artifact_dir(request)),
                                                                exported_here=True)
    check_artifact_matches(loaded, intent_model, "--onnx-path")
    return loaded


@pytest.fixture(scope="session")
def serving_artifact(request, mangaassist_settings, intent_model):
    """The compiled serving artifact (--serving-artifact / --neuron-path), else the model under test
    compiled once (torch_neuronx where installed, else torch.jit.trace; cached by weight hash)."""
    from .loading.export import cached_serving_artifact
    from .loading.runtimes import ServingArtifact, check_artifact_matches

    path = mangaassist_settings.serving_artifact
    loaded = (ServingArtifact.load(path) if path else
              ServingArtifact.load(cached_serving_artifact(intent_model, _artifact_dir(request)), compiled_here=True))
    check_artifact_matches(loaded, intent_model, "--serving-artifact")
    return loaded


@pytest.fixture
def mangaassist_record(request):
    """record(title, table): show a table of figures in the run's summary (and as a JUnit property).

    Stored in the test report's user_properties, so it reaches the summary under xdist too.
    """

    from .reporting.session import RECORD_PREFIX

    def record(title: str, table: str) -> None:
        request.node.user_properties.append((RECORD_PREFIX + title, table))

    return record
