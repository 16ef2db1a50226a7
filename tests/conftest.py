"""Shared fixtures of the plugin's own tests: a small reference model built by the project's code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from filelock import FileLock

from mangaassist_reference.build import SMALL, build_reference

# pytester puts sys.modules back as it was after every test that uses it, so a module first imported inside
# such a test is imported again by a later one; torch refuses to register an operator library twice (the
# torch.distributed modules that transformers' model code loads). Imported here, before any test, they stay.
import transformers.modeling_utils  # noqa: E402,F401

# Test models are built once per machine, not per run or per xdist worker: the builds reuse a folder whose
# build.json fingerprint (spec, kit sources, library versions) is current, and a file lock makes the other
# workers wait for the one building. Tests copy a model before they break it.
TEST_MODELS = Path(__file__).resolve().parents[1] / "artifacts" / "test-models"


def built_once_lock(name: str) -> FileLock:
    TEST_MODELS.mkdir(parents=True, exist_ok=True)
    return FileLock(str(TEST_MODELS / f".{name}.lock"))


def built_once(name: str, build) -> Path:
    with built_once_lock(name):
        return build(TEST_MODELS / name)


@pytest.fixture(scope="session")
def small_reference() -> Path:
    """DIR with pretrained/, finetuned/ and data/ of the 2-layer model."""
    def build(out: Path) -> Path:
        build_reference(out, SMALL, log=lambda line: None)
        return out

    return built_once("small", build)


@pytest.fixture(scope="session")
def small_model(small_reference) -> Path:
    return small_reference / "finetuned"


@pytest.fixture(scope="session")
def small_golden(small_reference) -> Path:
    return small_reference / "data" / "golden.jsonl"


@pytest.fixture
def model_copy(small_model, tmp_path):
    """A private copy of the small checkpoint that a test may break."""

    def copy(name: str = "model") -> Path:
        target = tmp_path / name
        shutil.copytree(small_model, target)
        return target

    return copy


def assert_usage_error(result, *phrases):
    """A pytester run that stopped at start-up (exit 4) with a message naming the problem (phrases) and the
    fix, and no traceback."""
    out, err = result.stdout.str(), result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out + err
    assert "fix:" in err, err
    for phrase in phrases:
        assert phrase in err, err
    assert "Traceback" not in out + err and "INTERNALERROR" not in out + err


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a subprocess in folder, as pytester's runpytest_subprocess runs it (plain text, none of this
    run's PYTEST_ADDOPTS), for a run that several tests of a module read: pytester's runs are per test."""
    env = {**os.environ, "PY_COLORS": "0"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", f"--basetemp={folder / 'basetemp'}", *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=600)


def outcomes(stdout: str) -> dict[str, int]:
    """Outcome counts from a run's last line, read as RunResult.assert_outcomes reads them (warnings aside)."""
    nouns = pytest.RunResult.parse_summary_nouns(stdout.splitlines())
    return {name: count for name, count in nouns.items() if name != "warnings"}


def edit_config(folder: Path, **changes) -> None:
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config.update(changes)
    config_file.write_text(json.dumps(config))


@pytest.fixture(scope="session")
def reinit_model(small_model, tmp_path_factory) -> Path:
    """The small model with its top encoder layer re-initialised: a planted defect."""
    from mangaassist_reference.defects import reinitialise_top_layer

    return reinitialise_top_layer(small_model, tmp_path_factory.mktemp("reinit"))


# Files of pure, quick tests (about a second of CPU each): they fill the gaps at the end of a run.
QUICK_FILES = ("test_golden.py", "test_layers.py", "test_statistics.py", "test_strategies.py", "test_cka.py",
               "test_behaviour.py", "test_adapters.py", "test_comparison.py")


def pytest_collection_modifyitems(items):
    """The end-to-end file builds the full reference model (minutes on a clean machine): it runs first, so
    that under `-n 2 --dist loadfile --no-loadscope-reorder` one worker builds while the other runs the rest.
    xdist hands that worker a second file at the start, which waits behind the build: a quick one. The other
    quick files come last, where they even out the two workers' ends."""
    def order(item) -> tuple[int, int]:
        name = item.path.name
        if name == "test_example_suite.py":
            return (0, 0)
        if name in QUICK_FILES:
            return (1, 0) if name == QUICK_FILES[0] else (3, QUICK_FILES.index(name))
        return (2, 0)

    items.sort(key=order)
