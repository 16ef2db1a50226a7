"""Architecture adapters: where the embedding module and the encoder layers live in each family.

Analyses (hooks for patching, captum layers) talk to an adapter, never to `model.distilbert...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MangaAssistInputError


@dataclass(frozen=True)
class ArchitectureAdapter:
    family: str
    base_attr: str  # the encoder submodule of the *ForSequenceClassification model
    layers_path: tuple[str, ...]  # from the encoder submodule to the list of encoder layers
    layers_key: str  # config.json keys of the layer count and the hidden size
    hidden_key: str

    def base(self, model):
        return getattr(model, self.base_attr)

    def embeddings(self, model):
        return self.base(model).embeddings

    def layers(self, model) -> list:
        node = self.base(model)
        for attr in self.layers_path:
            node = getattr(node, attr)
        return list(node)


ADAPTERS = {
    "distilbert": ArchitectureAdapter("distilbert", "distilbert", ("transformer", "layer"), "n_layers", "dim"),
    "bert": ArchitectureAdapter("bert", "bert", ("encoder", "layer"), "num_hidden_layers", "hidden_size"),
    "roberta": ArchitectureAdapter("roberta", "roberta", ("encoder", "layer"), "num_hidden_layers", "hidden_size"),
}


def adapter_for(model_type: str, source: str) -> ArchitectureAdapter:
    try:
        return ADAPTERS[model_type]
    except KeyError:
        raise MangaAssistInputError(
            f"The checkpoint {source} is a {model_type!r} model; supported architectures: {', '.join(ADAPTERS)}.",
            "Point --model-path at a DistilBERT, BERT or RoBERTa sequence-classification checkpoint, "
            "or add an ArchitectureAdapter for this family to pytest_mangaassist.adapters.ADAPTERS.",
        ) from None
