"""A gate's result must not depend on which tests ran before it in the same process (issue #23, item 9):
exports and analyses leave the model and the libraries as they found them, and the per-layer outputs the
gates read survive a second import of transformers' modeling module."""

import logging
import warnings

import numpy as np
import pytest

from pytest_mangaassist import IntentModel, MangaAssistInputError, integrated_gradients, layer_conductance
from pytest_mangaassist.analysis.patching import patched_logits
from pytest_mangaassist.loading.export import compile_serving_artifact

from conftest import outcomes

# The order that broke: the modeling module is first imported inside a pytester test (pytester takes it out of
# sys.modules after the test, the auto classes keep the old copy), then a model is built from the module
# imported anew (the reference kit's convert step does that on a fresh clone), then the gates read a model of
# the old copy. transformers' own output capture gave them empty hidden_states and attentions.
ORDER_FILE = """
import math

import transformers
import transformers.modeling_utils  # as tests/conftest.py does: torch stays imported, the DistilBERT module does not

from pytest_mangaassist import IntentModel, assert_attention_shift, assert_token_senses_separate

EARLY = {{}}


def test_a_model_is_first_loaded_inside_a_pytester_test(pytester):
    EARLY["model"] = IntentModel.load({finetuned!r})
    assert EARLY["model"].predict(["where is my order"])


def test_a_model_is_built_from_the_module_imported_again():
    config = EARLY["model"].hf_model.config
    built = transformers.DistilBertForSequenceClassification(config)
    assert type(built) is not type(EARLY["model"].hf_model)  # two copies of the classes in one process


def test_attention_shift(pretrained_model):
    texts = ["is this isekai any good", "recommend a seinen like Berserk", "the isekai omnibus, do you have it"]
    shift = assert_attention_shift(EARLY["model"], texts, against=pretrained_model,
                                   words=["isekai", "seinen", "omnibus"], layer=-1, min_shift=-1.0)
    assert shift.shape[0] == EARLY["model"].num_layers and all(math.isfinite(s) for s in shift.ravel())


def test_token_senses():
    orders = ["I want to return my order", "how do I return this damaged book"]
    series = ["I want to return to this series", "I return to Berserk every year"]
    result = assert_token_senses_separate(EARLY["model"], orders, contrast=series, word="return", from_layer=1,
                                          min_separation=-2.0)
    assert len(result.separation) == EARLY["model"].num_layers + 1
"""


def test_gates_read_every_layer_after_the_model_module_is_imported_again(pytester, small_reference):
    pytester.makepyfile(test_order=ORDER_FILE.format(finetuned=str(small_reference / "finetuned")))
    result = pytester.runpytest_subprocess(f"--model-path={small_reference / 'finetuned'}",
                                           f"--pretrained-path={small_reference / 'pretrained'}",
                                           "--mangaassist-no-cache", "-p", "pytester", "-p", "no:randomly")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, out
    assert outcomes(result.stdout.str()) == {"passed": 4}, out
    assert "Traceback" not in out and "non-empty TensorList" not in out


def _state(model) -> dict:
    """What an analysis or export could leave changed: the model's config, attention implementation, modules
    (mode, hooks, attributes), parameters (gradient flags, storage), and the process-wide settings of torch,
    transformers' output capture, logging and warnings."""
    import torch
    from transformers.utils import output_capturing

    hf = model.hf_model
    collector = output_capturing._active_collector
    return {
        "config": hf.config.to_dict(), "attention": hf.config._attn_implementation,
        "modules": {name: (type(m), m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks),
                           dict(m._backward_hooks), sorted(vars(m))) for name, m in hf.named_modules()},
        "parameters": {name: (p.requires_grad, p.dtype, p.data_ptr()) for name, p in hf.named_parameters()},
        "torch": (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_num_threads(),
                  torch.are_deterministic_algorithms_enabled(), torch.get_default_dtype(),
                  torch.compiler.is_compiling()),
        "output capture": (collector.compiling, collector.global_var, collector.context_var.get(),
                           dict(output_capturing._CAN_RECORD_REGISTRY)),
        "logging": {name: logging.getLogger(name).level for name in ("torch.onnx", "transformers", "onnxscript")},
        "warnings": list(warnings.filters),
    }


def test_exports_and_analyses_leave_the_model_and_the_libraries_as_they_found_them(small_model, tmp_path):
    # the ONNX export (torch.onnx.export, dynamo) was checked the same way once (no change) and is left out: it
    # costs 10 s of the CI's budget
    model = IntentModel.load(small_model)
    model.predict(["hi"])
    before = _state(model)
    steps = {
        "forward with every layer's outputs": lambda: model.forward(["where is my order"], cls_states=True,
                                                                     hidden_states=True, attentions=True),
        "serving compilation": lambda: compile_serving_artifact(model, tmp_path / "model.pt"),
        "integrated gradients": lambda: integrated_gradients(model, ["is this on sale"], "promotion", at_most_steps=16),
        "layer conductance": lambda: layer_conductance(model, ["is this on sale"], "promotion", n_steps=8),
        "activation patching": lambda: patched_logits(model, ["hi", "is this on sale"],
                                                      np.zeros((2, model.num_layers + 1, model.hidden_size))),
    }
    for step, run in steps.items():
        run()
        after = _state(model)
        changed = [key for key in before if before[key] != after[key]]
        assert not changed, f"{step} left {changed} changed"


@pytest.fixture
def fresh_model(small_model):
    model = IntentModel.load(small_model)
    model.predict(["hi"])
    return model


def test_a_model_without_attention_weights_is_refused_naming_the_attention_implementation(small_model):
    # Loaded with sdpa, not switched by set_attn_implementation: transformers refuses that switch once a pytester
    # run earlier in the process has dropped the modeling module from sys.modules (the test then depended on order).
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf_model = AutoModelForSequenceClassification.from_pretrained(small_model, attn_implementation="sdpa")
    model = IntentModel(hf_model, AutoTokenizer.from_pretrained(small_model))
    with pytest.raises(MangaAssistInputError, match="(?s)computes attention with 'sdpa', which returns no attention "
                                                    "weights.*fix: Load it with attn_implementation='eager'"):
        model.forward(["where is my order"], attentions=True)
    assert model.forward(["where is my order"], hidden_states=True).hidden_states[0].shape[0] == 3


def test_layers_that_did_not_run_are_named_not_stacked(fresh_model, monkeypatch):
    import torch

    layers = fresh_model.layers
    monkeypatch.setattr(type(fresh_model), "layers", property(lambda self: [*layers, torch.nn.Identity()]))
    with pytest.raises(MangaAssistInputError, match="recorded 3 hidden states, not 4: its encoder did not run the "
                                                    "layers its architecture adapter \\(distilbert\\) names"):
        fresh_model.forward(["where is my order"], hidden_states=True)
