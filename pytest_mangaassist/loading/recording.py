"""Every layer's hidden states and attention weights of one forward pass, recorded by hooks placed on the
model for that pass and removed after it.

transformers 5 records them itself (`output_hidden_states=True`, `output_attentions=True`) with hooks it
installs once per model, and marks the model as hooked, on the modules whose class is the one a process-wide
registry holds for the model's class *name* (transformers.utils.output_capturing). When a modeling module
is imported a second time in one process (pytester puts sys.modules back after each of its tests, so the
next import of the module is a fresh copy; likewise importlib.reload, a notebook's autoreload), the first
model built from the new copy re-registers that name with the new classes. A model built before it, whose
layers are instances of the old classes, then gets no hook, and every later call returns empty
hidden_states and attentions without a word (issue #23: `stack expects a non-empty TensorList` in gates
that ran after such a test, depending on which tests a worker had run before). Recording here matches the
model's own modules, with its own class's declaration, and leaves the model as it found it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MangaAssistInputError


@dataclass(frozen=True)
class Recorded:
    """One forward pass: logits (batch, labels); hidden_states: (layers + 1) tensors (batch, tokens, hidden),
    the embeddings' output first; attentions: layers tensors (batch, heads, tokens, tokens). Empty when not
    asked for."""

    logits: object
    hidden_states: tuple = ()
    attentions: tuple = ()


def record(model, batch, *, hidden_states: bool = False, attentions: bool = False) -> Recorded:
    """model (an IntentModel) on batch (its encode() output), with the requested per-layer outputs."""
    hf_model, layers = model.hf_model, model.layers
    states: list = []
    weights: list = []
    handles = []
    try:
        if hidden_states:
            handles += _record_hidden_states(layers, states)
        declared = attentions and _attention_modules(hf_model)
        if declared:
            index, modules = declared
            handles += [module.register_forward_hook(lambda _m, _args, out: weights.append(out[index]))
                        for module in modules]
        # a family whose class declares no recorder (DeBERTa-v2, MPNet) returns its attentions itself, without
        # transformers' registry: asked for in the call
        output = hf_model(**batch, **({"output_attentions": True} if attentions and not declared else {}))
        logits = output.logits
        if attentions and not declared:
            weights = list(output.attentions or ())
    finally:
        for handle in handles:
            handle.remove()
    if hidden_states:
        _check_count(model, "hidden states", len(states), len(layers) + 1)
    if attentions:
        _check_count(model, "attention weights", len(weights), len(layers))
        if any(w is None for w in weights):
            raise MangaAssistInputError(
                f"The model {model.source} computes attention with "
                f"{getattr(hf_model.config, '_attn_implementation', None)!r}, which returns no attention weights; "
                f"the attention gates read them.",
                "Load it with attn_implementation='eager' (IntentModel.load does), or call "
                "hf_model.set_attn_implementation('eager') before IntentModel(hf_model, tokenizer).")
    return Recorded(logits, tuple(states), tuple(weights))


def _record_hidden_states(layers: list, states: list) -> list:
    """Hooks that append the encoder's input (what its first layer reads: the embeddings' output, projected
    where the family projects it, as ELECTRA and ALBERT do) and then each depth's output. A module serving
    several depths (ALBERT's shared layers) is hooked once and appends at every call."""
    def on_encoder_input(_module, args, kwargs):
        if not states:  # the first call of the first layer (a shared first layer is called again later)
            states.append(args[0] if args else kwargs["hidden_states"])

    unique = list({id(layer): layer for layer in layers}.values())
    return [layers[0].register_forward_pre_hook(on_encoder_input, with_kwargs=True),
            *(layer.register_forward_hook(lambda _m, _args, out: states.append(_first(out))) for layer in unique)]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _attention_modules(hf_model) -> tuple[int, list] | None:
    """None where the class declares no attention recorder; else the modules whose output[index] is a layer's attention weights, in layer order: those of the class the
    model's own class declares for `attentions` (transformers' `_can_record_outputs`, a class or an
    OutputRecorder; index 1 unless the recorder says otherwise, as transformers reads it), matched by identity
    against this model's modules, never through transformers' registry of class names."""
    spec = (getattr(type(hf_model), "_can_record_outputs", None) or {}).get("attentions")
    if spec is None:
        return None
    target = getattr(spec, "target_class", spec)
    if not isinstance(target, type):
        raise MangaAssistInputError(
            f"{type(hf_model).__name__} does not declare which module computes its attention weights "
            f"(_can_record_outputs['attentions'] is {spec!r}).",
            "Use a checkpoint of a supported family (docs/families.md).")
    return getattr(spec, "index", 1), [module for module in hf_model.modules() if isinstance(module, target)]


def _check_count(model, what: str, found: int, expected: int) -> None:
    if found != expected:
        raise MangaAssistInputError(
            f"A forward pass of {model.source} ({model.num_layers} encoder layers) recorded {found} {what}, not "
            f"{expected}: its encoder did not run the layers its architecture adapter "
            f"({model.adapter.family}) names.",
            "Check that the checkpoint's config.json and weights describe the same architecture, and that nothing "
            "replaced the model's encoder layers in place.")
