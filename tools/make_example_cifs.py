"""Write the example CIFs shipped in hyperspy_lacbed/data/structures from textbook values.

Run once by the developers: ``python tools/make_example_cifs.py``. Symmetry operations
come from diffpy.structure's space-group tables (origin choice 1 for Fd-3m).
"""

from fractions import Fraction
from pathlib import Path

from diffpy.structure import loadStructure
from diffpy.structure.spacegroups import GetSpaceGroup

OUT = Path(__file__).resolve().parents[1] / "hyperspy_lacbed" / "data" / "structures"

# name, H-M symbol, number, a (Å), atoms (label, element, x, y, z, B in Å²), description
CRYSTALS = [
    ("Si", "F d -3 m", 227, 5.4307, [("Si1", "Si", 0, 0, 0, 0.46)], "diamond"),
    ("Ge", "F d -3 m", 227, 5.6579, [("Ge1", "Ge", 0, 0, 0, 0.57)], "diamond"),
    ("C", "F d -3 m", 227, 3.5668, [("C1", "C", 0, 0, 0, 0.15)], "diamond"),
    (
        "GaAs",
        "F -4 3 m",
        216,
        5.6533,
        [("Ga1", "Ga", 0, 0, 0, 0.60), ("As1", "As", 0.25, 0.25, 0.25, 0.52)],
        "zinc blende",
    ),
    (
        "InP",
        "F -4 3 m",
        216,
        5.8687,
        [("In1", "In", 0, 0, 0, 0.72), ("P1", "P", 0.25, 0.25, 0.25, 0.55)],
        "zinc blende",
    ),
    (
        "NaCl",
        "F m -3 m",
        225,
        5.6402,
        [("Na1", "Na", 0, 0, 0, 1.60), ("Cl1", "Cl", 0.5, 0.5, 0.5, 1.24)],
        "rock salt",
    ),
    (
        "MgO",
        "F m -3 m",
        225,
        4.2112,
        [("Mg1", "Mg", 0, 0, 0, 0.31), ("O1", "O", 0.5, 0.5, 0.5, 0.34)],
        "rock salt",
    ),
    (
        "CaF2",
        "F m -3 m",
        225,
        5.4626,
        [("Ca1", "Ca", 0, 0, 0, 0.48), ("F1", "F", 0.25, 0.25, 0.25, 0.68)],
        "fluorite",
    ),
    (
        "SrTiO3",
        "P m -3 m",
        221,
        3.905,
        [
            ("Sr1", "Sr", 0, 0, 0, 0.55),
            ("Ti1", "Ti", 0.5, 0.5, 0.5, 0.40),
            ("O1", "O", 0, 0.5, 0.5, 0.60),
        ],
        "cubic perovskite",
    ),
    ("Cu", "F m -3 m", 225, 3.6149, [("Cu1", "Cu", 0, 0, 0, 0.55)], "fcc metal"),
    ("Al", "F m -3 m", 225, 4.0495, [("Al1", "Al", 0, 0, 0, 0.79)], "fcc metal"),
    ("Au", "F m -3 m", 225, 4.0782, [("Au1", "Au", 0, 0, 0, 0.62)], "fcc metal"),
    ("Fe", "I m -3 m", 229, 2.8665, [("Fe1", "Fe", 0, 0, 0, 0.35)], "bcc alpha-iron"),
    (
        "CsCl",
        "P m -3 m",
        221,
        4.123,
        [("Cs1", "Cs", 0, 0, 0, 1.90), ("Cl1", "Cl", 0.5, 0.5, 0.5, 1.60)],
        "caesium chloride",
    ),
]


def _op_string(op) -> str:
    terms = []
    for row, t in zip(op.R, op.t):
        s = "".join(("+" if c > 0 else "-") + v for c, v in zip(row, "xyz") if c)
        f = Fraction(float(t)).limit_denominator(12)
        if f:
            s += ("+" if f > 0 else "-") + str(abs(f))
        terms.append(s.lstrip("+"))
    return ",".join(terms)


def main() -> None:
    for name, hm, num, a, atoms, kind in CRYSTALS:
        ops = [_op_string(op) for op in GetSpaceGroup(num).iter_symops()]
        lines = [
            f"# {name}, {kind}: textbook room-temperature lattice parameter and B factors.",
            "# Written for hyperspy-lacbed by tools/make_example_cifs.py.",
            f"data_{name}",
            f"_chemical_name_common '{name}'",
            *[f"_cell_length_{x} {a}" for x in "abc"],
            *[f"_cell_angle_{x} 90" for x in ("alpha", "beta", "gamma")],
            f"_space_group_name_H-M_alt '{hm}'",
            f"_space_group_IT_number {num}",
            "loop_",
            "_space_group_symop_id",
            "_space_group_symop_operation_xyz",
            *[f"{i + 1} '{o}'" for i, o in enumerate(ops)],
            "loop_",
            "_atom_site_label",
            "_atom_site_type_symbol",
            "_atom_site_fract_x",
            "_atom_site_fract_y",
            "_atom_site_fract_z",
            "_atom_site_B_iso_or_equiv",
            "_atom_site_occupancy",
            *[f"{lab} {el} {x:.5f} {y:.5f} {z:.5f} {b:.3f} 1.0" for lab, el, x, y, z, b in atoms],
        ]
        path = OUT / f"{name}.cif"
        path.write_text("\n".join(lines) + "\n")
        print(name, len(loadStructure(str(path))), "atoms,", len(ops), "operations")


if __name__ == "__main__":
    main()
