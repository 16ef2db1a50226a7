"""Produce the deployable artifacts of a model: the ONNX export and the compiled serving artifact.

Both carry the model's label map and content hash (ONNX: metadata_props; TorchScript: an extra
file), so a later check can tell which model an artifact came from and in which label order.
Exports made for a test session are cached (and verified before they are loaded) by
pytest_mangaassist.cache.artifacts; this module only builds them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

ONNX_OPSET = 18
LABELS_KEY = "id2label"  # metadata key: JSON list of labels, index = logit row
HASH_KEY = "mangaassist_content_hash"
SERVING_META = "mangaassist.json"  # extra file inside a TorchScript artifact
EXPORT_FORMAT = "export-1"  # bump when what an export contains changes (part of the cached file's name)
NEURON_FIX = ("Uninstall it (pip uninstall torch-neuronx) and, on an Inferentia / Trainium host, install the real "
              "package from the AWS Neuron repository: pip install torch-neuronx "
              "--extra-index-url=https://pip.repos.neuron.amazonaws.com")
# Example input for tracing: batch 2 and several tokens, since torch.export specialises dimensions of size 0/1.
EXAMPLE_TEXTS = ("where is my order? it was due last week", "hi")


def logits_module(model):
    """hf model -> a module (input_ids, attention_mask) -> logits, the serving contract."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, hf_model):
            super().__init__()
            self.hf_model = hf_model

        def forward(self, input_ids, attention_mask):
            return self.hf_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]

    return LogitsOnly(model.hf_model).eval()


def example_inputs(model) -> tuple:
    batch = model.encode(list(EXAMPLE_TEXTS))
    return batch["input_ids"], batch["attention_mask"]


def export_onnx(model, path: str | Path, dynamic: bool = True) -> Path:
    """Export model (an IntentModel) to ONNX: inputs input_ids + attention_mask, output logits,
    batch and sequence axes symbolic (dynamic=False pins them to the example's shape: only for
    building the broken artifact the tests need), label map and content hash in the metadata."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = None
    if dynamic:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.max_length)
        shapes = ({0: batch, 1: sequence}, {0: batch, 1: sequence})
    run_exporter(logits_module(model), example_inputs(model), path, ["input_ids", "attention_mask"], shapes)
    write_onnx_metadata(path, model.labels, model.content_hash)
    return path


def run_exporter(module, inputs: tuple, path: Path, input_names: list[str], dynamic_shapes) -> None:
    import torch

    # the exporter prints progress lines and logs about optional packages (torchvision): not test output.
    # Its draft-export fallback hangs a handler on torch's structured-trace logger, which then emits one empty
    # DEBUG record per traced event (741 on a cold export of the reference model): silenced while exporting
    exporter_log, trace_log = logging.getLogger("torch.onnx"), logging.getLogger("torch.__trace")
    level, trace_disabled = exporter_log.level, trace_log.disabled
    exporter_log.setLevel(logging.ERROR)
    trace_log.disabled = True
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=input_names,
                                        output_names=["logits"], dynamic_shapes=dynamic_shapes,
                                        opset_version=ONNX_OPSET, external_data=False)
            program.save(str(path), external_data=False)
    finally:
        exporter_log.setLevel(level)
        trace_log.disabled = trace_disabled


def write_onnx_metadata(path: Path, labels, content_hash: str) -> None:
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {LABELS_KEY: json.dumps(list(labels)), HASH_KEY: content_hash})
    onnx.save(proto, str(path))


def compile_serving_artifact(model, path: str | Path) -> Path:
    """Compile the serving artifact: torch_neuronx.trace where torch-neuronx is installed (an Inferentia
    / Trainium host), else torch.jit.trace. Both produce a TorchScript module saved with the label map."""
    import torch

    module, inputs = logits_module(model), example_inputs(model)
    meta = {"labels": list(model.labels), "content_hash": model.content_hash}
    neuronx = torch_neuronx()  # before warnings are silenced: a placeholder package is worth a warning
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # torch.jit.trace is deprecated in favour of torch.export, but TorchScript is what Neuron
        # compilation emits and what the serving stack loads, so it is the format under test
        warnings.simplefilter("ignore")
        if neuronx is not None:  # Neuron compiles one input shape: batch 1 padded to the model's max length
            batch = model.tokenizer([EXAMPLE_TEXTS[0]], padding="max_length", max_length=model.max_length,
                                    truncation=True, return_tensors="pt")
            inputs = (batch["input_ids"], batch["attention_mask"])
            compiled = neuronx.trace(module, inputs)
            meta.update(compiler="torch_neuronx", static_shape=list(inputs[0].shape))
        else:
            compiled = torch.jit.trace(module, inputs)
            meta.update(compiler="torch.jit.trace")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(compiled, str(path), _extra_files={SERVING_META: json.dumps(meta)})
    return path


class NeuronPlaceholderWarning(UserWarning):
    """torch-neuronx is installed, but it is PyPI's placeholder package, not the Neuron SDK's."""


_neuron_warned = False


def torch_neuronx():
    """The torch_neuronx module where the Neuron SDK is installed, else None.

    PyPI's `torch-neuronx` is a placeholder whose import raises ImportError("WRONG PACKAGE ..."): then
    the serving artifact is compiled with torch.jit.trace, as without it, and a NeuronPlaceholderWarning
    says so once per process (likewise for a torch-neuronx that is installed but does not import).
    """
    global _neuron_warned
    try:
        import torch_neuronx as module
    except ImportError as exc:
        problem = _neuron_problem(exc)
        if problem and not _neuron_warned:
            _neuron_warned = True
            warnings.warn(NeuronPlaceholderWarning(
                f"pytest-mangaassist: {problem} (importing it raised ImportError: {str(exc).strip()[:300]}); the "
                f"serving artifact is compiled with torch.jit.trace instead of torch_neuronx.trace. "
                f"Fix: {NEURON_FIX}"), stacklevel=2)
        return None
    return module


def _neuron_problem(exc: ImportError) -> str | None:
    """Why an installed torch-neuronx does not import; None when it is simply not installed."""
    if "WRONG PACKAGE" in str(exc).upper():
        return "the installed torch-neuronx is PyPI's placeholder package, not the AWS Neuron SDK's"
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("torch-neuronx")
    except PackageNotFoundError:
        return None
    return f"torch-neuronx {installed} is installed but does not import"
