"""The folders are the layers (docs/architecture.md): every import goes down the layer order, no gate
module imports a sibling gate module, analyses import no cache and no pytest, config/ runs no analysis, the
plugin does not import the reference kit and touches no private name of another module. Checked on the
source with ast, so a lazy import inside a function counts."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_mangaassist"
ORDER = ("errors", "loading", "analysis", "domain", "config", "strategies", "cache", "gates", "reporting", "plugin",
         "pack", "cli", "__main__")
SHARED_GATE_MODULES = {"records", "validation"}  # what the gate modules share


def layer_of(module: str) -> str | None:
    """'pytest_mangaassist.gates.records' -> 'gates'; the package's __init__ has no layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = ("pytest_mangaassist", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, typing_too: bool = True) -> list[str]:
    """Absolute names of the modules a file imports (relative imports resolved); without typing_too, not
    those under `if TYPE_CHECKING:` (names for annotations, never imported when the code runs)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    if not typing_too:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.append(target)
            if not node.module:  # from . import x: x is a module
                found += [f"{target}.{alias.name}" for alias in node.names]
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_belongs_to_a_layer():
    assert SOURCES, "no sources found"
    unknown = [module_name(p) for p in SOURCES if layer_of(module_name(p)) not in ORDER]
    assert not unknown, f"modules outside the layer folders: {unknown} (add them to a layer in docs/architecture.md)"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    own = layer_of(module_name(path))
    for target in imports_of(path):
        if not target.startswith("pytest_mangaassist."):
            continue
        other = layer_of(target)
        assert ORDER.index(other) <= ORDER.index(own), f"{module_name(path)} ({own}) imports {target} ({other})"


@pytest.mark.parametrize("path", sorted((PACKAGE / "gates").glob("*.py")), ids=lambda p: p.name)
def test_no_gate_module_imports_a_sibling_gate(path):
    if path.stem in SHARED_GATE_MODULES or path.name == "__init__.py":
        return
    siblings = [t for t in imports_of(path) if t.startswith("pytest_mangaassist.gates.")
                and t.split(".")[2] not in SHARED_GATE_MODULES]
    assert not siblings, f"gates/{path.name} imports {siblings}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "analysis").glob("*.py")), ids=lambda p: p.name)
def test_analyses_are_pure(path):
    impure = [t for t in imports_of(path) if t.split(".")[0] in ("pytest", "_pytest")
              or t.startswith(("pytest_mangaassist.cache", "pytest_mangaassist.gates"))]
    assert not impure, f"analysis/{path.name} imports {impure}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "config").glob("*.py")), ids=lambda p: p.name)
def test_config_runs_no_analysis(path):
    """config/ is options, settings and their validation: it reads the user's files (loading/) and the label
    set's profile (domain.py), and computes nothing (an analysis' types only, for annotations)."""
    running = [t for t in imports_of(path, typing_too=False) if t.startswith("pytest_mangaassist.analysis")]
    assert not running, f"config/{path.name} imports {running}"


def private_names_used(path: Path) -> list[str]:
    """Names with a leading underscore that the file takes from another module: imported (`from m import _x`)
    or read as an attribute (`m._x`, `obj._x`); dunders and the file's own names are not counted."""
    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    used = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module + "." if node.module else "")
            used += [module + alias.name for alias in node.names if private(alias.name)]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            used.append(f"{ast.unparse(node.value)}.{node.attr}")
    return used


def test_the_plugin_touches_no_private_name_of_another_module():
    used = private_names_used(PACKAGE / "plugin.py")
    assert not used, f"plugin.py uses private names of other modules: {used} (give their module a public way)"


def test_the_plugin_does_not_import_the_reference_kit():
    offenders = [module_name(p) for p in SOURCES if any(t.startswith("mangaassist_reference") for t in imports_of(p))]
    assert not offenders


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """Each check above run on a package that breaks it (relative imports resolved, a lazy import counted)."""
    package = tmp_path / "pytest_mangaassist"
    files = {"gates/classification.py": "from ..reporting import views\n",  # up the layers
             "gates/slices.py": "from .classification import assert_accuracy_above\n",  # a sibling gate
             "analysis/sweep.py": "def sweep():\n    from ..cache import store\n",  # an impure analysis, lazily
             "config/settings.py": "def load():\n    from ..analysis import sweep\n",  # config running an analysis
             "plugin.py": "def hook(item):\n    from .gates.snapshot import _active\n    item.config.cache._cachedir\n"}
    for name, source in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)
    monkeypatch.setitem(globals(), "PACKAGE", package)
    checks = {"gates/classification.py": (test_imports_go_down_the_layers,
                                          "pytest_mangaassist.gates.classification (gates) imports "
                                          "pytest_mangaassist.reporting (reporting)"),
              "gates/slices.py": (test_no_gate_module_imports_a_sibling_gate,
                                  "gates/slices.py imports ['pytest_mangaassist.gates.classification']"),
              "analysis/sweep.py": (test_analyses_are_pure, "analysis/sweep.py imports ['pytest_mangaassist.cache']"),
              "config/settings.py": (test_config_runs_no_analysis,
                                     "config/settings.py imports ['pytest_mangaassist.analysis']")}
    for name, (check, message) in checks.items():
        with pytest.raises(AssertionError, match=re.escape(message)):
            check(package / name)
    with pytest.raises(AssertionError, match=re.escape("['.gates.snapshot._active', 'item.config.cache._cachedir']")):
        test_the_plugin_touches_no_private_name_of_another_module()
