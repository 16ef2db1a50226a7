"""Fault injection at start-up and at the level of the run (#12): each case is run as a user runs pytest
(pytester, in a subprocess) and asserts the exit code, the message and that no traceback is printed.

Covered here: a path option written with a space (`--model-path DIR`) that moves pytest's rootdir and ini
file; inputs that were not given; a run in which no gate ran; an unknown --gate-tier; unwritable report
and snapshot destinations; --mangaassist-no-cache; golden-set duplicates; files written outside the
project (hypothesis, onnxruntime); the header's count of texts cut at max_length.
"""

from __future__ import annotations

import json
import shutil

import pytest

USAGE, FAILED, OK = pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.OK


def output(result) -> str:
    """stdout and stderr of a run, after checking that neither holds a traceback or an internal error."""
    out = result.stdout.str() + "\n" + result.stderr.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    return out


def expect(result, code, *phrases) -> str:
    out = output(result)
    assert result.ret == code, out
    for phrase in phrases:
        assert phrase in out, (phrase, out)
    return out


# -- 0. `--model-path DIR` chooses another rootdir / ini file ------------------------------------------
SUITE_TEST = """
from pathlib import Path

def test_the_suite_ini_was_read(mangaassist_settings, golden_set, request):
    assert Path(golden_set.source) == Path(request.config.rootpath) / "golden.jsonl"
    assert mangaassist_settings.model is not None
"""


@pytest.fixture
def suite(pytester, small_golden):
    """A gate suite as a team keeps it: pytest.ini with the golden set next to it."""
    (pytester.path / "pytest.ini").write_text("[pytest]\naddopts = -ra\nmangaassist_golden_set = golden.jsonl\n")
    shutil.copy(small_golden, pytester.path / "golden.jsonl")
    pytester.makepyfile(test_suite=SUITE_TEST)
    return pytester


@pytest.fixture(params=["inside", "outside", "outside-in-a-project"])
def model_dir(request, suite, small_model, tmp_path_factory):
    if request.param == "inside":  # models/ under the suite's folder
        return shutil.copytree(small_model, suite.path / "models" / "candidate")
    if request.param == "outside":  # a folder of its own, no ini file above it
        return shutil.copytree(small_model, tmp_path_factory.mktemp("elsewhere") / "candidate")
    return small_model  # inside this repository: above it, the plugin's own pyproject.toml (the reported case)


@pytest.mark.parametrize("form", ["space", "equals"])
def test_path_option_forms_choose_the_suite_rootdir_or_stop(suite, model_dir, form, request):
    args = ["--model-path", str(model_dir)] if form == "space" else [f"--model-path={model_dir}"]
    result = suite.runpytest_subprocess(*args)
    inside = model_dir.is_relative_to(suite.path)
    if form == "space" and not inside:
        expect(result, USAGE, "--model-path", f"--model-path={model_dir}", "rootdir", str(suite.path / "pytest.ini"))
        assert "passed" not in result.stdout.str()
    else:
        expect(result, OK)
        result.assert_outcomes(passed=1)


def test_every_path_option_is_checked_not_only_the_model(suite, small_model, small_reference):
    result = suite.runpytest_subprocess(f"--model-path={small_model}", "--production-path", str(small_reference / "finetuned"))
    expect(result, USAGE, "--production-path", f"--production-path={small_reference / 'finetuned'}")


# -- 1. inputs that were not given; a run in which no gate ran ------------------------------------------
NEEDS_INPUTS = """
import pytest

def test_model(intent_model): pass
def test_plain(): pass
"""

OPTIONAL_BASELINE = """
import pytest

@pytest.mark.mangaassist_optional("production_model")
def test_against_production(production_model, golden_set): pass

def test_golden_set_is_labelled(golden_set):
    assert len(golden_set) > 50
"""

OPTIONAL_UNKNOWN = """
import pytest

@pytest.mark.mangaassist_optional("basline_model")
def test_against_production(production_model): pass
"""

OPTIONAL_ALL_MODULE = """
import pytest

pytestmark = pytest.mark.mangaassist_optional

def test_model(intent_model): pass
def test_deep(pretrained_model, validation_set): pass
"""

CASES = {
    # id: (test file, ini lines, arguments, exit code, phrases)
    "no model fails naming option and ini key": (NEEDS_INPUTS, "", [], FAILED,
                                                 ["--model-path", "mangaassist_model_path", "1 passed, 1 error"]),
    "allow-missing skips but no gate ran": (NEEDS_INPUTS, "", ["--mangaassist-allow-missing"], FAILED,
                                            ["no gate ran", "1 passed, 1 skipped"]),
    "allow-missing from the ini file": (NEEDS_INPUTS, "mangaassist_allow_missing = true\n", [], FAILED,
                                        ["no gate ran"]),
    "module marker makes every input optional": (OPTIONAL_ALL_MODULE, "", [], FAILED, ["no gate ran", "2 skipped"]),
    "marker names an unknown fixture": (OPTIONAL_UNKNOWN, "", [], FAILED,
                                        ["'basline_model'", "not an input fixture", "production_model"]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_missing_inputs(pytester, case):
    source, ini, args, code, phrases = CASES[case]
    pytester.makeini("[pytest]\n" + ini)
    pytester.makepyfile(source)
    expect(pytester.runpytest_subprocess("-rs", *args), code, *phrases)


def test_optional_input_skips_while_other_tests_run(pytester, small_golden):
    pytester.makepyfile(OPTIONAL_BASELINE)
    result = pytester.runpytest_subprocess("-rs", f"--golden-set={small_golden}")
    out = expect(result, OK, "--production-path", "mangaassist_optional")
    result.assert_outcomes(passed=1, skipped=1)
    assert "no gate ran" not in out


def test_no_gate_ran_under_xdist(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(NEEDS_INPUTS)
    expect(pytester.runpytest_subprocess("-n", "2", "--mangaassist-allow-missing"), FAILED, "no gate ran")


# -- 2. unknown tier -----------------------------------------------------------------------------------
TIERED = """
import pytest

@pytest.mark.gate("monthly")
def test_monthly(): pass

@pytest.mark.gate("release")
def test_release(): pass

def test_unmarked(): pass
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["plain", "xdist"])
def test_unknown_tier_is_a_usage_error_listing_the_tiers(pytester, xdist):
    pytester.makepyfile(TIERED)
    args = ["--gate-tier=montly"] + (["-n", "2"] if xdist else [])
    if xdist:
        pytest.importorskip("xdist")
    out = expect(pytester.runpytest_subprocess(*args), USAGE, "montly", "monthly, release")
    assert "passed" not in out


def test_known_tier_keeps_its_tests_and_the_unmarked_ones(pytester):
    pytester.makepyfile(TIERED)
    result = pytester.runpytest_subprocess("--gate-tier=monthly")
    expect(result, OK)
    result.assert_outcomes(passed=2, deselected=1)


# -- 3. destinations checked before the run ------------------------------------------------------------
WRITES_A_MARK = """
from pathlib import Path

def test_runs():
    Path("ran.txt").write_text("the run started")
"""


@pytest.mark.parametrize("case", ["report is a file", "report under a file", "snapshot is a folder",
                                  "snapshot folder from the ini", "snapshot update under a file"])
def test_unusable_destination_stops_the_run_before_any_test(pytester, case):
    pytester.makepyfile(WRITES_A_MARK)
    a_file = pytester.path / "notes.txt"
    a_file.write_text("not a folder")
    (pytester.path / "figures").mkdir()
    args, ini, phrases = {
        "report is a file": ([f"--mangaassist-report={a_file}"], "", ["--mangaassist-report", "is a file"]),
        "report under a file": ([f"--mangaassist-report={a_file / 'report'}"], "", ["cannot be created"]),
        "snapshot is a folder": ([f"--mangaassist-snapshot-file={pytester.path / 'figures'}"], "", ["is a folder"]),
        "snapshot folder from the ini": ([], "mangaassist_snapshot_file = figures\n", ["is a folder"]),
        "snapshot update under a file": ([f"--mangaassist-snapshot-file={a_file / 's.json'}",
                                          "--mangaassist-update-snapshot"], "", ["cannot be created"]),
    }[case]
    pytester.makeini("[pytest]\n" + ini)
    expect(pytester.runpytest_subprocess(*args), USAGE, "fix:", *phrases)
    assert not (pytester.path / "ran.txt").exists()


# -- 5. no disk cache; duplicates in the golden set ----------------------------------------------------
USES_MODEL = """
def test_model(intent_model, golden_set):
    assert intent_model.predict(golden_set.texts[:2])
"""


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_no_cache_writes_nothing_to_the_cache_folder(pytester, small_model, small_golden, no_cache):
    pytester.makepyfile(USES_MODEL)
    args = [f"--model-path={small_model}", f"--golden-set={small_golden}"] + (["--mangaassist-no-cache"] if no_cache else [])
    result = pytester.runpytest_subprocess(*args)
    expect(result, OK, *(["no disk cache"] if no_cache else []))
    cached = pytester.path / ".pytest_cache" / "d" / "mangaassist"
    assert cached.is_dir() != no_cache
    if no_cache:
        assert not any((pytester.path / ".pytest_cache" / "d").glob("mangaassist*"))


def test_duplicates_are_refused_unless_allowed(pytester, small_model, small_golden, tmp_path):
    lines = small_golden.read_text().splitlines()
    golden = tmp_path / "golden.jsonl"
    golden.write_text("\n".join(lines + [lines[0]]) + "\n")
    pytester.makepyfile("def test_golden(golden_set): assert golden_set.duplicate_count == 1")
    args = [f"--model-path={small_model}", f"--golden-set={golden}"]
    refused = pytester.runpytest_subprocess(*args)
    expect(refused, USAGE, f"lines 1, {len(lines) + 1}", "--mangaassist-allow-duplicates")
    assert "duplicate" in refused.stderr.str().lower()
    allowed = pytester.runpytest_subprocess(*args, "--mangaassist-allow-duplicates")
    expect(allowed, OK, "1 duplicate(s) allowed")


# -- 6. nothing written outside the project ------------------------------------------------------------
FUZZ = """
from hypothesis import given
from pytest_mangaassist.strategies import MODEL_SETTINGS, trigger_insertions

@MODEL_SETTINGS
@given(pair=trigger_insertions(["can I return volume 3?"]))
def test_fuzz(pair):
    assert pair[0] != pair[1]

def test_onnxruntime_imported_like_the_export_gates_do():
    import onnxruntime
    assert onnxruntime.get_available_providers()
"""


@pytest.mark.parametrize("cache", ["cache", "no-cache", "no-cacheprovider"])
def test_hypothesis_and_onnxruntime_write_nothing_outside_the_cache(pytester, tmp_path, monkeypatch, cache):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    pytester.makepyfile(FUZZ)
    args = {"cache": [], "no-cache": ["--mangaassist-no-cache"], "no-cacheprovider": ["-p", "no:cacheprovider"]}[cache]
    result = pytester.runpytest_subprocess(*args)
    expect(result, OK)
    result.assert_outcomes(passed=2)
    assert not (pytester.path / ".hypothesis").exists()
    assert not (home / ".cache").exists(), list(home.rglob("*"))
    assert (pytester.path / ".pytest_cache" / "d" / "hypothesis").is_dir() == (cache == "cache")


def test_a_users_own_hypothesis_folder_is_respected(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path / "mine"))
    pytester.makepyfile(FUZZ)
    expect(pytester.runpytest_subprocess(), OK)
    assert (tmp_path / "mine").is_dir()


# -- 8. header: texts cut at max_length ----------------------------------------------------------------
def test_header_counts_golden_texts_cut_at_max_length(pytester, small_model, small_golden, tmp_path):
    long_text = " ".join(["where is my order of the one piece box set"] * 30)
    golden = tmp_path / "golden.jsonl"
    golden.write_text(small_golden.read_text().rstrip("\n") + "\n"
                      + json.dumps({"text": long_text, "intent": "order_status"}) + "\n")
    pytester.makepyfile("def test_x(golden_set): pass")
    plain = pytester.runpytest_subprocess(f"--model-path={small_model}", f"--golden-set={small_golden}")
    expect(plain, OK, "0 cut at 128 tokens")
    cut = pytester.runpytest_subprocess(f"--model-path={small_model}", f"--golden-set={golden}")
    expect(cut, OK, "1 cut at 128 tokens")
