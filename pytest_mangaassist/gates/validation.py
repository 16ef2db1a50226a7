"""Validation of every gate's arguments, in one place, at the gate's boundary.

Each check names the gate, the parameter, what it got and what it accepts (scikit-learn's "The
{param} of {caller} must be X. Got Y instead."), and raises MangaAssistInputError: the plugin reports
it as a failed test with the problem and the fix, never as a traceback and never as a pass.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ..errors import MangaAssistInputError
from ..loading.golden import GoldenSet

EXAMPLE_TYPES = "a GoldenSet (the golden_set or validation_set fixture, or a slice of it) or a list of message strings"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(caller: str, name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, integer: bool = False, optional: bool = False):
    """A real number (an int where integer=True) within [low, high] (open ends where asked), never NaN;
    None only where optional. Returns the value (a float, or an int)."""
    if value is None and optional:
        return None
    kind = "a whole number" if integer else "a number"
    ok = (isinstance(value, numbers.Integral) and not isinstance(value, bool)) if integer else _is_real(value)
    if ok and not integer:
        try:
            ok = not math.isnan(float(value))
        except OverflowError:  # an int too large for a float
            ok = False
    if ok:
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        ok = not (below or above)
    if not ok:
        raise MangaAssistInputError(f"{caller}: {name} must be {kind}{_range(low, high, low_open, high_open)}"
                                    f"{' or None' if optional else ''}; got {_shown(value)} "
                                    f"({type(value).__name__}).",
                                    f"Pass {name}= {kind}{_range(low, high, low_open, high_open)}.")
    return int(value) if integer else float(value)


def _range(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def share(caller: str, name: str, value, *, optional: bool = False):
    """A share or rate: a number in [0, 1]."""
    return number(caller, name, value, low=0.0, high=1.0, optional=optional)


def count(caller: str, name: str, value, *, minimum: int = 1, optional: bool = False):
    """A count of examples, steps or calls: a whole number >= minimum."""
    return number(caller, name, value, low=minimum, integer=True, optional=optional)


def confidence(caller: str, value) -> float:
    """The confidence level of an interval: strictly between 0 and 1."""
    return number(caller, "confidence", value, low=0.0, high=1.0, low_open=True, high_open=True)


def choice(caller: str, name: str, value, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise MangaAssistInputError(f"{caller}: {name} must be one of {', '.join(map(repr, allowed))}; "
                                    f"got {_shown(value)}.", f"Pass {name}= one of {', '.join(map(repr, allowed))}.")
    return value


def loaded_model(caller: str, value, name: str = "model"):
    """A loaded model (the intent_model fixture, IntentModel.load(path), or a model wrapping one): anything
    with labels and a forward pass. A path or a string is refused with the fix."""
    if not (hasattr(value, "labels") and callable(getattr(value, "forward", None))):
        raise MangaAssistInputError(f"{caller}: {name} must be a model (a loaded IntentModel); got "
                                    f"{type(value).__name__} {_shown(value)}.",
                                    "Pass the intent_model fixture (or pretrained_model / baseline_model), or "
                                    "pytest_mangaassist.IntentModel.load(path).")
    return value


def flag(caller: str, name: str, value) -> bool:
    """True or False (a numpy bool too); anything else, "yes" or 1 included, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise MangaAssistInputError(f"{caller}: {name} must be True or False; got {_shown(value)} "
                                    f"({type(value).__name__}).", f"Pass {name}=True or {name}=False.")
    return bool(value)


def intent(caller: str, model, value, name: str = "intent") -> str:
    loaded_model(caller, model)
    if not isinstance(value, str) or value not in model.labels:
        raise MangaAssistInputError(f"{caller}: {name} {_shown(value)} is not a label of the model {model.source}.",
                                    f"Use one of its labels: {', '.join(model.labels)}.")
    return value


def intents(caller: str, model, values, name: str = "intents") -> list[str] | None:
    """None (every intent), or a non-empty list of the model's labels (one name alone is accepted too)."""
    if values is None:
        return None
    values = [values] if isinstance(values, str) else values
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise MangaAssistInputError(f"{caller}: {name} must be None or a non-empty list of intent names; "
                                    f"got {_shown(values)}.", f"Pass e.g. {name}=[{model.labels[0]!r}].")
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
                                    f"got {_shown(examples)}.",
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
