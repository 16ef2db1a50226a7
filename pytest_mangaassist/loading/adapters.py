"""Architecture adapters: where the embedding module and the encoder layers live in each family, and
how its classification head turns a [CLS] state into logits.

Analyses (hooks for patching, captum layers) talk to an adapter, never to `model.distilbert...`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MangaAssistInputError


def _distilbert_head(model, cls):
    # DistilBertForSequenceClassification.forward inlines this (no head module to call): pre_classifier,
    # ReLU, dropout (a no-op in eval), classifier
    import torch

    return model.classifier(torch.relu(model.pre_classifier(cls)))


def _bert_head(model, cls):
    return model.classifier(model.bert.pooler(cls[:, None, :]))  # the pooler reads position 0: dense + tanh


def _roberta_head(model, cls):
    return model.classifier(cls[:, None, :])  # RobertaClassificationHead reads position 0: dense, tanh, out_proj


@dataclass(frozen=True)
class ArchitectureAdapter:
    family: str
    base_attr: str  # the encoder submodule of the *ForSequenceClassification model
    layers_path: tuple[str, ...]  # from the encoder submodule to the list of encoder layers
    layers_key: str  # config.json keys of the layer count and the hidden size
    hidden_key: str
    head_fn: Callable  # (hf_model, [CLS] states (n, hidden) tensor) -> logits (n, labels)
    score_path: tuple[str, ...]  # the head's last Linear, which turns its input into the logits
    relu_path: tuple[str, ...] = ()  # the head's Linear whose output passes a ReLU on to score_path, if any

    def head(self, model, cls_states):
        """The model's own classification head applied to [CLS] states (of any layer: the logit lens)."""
        return self.head_fn(model, cls_states)

    def base(self, model):
        return getattr(model, self.base_attr)

    def score_layer(self, model):
        return _submodule(model, self.score_path)

    def relu_layer(self, model):
        """The Linear before the head's ReLU (DistilBERT's pre_classifier), or None for heads without one."""
        return _submodule(model, self.relu_path) if self.relu_path else None

    def embeddings(self, model):
        return self.base(model).embeddings

    def layers(self, model) -> list:
        owner, attr = self.layer_list(model)
        return list(getattr(owner, attr))

    def layer_list(self, model) -> tuple:
        """(module, attribute name) of the encoder's layer list, for code that swaps the list for part of it."""
        return _submodule(self.base(model), self.layers_path[:-1]), self.layers_path[-1]


def _submodule(model, path: tuple[str, ...]):
    for attr in path:
        model = getattr(model, attr)
    return model


ADAPTERS = {
    "distilbert": ArchitectureAdapter("distilbert", "distilbert", ("transformer", "layer"), "n_layers", "dim",
                                      _distilbert_head, ("classifier",), ("pre_classifier",)),
    "bert": ArchitectureAdapter("bert", "bert", ("encoder", "layer"), "num_hidden_layers", "hidden_size", _bert_head,
                                ("classifier",)),
    "roberta": ArchitectureAdapter("roberta", "roberta", ("encoder", "layer"), "num_hidden_layers", "hidden_size",
                                   _roberta_head, ("classifier", "out_proj")),
}


def adapter_for(model_type: str, source: str) -> ArchitectureAdapter:
    try:
        return ADAPTERS[model_type]
    except KeyError:
        raise MangaAssistInputError(
            f"The checkpoint {source} is a {model_type!r} model; supported architectures: {', '.join(ADAPTERS)}.",
            "Point --model-path at a DistilBERT, BERT or RoBERTa sequence-classification checkpoint, "
            "or add an ArchitectureAdapter for this family to pytest_mangaassist.loading.adapters.ADAPTERS.",
        ) from None
