"""Produce the deployable artifacts of a model: the ONNX export and the compiled serving artifact.

Both carry the model's label map and content hash (ONNX: metadata_props; TorchScript: an extra
file), so a later check can tell which model an artifact came from and in which label order.
Exports made for a test session are cached by the model's content hash under a file lock, so a
suite (and every xdist worker) exports once.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

ONNX_OPSET = 18
LABELS_KEY = "id2label"  # metadata key: JSON list of labels, index = logit row
HASH_KEY = "mangaassist_content_hash"
SERVING_META = "mangaassist.json"  # extra file inside a TorchScript artifact
EXPORT_FORMAT = "export-1"  # bump when what an export contains changes
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

    # the exporter prints progress lines and logs about optional packages (torchvision): not test output
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=input_names,
                                        output_names=["logits"], dynamic_shapes=dynamic_shapes,
                                        opset_version=ONNX_OPSET, external_data=False)
            program.save(str(path), external_data=False)
    finally:
        exporter_log.setLevel(level)


def write_onnx_metadata(path: Path, labels, content_hash: str) -> None:
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {LABELS_KEY: json.dumps(list(labels)), HASH_KEY: content_hash})
    onnx.save(proto, str(path))


def cached_onnx_export(model, cache_dir: str | Path) -> Path:
    """The model's ONNX export in cache_dir, made once per content hash (locked against xdist workers)."""
    target = Path(cache_dir) / f"onnx-{model.content_hash}-{EXPORT_FORMAT}.onnx"
    return _once(target, lambda tmp: export_onnx(model, tmp))


def compile_serving_artifact(model, path: str | Path) -> Path:
    """Compile the serving artifact: torch_neuronx.trace where torch-neuronx is installed (an Inferentia
    / Trainium host), else torch.jit.trace. Both produce a TorchScript module saved with the label map."""
    import torch

    module, inputs = logits_module(model), example_inputs(model)
    meta = {"labels": list(model.labels), "content_hash": model.content_hash}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # torch.jit.trace is deprecated in favour of torch.export, but TorchScript is what Neuron
        # compilation emits and what the serving stack loads, so it is the format under test
        warnings.simplefilter("ignore")
        neuronx = _torch_neuronx()
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


def cached_serving_artifact(model, cache_dir: str | Path) -> Path:
    compiler = "neuronx" if _torch_neuronx() is not None else "jit"
    target = Path(cache_dir) / f"serving-{model.content_hash}-{compiler}-{EXPORT_FORMAT}.pt"
    return _once(target, lambda tmp: compile_serving_artifact(model, tmp))


def _torch_neuronx():
    try:
        import torch_neuronx
    except ImportError:
        return None
    return torch_neuronx


def _once(target: Path, make) -> Path:
    """make(tmp_path) once: under a lock, written to a temporary name and renamed into place."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            tmp = target.with_name(f".{target.stem}.{os.getpid()}{target.suffix}")
            try:
                make(tmp)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    return target
