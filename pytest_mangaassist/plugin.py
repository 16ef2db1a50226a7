"""The pytest11 entry point: options, fixtures and hooks. Imports nothing heavy.

torch and transformers are imported by the fixtures that need them, on first use, so having
the plugin installed costs unrelated pytest runs nothing. The checks themselves live in the layer
each belongs to: options and settings in config/, the cache folders in cache/, the snapshot file in
gates/snapshot.py, the run's outcome and header in reporting/ (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import fnmatch
from pathlib import Path

import pytest

from .config import inputs, pack
from .config.rootdir import check_rootdir
from .config.settings import Settings, add_options, load_settings
from .errors import MangaAssistInputError, warn_renamed

SETTINGS = pytest.StashKey[Settings]()
SNAPSHOT = pytest.StashKey["SnapshotStore"]()
RUN_LOG = pytest.StashKey["RunLog"]()
GATE_RUN_CHECK = pytest.StashKey["GateRunCheck"]()
HYPOTHESIS_HOME = pytest.StashKey["HypothesisHome"]()
INDUCTOR_HOME = pytest.StashKey["InductorHome"]()
TRAFFIC = pytest.StashKey["Traffic | None"]()
PACK_LIMITS = pytest.StashKey[dict]()
PACK_FOLDER = Path(__file__).parent / "pack"  # a folder, not its file: the ids read test_pack.py::test_accuracy


def pytest_addoption(parser):
    add_options(parser)
    pack.add_ini(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Before the (possibly wrong) rootdir's conftest files are imported."""
    try:
        check_rootdir(early_config)
    except MangaAssistInputError as exc:
        raise pytest.UsageError(f"pytest-mangaassist: {exc}") from None


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from .cache.folders import HypothesisHome, InductorHome, check_cache, quiet_onnxruntime
    from .config.destinations import check_report_folder
    from .gates.snapshot import SnapshotStore, check_destination
    from .reporting.outcome import GateRunCheck
    from .reporting.runlog import RunLog
    from .reporting.session import ReportingSession

    config.addinivalue_line("markers", "gate(*tiers): the gate tiers this test belongs to (e.g. monthly, quarterly, "
                                       "release); select with --gate-tier")
    config.addinivalue_line("markers", f"{inputs.OPTIONAL_MARKER}(*fixture_names): skip, instead of fail, this test "
                                       "when one of these pytest-mangaassist inputs (intent_model, production_model, "
                                       "golden_set, ...; no names: any) was not given")
    quiet_onnxruntime()
    try:
        check_rootdir(config)  # also here: pytest_load_initial_conftests is skipped by some runners
        settings = config.stash[SETTINGS] = load_settings(config)
        check_report_folder(settings)
        check_destination(settings.snapshot_file, settings.update_snapshot)
        check_cache(config, settings)
        config.stash[TRAFFIC] = inputs.load_traffic_input(settings)
        config.stash[SNAPSHOT] = SnapshotStore.load(settings.snapshot_file, settings.update_snapshot)
        if settings.mlflow_uri is not None and not hasattr(config, "workerinput"):  # the controller logs the run
            from .reporting.history import check_tracking_uri

            check_tracking_uri(settings.mlflow_uri)
        if settings.pack:
            config.stash[PACK_LIMITS] = pack.resolve(config)
            _collect_pack(config)
    except MangaAssistInputError as exc:
        raise pytest.UsageError(f"pytest-mangaassist: {exc}") from None
    config.stash[RUN_LOG] = RunLog()
    config.stash[HYPOTHESIS_HOME] = HypothesisHome()
    config.stash[INDUCTOR_HOME] = InductorHome()
    config.pluginmanager.register(ReportingSession(config, config.stash[RUN_LOG], settings, config.stash[SNAPSHOT],
                                                   config.stash[TRAFFIC]), "mangaassist-reporting")
    config.stash[GATE_RUN_CHECK] = GateRunCheck()
    config.pluginmanager.register(config.stash[GATE_RUN_CHECK], "mangaassist-gate-run-check")


def _collect_pack(config) -> None:
    """--mangaassist-pack: the pack module is a test path of the run (alone when no path was named on the command
    line, beside the named ones otherwise), so its tests have ordinary ids that -k and -m select."""
    if not hasattr(config, "workerinput") and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = []
    if str(PACK_FOLDER) not in config.args:
        config.args.append(str(PACK_FOLDER))


def pytest_collect_file(file_path, parent):
    """The pack's module is collected whatever the suite's python_files patterns say."""
    settings = parent.config.stash.get(SETTINGS, None)
    if settings is None or not settings.pack or file_path.parent != PACK_FOLDER or file_path.name != "test_pack.py":
        return None
    if any(fnmatch.fnmatch(file_path.name, pattern) for pattern in parent.config.getini("python_files")):
        return None  # pytest's python plugin collects it
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_unconfigure(config):
    for key in (HYPOTHESIS_HOME, INDUCTOR_HOME):
        home = config.stash.get(key, None)
        if home is not None:
            home.restore()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Before every other plugin's changes to the collected tests (-k and -m deselection, hypothesis'
    constants cache): --gate-tier keeps the tests marked with a selected tier (and every unmarked test),
    and a run that uses the plugin keeps hypothesis' storage in pytest's cache folder (a temporary one
    without it), not in the working folder."""
    if inputs.uses_plugin(items):
        config.stash[HYPOTHESIS_HOME].move_to(_cache_dir(config, "hypothesis"))
        config.stash[INDUCTOR_HOME].move_to(_cache_dir(config, "torchinductor"))
    tiers = config.stash[SETTINGS].tiers
    if tiers:
        try:
            from .config.tiers import select_tiers

            keep, drop = select_tiers(items, tiers)
        except MangaAssistInputError as exc:
            if not hasattr(config, "workerinput"):
                raise pytest.UsageError(f"pytest-mangaassist: {exc}") from None
            # an xdist worker cannot end the run: it runs nothing and tells the controller, which exits 4
            from .reporting.outcome import WORKER_USAGE_ERROR

            config.workeroutput[WORKER_USAGE_ERROR] = f"pytest-mangaassist: {exc}"
            keep, drop = [], list(items)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test whose input option was not given fails naming it (or skips, where allowed), before its
    fixtures are set up."""
    settings = item.config.stash.get(SETTINGS, None)
    if settings is not None:
        inputs.check_inputs_given(item, settings)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Collect the gates' records, show long analyses' progress and make the snapshot available."""
    from .domain import using_routing_policy
    from .gates.records import collecting
    from .gates.snapshot import using_snapshot
    from .loading.progress import showing_progress
    from .reporting.session import GATE_PROPERTY

    with using_snapshot(item.config.stash[SNAPSHOT]), collecting() as records, \
            showing_progress(_progress_writer(item.config)), \
            using_routing_policy(item.config.stash[SETTINGS].routing_policy):
        try:
            return (yield)
        finally:  # on the item, so the call and teardown reports (JUnit XML reads the latter) carry them
            item.user_properties += [(GATE_PROPERTY, r.to_json()) for r in records]


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
    """Bad input met inside a test (a model that fails to load on first use, an unknown slice, an input
    that was not given) is reported as its message and fix, not as a traceback through the plugin. An xfail
    of a gate test expects the gate to fail: any other exception is reported as the failure it is."""
    from .reporting.outcome import INPUTS_ATTRIBUTE, unexpected_xfail

    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, MangaAssistInputError):
        report.longrepr = f"pytest-mangaassist: {call.excinfo.value}"
        if hasattr(report, "wasxfail"):  # bad input is not the failure an xfail mark expects: never green
            del report.wasxfail
            report.outcome = "failed"
    elif hasattr(report, "wasxfail") and call.excinfo is not None:
        refused = unexpected_xfail(item, call.excinfo.value)
        if refused is not None:
            del report.wasxfail
            report.outcome = "failed"
            report.sections.append(("pytest-mangaassist", refused))
    if call.when == "setup":
        needed = inputs.needed_inputs(getattr(item, "fixturenames", ()))
        if needed:
            setattr(report, INPUTS_ATTRIBUTE, needed)  # plain data: travels with xdist reports
    return report


def pytest_sessionfinish(session):
    """A run that needed the plugin's inputs but ran no gate fails (in the xdist controller, not the workers)."""
    check = session.config.stash.get(GATE_RUN_CHECK, None)
    if check is not None and not hasattr(session.config, "workerinput"):
        check.finish(session)


def pytest_report_header(config):
    from .reporting.header import header_lines

    settings = config.stash.get(SETTINGS, None)
    return None if settings is None else header_lines(config, settings, config.stash.get(TRAFFIC, None))


@pytest.fixture(scope="session")
def mangaassist_settings(request) -> Settings:
    return request.config.stash[SETTINGS]


def _load(request, info, fixture: str):
    from .loading.model import IntentModel

    settings = request.config.stash[SETTINGS]
    if info is None:
        inputs.missing_input(settings, fixture)
    return IntentModel.from_checkpoint(info, device=settings.device,
                                       cache_dir=_cache_dir(request.config, "mangaassist"))


def _cache_dir(config, name: str) -> Path | None:
    """pytest's cache folder `name`; None without a disk cache (--mangaassist-no-cache, -p no:cacheprovider)."""
    cache = getattr(config, "cache", None)
    if cache is None or config.stash[SETTINGS].no_cache:
        return None
    return cache.mkdir(name)


ATTRIBUTION_TOLERANCE = 1e-3  # relative to the largest word score
# Padding either changes the word scores or not, at any step count: the check runs the audit's fewest steps
# (8 intervals, 9 evaluations a message and condition, half of the default 16), since it runs in every cold
# session given a golden set.
ATTRIBUTION_CHECK_STEPS = 8


def _warn_if_batch_dependent(model, settings: Settings) -> None:
    """Every sweep and attribution batch pads; the gates read each row as if the message ran alone.
    Checked once per model on the golden set, logits and IG word scores (cached on disk by weight hash,
    so a warm run loads no weights for it); a failure is a warning, since every gate is then suspect."""
    import warnings

    from .cache.analyses import attribution_batch_invariance, batch_invariance

    if settings.golden_set is None:
        return
    texts = settings.golden_set.texts
    result = batch_invariance(model, texts)
    if not result.ok:
        warnings.warn(pytest.PytestWarning(result.warning(model.source)))
    # ties in length broken by the text: set order follows the process' hash seed, and each xdist worker has its own
    by_length = sorted(set(texts), key=lambda text: (len(text), text))
    sample = by_length[:2] + by_length[-1:]  # short messages padded next to the longest
    target = model.labels[0]  # any intent's logit: padding must not change any of them
    attribution_diff = attribution_batch_invariance(model, sample, target, n_steps=ATTRIBUTION_CHECK_STEPS)
    if attribution_diff > ATTRIBUTION_TOLERANCE:
        warnings.warn(pytest.PytestWarning(
            f"pytest-mangaassist: the IG word scores of {model.source} change by {attribution_diff:.1e} (relative) "
            f"when messages are attributed in one padded batch instead of alone (tolerance {ATTRIBUTION_TOLERANCE:g}); "
            "attribution gates may depend on batching. Check the attention mask and eval mode."))


@pytest.fixture(scope="session")
def intent_model(request, mangaassist_settings):
    """The model under test (--model-path), loaded once per session; warns if its logits depend on
    batch composition or padding."""
    model = _load(request, mangaassist_settings.model, "intent_model")
    _warn_if_batch_dependent(model, mangaassist_settings)
    return model


@pytest.fixture(scope="session")
def tokenizer(intent_model):
    return intent_model.tokenizer


@pytest.fixture(scope="session")
def pretrained_model(request, mangaassist_settings):
    """The checkpoint fine-tuning started from (--pretrained-path)."""
    return _load(request, mangaassist_settings.pretrained, "pretrained_model")


@pytest.fixture(scope="session")
def production_model(request, mangaassist_settings):
    """The model in production now (--production-path)."""
    model = _load(request, mangaassist_settings.production, "production_model")
    _warn_if_batch_dependent(model, mangaassist_settings)
    return model


@pytest.fixture(scope="session")
def baseline_model(production_model):
    """Deprecated name of production_model, served for one release."""
    warn_renamed("pytest-mangaassist: the baseline_model fixture", "request production_model")
    return production_model


def _given(settings, fixture: str, value):
    """value, or (None: its option was not given) the run's skip or failure naming that option."""
    if value is None:
        inputs.missing_input(settings, fixture)
    return value


@pytest.fixture(scope="session")
def golden_set(mangaassist_settings):
    """The golden set (--golden-set, or the suite's mangaassist_golden_set ini key)."""
    return _given(mangaassist_settings, "golden_set", mangaassist_settings.golden_set)


@pytest.fixture(scope="session")
def validation_set(mangaassist_settings):
    """The larger labelled set for representation analyses (--validation-set)."""
    return _given(mangaassist_settings, "validation_set", mangaassist_settings.validation_set)


@pytest.fixture(scope="session")
def traffic(request, mangaassist_settings):
    """The unlabelled traffic to replay (--traffic), validated at start-up, with the replay engine
    (--mangaassist-engine, --mangaassist-ray-address)."""
    return _given(mangaassist_settings, "traffic", request.config.stash.get(TRAFFIC, None))


@pytest.fixture(scope="session")
def training_set(mangaassist_settings):
    """The training data (--training-set), for leakage checks."""
    return _given(mangaassist_settings, "training_set", mangaassist_settings.training_set)


@pytest.fixture(scope="session")
def routing_policy(mangaassist_settings, intent_model):
    """The routing policy the routing and traffic gates use when given none: --routing-policy, else the
    profile of the model's label set, else argmax (its `source` says which)."""
    from .domain import routing_policy as policy_in_force

    return policy_in_force(intent_model.labels, mangaassist_settings.routing_policy)


def _artifact_dir(request) -> Path:
    """Where exports made for this session are kept: pytest's cache (reused by later runs and shared
    by xdist workers, keyed by the model's content hash), else (--mangaassist-no-cache, no cache
    provider) a session temporary folder."""
    folder = _cache_dir(request.config, "mangaassist")
    if folder is not None:
        return folder
    return request.getfixturevalue("tmp_path_factory").mktemp("mangaassist-exports")


@pytest.fixture(scope="session")
def onnx_model(request, mangaassist_settings, intent_model):
    """The ONNX graph under test (--onnx-path), else the model under test exported once (cached by
    weight hash), loaded in onnxruntime."""
    from .cache.artifacts import load_cached_onnx
    from .loading.runtimes import OnnxModel, check_artifact_matches

    path = mangaassist_settings.onnx_path
    loaded = OnnxModel.load(path) if path else load_cached_onnx(intent_model, _artifact_dir(request))
    check_artifact_matches(loaded, intent_model, "--onnx-path")
    return loaded


@pytest.fixture(scope="session")
def serving_artifact(request, mangaassist_settings, intent_model):
    """The compiled serving artifact (--serving-artifact / --neuron-path), else the model under test
    compiled once (torch_neuronx where installed, else torch.jit.trace; cached by weight hash)."""
    from .cache.artifacts import load_cached_serving_artifact
    from .loading.runtimes import ServingArtifact, check_artifact_matches

    path = mangaassist_settings.serving_artifact
    loaded = ServingArtifact.load(path) if path else load_cached_serving_artifact(intent_model, _artifact_dir(request))
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
