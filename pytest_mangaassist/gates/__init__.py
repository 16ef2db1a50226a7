"""The assert_* gates, one module per family; import them from pytest_mangaassist.

`declared_names()` reads which gates exist from the source (each is declared once, `@Family.X.gate(...)` above
its function: gates/records.py) so that `import pytest_mangaassist` can export them lazily without importing a
gate module: those import numpy, and the plugin's import must stay cheap and free of torch. ast reads the same
declarations Python runs; tests/test_gate_registry.py checks the two agree.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path


@functools.cache
def declared_names() -> dict[str, str]:
    """Gate name -> its module relative to the package ("gates.classification"), for every declared gate."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and any(_declares(d) for d in node.decorator_list):
                found[node.name] = f"gates.{path.stem}"
    return found


def _declares(decorator: ast.expr) -> bool:
    """`@Family.<X>.gate(...)`"""
    return (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "gate" and isinstance(decorator.func.value, ast.Attribute)
            and isinstance(decorator.func.value.value, ast.Name) and decorator.func.value.value.id == "Family")
