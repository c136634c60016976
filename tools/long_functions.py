"""List functions longer than a limit (lines of code, docstrings excluded).

python tools/long_functions.py            # the package, limit 80
python tools/long_functions.py --limit 60 hyperspy_lacbed/bloch
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    body = node.body
    start = body[0].end_lineno + 1 if ast.get_docstring(node) else body[0].lineno
    return (
        max(node.end_lineno - start + 1, 0) if len(body) > 1 or not ast.get_docstring(node) else 0
    )


def long_functions(paths: list[Path], limit: int) -> list[tuple[int, str]]:
    """(lines, "file:line name") of every function over ``limit`` lines of code."""
    found = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = code_lines(node)
                    if n > limit:
                        found.append((n, f"{f}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> None:
    """Print the long functions, longest first."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["hyperspy_lacbed"])
    ap.add_argument("--limit", type=int, default=80)
    args = ap.parse_args()
    for n, where in long_functions([Path(p) for p in args.paths], args.limit):
        print(f"{n:5d}  {where}")


if __name__ == "__main__":
    main()
