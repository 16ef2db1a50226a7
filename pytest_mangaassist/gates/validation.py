"""Validation of every gate's arguments, in one place, at the gate's boundary: one rule per kind of argument
(examples, limits and shares, counts, choices, the model and the production model `against=`, slice names,
layers, words, IG baselines, routing policies), built on analysis/checks.py's low-level rules, which the
analyses use for what a notebook user calling them directly can get wrong.

Each check names the gate, the parameter, what it got and what it accepts (scikit-learn's "The
{param} of {caller} must be X. Got Y instead."), and raises MangaAssistInputError: the plugin reports
it as a failed test with the problem and the fix, never as a traceback and never as a pass.
"""

from __future__ import annotations

import numpy as np

from ..analysis.attribution import BASELINES, baseline_token_id, normalize_word
from ..analysis.layers import resolve_layer
from ..analysis.checks import choice, number, shown  # the low-level rules, shared with the analyses
from ..errors import MangaAssistInputError
from ..loading.golden import GoldenSet

EXAMPLE_TYPES = "a GoldenSet (the golden_set or validation_set fixture, or a slice of it) or a list of message strings"


def share(caller: str, name: str, value, *, optional: bool = False):
    """A share or rate: a number in [0, 1]."""
    return number(caller, name, value, low=0.0, high=1.0, optional=optional)


def count(caller: str, name: str, value, *, minimum: int = 1, optional: bool = False):
    """A count of examples, steps or calls: a whole number >= minimum."""
    return number(caller, name, value, low=minimum, integer=True, optional=optional)


def confidence(caller: str, value) -> float:
    """The confidence level of an interval: strictly between 0 and 1."""
    return number(caller, "confidence", value, low=0.0, high=1.0, low_open=True, high_open=True)


def loaded_model(caller: str, value, name: str = "model"):
    """A loaded model (the intent_model fixture, IntentModel.load(path), or a model wrapping one): anything
    with labels and a forward pass. A path or a string is refused with the fix."""
    if not (hasattr(value, "labels") and callable(getattr(value, "forward", None))):
        raise MangaAssistInputError(f"{caller}: {name} must be a model (a loaded IntentModel); got "
                                    f"{type(value).__name__} {shown(value)}.",
                                    "Pass the intent_model fixture (or pretrained_model / production_model), or "
                                    "pytest_mangaassist.IntentModel.load(path).")
    return value


def flag(caller: str, name: str, value) -> bool:
    """True or False (a numpy bool too); anything else, "yes" or 1 included, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise MangaAssistInputError(f"{caller}: {name} must be True or False; got {shown(value)} "
                                    f"({type(value).__name__}).", f"Pass {name}=True or {name}=False.")
    return bool(value)


def intent(caller: str, model, value, name: str = "intent") -> str:
    loaded_model(caller, model)
    if not isinstance(value, str) or value not in model.labels:
        raise MangaAssistInputError(f"{caller}: {name} {shown(value)} is not a label of the model {model.source}.",
                                    f"Use one of its labels: {', '.join(model.labels)}.")
    return value


def intents(caller: str, model, values, name: str = "intents") -> list[str] | None:
    """None (every intent), or a non-empty list of the model's labels (one name alone is accepted too)."""
    if values is None:
        return None
    values = [values] if isinstance(values, str) else values
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise MangaAssistInputError(f"{caller}: {name} must be None or a non-empty list of intent names; "
                                    f"got {shown(values)}.", f"Pass e.g. {name}=[{model.labels[0]!r}].")
    return [intent(caller, model, v, name) for v in values]


def golden(caller: str, examples, model=None, name: str = "examples") -> GoldenSet:
    """A non-empty GoldenSet (labels needed), whose labels the model knows when a model is given."""
    if model is not None:
        loaded_model(caller, model)
    if not isinstance(examples, GoldenSet):
        raise MangaAssistInputError(f"{caller}: {name} must be a GoldenSet (labelled messages); got "
                                    f"{type(examples).__name__}.",
                                    "Pass the golden_set or validation_set fixture, or "
                                    "pytest_mangaassist.load_golden_set(path); a list of texts has no labels.")
    if not len(examples):
        raise MangaAssistInputError(f"{caller}: {name} ({examples.source}) has no examples.",
                                    "Pass a golden set with at least one message.")
    if model is not None:
        unknown = sorted(examples.labels - set(model.labels))
        if unknown:
            raise MangaAssistInputError(f"{caller}: {name} ({examples.source}) uses labels {unknown} that the model "
                                        f"{model.source} does not have.",
                                        f"Relabel the examples to the model's labels: {', '.join(model.labels)}.")
    return examples


def texts(caller: str, examples, name: str = "examples", minimum: int = 1) -> list[str]:
    """The messages of a GoldenSet or of a list of strings (labels not needed), at least `minimum` of them."""
    if isinstance(examples, GoldenSet):
        found = examples.texts
    elif isinstance(examples, (list, tuple)) and all(isinstance(t, str) for t in examples):
        found = list(examples)
    else:
        raise MangaAssistInputError(f"{caller}: {name} must be {EXAMPLE_TYPES}; got {type(examples).__name__}"
                                    f"{'' if not isinstance(examples, (list, tuple)) else ' with non-string items'}.",
                                    f"Pass {EXAMPLE_TYPES}.")
    blank = [i for i, t in enumerate(found) if not t.strip()]
    if blank:
        raise MangaAssistInputError(f"{caller}: {name} has {len(blank)} empty message(s) (first at index {blank[0]}).",
                                    "Remove the empty messages.")
    if len(found) < minimum:
        raise MangaAssistInputError(f"{caller}: {name} has {len(found)} message(s); this gate needs at least "
                                    f"{minimum}.", f"Pass at least {minimum} messages.")
    return found


def pairs(caller: str, examples, name: str = "examples") -> list[tuple[str, str]]:
    """(original, edited) message pairs: a non-empty list of 2-tuples of strings (one pair alone too)."""
    if isinstance(examples, tuple) and len(examples) == 2 and all(isinstance(t, str) for t in examples):
        examples = [examples]  # one pair alone
    ok = isinstance(examples, (list, tuple)) and examples and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, str) and t.strip() for t in p)
        for p in examples)
    if not ok:
        raise MangaAssistInputError(f"{caller}: {name} must be a non-empty list of (original, edited) message pairs; "
                                    f"got {shown(examples)}.",
                                    'Pass e.g. [("the original message", "the original message, edited")].')
    return [tuple(p) for p in examples]


def limits_given(caller: str, **limits) -> None:
    """For gates with an optional lower and upper limit: at least one must be given, and low <= high."""
    given = {k: v for k, v in limits.items() if v is not None}
    if not given:
        raise MangaAssistInputError(f"{caller}: give {' or '.join(limits)} (or both).",
                                    f"e.g. {next(iter(limits))}=0.2.")
    if len(given) == 2:
        (low_name, low), (high_name, high) = given.items()
        if low > high:
            raise MangaAssistInputError(f"{caller}: {low_name}={low:g} is above {high_name}={high:g}: no value passes.",
                                        f"Pass {low_name} <= {high_name}.")


def policy(caller: str, value):
    """None (the policy in force: see domain.routing_policy) or a RoutingPolicy."""
    from ..analysis.counterfactuals import RoutingPolicy

    if value is not None and not isinstance(value, RoutingPolicy):
        raise MangaAssistInputError(f"{caller}: policy must be None or a RoutingPolicy; got {type(value).__name__}.",
                                    "Pass pytest_mangaassist.RoutingPolicy(thresholds=..., fallbacks=...), the "
                                    "routing_policy fixture, or leave policy out for the suite's (--routing-policy).")
    return value


def against(caller: str, model, value, *, same_labels: bool = True):
    """The other model of a two-model gate (`against=`: the production model, or the pre-trained one): a loaded
    model, accepted the same way as `model`; with the same label set where the gate pairs their predictions."""
    loaded_model(caller, value, "against")
    if same_labels and tuple(model.labels) != tuple(value.labels):
        raise MangaAssistInputError(
            f"{caller}: the candidate {model.source} and the model against= {value.source} have different label "
            f"sets ({', '.join(model.labels)} vs {', '.join(value.labels)}), so their routes cannot be paired.",
            "Compare against the previous release of the same classifier (same id2label).")
    return value


def slice_name(caller: str, value, examples: GoldenSet | None = None) -> str | None:
    """None (the whole set) or the name of a slice of the examples (an unknown one is refused, not an empty pass)."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise MangaAssistInputError(f"{caller}: slice must be None or the name of a slice of the examples; "
                                    f"got {value!r} ({type(value).__name__}).",
                                    "Pass the name of a slice of the golden set (its 'slice' field).")
    if value is not None and examples is not None:
        examples.only_slice(value)
    return value


def layer(caller: str, model, value, name: str = "layer", *, encoder: str | None = None) -> int:
    """A layer of the model, numbered like hidden_states: 0 the embeddings, 1..L the encoder layers, negative
    from the top (-1 the last). encoder="attention" (what exists there only): an encoder layer, 1..L."""
    loaded_model(caller, model)
    resolved = resolve_layer(number(caller, name, value, integer=True), model.num_layers, caller)
    if encoder and resolved == 0:
        raise MangaAssistInputError(f"{caller}: {encoder} exists in encoder layers 1..{model.num_layers} only.",
                                    f"Pass {name}= an encoder layer (1.., or -1 for the last).")
    return resolved


def words(caller: str, name: str, value, *, optional: bool = False,
          example: str = "['word', 'another']") -> list[str] | None:
    """A non-empty list of words (one word alone too), each with a letter or digit once normalised as the
    attributions normalise words; None only where optional."""
    if value is None and optional:
        return None
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, (list, tuple, set, frozenset)) or not value or not all(
            isinstance(w, str) and normalize_word(w) for w in value):
        raise MangaAssistInputError(f"{caller}: {name} must be {'None or ' if optional else ''}a non-empty list of "
                                    f"words; got {shown(value)}.", f"Pass e.g. {name}={example}.")
    return list(value)


def word(caller: str, name: str, value) -> str:
    """One word: a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise MangaAssistInputError(f"{caller}: {name} must be a non-empty string; got {shown(value)}.",
                                    f"Pass the word, e.g. {name}='return'.")
    return value


def baselines(caller: str, model, value) -> tuple[str, ...]:
    """Integrated Gradients baselines: a non-empty list of their names (one alone too), each one the model's
    tokenizer can build."""
    value = (value,) if isinstance(value, str) else value
    if not isinstance(value, (list, tuple)) or not value:
        raise MangaAssistInputError(f"{caller}: baselines must be a non-empty list of IG baseline names; got "
                                    f"{shown(value)}.",
                                    f"Pass e.g. baselines=('pad',) (names: {', '.join(BASELINES)}).")
    value = tuple(choice(caller, "baselines", b, tuple(BASELINES)) for b in value)
    for baseline in value:
        baseline_token_id(model.tokenizer, baseline)
    return value


def of_type(caller: str, name: str, value, kind: type | tuple[type, ...], what: str, fix: str):
    """An object of the given class (a model under test that must be exported, an artifact, traffic)."""
    if not isinstance(value, kind):
        raise MangaAssistInputError(f"{caller}: {name} must be {what}; got {type(value).__name__}.", fix)
    return value
