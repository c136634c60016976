"""Functions of the training and network code stay short enough to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hyperspy_lacbed"
#: Most lines of code (docstring, blank and comment lines left out) of one function.
MAX_LINES = 80


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    body = lines[node.lineno - 1 : node.end_lineno]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        skip = range(first.lineno, first.end_lineno + 1)  # the docstring
        body = [line for n, line in enumerate(body, node.lineno) if n not in skip]
    return sum(1 for line in body if line.strip() and not line.strip().startswith("#"))


def _long_functions(folder: Path) -> list[str]:
    """``path:line name (lines)`` of each function of ``folder`` over :data:`MAX_LINES`."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _code_lines(node, lines)
                if n > MAX_LINES:
                    out.append(f"{path.relative_to(folder)}:{node.lineno} {node.name} ({n})")
    return out


@pytest.mark.parametrize("layer", ["train", "nets"])
def test_no_function_is_longer_than_80_lines(layer):
    assert _long_functions(PACKAGE / layer) == []


def test_the_count_sees_a_long_function(tmp_path):
    """Docstrings, blank lines and comments do not count; code lines (``def`` too) do."""
    code = [f"    x{i} = {i}" for i in range(MAX_LINES)]
    long = 'def f():\n    """Doc."""\n    # why\n\n' + "\n".join(code) + "\n"
    short = 'def g():\n    """Doc.\n\n    More.\n    """\n' + "\n".join(code[:-1]) + "\n"
    (tmp_path / "long.py").write_text(long)
    (tmp_path / "short.py").write_text(short)
    assert _long_functions(tmp_path) == [f"long.py:1 f ({MAX_LINES + 1})"]
