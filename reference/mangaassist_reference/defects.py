"""Planted defects: broken variants of a checkpoint that the gates must catch.

Used by the plugin's tests and by `python -m mangaassist_reference defect`, so anyone can
check that a gate file fails on the defect it is meant to catch.
"""

from __future__ import annotations

from pathlib import Path


def reinitialise_top_layer(source: str | Path, target: str | Path, seed: int = 0) -> Path:
    """Copy a checkpoint with its top encoder layer reset to fresh random weights.

    Done by hand rather than with the model's _init_weights: transformers skips modules it
    marks as already initialised after loading, which would make the reset a silent no-op.
    """
    import torch

    from pytest_mangaassist.loading.model import IntentModel

    model = IntentModel.load(source)
    std = model.hf_model.config.initializer_range
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.layers[-1].modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    target = Path(target)
    model.hf_model.save_pretrained(target)
    model.tokenizer.save_pretrained(target)
    return target


# -- broken exports: what the export gates must catch (source analysis, Netron section) --------------

def onnx_static_shape(source: str | Path, target: str | Path) -> Path:
    """An ONNX export whose batch and sequence axes are frozen at the tracing example's shape."""
    from pytest_mangaassist.loading.export import export_onnx
    from pytest_mangaassist.loading.model import IntentModel

    return export_onnx(IntentModel.load(source), target, dynamic=False)


def onnx_without_mask(source: str | Path, target: str | Path) -> Path:
    """An ONNX export whose attention_mask input was dropped: every token, padding included, is attended."""
    import torch

    from pytest_mangaassist.loading.export import run_exporter, example_inputs, write_onnx_metadata
    from pytest_mangaassist.loading.model import IntentModel

    model = IntentModel.load(source)

    class IdsOnly(torch.nn.Module):
        def __init__(self, hf_model):
            super().__init__()
            self.hf_model = hf_model

        def forward(self, input_ids):
            return self.hf_model(input_ids=input_ids, return_dict=False)[0]

    target = Path(target)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.max_length)
    run_exporter(IdsOnly(model.hf_model).eval(), example_inputs(model)[:1], target, ["input_ids"],
                  ({0: batch, 1: sequence},))
    write_onnx_metadata(target, model.labels, model.content_hash)
    return target


def onnx_swapped_label_rows(source: str | Path, target: str | Path, rows: tuple[int, int] = (0, 1)) -> Path:
    """An ONNX export whose classifier rows `rows` are swapped while its metadata keeps id2label's order."""
    import torch

    from pytest_mangaassist.loading.export import export_onnx
    from pytest_mangaassist.loading.model import IntentModel

    model = IntentModel.load(source)
    state = model.hf_model.state_dict()
    with torch.no_grad():
        for key in ("classifier.weight", "classifier.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"):
            if key in state:
                tensor = state[key]
                tensor[list(rows)] = tensor[list(reversed(rows))].clone()
    return export_onnx(model, target)
