"""Architecture adapters: where the embedding module and the encoder layers of a *ForSequenceClassification
model live, and how its own pooling and classification head turn a state into logits.

One generic mechanism serves every supported family (FAMILIES), found from the model, not written per family:
- embeddings: the module that owns get_input_embeddings() (word + position + type embeddings, norm);
- layers: the one nn.ModuleList under model.base_model whose length is config.num_hidden_layers;
- head: the model's own forward pass with the last encoder layer's output substituted (the logit lens of any
  layer: pooler, dense, activation, norm and classifier are the model's own, never re-implemented);
- score layer: the last nn.Linear outside the base model with one output per label.
What a family truly needs of its own is a FamilySpec entry: config keys that are named differently
(DistilBERT), a ReLU in the head that the IG rule integrates (DistilBERT, DeBERTa-v2 with a relu pooler),
and layers shared across depths (ALBERT). docs/families.md has the table, generated from tests/test_families.py.

Analyses (hooks for patching, captum layers) talk to an adapter, never to `model.distilbert...`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MangaAssistInputError


def _distilbert_relu(model):
    # DistilBertForSequenceClassification.forward inlines relu(pre_classifier(cls)) into the classifier
    return model.pre_classifier


def _deberta_relu(model):
    # ContextPooler: dense -> ACT2FN[pooler_hidden_act] -> classifier (dropout between: a no-op in eval)
    return model.pooler.dense if model.config.pooler_hidden_act == "relu" else None


@dataclass(frozen=True)
class FamilySpec:
    """What one family needs beyond the generic mechanism (the defaults: none)."""

    head: str  # the head, in words (docs/families.md)
    layers_key: str = "num_hidden_layers"  # config.json keys of the layer count and the hidden size
    hidden_key: str = "hidden_size"
    relu: Callable | None = None  # model -> the Linear whose output passes a ReLU straight to the score layer
    shared_layers: bool = False  # one layer module serves several depths (ALBERT)


FAMILIES = {
    "distilbert": FamilySpec("[CLS] -> pre_classifier, ReLU -> classifier", "n_layers", "dim", _distilbert_relu),
    "bert": FamilySpec("[CLS] -> pooler (dense, tanh) -> classifier"),
    "roberta": FamilySpec("<s> -> dense, tanh -> out_proj"),
    "xlm-roberta": FamilySpec("<s> -> dense, tanh -> out_proj"),
    "electra": FamilySpec("[CLS] -> dense, GELU -> out_proj"),
    "deberta-v2": FamilySpec("[CLS] -> pooler (dense, pooler_hidden_act: GELU) -> classifier", relu=_deberta_relu),
    # ALBERT runs one AlbertLayerGroup num_hidden_layers times: the adapter gives each depth its own view
    "albert": FamilySpec("[CLS] -> pooler (dense, tanh) -> classifier", shared_layers=True),
    "mpnet": FamilySpec("<s> -> dense, tanh -> out_proj"),
    # the head reads the first non-pad token after final_norm (classifier_pooling "cls"; "mean" is refused)
    "modernbert": FamilySpec("final_norm, [CLS] -> dense, GELU, LayerNorm -> classifier"),
}
DECODERS = ("gpt", "llama", "mistral", "qwen", "gemma", "phi", "opt", "bloom", "falcon", "mixtral", "mpt", "gptj",
            "gpt_neox", "gpt2", "ctrl", "xlnet", "transfo-xl", "olmo", "stablelm", "starcoder")
SEQ2SEQ = ("t5", "mt5", "bart", "mbart", "pegasus", "marian", "led", "bigbird_pegasus", "plbart", "fsmt", "prophetnet",
           "longt5", "umt5", "nllb")
SUPPORTED = ("DistilBERT, BERT (MiniLM), RoBERTa, XLM-RoBERTa, ELECTRA, DeBERTa-v2/v3 (mDeBERTa), ALBERT, MPNet, "
             "ModernBERT")


class SharedLayerDepth:
    """One depth of a shared layer stack (ALBERT): a forward hook on it sees only that depth's call."""

    def __init__(self, module, depth: int):
        self.module, self.depth = module, depth


@dataclass(frozen=True)
class ArchitectureAdapter:
    family: str
    spec: FamilySpec

    @property
    def layers_key(self) -> str:
        return self.spec.layers_key

    @property
    def hidden_key(self) -> str:
        return self.spec.hidden_key

    def base(self, model):
        return model.base_model

    def embeddings(self, model):
        """The module whose output the encoder reads, found as the owner of the word-embedding table."""
        table = model.get_input_embeddings()
        owner = next((module for module in self.base(model).modules()
                      if any(child is table for child in module.children())), None)
        if owner is None:
            raise self._missing(model, "the module that owns get_input_embeddings()")
        return owner

    def layer_list(self, model) -> tuple:
        """(module, attribute name) of the encoder's nn.ModuleList of layers, for code that swaps it for part of
        it; None where one module serves several depths (ALBERT), which cannot be sliced."""
        if self.spec.shared_layers:
            return None
        import torch

        count = getattr(model.config, self.layers_key)
        found = [(owner, name) for owner in self.base(model).modules() for name, child in owner.named_children()
                 if isinstance(child, torch.nn.ModuleList) and len(child) == count]
        if len(found) != 1:
            raise self._missing(model, f"one nn.ModuleList of {count} layers under base_model "
                                       f"(found {len(found)})")
        return found[0]

    def layers(self, model) -> list:
        """One module per depth, in order. For shared layers, the module called at that depth: a hook on it
        fires at every depth it serves, so analyses that hook a depth go through hook_layer."""
        if self.spec.shared_layers:
            groups = list(model.base_model.encoder.albert_layer_groups)
            count = getattr(model.config, self.layers_key)
            return [groups[depth * len(groups) // count] for depth in range(count)]
        owner, attr = self.layer_list(model)
        return list(getattr(owner, attr))

    def hook_layer(self, model, depth: int, hook):
        """Register a forward hook (module, inputs, output) -> output that runs at encoder depth `depth` only
        (0-based), shared layers included; returns the handle."""
        module = self.layers(model)[depth]
        if not self.spec.shared_layers:
            return module.register_forward_hook(hook)
        # the same module runs at several depths: count the calls of this forward pass by its depths
        depths = [d for d, m in enumerate(self.layers(model)) if m is module]
        calls = []

        def at_depth(mod, inputs, output):
            calls.append(None)
            if depths[(len(calls) - 1) % len(depths)] == depth:
                return hook(mod, inputs, output)
            return None

        return module.register_forward_hook(at_depth)

    def score_layer(self, model):
        """The head's last Linear, which turns its input into the logits."""
        import torch

        prefix = model.base_model_prefix
        found = [module for name, module in model.named_modules()
                 if isinstance(module, torch.nn.Linear) and module.out_features == model.config.num_labels
                 and not name.startswith(prefix + ".") and name != prefix]
        if not found:
            raise self._missing(model, f"a Linear with {model.config.num_labels} outputs outside base_model")
        return found[-1]

    def relu_layer(self, model):
        """The Linear before the head's ReLU (DistilBERT's pre_classifier), or None for smooth heads."""
        return self.spec.relu(model) if self.spec.relu else None

    def head(self, model, states):
        """The model's own pooling and classification head applied to (n, hidden) states of the pooled position
        ([CLS]) at any layer (the logit lens): one forward pass over a one-token input in which the last encoder
        layer's output is replaced by the n states, so what follows it (final norm, pooler, head) is the model's.
        The layers below run on that one row only, not on n copies of it (what they compute is replaced anyway:
        on the reference model, 5,500 examples x 7 depths: 7.9 s -> 0.23 s, the same logits); every supported
        family's head reads its rows independently, which tests/test_families.py checks (the lens at the top
        layer equals the model's logits)."""
        import torch

        token = 1 if model.config.pad_token_id == 0 else 0  # any token but padding: its state is replaced
        ids = torch.full((1, 1), token, dtype=torch.long, device=states.device)
        mask = torch.ones_like(ids)
        last = getattr(model.config, self.layers_key) - 1
        handle = self.hook_layer(model, last, lambda _m, _i, output: replace_states(output, states[:, None, :]))
        try:
            return model(input_ids=ids, attention_mask=mask).logits
        finally:
            handle.remove()

    def _missing(self, model, what: str) -> MangaAssistInputError:
        return MangaAssistInputError(
            f"The {self.family} model ({type(model).__name__}) has no {what}, which the analyses need.",
            "Add what this family needs to pytest_mangaassist.loading.adapters.FAMILIES (docs/families.md, "
            "'Adding a family') and run tests/test_families.py.")


def replace_states(output, states):
    """A layer's output (a tensor, or a tuple whose first item is the hidden states) with the states replaced."""
    if isinstance(output, tuple):
        return (states, *output[1:])
    return states


def adapter_for(model_type: str, source: str) -> ArchitectureAdapter:
    spec = FAMILIES.get(model_type)
    if spec is None:
        kind = ("a decoder-only language model" if model_type.startswith(DECODERS) else
                "a sequence-to-sequence model" if model_type.startswith(SEQ2SEQ) else "not a supported encoder")
        raise MangaAssistInputError(
            f"The checkpoint {source} is a {model_type!r} model: {kind}. pytest-mangaassist tests encoder "
            f"*ForSequenceClassification models: {SUPPORTED} (config.json model_type: {', '.join(FAMILIES)}).",
            "Point --model-path at a sequence-classification checkpoint of a supported encoder, "
            "or add the family to pytest_mangaassist.loading.adapters.FAMILIES (docs/families.md, 'Adding a family').",
        ) from None
    return ArchitectureAdapter(model_type, spec)
