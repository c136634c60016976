"""The package's layers point one way, with no import cycle (see docs/architecture.rst).

Every module's imports are read with ``ast`` — at module level *and* inside functions
(late imports hide cycles from the interpreter, not from this test). Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "hyperspy_lacbed"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layer of each top-level module or subpackage: a module may import only from its own
#: layer or lower ones. The array layers (0–3) never import HyperSpy.
LAYERS = {
    "_version": 0,
    "units": 0,
    "parsing": 0,
    "progress": 0,
    "data": 0,
    "crystal": 1,
    "bloch": 2,
    "analysis": 2,
    "nets": 3,
    "refinement": 3,
    "signals": 4,
    "api": 5,
    "": 5,  # the package itself (hyperspy_lacbed/__init__.py: the lazy public API)
    "train": 6,
    "cli": 6,
    "__main__": 7,
}
ARRAY_LAYERS = (
    "crystal",
    "bloch",
    "nets",
    "refinement",
    "analysis",
    "units",
    "parsing",
    "progress",
    "data",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import that can run."""
    out: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            out.append((base, [alias.name for alias in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _collect() -> dict[str, dict]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        modules[name] = {
            "path": path,
            "imports": _imports(tree, name, path.name == "__init__.py"),
        }
    return modules


MODULES = _collect()


def _layer_key(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _targets(module: str, names: list[str]) -> list[str]:
    """Package modules an import statement loads (``from pkg import submodule`` too)."""
    if module not in MODULES:
        return []
    found = [module]
    for n in names:
        if f"{module}.{n}" in MODULES:
            found.append(f"{module}.{n}")
    return found


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, info in MODULES.items():
        for target, names, _ in info["imports"]:
            for t in _targets(target, names):
                # importing a submodule runs its packages' __init__ too, but those are
                # docstring-only here (checked below), so only the module itself counts
                if t != name and not MODULES[t]["path"].name == "__init__.py":
                    graph[name].add(t)
    return graph


def test_every_module_has_a_layer():
    missing = sorted({_layer_key(m) for m in MODULES} - set(LAYERS))
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_subpackage_inits_import_nothing_of_the_package():
    for name, info in MODULES.items():
        if info["path"].name == "__init__.py" and name != PACKAGE:
            own = [t for t, _, _ in info["imports"] if t.startswith(PACKAGE)]
            assert not own, f"{name}/__init__.py imports {own}; keep it docstring-only"


def test_layers_point_one_way():
    bad = []
    for name, info in MODULES.items():
        layer = LAYERS[_layer_key(name)]
        for target, names, line in info["imports"]:
            for t in _targets(target, names):
                if LAYERS[_layer_key(t)] > layer:
                    bad.append(f"{info['path'].relative_to(ROOT.parent)}:{line} imports {t}")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["bloch", "crystal", "nets"])
def test_engine_layers_never_import_signals_or_hyperspy(package):
    bad = []
    for name, info in MODULES.items():
        if _layer_key(name) != package:
            continue
        for target, _, line in info["imports"]:
            top = target.split(".")[0]
            if top == "hyperspy" or target.startswith(f"{PACKAGE}.signals"):
                bad.append(f"{info['path'].relative_to(ROOT.parent)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_array_layers_never_import_hyperspy():
    bad = [
        f"{info['path'].relative_to(ROOT.parent)}:{line} imports {target}"
        for name, info in MODULES.items()
        if _layer_key(name) in ARRAY_LAYERS
        for target, _, line in info["imports"]
        if target.split(".")[0] == "hyperspy"
    ]
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return cycles


def test_no_import_cycle():
    assert not _cycles(_edges()), f"import cycles: {_cycles(_edges())}"


def test_no_private_names_across_packages():
    """``from hyperspy_lacbed.X import _name`` only within package X."""
    bad = []
    for name, info in MODULES.items():
        for target, names, line in info["imports"]:
            if not target.startswith(PACKAGE) or _layer_key(target) == _layer_key(name):
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            private += [p for p in target.split(".")[1:] if p.startswith("_") and p != "_version"]
            if private:
                bad.append(f"{info['path'].relative_to(ROOT.parent)}:{line} {target} {private}")
    assert not bad, "\n".join(bad)


def test_the_checks_see_late_imports_and_cycles():
    """The walker finds imports inside functions and the cycle detector finds a cycle."""
    tree = ast.parse(
        "import os\n"
        "def f():\n"
        "    from hyperspy_lacbed.signals.lacbed import LACBED\n"
        "if TYPE_CHECKING:\n"
        "    from hyperspy_lacbed.api import simulate\n"
    )
    found = [t for t, _, _ in _imports(tree, "hyperspy_lacbed.bloch.x", False)]
    assert found == ["os", "hyperspy_lacbed.signals.lacbed"]
    assert "hyperspy_lacbed.api.simulate" in _edges()["hyperspy_lacbed.api.surrogates"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


REPO = ROOT.parent


def test_no_machine_paths_in_configs_cards_and_tools():
    """Configs, model cards and scripts name no folder of one machine."""
    import re

    pattern = re.compile(r"(?<![\w.])(/work/|/home/|/root/|/Users/|/mnt/|[A-Z]:\\\\)")
    files = [
        *REPO.glob("configs/*.toml"),
        *REPO.glob("models/*/card.json"),
        *REPO.glob("tools/*.py"),
        *REPO.glob("benchmarks/*.py"),
        *REPO.glob("examples/*.py"),
    ]
    assert any(p.suffix == ".json" for p in files), "the shipped model cards were not found"
    bad = [
        f"{p.relative_to(REPO)}:{i}: {line.strip()}"
        for p in files
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not bad, "absolute machine paths:\n" + "\n".join(bad)


def test_license_matches_pyproject():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "GPL-3.0-or-later"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert "kirkland.json" in (REPO / "NOTICE.md").read_text(encoding="utf-8")
