"""tools/, benchmarks/ and examples/ use the public API or documented internals only.

A script that reaches into a private name (``_solve``) or an undocumented module breaks
silently when the package is refactored; one that uses what the API reference documents
breaks loudly in review. Imports are read with ``ast`` (inside functions too), and so
are attribute accesses on imported package modules (``fit._lbfgs``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("tools", "benchmarks", "examples")
SCRIPTS = sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.py"))


def documented_modules() -> set[str]:
    """Modules listed in the API reference (docs/reference/index.rst), and the package."""
    text = (ROOT / "docs" / "reference" / "index.rst").read_text(encoding="utf-8")
    names = set(re.findall(r"^\s+(hyperspy_lacbed(?:\.\w+)*)\s*$", text, re.M))
    return names | {"hyperspy_lacbed"}


def package_uses(path: Path) -> list[tuple[int, str]]:
    """(line, what) of every import from the package and attribute of an imported module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hyperspy_lacbed"):
            for alias in node.names:
                uses.append((node.lineno, f"{node.module}:{alias.name}"))
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hyperspy_lacbed"):
                    uses.append((node.lineno, f"{alias.name}:"))
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            if node.value.id in aliases and node.attr.startswith("_") and not dunder:
                uses.append((node.lineno, f"{aliases[node.value.id]}:{node.attr}"))
    return uses


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_use_public_or_documented_names(path):
    documented = documented_modules()
    bad = []
    for line, use in package_uses(path):
        module, name = use.split(":")
        # `from pkg.sub import module` names a module: it must be documented itself
        target = f"{module}.{name}" if f"{module}.{name}" in documented else module
        dunder = name.startswith("__") and name.endswith("__")
        private = (name.startswith("_") and not dunder) or any(
            p.startswith("_") for p in module.split(".")
        )
        if private or target not in documented:
            bad.append(f"{path.relative_to(ROOT)}:{line} uses {use.replace(':', ' → ')}")
    assert not bad, "private or undocumented names in scripts:\n" + "\n".join(bad)


def test_the_check_can_fail(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text(
        "from hyperspy_lacbed.bloch.discs import _solve\n"
        "import hyperspy_lacbed.refinement.fit as fit\nfit._lbfgs\n"
    )
    assert [u for _, u in package_uses(script)] == [
        "hyperspy_lacbed.bloch.discs:_solve",
        "hyperspy_lacbed.refinement.fit:",
        "hyperspy_lacbed.refinement.fit:_lbfgs",
    ]
