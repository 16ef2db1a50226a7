"""Hostile files where the plugin keeps state (#23, items 1-4, 7, 8 and the FIFO of 10): a snapshot file or a
cache folder restored as a symbolic link, FIFO or device; links, loops and folders planted as cache entries,
locks and the key file; snapshot figures outside their metric's range; an empty or short cache key; torch's
inductor cache outside the project.

Start-up refusals run pytest as a user does, through pytester in this process (about 0.1 s a run instead of a
second: they stop at configure, where the plugin imports no torch module, so nothing is imported twice) and
assert exit code 4, the problem, the fix and no traceback. What the cache does with a planted
file is the cache's business, not pytest's: those cases call the store directly and assert the warning, the
recomputed value, that nothing outside the folder was written, and that the next read is clean.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_usage_error
from pytest_mangaassist.cache import artifacts, files, store
from pytest_mangaassist.cache.folders import InductorHome
from pytest_mangaassist.errors import GateFailure, MangaAssistInputError
from pytest_mangaassist.gates.records import GateRecord, collecting
from pytest_mangaassist.gates.snapshot import SnapshotStore, assert_no_regression, snapshot_bounds

SECRET = "0123456789abcdef" * 4  # 64 hex digits, as secrets.token_hex(32) prints
SNAPSHOT_TEST = """
from pytest_mangaassist import assert_no_regression

def test_accuracy():
    assert_no_regression("golden accuracy", 0.5, max_regression=0.01)
"""


def no_long_numbers(text: str) -> None:
    """A message never prints a 309-digit expansion of a figure."""
    assert not re.search(r"\d{20,}", text), text


# -- 1 and 10. the snapshot file is not a regular file -------------------------------------------------
@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_snapshot=SNAPSHOT_TEST)
    return pytester


@pytest.mark.parametrize("given_as", ["default name", "option"])
def test_a_snapshot_that_is_a_link_is_refused_and_its_target_never_written(suite, tmp_path, given_as):
    target = tmp_path / "victim.json"
    target.write_text('{"figures": {"golden accuracy": 0.97}}\n')
    link = suite.path / ("mangaassist-snapshot.json" if given_as == "default name" else "figures.json")
    link.symlink_to(target)
    args = [] if given_as == "default name" else [f"--mangaassist-snapshot-file={link}"]
    result = suite.runpytest_inprocess("--mangaassist-update-snapshot", *args)
    assert_usage_error(result, f"{link} is a symbolic link (to {target})", "neither reads nor writes through it",
                       "--mangaassist-snapshot-file")
    assert target.read_text() == '{"figures": {"golden accuracy": 0.97}}\n' and link.is_symlink()


@pytest.mark.parametrize("kind, phrase", [("fifo", "is a FIFO (named pipe)"), ("device", "is a character device")])
def test_a_snapshot_that_is_a_fifo_or_a_device_is_named_as_what_it_is(suite, kind, phrase):
    if kind == "fifo":
        path = suite.path / "mangaassist-snapshot.json"
        os.mkfifo(path)  # opening it to read would block the run forever
        args = []
    else:
        path = Path("/dev/null")
        args = [f"--mangaassist-snapshot-file={path}", "--mangaassist-update-snapshot"]
    result = suite.runpytest_inprocess(*args)
    assert_usage_error(result, f"{path} {phrase}")
    assert "folder" not in result.stderr.str().split("fix:")[0]


# -- 7. figures outside their metric's range -----------------------------------------------------------
@pytest.mark.parametrize("content, phrase", [
    ('{"figures": {"golden accuracy": -1e308}}', "'golden accuracy' is -1e+308, outside its range [0, 1]"),
    ('{"figures": {"golden accuracy": 1.5}}', "'golden accuracy' is 1.5, outside its range [0, 1]"),
    ('{"figures": {"p95 ms": -3}, "bounds": {"p95 ms": [0, null]}}', "'p95 ms' is -3, outside its range [0, inf]"),
    ('{"figures": {"golden accuracy": 1' + "0" * 400 + '}}', "too large for a float"),
    ('{"figures": {"p95 ms": 3}, "bounds": {"p95 ms": [5, 1]}}', "the range of 'p95 ms' is"),
])
def test_a_snapshot_figure_outside_its_range_is_refused_at_start_up(suite, content, phrase):
    (suite.path / "mangaassist-snapshot.json").write_text(content)
    result = suite.runpytest_inprocess()
    assert_usage_error(result, phrase, "--mangaassist-update-snapshot")
    no_long_numbers(result.stderr.str())


def test_ranges_other_than_a_rate_are_declared_checked_and_kept(tmp_path):
    path = tmp_path / "mangaassist-snapshot.json"
    store_ = SnapshotStore.load(path, update=True)
    store_.write({"p95 ms": 120.0, "accuracy": 0.9}, {"p95 ms": (0.0, math.inf), "accuracy": (0.0, 1.0)})
    assert json.loads(path.read_text()) == {"figures": {"accuracy": 0.9, "p95 ms": 120.0},
                                            "bounds": {"p95 ms": [0.0, None]}}
    loaded = SnapshotStore.load(path)
    assert loaded.values == {"accuracy": 0.9, "p95 ms": 120.0} and loaded.bounds == {"p95 ms": (0.0, math.inf)}
    with collecting():  # this test's own figures stay out of the plugin's summary of the outer run
        assert assert_no_regression("p95 ms", 125.0, max_regression=10, higher_is_better=False,
                                    bounds=(0, math.inf), snapshot=path) == 125.0
    with pytest.raises(MangaAssistInputError, match=r"holds 'p95 ms' = 120, outside the metric's range \[0, 1\]"):
        assert_no_regression("p95 ms", 0.5, max_regression=10, snapshot=path)  # a latency is no rate
    with pytest.raises(MangaAssistInputError, match=r"the measured 'accuracy' is -1e\+308, outside"):
        assert_no_regression("accuracy", -1e308, max_regression=0.01, snapshot=path)
    with pytest.raises(MangaAssistInputError, match="bounds must be"):
        assert_no_regression("accuracy", 0.9, max_regression=0.01, bounds=(1, 0), snapshot=path)


def test_the_ranges_travel_with_the_records_and_huge_figures_print_short():
    with collecting() as records:
        with pytest.raises(GateFailure) as failed:
            assert_no_regression("p95 ms", 1e300, max_regression=1, higher_is_better=False, bounds=(0, math.inf),
                                 snapshot={"p95 ms": 100.0})
    no_long_numbers(str(failed.value))
    assert "1.00e+300" in str(failed.value)
    again = [GateRecord.from_json(r.to_json()) for r in records]  # as xdist carries them to the controller
    assert snapshot_bounds(again) == {"p95 ms": (0.0, math.inf)}


# -- 8. the cache key ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, phrase", [("", "is set but empty"), ("ci-secret", "is set but 9 characters long"),
                                           (" " * 40, "is set but empty")])
def test_an_empty_or_short_cache_key_is_refused_with_the_length_it_needs(suite, monkeypatch, value, phrase):
    monkeypatch.setenv(store.KEY_ENV, value)
    result = suite.runpytest_inprocess()
    assert_usage_error(result, f"{store.KEY_ENV} {phrase}", "at least 32 characters", "token_hex")


@pytest.mark.parametrize("secret", [SECRET, None])
def test_the_header_says_which_key_signs_the_cache(suite, monkeypatch, small_model, secret):
    if secret:
        monkeypatch.setenv(store.KEY_ENV, secret)
    result = suite.runpytest_inprocess(f"--model-path={small_model}", "--collect-only", "-o",
                                       "mangaassist_no_cache=false")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK and "Traceback" not in out, out
    if secret:
        assert f"mangaassist: cache signed with {store.KEY_ENV} (a secret from the environment)" in out, out
        assert secret not in out + result.stderr.str()
    else:
        assert f"mangaassist: cache signed with the folder key {store.KEY_FILE}" in out, out


# -- 2 and 4. pytest's cache folders restored as links or files ----------------------------------------
@pytest.mark.parametrize("where, plant, phrase", [
    ("d/mangaassist", "link", "is a symbolic link (to"),
    ("d/mangaassist", "file", "is a regular file"),
    ("d", "link", "is a symbolic link (to"),
    ("d/hypothesis", "fifo", "is a FIFO (named pipe)"),
])
def test_a_cache_folder_planted_as_a_link_or_a_file_stops_the_run_before_any_write(suite, tmp_path, small_golden,
                                                                                   where, plant, phrase):
    path = suite.path / ".pytest_cache" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    {"link": lambda: path.symlink_to(outside, target_is_directory=True), "file": lambda: path.write_text("x"),
     "fifo": lambda: os.mkfifo(path)}[plant]()
    result = suite.runpytest_inprocess(f"--golden-set={small_golden}")
    assert_usage_error(result, f"The cache folder {path} {phrase}", f"rm {path}", "--mangaassist-no-cache")
    assert list(outside.iterdir()) == []


def compute():
    return {"logits": np.arange(4.0)}


def read_clean(folder: Path, name: str) -> None:
    """The entry planted over was replaced: the next read is silent and served from the disk."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = store.load_or_compute(folder, name, lambda: pytest.fail("recomputed again"))
    assert np.array_equal(value["logits"], np.arange(4.0))


def plant_loop(path: Path) -> None:
    path.symlink_to(path.name)  # a link to itself: ELOOP on every open


def plant_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")  # read to the end, it never ends


def plant_fifo(path: Path) -> None:
    os.mkfifo(path)  # opened to read, it blocks


def plant_folder(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("x")


def plant_outside_link(path: Path) -> None:
    outside = path.parent.parent / "outside.entry"
    outside.write_bytes(b"victim")
    path.symlink_to(outside)


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    """An empty cache folder signed with the folder key (no MANGAASSIST_CACHE_KEY in the environment)."""
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("plant, what", [(plant_loop, "is a symbolic link"), (plant_dev_zero, "is a symbolic link"),
                                         (plant_fifo, "is a FIFO (named pipe)"), (plant_folder, "is a folder"),
                                         (plant_outside_link, "is a symbolic link")])
def test_an_entry_planted_as_a_link_fifo_or_folder_is_recomputed_and_replaced(tmp_path, cache_folder, plant, what):
    folder = cache_folder
    entry = store.entry_path(folder, "sweep-abc")
    plant(entry)
    with pytest.warns(store.CacheWarning, match=re.escape(f"cache entry {entry} {what}, not a regular file")):
        value = store.load_or_compute(folder, "sweep-abc", compute)
    assert np.array_equal(value["logits"], np.arange(4.0))
    assert entry.is_file() and not entry.is_symlink()
    read_clean(folder, "sweep-abc")
    if plant is plant_outside_link:
        assert (tmp_path / "outside.entry").read_bytes() == b"victim"


@pytest.mark.parametrize("plant", [plant_loop, plant_outside_link, plant_folder])
def test_a_lock_planted_as_a_link_or_folder_is_removed_and_the_entry_computed(tmp_path, cache_folder, plant):
    folder = cache_folder
    lock = folder / ".sweep-abc.lock"
    plant(lock)
    with pytest.warns(store.CacheWarning, match=re.escape(f"cache lock {lock} was a")):
        store.load_or_compute(folder, "sweep-abc", compute)
    read_clean(folder, "sweep-abc")
    if plant is plant_outside_link:
        assert (tmp_path / "outside.entry").read_bytes() == b"victim"


@pytest.mark.parametrize("plant", [plant_dev_zero, plant_fifo, plant_loop])
def test_a_key_file_planted_as_a_link_or_fifo_is_replaced_by_a_new_key(tmp_path, cache_folder, plant):
    folder = cache_folder
    plant(folder / store.KEY_FILE)
    key = store.signing_key(folder)
    assert len(key) == 32 and (folder / store.KEY_FILE).is_file() and not (folder / store.KEY_FILE).is_symlink()
    assert store.signing_key(folder) == key


@pytest.mark.parametrize("plant", ["link", "file"])
def test_a_cache_folder_swapped_during_the_run_is_used_for_nothing(tmp_path, monkeypatch, plant):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "cache"
    folder.symlink_to(outside) if plant == "link" else folder.write_text("x")
    what = "a symbolic link (to" if plant == "link" else "a regular file, not a folder"
    with pytest.warns(store.CacheWarning, match=f"cache folder unusable .*{re.escape(what)}.*used uncached"):
        assert np.array_equal(store.load_or_compute(folder, "sweep-abc", compute)["logits"], np.arange(4.0))
    assert list(outside.iterdir()) == []


def test_a_planted_artifact_link_is_not_read(tmp_path, monkeypatch):
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    target = tmp_path / "onnx-abc.onnx"
    plant_dev_zero(target)
    assert artifacts._verified_bytes(target) == (None, "is a symbolic link, not a regular file")


def test_a_large_key_file_is_not_read_whole(tmp_path):
    with open(tmp_path / "big", "wb") as fh:
        fh.truncate(2 * store.KEY_FILE_LIMIT)
    with pytest.raises(files.NotAFile, match="more than the 1,024 accepted"):
        files.read_file(tmp_path / "big", store.KEY_FILE_LIMIT)


# -- 3. torch's inductor cache --------------------------------------------------------------------------
INDUCTOR_TEST = """
import os

def test_inductor_cache(golden_set):
    from torch._inductor.runtime.cache_dir_utils import cache_dir  # what torch itself will use
    print("INDUCTOR", cache_dir())
"""


def test_the_inductor_cache_is_kept_in_pytests_cache_folder(pytester, monkeypatch, small_golden):
    monkeypatch.delenv(InductorHome.VARIABLE, raising=False)
    monkeypatch.delenv(store.KEY_ENV, raising=False)
    pytester.makepyfile(test_inductor=INDUCTOR_TEST)
    result = pytester.runpytest_subprocess("-s", f"--golden-set={small_golden}", "-p", "no:randomly")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK and "Traceback" not in out, out
    assert f"INDUCTOR {pytester.path / '.pytest_cache' / 'd' / 'torchinductor'}" in out, out


def test_a_users_inductor_cache_folder_wins_and_a_temporary_one_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(InductorHome.VARIABLE, str(tmp_path / "mine"))
    home = InductorHome()
    home.move_to(tmp_path / "pytest-cache")
    assert os.environ[InductorHome.VARIABLE] == str(tmp_path / "mine")
    home.restore()
    assert os.environ[InductorHome.VARIABLE] == str(tmp_path / "mine")
    monkeypatch.delenv(InductorHome.VARIABLE)
    home.move_to(None)  # no disk cache: a temporary folder, removed at the end
    temporary = Path(os.environ[InductorHome.VARIABLE])
    assert temporary.is_dir()
    home.restore()
    assert InductorHome.VARIABLE not in os.environ and not temporary.exists()
