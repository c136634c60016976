"""Constants and builders shared by the tests (imported as ``helpers``; fixtures are in conftest).

``SHARED`` is the ``../shared`` folder beside the checkout (reference cases, structures,
recorded patterns; ``HYPERSPY_LACBED_SHARED`` names another place); tests that need it
are marked with :data:`needs_shared` or call :func:`require_shared`. Without it they skip,
except in CI (``CI=true``), where a missing ``../shared`` fails them: the reference tests
are what CI is for. The tiny model domain and network sizes make the surrogate tests run in
seconds on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hyperspy_lacbed.nets.domain import Domain

#: ``../shared`` relative to the repository root (or ``$HYPERSPY_LACBED_SHARED``).
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HYPERSPY_LACBED_SHARED") or ROOT.parent / "shared")
REFERENCE = SHARED / "reference"
STRUCTURES = SHARED / "structures"
EXPERIMENTAL = SHARED / "experimental"

#: In CI (``CI=true``, as GitHub Actions and most CI services set it) shared data must be there.
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_shared(path: Path | str = SHARED) -> Path:
    """``path`` (under ``../shared``) if it exists; else skip the test, or fail it in CI."""
    path = Path(path)
    if path.exists():
        return path
    message = f"{path} is missing: ../shared (reference data, structures, recorded patterns)"
    message += " is not beside the checkout"
    if IN_CI:
        pytest.fail(
            f"CI=true: {message}. The reference tests must run in CI, not skip: put the shared "
            "folder beside the checkout or set HYPERSPY_LACBED_SHARED.",
            pytrace=False,
        )
    pytest.skip(message)


#: A test that needs ``../shared`` (``tests/conftest.py`` calls :func:`require_shared` before
#: it runs); ``needs_shared("structures")`` names a part of it.
needs_shared = pytest.mark.needs_shared

DOMAIN = Domain(thicknesses=(500.0, 1000.0), disc_pixels=16, potential_pixels=32, strong_beams=20)
TINY_G = {
    "ngf": 8,
    "n_downsampling": 2,
    "n_blocks_global": 1,
    "n_blocks_local": 1,
    "max_channels": 32,
}
TINY_D = {"ndf": 8, "n_layers": 2}


#: Diamond Si as the eight atoms of its cubic cell, (element, x, y, z).
SI_DIAMOND_ATOMS = [
    ("Si", 0, 0, 0), ("Si", 0, 0.5, 0.5), ("Si", 0.5, 0, 0.5), ("Si", 0.5, 0.5, 0),
    ("Si", 0.25, 0.25, 0.25), ("Si", 0.25, 0.75, 0.75), ("Si", 0.75, 0.25, 0.75),
    ("Si", 0.75, 0.75, 0.25),
]  # fmt: skip


def p1_cif(
    rows: list[str] | None,
    a: float,
    b: float | None = None,
    c: float | None = None,
    angles: tuple[float, float, float] = (90, 90, 90),
    columns: tuple[str, ...] = (),
    header: tuple[str, ...] = (),
    name: str = "p1",
) -> str:
    """CIF text of a P1 cell: no symmetry loop, every atom listed.

    ``rows`` are the atom-site lines (label, element, x, y, z, then one value per name in
    ``columns``, e.g. ``"occupancy"``); None leaves the atom loop out. ``header`` lines go
    between the cell and the loop.
    """
    b = a if b is None else b
    c = a if c is None else c
    lines = [f"data_{name}", f"_cell_length_a {a}", f"_cell_length_b {b}", f"_cell_length_c {c}"]
    lines += [f"_cell_angle_{n} {v}" for n, v in zip(("alpha", "beta", "gamma"), angles)]
    lines += list(header)
    if rows is not None:
        lines += ["loop_", "_atom_site_label", "_atom_site_type_symbol"]
        lines += [f"_atom_site_fract_{x}" for x in "xyz"]
        lines += [f"_atom_site_{col}" for col in columns] + list(rows)
    return "\n".join(lines) + "\n"


def tiny_dataset(names=("Si", "Al", "NaCl", "GaAs"), domain: Domain = DOMAIN):
    """Bloch-wave discs and potentials of example crystals on the tiny domain."""
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.crystal.potential import projected_potential_array
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.train.loop import ArrayDataset

    pots, discs, a, sg = [], [], [], []
    for name in names:
        c = load_structure(name)
        lp = c.lattice_parameters[0]
        r = compute_discs(c, domain.simulation_settings(lp), device="cpu")
        n = domain.potential_pixels
        img, _ = projected_potential_array(
            c, domain.zone_axis, domain.x_direction, (n, n), domain.scattering_factors, True
        )
        pots.append(img)
        discs.append(r.discs)
        a.append(lp)
        sg.append(c.space_group_number)
    return ArrayDataset(np.stack(pots), np.stack(discs), domain.thicknesses, a, sg, domain)
