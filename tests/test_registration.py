"""The plugin as pytest sees it: entry point, options, ini keys, disabling, import cost."""

import subprocess
import sys
from importlib.metadata import entry_points

from pytest_mangaassist.config.settings import OPTIONS

CONTRACT_FLAGS = ["--model-path", "--pretrained-path", "--production-path", "--onnx-path", "--serving-artifact",
                  "--neuron-path", "--golden-set", "--validation-set", "--device", "--mangaassist-report",
                  "--gate-tier", "--mangaassist-snapshot-file", "--mangaassist-update-snapshot", "--mangaassist-no-cache",
                  "--mangaassist-allow-missing", "--mangaassist-allow-duplicates"]


def test_registered_under_pytest11():
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("mangaassist") == "pytest_mangaassist.plugin"


def test_help_lists_every_option_in_one_group_with_its_ini_key(pytester):
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    group = out[out.index("pytest-mangaassist:"):]
    group = group[: group.index("\n\n")]
    for flag in CONTRACT_FLAGS:
        assert flag in group, flag
    flat = " ".join(group.split())
    for option in OPTIONS:
        assert f"[ini: {option.dest}]" in flat
        kind = "bool" if option.kind == "flag" else "string"
        assert f"  {option.dest} ({kind}):" in out  # listed among the ini keys


def test_every_option_is_an_ini_key_with_the_mangaassist_prefix():
    assert [o.dest for o in OPTIONS] == [
        "mangaassist_model_path", "mangaassist_pretrained_path", "mangaassist_production_path",
        "mangaassist_onnx_path", "mangaassist_serving_artifact", "mangaassist_golden_set",
        "mangaassist_validation_set", "mangaassist_device", "mangaassist_report", "mangaassist_gate_tier",
        "mangaassist_snapshot_file", "mangaassist_update_snapshot", "mangaassist_no_cache",
        "mangaassist_allow_missing", "mangaassist_traffic", "mangaassist_traffic_text_field",
        "mangaassist_engine", "mangaassist_ray_address", "mangaassist_routing_policy", "mangaassist_training_set",
        "mangaassist_pack", "mangaassist_allow_duplicates", "mangaassist_mlflow", "mangaassist_markdown",
    ]


def test_disabled_with_p_no(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "no:mangaassist", "--model-path", "x")
    assert result.ret == 4
    assert "unrecognized arguments: --model-path" in result.stderr.str()
    assert pytester.runpytest_subprocess("-p", "no:mangaassist").ret == 0


def test_markers_are_registered(pytester):
    out = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.gate(*tiers)" in out
    assert "@pytest.mark.mangaassist_optional(*fixture_names)" in out


def test_an_unrelated_run_with_the_plugin_installed_is_untouched(pytester):
    pytester.makepyfile("def test_x(): pass\ndef test_y(tmp_path): assert tmp_path.is_dir()\n")
    result = pytester.runpytest_subprocess("--strict-markers")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "mangaassist:" not in out and "== mangaassist" not in out  # no header line, no summary section


def test_importing_the_plugin_does_not_import_torch():
    code = ("import sys, pytest_mangaassist, pytest_mangaassist.plugin; "
            "print(sorted(m for m in ('torch', 'transformers', 'captum', 'onnx', 'onnxruntime', 'sklearn', 'hypothesis') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve_lazily():
    import pytest_mangaassist

    assert callable(pytest_mangaassist.assert_accuracy_above)
    assert pytest_mangaassist.INTENTS[0] == "product_discovery"
