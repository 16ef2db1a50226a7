"""Planted defects: broken variants of a checkpoint that the gates must catch.

Used by the plugin's tests and by `python -m pytest_mangaassist.reference defect`, so anyone can
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

    from ..model import IntentModel

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
