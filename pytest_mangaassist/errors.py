"""Every error the plugin raises: gate failures and bad-input errors, in one place, the one deprecation warning
of a renamed public name, and `display`, the one escaping every view applies to text that came from the user's
files.

Gate failures subclass AssertionError so pytest reports them as test failures; they are
picklable (plain constructor arguments) so they survive pytest-xdist.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence


class MangaAssistInputError(ValueError):
    """Bad input at the boundary: names the problem and the fix."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return display(f"{self.problem}\n  fix: {self.fix}", keep_newlines=True)


def renamed_warning(old: str, new: str) -> DeprecationWarning:
    """The warning of a public name renamed this release: the old one still works, once more."""
    return DeprecationWarning(f"{old} is deprecated and goes in the next release; {new} instead.")


def renamed_twice(old: str, new: str, new_alone: str) -> MangaAssistInputError:
    """The error of a call that gives a renamed public name under both names (new_alone: the new name as the
    fix asks for it)."""
    return MangaAssistInputError(f"{old} is the old name of {new}; got both.", f"Pass {new_alone} only.")


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn, at the caller's caller, that `old` was used where `new` is the name now."""
    warnings.warn(renamed_warning(old, new), stacklevel=stacklevel)


def renamed_keywords(**old_to_new: str):
    """Keep a function's old keyword names for one release: a call with an old name runs under the new one
    with a DeprecationWarning that names it; both names at once is an input error."""
    def rename(function):
        caller = function.__name__

        @functools.wraps(function)
        def renamed(*args, **kwargs):
            __tracebackhide__ = True
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise renamed_twice(f"{caller}: {old}=", f"{new}=", f"{new}=")
                warn_renamed(f"{caller}: {old}=", f"pass {new}=")
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)
        renamed.old_keywords = dict(old_to_new)  # for a wrapper of the function (a cached analysis) to keep them
        return renamed
    return rename


# What a terminal or a browser would act on instead of showing: C0/C1 control characters (ESC starts the ANSI
# sequences that recolour, move the cursor or retitle a terminal; \x01 is not even allowed in HTML), line and
# paragraph separators, the bidirectional overrides and isolates that reorder what is shown ("Trojan Source"),
# and lone surrogates (which cannot be encoded at all). Other format characters (zero-width joiners in emoji
# and Indic scripts) and every space are shown as they are.
_UNSAFE_BUT_NEWLINE = "\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_CHARACTER = re.compile(f"[\n{_UNSAFE_BUT_NEWLINE}]")
_UNSAFE_KEEPING_NEWLINES = re.compile(f"[{_UNSAFE_BUT_NEWLINE}]")


def display(text: object, *, keep_newlines: bool = False) -> str:
    """text as every view shows it (terminal tables, failure messages, report.html): each unsafe character
    written as its Python escape (ESC -> \\x1b, U+202E -> \\u202e), so a slice name or message from a data file
    shows what it holds instead of acting on the terminal. Idempotent; newlines kept on request (multi-line
    messages), else escaped (one table cell, one line)."""
    pattern = _UNSAFE_KEEPING_NEWLINES if keep_newlines else _UNSAFE_CHARACTER
    return pattern.sub(_escape, str(text))


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


CLIP_WIDTH = 70  # characters of a message shown in an evidence table: most messages whole, a table still one line


def clip(text: str, width: int = CLIP_WIDTH) -> str:
    """text cut to `width` characters, an ellipsis marking the cut: the one rule of every evidence table."""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A small left-aligned text table, as syrupy and pytest-regressions print evidence."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"  # nan: undefined
    return display(value)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.2e}" if value and not 1e-3 <= abs(value) < 1e6 else f"{value:.4f}"  # never 309 digits


class GateFailure(AssertionError):
    """A gate measured a value on the wrong side of its threshold.

    The message reads: headline (gate, metric, measured vs limit), an evidence table,
    then a hint on how to fix the model or consciously accept the result.
    """

    def __init__(
        self,
        gate: str,
        metric: str,
        value: float,
        threshold: float,
        comparison: str = ">=",
        evidence: str = "",
        hint: str = "",
    ):
        super().__init__(gate, metric, value, threshold, comparison, evidence, hint)
        self.gate = gate
        self.metric = metric
        self.value = value
        self.threshold = threshold
        self.comparison = comparison
        self.evidence = evidence
        self.hint = hint

    def __str__(self) -> str:
        headline = f"{self.gate}: {self.metric} = {_number(self.value)}, required {self.comparison} {_number(self.threshold)}"
        parts = [headline]
        if self.evidence:
            parts.append(self.evidence)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return display("\n\n".join(parts), keep_newlines=True)
