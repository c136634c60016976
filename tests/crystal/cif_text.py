"""CIF text for the crystal tests: cells, symmetry operations, atom and aniso loops.

Imported by ``tests/crystal/test_cif.py`` and ``test_displacements.py`` (pytest puts this
folder on the path). The operations are written as CIF ``x,y,z`` strings from (W, w), so
tests can list any setting that spglib's Hall table holds.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def op_string(rotation: np.ndarray, translation: np.ndarray) -> str:
    """One operation as CIF text, e.g. ``-y+1/4,x+3/4,z+1/4``."""
    parts = []
    for row in range(3):
        text = ""
        for col, axis in enumerate("xyz"):
            coefficient = int(rotation[row, col])
            if coefficient:
                text += ("+" if coefficient > 0 else "-") + (
                    axis if abs(coefficient) == 1 else f"{abs(coefficient)}*{axis}"
                )
        shift = Fraction(float(translation[row]) % 1.0).limit_denominator(48)
        if shift:
            text += f"+{shift}"
        parts.append(text.lstrip("+"))
    return ",".join(parts)


def _value(v: object) -> str:
    # Floats at full precision (repr round-trips), so tests can compare to 1e-12.
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def cif_text(
    cell: Sequence[float],
    atoms: Sequence[Sequence[object]],
    *,
    operations: tuple[np.ndarray, np.ndarray] | None = None,
    header: Sequence[str] = (),
    columns: Sequence[str] = ("occupancy", "B_iso_or_equiv"),
    aniso: Sequence[Sequence[object]] | None = None,
    aniso_kind: str = "U",
    name: str = "test",
) -> str:
    """A CIF data block.

    ``cell`` is (a, b, c, α, β, γ); ``atoms`` rows are (label, symbol, x, y, z, then one
    value per name in ``columns``); ``operations`` (W, w) are listed in a
    ``_space_group_symop_operation_xyz`` loop; ``header`` lines (space-group tags) go
    before the loops; ``aniso`` rows are (label, X11, X22, X33, X12, X13, X23) with X the
    ``aniso_kind`` (``"U"``, ``"B"`` or ``"beta"``).
    """
    lines = [f"data_{name}"]
    lines += [f"_cell_length_{n} {v}" for n, v in zip("abc", cell[:3], strict=True)]
    lines += [
        f"_cell_angle_{n} {v}" for n, v in zip(("alpha", "beta", "gamma"), cell[3:], strict=True)
    ]
    lines += list(header)
    if operations is not None:
        lines += ["loop_", "_space_group_symop_id", "_space_group_symop_operation_xyz"]
        lines += [
            f"{i + 1} '{op_string(w, t)}'"
            for i, (w, t) in enumerate(zip(*operations, strict=True))
        ]
    lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol"]
    lines += [f"_atom_site_fract_{x}" for x in "xyz"] + [f"_atom_site_{c}" for c in columns]
    lines += [" ".join(_value(v) for v in row) for row in atoms]
    if aniso is not None:
        lines += ["loop_", "_atom_site_aniso_label"]
        lines += [
            f"_atom_site_aniso_{aniso_kind}_{ij}" for ij in ("11", "22", "33", "12", "13", "23")
        ]
        lines += [" ".join(_value(v) for v in row) for row in aniso]
    return "\n".join(lines) + "\n"


def write(directory: Path, text: str, name: str = "test") -> Path:
    """Write CIF text to ``directory/name.cif`` and return the path."""
    path = directory / f"{name}.cif"
    path.write_text(text)
    return path
