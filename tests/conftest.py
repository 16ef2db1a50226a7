"""Shared fixtures of the plugin's own tests: a small reference model built by the project's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_mangaassist.reference.build import SMALL, build_reference


@pytest.fixture(scope="session")
def small_reference(tmp_path_factory) -> Path:
    """DIR with pretrained/, finetuned/ and data/ of the 2-layer model (built once per test session)."""
    out = tmp_path_factory.mktemp("reference")
    build_reference(out, SMALL, log=lambda line: None)
    return out


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


def edit_config(folder: Path, **changes) -> None:
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config.update(changes)
    config_file.write_text(json.dumps(config))


@pytest.fixture(scope="session")
def reinit_model(small_model, tmp_path_factory) -> Path:
    """The small model with its top encoder layer re-initialised: a planted defect."""
    from pytest_mangaassist.reference.defects import reinitialise_top_layer

    return reinitialise_top_layer(small_model, tmp_path_factory.mktemp("reinit"))


def pytest_collection_modifyitems(items):
    """The end-to-end file builds the full reference model (minutes): run it first, so that under
    `-n 2 --dist loadfile` one worker builds while the other runs every other file."""
    items.sort(key=lambda item: item.path.name != "test_example_suite.py")
