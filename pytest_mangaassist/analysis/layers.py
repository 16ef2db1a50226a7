"""Layer numbering shared by the representation analyses: 0 is the embedding output, l >= 1 the
output of encoder layer l (the indexing of Hugging Face hidden_states)."""

from __future__ import annotations

from ..errors import MangaAssistInputError


def layer_name(layer: int) -> str:
    return "embeddings" if layer == 0 else f"layer {layer}"


def resolve_layer(layer: int, num_layers: int, caller: str) -> int:
    """Accept 0..L, or a negative index counted from the top (-1 is the last encoder layer)."""
    resolved = layer + num_layers + 1 if layer < 0 else layer
    if not isinstance(layer, int) or not 0 <= resolved <= num_layers:
        raise MangaAssistInputError(
            f"{caller}: layer {layer!r} does not exist; this model has the embeddings (0) and encoder layers "
            f"1..{num_layers}.",
            f"Pass a layer from 0 to {num_layers}, or -1 for the last encoder layer.",
        )
    return resolved
