"""Constants and builders shared by the tests (imported as ``helpers``; fixtures are in conftest).

``SHARED`` is the ``../shared`` folder beside the checkout (reference cases, structures,
recorded patterns); tests that need it are marked with :data:`needs_shared`. The tiny
model domain and network sizes make the surrogate tests run in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hyperspy_lacbed.nets.domain import Domain

#: ``../shared`` relative to the repository root.
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
STRUCTURES = SHARED / "structures"
EXPERIMENTAL = SHARED / "experimental"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared is not beside the checkout"
)

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
