"""Example crystals shipped with the package, reachable by name.

>>> from hyperspy_lacbed.data import example_structures
>>> "Si" in example_structures()
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder() -> Path:
    return Path(str(resources.files("hyperspy_lacbed.data") / "structures"))


def example_structures() -> list[str]:
    """Names of the example crystals (cubic, textbook values) that ship with the package."""
    return sorted(p.stem for p in _folder().glob("*.cif"))


def example_path(name: str) -> Path | None:
    """Path of the example CIF called ``name`` (case-insensitive), or None."""
    for p in _folder().glob("*.cif"):
        if p.stem.lower() == name.lower():
            return p
    return None
