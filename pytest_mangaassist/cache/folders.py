"""pytest's cache folder as the plugin uses it: its disk cache (mangaassist/) and, for runs that use the plugin,
the storage of the libraries it drives (hypothesis' example database, torch inductor's cache), so that they
write only inside it; onnxruntime's telemetry writes nothing. At start-up the cache key
(MANGAASSIST_CACHE_KEY) is checked, and the folders are real folders, not links planted by a restored cache.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..config.inputs import inputs_given
from ..config.settings import Settings
from . import store

CACHE_FOLDERS = ("mangaassist", "hypothesis", "torchinductor")  # what the plugin keeps in pytest's cache


def check_cache(config, settings: Settings) -> None:
    """MANGAASSIST_CACHE_KEY, where set, is a usable secret; in a run given the plugin's inputs, pytest's
    cache folder, its d/ and the plugin's folders in it are real folders (or absent): a restored CI cache
    must not make a link of them. (A project that merely has the plugin installed keeps its own choices.)"""
    store.key_from_environment()
    root = cache_root(config, settings)
    if root is not None and inputs_given(settings):
        store.check_cache_folders([root, root / "d", *(root / "d" / name for name in CACHE_FOLDERS)])


def cache_root(config, settings: Settings) -> Path | None:
    """pytest's cache folder (cache_dir ini); None without a disk cache."""
    cache = getattr(config, "cache", None)
    if cache is None or settings.no_cache:
        return None
    return Path(cache._cachedir)  # pytest's Cache keeps it there; cache.mkdir(name) is _cachedir / "d" / name


def quiet_onnxruntime() -> None:
    """onnxruntime writes a telemetry database under ~/.cache/Microsoft when imported; off, unless the
    user set ORT_DISABLE_TELEMETRY themselves. Read at import, so set before any import (and inherited
    by xdist workers); if onnxruntime is already imported, turn its events off at least."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    ort = sys.modules.get("onnxruntime")
    if ort is not None and os.environ["ORT_DISABLE_TELEMETRY"] == "1":
        try:
            ort.disable_telemetry_events()
        except Exception:
            pass


class HypothesisHome:
    """Keeps hypothesis' storage (`.hypothesis/`: example database, constants cache) inside pytest's cache
    folder instead of the working folder, for runs that use the plugin; a user's own choice
    (HYPOTHESIS_STORAGE_DIRECTORY, set_hypothesis_home_dir) wins. Restored at the end of the run."""

    def __init__(self) -> None:
        self._previous = None
        self._moved = False
        self._temporary: str | None = None

    def move_to(self, folder: Path | None) -> None:
        if self._moved or os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
            return
        try:
            import hypothesis.configuration as configuration
        except ImportError:
            return
        current = getattr(configuration, "__hypothesis_home_directory", None)
        default = getattr(configuration, "__hypothesis_home_directory_default", None)
        if current is not None and current != default:
            return  # set by the user
        if folder is None:
            folder = Path(self._temporary or tempfile.mkdtemp(prefix="mangaassist-hypothesis-"))
            self._temporary = str(folder)
        self._previous = current
        configuration.set_hypothesis_home_dir(folder)
        self._moved = True

    def restore(self) -> None:
        if self._moved:
            import hypothesis.configuration as configuration

            configuration.set_hypothesis_home_dir(self._previous)
            self._moved = False
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


class InductorHome:
    """torch's inductor (torch.export, the dynamo ONNX exporter) keeps a cache in /tmp/torchinductor_<user>;
    for runs that use the plugin it goes into pytest's cache folder (a temporary folder without one), unless
    TORCHINDUCTOR_CACHE_DIR is set. torch reads the variable on each use, so setting it before the first
    export is enough; restored at the end of the run."""

    VARIABLE = "TORCHINDUCTOR_CACHE_DIR"

    def __init__(self) -> None:
        self._moved = False
        self._temporary: str | None = None

    def move_to(self, folder: Path | None) -> None:
        if self._moved or self.VARIABLE in os.environ:
            return
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="mangaassist-inductor-"))
            self._temporary = str(folder)
        os.environ[self.VARIABLE] = str(folder)
        self._moved = True

    def restore(self) -> None:
        if self._moved:
            os.environ.pop(self.VARIABLE, None)
            self._moved = False
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
