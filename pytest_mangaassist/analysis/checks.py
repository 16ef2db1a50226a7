"""The low-level argument rules shared by the analyses (what a notebook user calling one directly can get wrong)
and gates/validation.py, which builds every gate argument's rule on them: a number in a range (never NaN), one
of a few choices, and how a bad value is shown. Each raises MangaAssistInputError naming the caller, the
parameter, what it got and what it accepts (scikit-learn's "The {param} of {caller} must be X. Got Y instead.").
Here, below the gates, because analysis/ may not import gates/ (tests/test_layers.py).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from ..errors import MangaAssistInputError


def shown(value) -> str:
    """A value as an input error shows what it got: its repr, cut to 60 characters."""
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
                                    f"{' or None' if optional else ''}; got {shown(value)} "
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


def choice(caller: str, name: str, value, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise MangaAssistInputError(f"{caller}: {name} must be one of {', '.join(map(repr, allowed))}; "
                                    f"got {shown(value)}.", f"Pass {name}= one of {', '.join(map(repr, allowed))}.")
    return value
