"""The pytest11 entry point: options, fixtures and hooks. Imports nothing heavy.

torch and transformers are imported by the fixtures that need them, on first use, so having
the plugin installed costs unrelated pytest runs nothing.
"""

from __future__ import annotations

import pytest

from .errors import MangaAssistInputError
from .settings import Settings, add_options, load_settings

SETTINGS = pytest.StashKey[Settings]()
RECORD_PREFIX = "mangaassist: "


def pytest_addoption(parser):
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    try:
        config.stash[SETTINGS] = load_settings(config)
    except MangaAssistInputError as exc:
        raise pytest.UsageError(f"pytest-mangaassist: {exc}") from None


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
    return lines


@pytest.fixture(scope="session")
def mangaassist_settings(request) -> Settings:
    return request.config.stash[SETTINGS]


def _load(request, info, flag: str):
    from .model import IntentModel

    if info is None:
        pytest.skip(f"no {flag} given: pass {flag} DIR or set {_ini_key(flag)} in the ini file")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider: memory only
    cache_dir = cache.mkdir("mangaassist") if cache is not None else None
    return IntentModel.from_checkpoint(info, device=request.config.stash[SETTINGS].device, cache_dir=cache_dir)


def _ini_key(flag: str) -> str:
    return "mangaassist_" + flag.lstrip("-").replace("-", "_")


@pytest.fixture(scope="session")
def intent_model(request, mangaassist_settings):
    """The model under test (--model-path), loaded once per session."""
    return _load(request, mangaassist_settings.model, "--model-path")


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
    return _load(request, mangaassist_settings.baseline, "--baseline-path")


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


@pytest.fixture
def mangaassist_record(request):
    """record(title, table): show a table of figures in the run's summary (and as a JUnit property).

    Stored in the test report's user_properties, so it reaches the summary under xdist too.
    """

    def record(title: str, table: str) -> None:
        request.node.user_properties.append((RECORD_PREFIX + title, table))

    return record


def pytest_terminal_summary(terminalreporter):
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
               if getattr(r, "when", None) == "call"]
    tables = [(name[len(RECORD_PREFIX):], value) for r in reports for name, value in r.user_properties
              if name.startswith(RECORD_PREFIX)]
    if not tables:
        return
    terminalreporter.section("mangaassist figures")
    for title, table in tables:
        terminalreporter.write_line(title)
        terminalreporter.write_line(table)
        terminalreporter.write_line("")
