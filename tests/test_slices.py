"""Failure slices (issue #16): discovery as an analysis and as `python -m pytest_mangaassist slices discover`,
the weak-slice gate on a model with a planted failure (a product title relabelled in training) and on the
clean small model, `slices add` refusing duplicates and leaving the golden set untouched on any refusal,
the leakage gate, the per-slice comparisons' Benjamini-Hochberg columns, and the build's leakage step."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from conftest import built_once, built_once_lock
from mangaassist_reference.build import FULL
from mangaassist_reference.derived import build_with_derived
from mangaassist_reference.leakage_report import check_leakage
from mangaassist_reference.planted import PLANTED_INTENT, PLANTED_TITLE, build_planted_model, mentions
from pytest_mangaassist import (GoldenExample, GoldenSet, IntentModel, MangaAssistInputError,
                                SliceFeatures, assert_no_leakage, discover_slices, evaluate, load_golden_set,
                                near_duplicates)
from pytest_mangaassist.analysis.leakage import near_duplicates_within
from pytest_mangaassist.analysis.slices import discover_slices as discover_on_states
from pytest_mangaassist.gates.comparison import assert_no_negative_flips, assert_not_worse, paired_comparison
from pytest_mangaassist.gates.records import collecting


@pytest.fixture(scope="session")
def planted() -> Path:
    """DIR with finetuned/ and data/{train,valid}.jsonl of the small model trained with every message about
    PLANTED_TITLE labelled PLANTED_INTENT (built once per machine, under the test-model lock)."""
    return built_once("planted", build_planted_model)


@pytest.fixture(scope="module")
def planted_run(planted):
    model = IntentModel.load(planted / "finetuned")
    valid = load_golden_set(planted / "data" / "valid.jsonl")
    return model, valid, discover_slices(model, valid, at_least_size=10)


@pytest.fixture(scope="module")
def reference() -> Path:
    """The full reference build in artifacts/reference, as tests/test_example_suite.py gets it (built there first,
    on two threads like scripts/gate.sh; reused here while its fingerprint is current)."""
    import torch

    out = Path(__file__).resolve().parents[1] / "artifacts" / "reference"
    with built_once_lock("reference"):
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            build_with_derived(out, FULL, log=lambda line: None)
        finally:
            torch.set_num_threads(threads)
    return out


def run_cli(pytester, *args):
    """python -m pytest_mangaassist ..., as a user runs it (a subprocess with this test run's environment)."""
    return pytester.run(sys.executable, "-m", "pytest_mangaassist", *map(str, args))


# -- the analysis on made-up states: statistics and determinism ----------------------------------------------
def synthetic(n: int = 200, seed: int = 0):
    """n messages; those about 'Monster' (every 7th) are always wrong, others wrong 1 time in 20."""
    rng = np.random.default_rng(seed)
    examples, predicted = [], []
    for i in range(n):
        about = i % 7 == 0
        text = f"do you have Monster volume {i}" if about else f"where is my order number {i} please"
        examples.append(GoldenExample(text, "product_discovery" if about else "order_status"))
        wrong = about or rng.random() < 0.05
        predicted.append("chitchat" if wrong else examples[-1].intent)
    states = rng.normal(size=(n, 16)) + np.array([[3.0 if p == "chitchat" else 0.0] * 16 for p in predicted])
    return states, GoldenSet(tuple(examples)), predicted, np.full(n, 0.9)


FEATURES = SliceFeatures(titles=("Monster", "Berserk"), romanized=("desu",), triggers={"promotion": ("sale",)})


def test_discovery_finds_the_planted_title_with_exact_figures():
    states, golden, predicted, confidence = synthetic()
    result = discover_on_states(states, golden, predicted, confidence, FEATURES, at_least_size=10)
    top = result.candidates[0]
    assert top.name == "title-monster" and top.kind == "title" and "monster" in top.words
    assert top.size == 29 and top.errors == 29 and top.error_rate.low > 0.85
    assert top.lift == pytest.approx(1.0 / result.error_rate)
    raw = [c.p_value for c in result.candidates]
    assert [c.p_adjusted for c in result.candidates] == pytest.approx(list(false_discovery_control(raw, method="bh")))
    assert result.significant(0.05)[0] is top
    assert all(c.size >= 10 for c in result.candidates)
    again = discover_on_states(states, golden, predicted, confidence, FEATURES, at_least_size=10)
    assert again == result  # deterministic


def test_cluster_slices_are_tested_only_on_the_half_they_were_not_fitted_on():
    states, golden, predicted, confidence = synthetic()
    clusters = [c for c in discover_on_states(states, golden, predicted, confidence, FEATURES, at_least_size=5).candidates
                if c.kind == "cluster"]
    assert clusters and all(i % 2 == 1 for c in clusters for i in c.members)


def test_too_few_errors_is_an_input_error_not_an_empty_result():
    states, golden, predicted, confidence = synthetic()
    right = [ex.intent for ex in golden]
    with pytest.raises(MangaAssistInputError, match="too few to form a slice") as info:
        discover_on_states(states, golden, right, confidence, FEATURES)
    assert "validation set" in info.value.fix


# -- the planted failure: discovery, the gate, and the clean model -------------------------------------------
def test_the_top_discovered_slice_is_the_planted_title(planted_run):
    model, valid, result = planted_run
    top = result.candidates[0]
    about = {i for i, ex in enumerate(valid) if mentions(ex.text)}
    assert top.name == f"title-{PLANTED_TITLE.lower()}" and top.words[0] == PLANTED_TITLE.lower(), result.table(5)
    assert set(top.members) == about and top.p_adjusted < 1e-6
    assert all(predicted == PLANTED_INTENT for _, _, predicted, _ in top.worst)


def test_on_the_reference_golden_set_without_tags_discovery_finds_a_true_weak_slice_or_none(reference):
    """The generated golden set's slice tags removed: a candidate significant after Benjamini-Hochberg must be
    made of one true weak slice (before the slice-loop retrain: jp_en, about twice the set's error rate, purity
    1.0); where none is significant, no tagged slice may err at twice the set's rate either (after it: the worst,
    multi_intent, 0.167 against 0.099; docs/slices.md)."""
    golden = load_golden_set(reference / "data" / "golden.jsonl")
    tags = [ex.slice for ex in golden]
    blind = GoldenSet.from_examples((replace(ex, slice=None) for ex in golden), golden.source)
    model = IntentModel.load(reference / "finetuned")
    wrong = ~evaluate(model, golden).correct
    overall = wrong.mean()
    significant = discover_slices(model, blind, at_least_size=10).significant()
    if significant:
        top = significant[0]
        majority = max(set(tags[i] for i in top.members), key=[tags[i] for i in top.members].count)
        purity = sum(tags[i] == majority for i in top.members) / top.size
        weak = np.mean([w for w, t in zip(wrong, tags) if t == majority])
        assert majority is not None and purity >= 0.9 and weak > 1.5 * overall, (top.name, majority, purity, weak)
    else:
        rates = {tag: np.mean([w for w, t in zip(wrong, tags) if t == tag]) for tag in set(tags) - {None}
                 if tags.count(tag) >= 10}
        assert max(rates.values()) <= 2 * overall, (rates, overall)


WEAK_SLICE_LIMITS = {"at_least_size": 10, "max_error_rate": 0.8}
WEAK_SLICE_TEST = f"""
from pytest_mangaassist import assert_no_weak_slice

def test_no_weak_slice(intent_model, validation_set):
    assert_no_weak_slice(intent_model, validation_set, **{WEAK_SLICE_LIMITS!r})
"""


def test_the_weak_slice_gate_fails_on_the_planted_title_and_passes_on_the_clean_model(pytester, planted,
                                                                                      planted_run, small_model):
    from pytest_mangaassist import assert_no_weak_slice

    pytester.makepyfile(test_weak=WEAK_SLICE_TEST)
    valid = f"--validation-set={planted / 'data' / 'valid.jsonl'}"
    failed = pytester.runpytest_subprocess(f"--model-path={planted / 'finetuned'}", valid, "-p", "no:cacheprovider")
    failed.assert_outcomes(failed=1)
    out = failed.stdout.str()
    assert "assert_no_weak_slice: error rate of the worst of" in out and "'title-berserk'" in out
    assert "mentions the title 'Berserk'" in out and "required <= 0.8" in out and "chitchat" in out
    # on the clean model the gate passes, and not because 0.8 is loose: the slice it caught on the planted model
    # is not significantly worse than the rest there (the run above already shows a verdict reaching pytest)
    _, valid_set, planted_discovery = planted_run
    clean = assert_no_weak_slice(IntentModel.load(small_model), valid_set, **WEAK_SLICE_LIMITS)
    assert "title-berserk" in {c.name for c in planted_discovery.significant()}
    assert "title-berserk" not in {c.name for c in clean.significant()}, clean.table(limit=5)


def test_the_gate_refuses_both_limits_or_none(planted_run):
    from pytest_mangaassist import assert_no_weak_slice

    model, valid, _ = planted_run
    for limits in ({}, {"max_lift": 2.0, "max_error_rate": 0.5}):
        with pytest.raises(MangaAssistInputError, match="exactly one of max_lift or max_error_rate"):
            assert_no_weak_slice(model, valid, **limits)


# -- the discover command ---------------------------------------------------------------------------------------
def test_discover_prints_ranked_slices_tests_and_writes_the_golden_format(pytester, planted):
    out = pytester.path / "candidates.jsonl"
    result = run_cli(pytester, "slices", "discover", "--model", planted / "finetuned", "--data",
                     planted / "data" / "valid.jsonl", "--out", out)
    assert result.ret == 0, result.stderr.str()
    text = result.stdout.str()
    assert "Benjamini-Hochberg across all" in text and "title-berserk" in text
    assert "def test_slice_title_berserk(intent_model, golden_set):" in text
    assert "assert_accuracy_above(intent_model, golden_set, slice='title-berserk', min_accuracy=" in text
    written = load_golden_set(out, allow_duplicates=True)
    berserk = [ex for ex in written if ex.slice == "title-berserk"]
    assert len(berserk) >= 30 and all(mentions(ex.text) for ex in berserk)
    assert PLANTED_INTENT not in {ex.intent for ex in berserk}  # the true labels, not the model's


def bad_discover_inputs(planted: Path, tmp: Path):
    unlabelled = tmp / "unlabelled.jsonl"
    unlabelled.write_text('{"text": "where is my order"}\n')
    foreign = tmp / "foreign.jsonl"
    foreign.write_text('{"text": "where is my order", "intent": "order_tracking"}\n')
    easy = tmp / "easy.jsonl"
    lines = [line for line in (planted / "data" / "valid.jsonl").read_text().splitlines() if "order_status" in line]
    easy.write_text("\n".join(lines[:3]) + "\n")
    data = planted / "data" / "valid.jsonl"
    return [
        ("no labels", ["--data", unlabelled], "line 1 has no \"intent\"", "expected intent label"),
        ("unknown label", ["--data", foreign], "'order_tracking' (did you mean 'order_status'?)", "Fix the labels"),
        ("too few errors", ["--data", easy], "too few to form a slice", "larger or harder labelled set"),
        ("unwritable out", ["--data", data, "--out", tmp / "missing" / "c.jsonl"], "does not exist", "mkdir -p"),
        ("out is a folder", ["--data", data, "--out", tmp], "is a folder", "Pass a file path"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["no-labels", "unknown-label", "too-few-errors", "missing-folder",
                                                 "out-is-folder"])
def test_discover_refuses_bad_input_with_the_fix(pytester, planted, case):
    name, args, problem, fix = bad_discover_inputs(planted, pytester.path)[case]
    result = run_cli(pytester, "slices", "discover", "--model", planted / "finetuned", *args)
    err = result.stderr.str()
    assert result.ret == 2, (name, err)
    assert problem in err and "fix: " in err and fix in err and "Traceback" not in err, err


def test_an_unwritable_out_is_refused_before_the_model_runs(pytester, planted, monkeypatch, capsys):
    folder = pytester.path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    args = ["slices", "discover", "--model", planted / "no-such-model", "--data", planted / "data" / "valid.jsonl",
            "--out", folder / "c.jsonl"]  # no model there: refused before it is loaded, or the error names the model
    try:
        if not os.access(folder, os.W_OK):
            result = run_cli(pytester, *args)
            ret, err = result.ret, result.stderr.str()
        else:  # root (CI runs as root) writes anywhere: the check is shown the folder as any other user sees it
            from pytest_mangaassist.cli.slices import main

            access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: access(path, mode, **kw) and not (
                Path(path) == folder and mode & os.W_OK))
            ret, err = main([str(a) for a in args]), capsys.readouterr().err
    finally:
        folder.chmod(0o700)
    assert ret == 2 and f"--out {folder / 'c.jsonl'} cannot be written (no write permission)" in err, err
    assert "Traceback" not in err and "no-such-model" not in err


# -- the add command: honest promotion into the golden set --------------------------------------------------------
GOLDEN = [{"text": "where is my order?", "intent": "order_status"},
          {"text": "do you have the new Frieren volume", "intent": "product_discovery", "slice": "titles"},
          {"text": "I want to talk to a human", "intent": "escalation"},
          # one message of each label the tests add, which `slices add` accepts only when the golden set knows it
          {"text": "good morning to you", "intent": "chitchat"},
          {"text": "who drew the art for this series", "intent": "product_question"},
          {"text": "any coupon for members", "intent": "promotion"},
          {"text": "the box arrived crushed, I'd like my money back", "intent": "return_request"}]
TRAIN = [{"text": "can I get a refund for a damaged box set", "intent": "return_request"},
         {"text": "is the Vagabond omnibus in stock", "intent": "product_discovery"}]


def jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def files(pytester):
    return (jsonl(pytester.path / "golden.jsonl", GOLDEN), jsonl(pytester.path / "train.jsonl", TRAIN))


def test_add_appends_the_slice_and_keeps_other_slices_lines_out(pytester, files):
    golden, train = files
    before = golden.read_bytes()
    messages = jsonl(pytester.path / "new.jsonl", [
        {"text": "Berserk deluxe 3 ga hoshii desu", "intent": "product_discovery", "slice": "title-berserk"},
        {"text": "what is Berserk about", "intent": "product_question"},
        {"text": "something else entirely", "intent": "chitchat", "slice": "length-1-5-words"}])
    result = run_cli(pytester, "slices", "add", "--golden", golden, "--slice", "title-berserk", messages,
                     "--train", train)
    assert result.ret == 0, result.stderr.str()
    assert "added 2 message(s)" in result.stdout.str() and "1 line(s) of other slices skipped" in result.stdout.str()
    after = golden.read_bytes()
    assert after.startswith(before)
    added = load_golden_set(golden).only_slice("title-berserk")
    assert [ex.text for ex in added] == ["Berserk deluxe 3 ga hoshii desu", "what is Berserk about"]


def refusals(tmp: Path):
    """(name, messages lines or raw text, extra args, what the message must say)."""
    return [
        ("exact golden duplicate", [{"text": "Where is my order?", "intent": "order_status"}], [],
         "duplicate the golden data"),
        ("near golden duplicate", [{"text": "i want to talk to a human!!", "intent": "escalation"}], [],
         "duplicate the golden data"),
        ("near train duplicate", [{"text": "Can I get a refund for a damaged box-set?", "intent": "return_request"}],
         ["--train", tmp / "train.jsonl"], "duplicate the train data"),
        ("repeated in the file", [{"text": "hello there friend", "intent": "chitchat"},
                                  {"text": "hello  there friend", "intent": "chitchat"}], [],
         "repeat an earlier line of the file"),
        ("near repeat in the file", [{"text": "do you do a student discount", "intent": "promotion"},
                                     {"text": "how do referral credits work", "intent": "promotion"},
                                     {"text": "um do you do a student discount", "intent": "promotion"}], [],
         "1 message(s) repeat an earlier line of the file"),
        ("not JSON", '{"text": "fine", "intent": "chitchat"}\n{"text": broken\n', [], "line 2"),
        ("no intent", [{"text": "a message without a label"}], [], "line 1 has no \"intent\""),
        ("unknown intent", [{"text": "a message about ordering", "intent": "order_statuss"}], [],
         "did you mean 'order_status'?"),
        ("bad slice name", [{"text": "ok fine", "intent": "chitchat"}], ["--slice", "two words"],
         "is not a slice name"),
        ("missing train", [{"text": "ok fine", "intent": "chitchat"}], ["--train", tmp / "no-such.jsonl"],
         "--train " + str(tmp / "no-such.jsonl") + " does not exist"),
    ]


@pytest.mark.parametrize("case", range(10), ids=["exact-golden", "near-golden", "near-train", "repeated",
                                                  "near-repeat", "not-json", "no-intent", "unknown-intent",
                                                  "bad-slice-name", "missing-train"])
def test_add_refuses_and_leaves_the_golden_set_byte_for_byte(pytester, files, case):
    golden, _ = files
    name, lines, extra, problem = refusals(pytester.path)[case]
    messages = pytester.path / "new.jsonl"
    if isinstance(lines, str):
        messages.write_text(lines)
    else:
        jsonl(messages, lines)
    before = golden.read_bytes()
    slice_args = [] if "--slice" in extra else ["--slice", "new-slice"]
    result = run_cli(pytester, "slices", "add", "--golden", golden, *slice_args, *extra, messages)
    err = result.stderr.str()
    assert result.ret == 2, (name, result.stdout.str(), err)
    assert problem in err and "fix: " in err and "was not changed" in err and "Traceback" not in err, err
    assert golden.read_bytes() == before
    assert [p.name for p in pytester.path.iterdir() if p.name.startswith(".golden")] == []  # no temporary left


def test_add_refuses_a_golden_set_it_cannot_parse(pytester, files):
    golden, _ = files
    golden.write_bytes(golden.read_bytes() + b'{"text": "half a line", "intent":\n')
    before = golden.read_bytes()
    messages = jsonl(pytester.path / "new.jsonl", [{"text": "brand new message", "intent": "chitchat"}])
    result = run_cli(pytester, "slices", "add", "--golden", golden, "--slice", "s", messages)
    assert result.ret == 2 and "line 8" in result.stderr.str() and "was not changed" in result.stderr.str()
    assert golden.read_bytes() == before


def test_skip_duplicates_adds_the_rest_and_says_what_it_left_out(pytester, files):
    golden, train = files
    messages = jsonl(pytester.path / "new.jsonl", [{"text": "is the Vagabond omnibus in stock?", "intent":
                                                    "product_discovery"},
                                                   {"text": "does Pluto have a deluxe edition", "intent":
                                                    "product_question"}])
    result = run_cli(pytester, "slices", "add", "--golden", golden, "--slice", "s", messages, "--train", train,
                     "--skip-duplicates")
    assert result.ret == 0 and "skipping 1 duplicated message(s)" in result.stdout.str()
    assert load_golden_set(golden).only_slice("s").texts == ["does Pluto have a deluxe edition"]


def test_add_starts_a_second_golden_file_and_refuses_duplicates_of_the_first(pytester, files):
    golden, train = files
    before = golden.read_bytes()
    second = pytester.path / "golden_slices.jsonl"
    messages = jsonl(pytester.path / "new.jsonl", [
        {"text": "where is my order??", "intent": "order_status"},  # near the suite's golden set
        {"text": "Berserk deluxe 3 ga hoshii desu", "intent": "product_discovery"}])
    result = run_cli(pytester, "slices", "add", "--golden", second, "--also-golden", golden, "--slice", "jp-en",
                     messages, "--train", train)
    err = result.stderr.str()
    assert result.ret == 2 and f"duplicate the golden data {golden}" in err and "was not created" in err, err
    assert not second.exists() and golden.read_bytes() == before

    result = run_cli(pytester, "slices", "add", "--golden", second, "--also-golden", golden, "--slice", "jp-en",
                     messages, "--train", train, "--skip-duplicates")
    assert result.ret == 0, result.stderr.str()
    assert f"started {second} with 1 message(s) as slice 'jp-en'" in result.stdout.str()
    assert load_golden_set(second).texts == ["Berserk deluxe 3 ga hoshii desu"]
    assert second.stat().st_mode & 0o044 == 0o044 and golden.read_bytes() == before  # readable by the team

    # the next slice goes into the second file, refused where it repeats either file
    again = jsonl(pytester.path / "again.jsonl", [{"text": "Berserk deluxe 3 ga hoshii desu!", "intent":
                                                   "product_discovery"}])
    result = run_cli(pytester, "slices", "add", "--golden", second, "--also-golden", golden, "--slice", "titles",
                     again)
    assert result.ret == 2 and f"duplicate the golden data {second}" in result.stderr.str()


def test_a_new_golden_file_needs_known_labels(pytester):
    messages = jsonl(pytester.path / "new.jsonl", [{"text": "a new message", "intent": "chitchat"}])
    result = run_cli(pytester, "slices", "add", "--golden", pytester.path / "first.jsonl", "--slice", "s", messages)
    err = result.stderr.str()
    assert result.ret == 2 and "no label is known for a new golden file" in err and "--also-golden" in err, err
    assert "Traceback" not in err and not (pytester.path / "first.jsonl").exists()


# -- leakage ----------------------------------------------------------------------------------------------------
def test_near_duplicates_are_measured_and_exact_ones_always_count():
    pairs = near_duplicates(["I want to talk to a human", "Good evening", "recommend a dark seinen"],
                            ["i want to talk to a human", "good evening", "where is my package"], 0.9)
    assert [(p.query_index, p.match_index) for p in pairs] == [(0, 0), (1, 1)]
    assert all(p.similarity == pytest.approx(1.0) for p in pairs) and not any(p.exact for p in pairs)
    exact = near_duplicates(["Good evening"], ["Good  evening"], 0.0)
    assert exact[0].exact and exact[0].similarity == 1.0
    assert near_duplicates(["recommend a dark seinen"], ["where is my package"], 0.9) == []
    within = near_duplicates_within(["do you do a student discount", "how do referral credits work",
                                     "um do you do a student discount", "Do you do a student discount"], 0.9)
    assert [(p.query_index, p.match_index) for p in within] == [(2, 0), (3, 0)]  # later lines, the first kept


LEAK_TEST = """
from pytest_mangaassist import assert_no_leakage, load_golden_set

def test_leak(golden_set):
    assert_no_leakage(golden_set, ["pls talk to a human", "i want to talk to a human"], max_similarity=0.9)

def test_clean(golden_set):
    assert_no_leakage(golden_set, ["is the Vagabond omnibus in stock"], max_similarity=0.9)
"""


def test_the_leakage_gate_lists_the_pairs(pytester, files):
    golden, _ = files
    pytester.makepyfile(test_leak=LEAK_TEST)
    result = pytester.runpytest_subprocess(f"--golden-set={golden}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "assert_no_leakage: golden messages of" in out and "= 1, required <= 0" in out
    assert "I want to talk to a human" in out and "i want to talk to a human" in out and "1.000" in out


def test_the_leakage_gate_refuses_a_meaningless_threshold():
    with pytest.raises(MangaAssistInputError, match="max_similarity"):
        assert_no_leakage(["a"], ["b"], max_similarity=1.0)


def test_the_build_step_reports_the_leaks_of_both_golden_sets(tmp_path):
    jsonl((tmp_path / "data").mkdir() or tmp_path / "data" / "train.jsonl", TRAIN + [GOLDEN[2]])
    jsonl(tmp_path / "data" / "golden.jsonl", GOLDEN[:3])
    lines = []
    check_leakage(tmp_path, None, lines.append)
    report = json.loads((tmp_path / "leakage.json").read_text())
    generated = report["golden_sets"]["generated"]
    assert generated["leaked"] == 1 and generated["pairs"][0]["golden_line"] == 3 and generated["pairs"][0]["exact"]
    assert "fixtures" in report["golden_sets"]  # the repository's hand-written golden set is checked too
    assert any("1 of 3 generated golden messages" in line for line in lines)


# -- per-slice comparisons with Benjamini-Hochberg ------------------------------------------------------------
def test_per_slice_comparisons_report_bh_adjusted_p_values(small_reference):
    golden = load_golden_set(small_reference / "data" / "golden.jsonl")
    model, previous = IntentModel.load(small_reference / "finetuned"), IntentModel.load(small_reference / "previous")
    comparison = paired_comparison(model, golden, against=previous)
    raw = [comparison.summary(comparison.mask(slice=s)).worse_p_value for s in golden.slice_names]
    adjusted = comparison.adjusted_p_values("slice")
    assert list(adjusted.values()) == pytest.approx(list(false_discovery_control(raw, method="bh")))
    table = comparison.table("slice")
    assert "p(worse) BH" in table and f"{len(golden.slice_names)} slices tested" in table
    worst = min(adjusted, key=adjusted.get)
    with collecting() as records:  # the records the reports show carry the adjusted p-value, pass or fail
        assert_not_worse(model, golden, against=previous, slice=worst, min_p_value=0.0)
        assert_no_negative_flips(model, golden, against=previous, slice=worst, max_negative_flip_rate=1.0)
    expected = f"adjusted across the {len(golden.slice_names)} slices tested: {adjusted[worst]:.3g}"
    assert len(records) == 2 and all(expected in record.metric for record in records), records


def test_slices_with_the_same_members_are_tested_once():
    states, golden, predicted, confidence = synthetic()
    tagged = GoldenSet(tuple(replace(ex, slice="monster" if "Monster" in ex.text else None) for ex in golden))
    kinds = {c.kind for c in discover_on_states(states, tagged, predicted, confidence, FEATURES).candidates}
    assert "title" in kinds and "tag" not in kinds  # same members as the title slice: one test, not two
