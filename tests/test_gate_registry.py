"""A gate is declared once (`@Family.X.gate(...)` above its function, gates/records.py) and everything else is
derived from that declaration (issue #24.1): the package's public names, the family of its records, the chart its
records carry, which exported artifact it reads, and the gate tables of docs/gates.md and the README, which
this module generates (MANGAASSIST_WRITE_GATES=1 python -m pytest tests/test_gate_registry.py rewrites them).

All in process, no model: the declarations, the source and two markdown files.
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest

import pytest_mangaassist
from pytest_mangaassist.gates import declared_names
from pytest_mangaassist.gates.records import PAYLOADS, Family, check, collecting, declared_gates

ROOT = Path(__file__).resolve().parents[1]
GATES_DIR = ROOT / "pytest_mangaassist" / "gates"
DOCS, README = ROOT / "docs" / "gates.md", ROOT / "README.md"
REWRITE = "MANGAASSIST_WRITE_GATES=1 python -m pytest tests/test_gate_registry.py"


def defined_gates() -> dict[str, str]:
    """Every module-level `def assert_*` in gates/, declared or not: name -> module."""
    return {node.name: f"gates.{path.stem}" for path in sorted(GATES_DIR.glob("*.py"))
            for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("assert_")}


def test_every_assert_in_gates_is_declared_and_exported():
    declared = declared_gates()
    defined = defined_gates()
    assert len(defined) >= 27
    assert not set(defined) - set(declared), f"gates not declared with @Family.X.gate: {set(defined) - set(declared)}"
    exported = {name for name in pytest_mangaassist.__all__ if name.startswith("assert_")}
    assert exported == set(declared), f"declared, not exported: {set(declared) - exported}"
    for name, declaration in declared.items():
        assert getattr(pytest_mangaassist, name) is declaration.function, name
        assert defined[name] == declaration.module == declared_names()[name], name


def test_the_source_scan_reads_the_declarations_python_runs():
    """__init__ exports what gates.declared_names() reads from the source without importing; the import must agree
    (a declaration written in a form the scan does not know would leave the gate unexported)."""
    assert declared_names() == {name: d.module for name, d in declared_gates().items()}


def test_declarations_name_a_family_a_docs_page_and_a_chart_the_report_draws():
    for name, declaration in declared_gates().items():
        assert isinstance(declaration.family, Family), name
        assert (ROOT / "docs" / declaration.page).is_file(), f"{name}: no docs/{declaration.page}"
        assert declaration.checks and "\n" not in declaration.checks, name
        assert declaration.chart is None or declaration.chart in PAYLOADS, f"{name}: {declaration.chart} is no payload"
        assert declaration.reads in (None, "onnx", "serving"), name


def test_a_record_takes_its_family_from_the_declaration_and_refuses_another_chart():
    from pytest_mangaassist.gates.records import Curve, TokenHeatmap

    declared_gates()
    with collecting() as records:
        check("assert_cka_above", "m", 0.9, 0.5, payload=Curve(("1",), {"s": (0.9,)}))
    assert records[0].family is Family.REPRESENTATION
    with pytest.raises(TypeError, match="assert_cka_above records a TokenHeatmap; its declaration draws Curve"):
        check("assert_cka_above", "m", 0.9, 0.5, payload=TokenHeatmap(()))
    with pytest.raises(ValueError, match="its declaration says 'representation'"):
        check("assert_cka_above", "m", 0.9, 0.5, family=Family.EXPORT)
    with pytest.raises(LookupError, match="assert_made_up calls check.. but is not declared"):
        check("assert_made_up", "m", 0.9, 0.5)


# -- the generated tables -------------------------------------------------------------------------------------
def _default(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_default, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def call_shape(function) -> str:
    """`assert_x(model, examples, *, limit, option=default)`: the signature without annotations."""
    parts, star = [], False
    for p in inspect.signature(function).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={_default(p.default)}")
    return f"{function.__name__}({', '.join(parts)})"


def family_table(family: Family) -> str:
    rows = ["| gate | what it checks | read more |", "| --- | --- | --- |"]
    rows += [f"| `{call_shape(d.function)}` | {d.checks} | [{d.page[:-3]}]({d.page}) |"
             for d in declared_gates().values() if d.family is family]
    return "\n".join(rows)


def readme_table() -> str:
    by_family: dict[Family, list] = {}
    for declaration in declared_gates().values():
        by_family.setdefault(declaration.family, []).append(declaration)
    rows = ["| family | gates | read more |", "| --- | --- | --- |"]
    for family, found in by_family.items():
        pages = dict.fromkeys(d.page for d in found)
        rows.append(f"| {family.value} | {', '.join(f'`{d.name}`' for d in found)} | "
                    f"{', '.join(f'[{p[:-3]}](docs/{p})' for p in pages)} |")
    return "\n".join(rows)


def _regenerated(text: str, begin: str, end: str, table: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + table + "\n" + text[stop:]


def _current(path: Path, blocks: list[tuple[str, str, str]]) -> None:
    text = path.read_text(encoding="utf-8")
    expected = text
    for begin, end, table in blocks:
        assert begin in text and end in text, f"{path.name} has no block {begin}"
        expected = _regenerated(expected, begin, end, table)
    if os.environ.get("MANGAASSIST_WRITE_GATES"):
        path.write_text(expected, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == expected, f"{path.name}'s gate tables are stale; regenerate: {REWRITE}"


def test_docs_gate_tables_are_generated_from_the_declarations():
    families = list(dict.fromkeys(d.family for d in declared_gates().values()))
    _current(DOCS, [(f"<!-- gates of family {f.value}: generated by tests/test_gate_registry.py -->",
                     f"<!-- end of family {f.value} -->", family_table(f)) for f in families])


def test_readme_gate_table_is_generated_from_the_declarations():
    _current(README, [("<!-- gate table: generated by tests/test_gate_registry.py -->", "<!-- end of the gate table -->",
                       readme_table())])
