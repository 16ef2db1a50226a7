"""Model fixtures as a user's suite sees them, through real pytest runs.

Runs that load a model use a subprocess: pytester's in-process runs drop the modules they imported
afterwards, and torch cannot import its operator registrations twice in one process."""

import textwrap

import pytest

from conftest import outcomes, run_pytest
from pytest_mangaassist.domain import INTENTS


MODEL_SUITE = {
    "conftest": "LOADED = []",
    "test_a": """
        import conftest
        from pytest_mangaassist.domain import INTENTS

        def test_model(intent_model, tokenizer):
            conftest.LOADED.append(id(intent_model))
            assert intent_model.labels == INTENTS
            assert intent_model.adapter.family == "distilbert"
            assert intent_model.num_layers == 2 and len(intent_model.layers) == 2
            assert intent_model.embeddings is intent_model.hf_model.distilbert.embeddings
            assert tokenizer is intent_model.tokenizer
        """,
    "test_b": """
        import conftest

        def test_same_object(intent_model):
            conftest.LOADED.append(id(intent_model))
            assert len(set(conftest.LOADED)) == 1, "the model must load once per session"
        """,
    "test_forward": """
        import numpy as np

        def test_forward(intent_model):
            texts = ["hi", "where is my order #48213, it has been two weeks", "ok", "do you ship to Canada?"]
            out = intent_model.forward(texts, batch_size=2, cls_states=True, hidden_states=True, attentions=True)
            assert out.logits.shape == (4, 10)
            assert out.cls_states.shape == (4, 3, 384)
            lengths = [len(intent_model.tokenizer(t)["input_ids"]) for t in texts]
            assert [h.shape for h in out.hidden_states] == [(3, n, 384) for n in lengths]
            assert [a.shape for a in out.attentions] == [(2, 12, n, n) for n in lengths]
            np.testing.assert_allclose(out.attentions[1].sum(-1), 1.0, atol=1e-5)
            single = intent_model.forward([texts[1]], cls_states=True)
            np.testing.assert_allclose(single.logits[0], out.logits[1], atol=1e-5)
            np.testing.assert_allclose(single.cls_states[0], out.cls_states[1], atol=1e-5)
            np.testing.assert_allclose(out.probabilities.sum(1), 1.0)
        """,
}


@pytest.fixture(scope="module")
def model_run(small_model, small_golden, tmp_path_factory) -> str:
    """One suite that uses the model fixtures, run once (each run pays for torch and a model load); the tests
    below read its output. The golden set is given, so the plugin's batch-invariance check runs on the model."""
    folder = tmp_path_factory.mktemp("fixtures")
    for name, source in MODEL_SUITE.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return run_pytest(folder, "-rA", f"--model-path={small_model}", f"--golden-set={small_golden}").stdout


def test_intent_model_fixture_loads_once_with_labels_and_adapter(model_run, small_model):
    assert "PASSED test_a.py::test_model" in model_run and "PASSED test_b.py::test_same_object" in model_run, model_run
    assert f"mangaassist: model {small_model}" in model_run


def test_forward_returns_every_layer_and_attention_in_input_order(model_run):
    assert "PASSED test_forward.py::test_forward" in model_run, model_run
    assert outcomes(model_run) == {"passed": len(MODEL_SUITE) - 1}, model_run  # a test per file but the conftest


def test_missing_inputs_fail_naming_the_option_and_ini_key(pytester):
    pytester.makepyfile(
        """
        def test_model(intent_model): pass
        def test_production(production_model): pass
        def test_pretrained(pretrained_model): pass
        def test_golden(golden_set): pass
        def test_validation(validation_set): pass
        def test_tokenizer(tokenizer): pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=6)
    assert result.ret == 1
    out = result.stdout.str()
    for flag, key in [("--model-path", "mangaassist_model_path"), ("--production-path", "mangaassist_production_path"),
                      ("--pretrained-path", "mangaassist_pretrained_path"), ("--golden-set", "mangaassist_golden_set"),
                      ("--validation-set", "mangaassist_validation_set")]:
        assert flag in out and key in out
    assert "--mangaassist-allow-missing" in out and "mangaassist_optional" in out
    assert "Traceback" not in out and "plugin.py" not in out


def test_missing_inputs_skip_when_the_run_allows_it(pytester):
    pytester.makepyfile(
        """
        def test_model(intent_model): pass
        def test_golden(golden_set): pass
        """
    )
    result = pytester.runpytest("-rs", "--mangaassist-allow-missing")
    result.assert_outcomes(skipped=2)
    out = result.stdout.str()
    assert "--model-path" in out and "mangaassist_model_path" in out and "test_missing_inputs_skip" in out
    assert "no gate ran" in out and result.ret == 1  # every test that needed an input was skipped


def test_ini_keys_resolve_relative_to_the_ini_file(pytester, small_reference):
    suite = pytester.mkdir("suite")
    (suite / "pytest.ini").write_text(
        "[pytest]\n"
        f"mangaassist_model_path = {small_reference / 'finetuned'}\n"
        f"mangaassist_production_path = {small_reference / 'finetuned'}\n"
        f"mangaassist_pretrained_path = {small_reference / 'pretrained'}\n"
        "mangaassist_golden_set = data/golden.jsonl\n"
    )
    (suite / "data").mkdir()
    (suite / "data" / "golden.jsonl").write_text((small_reference / "data" / "golden.jsonl").read_text())
    (suite / "test_ini.py").write_text(
        "def test_all(intent_model, production_model, pretrained_model, golden_set):\n"
        "    assert golden_set.source.endswith('suite/data/golden.jsonl')\n"
        "    assert len(golden_set) > 50\n"
        "    assert pretrained_model.labels == intent_model.labels == production_model.labels\n"
    )
    pytester.chdir()
    result = pytester.runpytest_subprocess("suite")
    result.assert_outcomes(passed=1)


def test_golden_set_fixture_reads_the_file(pytester, small_model, small_golden):
    pytester.makepyfile(
        """
        from pytest_mangaassist.domain import INTENTS

        def test_golden(golden_set):
            assert {ex.intent for ex in golden_set} == set(INTENTS)
            assert {"jp_en", "multi_intent", "adversarial", "indirect", "manga_jargon"} <= set(golden_set.slice_names)
            assert all(ex.also for ex in golden_set.only_slice("multi_intent"))
        """
    )
    pytester.runpytest(f"--model-path={small_model}", f"--golden-set={small_golden}").assert_outcomes(passed=1)
    assert len(INTENTS) == 10


LEAKY_CONFTEST = """
import pytest_mangaassist.analysis.invariance as invariance

measured = invariance.batch_invariance


def leaky(model, texts, *args, **kwargs) -> invariance.InvarianceResult:  # as if padding leaked into the logits
    result = measured(model, texts, *args, **kwargs)
    return invariance.InvarianceResult(result.tolerance, result.n_texts, {"padded to 128": 0.5}, ())


invariance.batch_invariance = leaky
"""


def test_the_plugin_warns_once_per_model_when_logits_depend_on_batching(pytester, model_run, small_model,
                                                                        small_golden):
    pytester.makepyfile("def test_uses_model(intent_model):\n    assert intent_model.labels\n")
    args = (f"--model-path={small_model}", f"--golden-set={small_golden}", "-p", "no:cacheprovider")
    assert "depend on batch composition" not in model_run  # the clean model, checked in a cold cache
    assert "IG word scores" not in model_run  # the small model's attributions are batch-invariant too
    pytester.makeconftest(LEAKY_CONFTEST)
    leaky = pytester.runpytest_subprocess(*args)
    leaky.assert_outcomes(passed=1, warnings=1)
    assert "depend on batch composition or padding beyond 0.0001" in leaky.stdout.str()


def test_the_former_production_names_still_work_with_a_warning_naming_the_new_ones(pytester, small_model):
    """--baseline-path, its ini key and the baseline_model fixture: one release of grace, each warned."""
    pytester.makepyfile("def test_old(baseline_model, production_model):\n"
                        "    assert baseline_model is production_model\n")
    by_option = pytester.runpytest(f"--baseline-path={small_model}", "-W", "always::DeprecationWarning")
    by_option.assert_outcomes(passed=1)
    out = by_option.stdout.str()
    assert ("--baseline-path (ini mangaassist_baseline_path) is deprecated and goes in the next release; pass "
            "--production-path (ini mangaassist_production_path) instead") in out, out
    assert "the baseline_model fixture is deprecated and goes in the next release; request production_model" in out
    pytester.makeini(f"[pytest]\nmangaassist_baseline_path = {small_model}\n")
    by_ini = pytester.runpytest("-W", "always::DeprecationWarning")
    by_ini.assert_outcomes(passed=1)
    assert "--baseline-path (ini mangaassist_baseline_path) is deprecated" in by_ini.stdout.str()


def test_a_former_and_a_current_name_together_are_a_usage_error(pytester, small_model):
    pytester.makepyfile("def test_production(production_model): pass\n")
    result = pytester.runpytest(f"--baseline-path={small_model}", f"--production-path={small_model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert ("--baseline-path (ini mangaassist_baseline_path) is the old name of --production-path (ini "
            "mangaassist_production_path); got both") in err and "fix: Pass --production-path only." in err, err
    assert "Traceback" not in err + result.stdout.str()
