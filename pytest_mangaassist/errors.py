"""Every error the plugin raises: gate failures and bad-input errors, in one place.

Gate failures subclass AssertionError so pytest reports them as test failures; they are
picklable (plain constructor arguments) so they survive pytest-xdist.
"""

from __future__ import annotations

from collections.abc import Sequence


class MangaAssistInputError(ValueError):
    """Bad input at the boundary: names the problem and the fix."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}"


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
    return str(value)


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
        return "\n\n".join(parts)
