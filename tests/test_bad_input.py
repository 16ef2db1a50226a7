"""Every bad input ends in a message that names the problem and the fix: no traceback, no pass."""

import json

import pytest
from safetensors.torch import load_file, save_file

from conftest import assert_usage_error, edit_config

USES_EVERYTHING = """
def test_uses_model(intent_model):
    assert intent_model.predict(["where is my order?"])
"""


def run(pytester, *args):
    pytester.makepyfile(USES_EVERYTHING)
    return pytester.runpytest_subprocess(*map(str, args))


def test_model_path_that_does_not_exist(pytester, tmp_path):
    assert_usage_error(run(pytester, f"--model-path={tmp_path / 'nope'}"), "--model-path", "does not exist")


def test_model_path_that_is_a_file(pytester, small_model):
    assert_usage_error(run(pytester, f"--model-path={small_model / 'model.safetensors'}"), "is a file")


def test_folder_without_config(pytester, model_copy):
    folder = model_copy()
    (folder / "config.json").unlink()
    assert_usage_error(run(pytester, f"--model-path={folder}"), "no config.json")


def test_corrupt_weights_file(pytester, model_copy):
    folder = model_copy()
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: 100_000])
    assert_usage_error(run(pytester, f"--model-path={folder}"), "corrupt or truncated", "model.safetensors")


def test_config_size_the_weights_do_not_hold_is_refused_at_start_up(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, hidden_dim=1024)  # the FFN weights on disk are 1536 wide: read from the safetensors header
    assert_usage_error(run(pytester, f"--model-path={folder}"), "hidden_dim = 1024, but model.safetensors holds 1536",
                       "distilbert.transformer.layer.0.ffn.lin1.weight")


def test_config_that_cannot_build_fails_at_load_with_the_fix(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, n_heads=7)  # no tensor shows the head count; 384 wide layers cannot split into 7 heads
    result = run(pytester, f"--model-path={folder}")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "could not be loaded" in out and "fix:" in out
    assert "Traceback" not in out and "modeling_utils.py" not in out


def test_missing_weights(pytester, model_copy):
    folder = model_copy()
    (folder / "model.safetensors").unlink()
    assert_usage_error(run(pytester, f"--model-path={folder}"), "has no weights file")


def test_default_label_names_are_refused(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, id2label={str(i): f"LABEL_{i}" for i in range(10)},
                label2id={f"LABEL_{i}": i for i in range(10)})
    assert_usage_error(run(pytester, f"--model-path={folder}"), "default label names")


def test_id2label_shorter_than_the_classifier(pytester, model_copy):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    labels = {k: v for k, v in config["id2label"].items() if k != "9"}
    edit_config(folder, id2label=labels, label2id={v: int(k) for k, v in labels.items()})
    assert_usage_error(run(pytester, f"--model-path={folder}"), "10 output rows", "9 labels")


def test_remote_code_is_refused(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, auto_map={"AutoModelForSequenceClassification": "evil.Model"})
    assert_usage_error(run(pytester, f"--model-path={folder}"), "never runs remote or custom code")


def test_unsupported_architecture(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, model_type="gpt2")
    assert_usage_error(run(pytester, f"--model-path={folder}"), "'gpt2'", "distilbert")


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = '{"text": "where is my order", "intent": "order_status"}'


def test_malformed_json_line_reports_its_number(pytester, small_model, tmp_path):
    golden = write_lines(tmp_path / "g.jsonl", [GOOD, GOOD, '{"text": "hi", "intent": "chitchat"'])
    assert_usage_error(run(pytester, f"--model-path={small_model}", f"--golden-set={golden}"), "line 3", "not valid JSON")


def test_empty_text(pytester, small_model, tmp_path):
    golden = write_lines(tmp_path / "g.jsonl", [GOOD, '{"text": "  ", "intent": "chitchat"}'])
    assert_usage_error(run(pytester, f"--model-path={small_model}", f"--golden-set={golden}"), "line 2", "empty")


def test_label_the_model_does_not_know(pytester, small_model, small_golden, tmp_path):
    lines = small_golden.read_text().splitlines() + ['{"text": "where is it", "intent": "order_stauts"}']
    golden = write_lines(tmp_path / "g.jsonl", lines)
    assert_usage_error(run(pytester, f"--model-path={small_model}", f"--golden-set={golden}"),
                       "'order_stauts'", "did you mean 'order_status'")


def test_golden_set_covering_fewer_labels_than_the_model(pytester, small_model, small_golden, tmp_path):
    lines = [line for line in small_golden.read_text().splitlines() if '"intent": "chitchat"' not in line]
    golden = write_lines(tmp_path / "g.jsonl", lines)
    assert_usage_error(run(pytester, f"--model-path={small_model}", f"--golden-set={golden}"),
                       "10 labels", "none for: chitchat")


def test_model_with_a_different_label_count_than_the_golden_set(pytester, model_copy, small_golden):
    folder = model_copy()
    state = load_file(folder / "model.safetensors")
    state["classifier.weight"] = state["classifier.weight"][:9].clone()
    state["classifier.bias"] = state["classifier.bias"][:9].clone()
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    labels = {k: v for k, v in config["id2label"].items() if k != "9"}
    edit_config(folder, id2label=labels, label2id={v: int(k) for k, v in labels.items()})
    assert_usage_error(run(pytester, f"--model-path={folder}", f"--golden-set={small_golden}"),
                       "'chitchat'", "9 labels")


def test_baseline_with_other_labels(pytester, small_model, model_copy):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    swapped = dict(config["id2label"], **{"0": config["id2label"]["1"], "1": config["id2label"]["0"]})
    edit_config(folder, id2label=swapped, label2id={v: int(k) for k, v in swapped.items()})
    assert_usage_error(run(pytester, f"--model-path={small_model}", f"--production-path={folder}"),
                       "same labels in the same order")


def test_missing_onnx_file(pytester, tmp_path):
    assert_usage_error(run(pytester, f"--onnx-path={tmp_path / 'x.onnx'}"), "--onnx-path", "does not exist")


def test_cuda_without_a_gpu(pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so --device cuda is valid here")
    assert_usage_error(run(pytester, "--device=cuda"), "no CUDA device")


def test_weights_missing_a_layer_are_not_silently_randomised(pytester, model_copy):
    folder = model_copy()
    state = load_file(folder / "model.safetensors")
    del state["distilbert.transformer.layer.1.ffn.lin2.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    result = run(pytester, f"--model-path={folder}")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "lack 1 tensor(s)" in out and "layer.1.ffn.lin2.weight" in out and "fix:" in out
    assert "Traceback" not in out


def test_config_that_is_not_an_object(pytester, model_copy):
    folder = model_copy()
    (folder / "config.json").write_text("[1, 2]")
    assert_usage_error(run(pytester, f"--model-path={folder}"), "not an object")


def test_labels_that_are_not_names(pytester, model_copy):
    folder = model_copy()
    edit_config(folder, id2label={str(i): i for i in range(10)})
    assert_usage_error(run(pytester, f"--model-path={folder}"), "not names")
