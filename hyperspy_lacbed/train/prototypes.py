"""Realistic cubic training crystals: common structure types with plausible chemistry.

The v0 training crystals (:mod:`hyperspy_lacbed.train.structures`) fill random Wyckoff
positions of space groups drawn in turn; real cubic crystals are nothing like that. This
module draws crystals the way the ICSD holds them:

1. **Space group** from the real frequencies of the ICSD cubic entries
   (:data:`SPACE_GROUP_FREQUENCIES`; both origin choices of a group are merged).
2. With probability ``random_fraction`` (default 0.2; always when no prototype of the
   group is allowed) the crystal comes from the random-Wyckoff generator in that group,
   for coverage. Otherwise a **prototype** (structure type) of that group is drawn by its
   weight (:data:`PROTOTYPES`), then one of its chemical **variants** (e.g. rock salt as
   alkali halide, divalent oxide/chalcogenide, transition-metal carbide/nitride, ...).
3. **Elements**: each site label of the variant draws from a role list (alkali, large
   divalent A cation, small divalent / trivalent / tetravalent cation, lanthanide, halogen,
   chalcogen, pnictogen, late/early transition metal, ... see :data:`ROLES`), weighted by
   how often the element occurs in ICSD cubic entries. Distinct labels get distinct
   elements (so that chemistry cannot raise the symmetry, e.g. CsCl → bcc).
4. **Partial occupancy**: with probability ``partial_probability`` one site becomes a
   solid solution of two elements of its role (fractions 0.2–0.8), or (one time in four)
   is left 80–98 % occupied (vacancies).
5. **Lattice parameter** from a sum-of-radii rule: each variant has a reference compound
   with its measured a; the sampled crystal has
   ``a = a_ref · Σ_b (r_i + r_j) / Σ_b (r_i,ref + r_j,ref) · (1 + ε)`` over the prototype's
   bond pairs b, with Shannon's ionic radii (:data:`IONIC_RADII`) for ionic variants,
   metallic radii (:data:`METALLIC_RADII`) for metallic ones and the covalent radii of
   :data:`RADII` for the others (occupancy-weighted on mixed sites), and
   ε ~ N(0, ``lattice_spread``) clipped at ±3σ. On 81 real compounds the rule is within
   1.2 % of the measured a in the median and 8.9 % at worst.
   Prototype draws are then kept with a probability that depends on a (``lattice_weighting``)
   so that their a follows the ICSD histogram.
6. **Free coordinates** (spinel x, pyrite x, garnet xyz, ...) uniform in realistic ranges;
   **Debye–Waller factors** per site ``B = U(0.3, 1.0) · (30 / Z)^0.25`` clipped to
   ``b_iso_range`` (default 0.2–1.5 Å²: light atoms vibrate more).
7. A crystal is kept when spglib finds the intended space group, its lattice parameter lies
   in ``lattice_parameter_range`` and its reduced formula is not a test crystal's
   (:func:`excluded_compositions`); otherwise the draw is repeated in the same space group
   (after ``max_prototype_attempts`` failures the random generator fills in), so the space
   group distribution is exactly the target one whatever the range.

Reproducibility: sample ``i`` of seed ``s`` depends only on ``(s, i)`` (its own
``SeedSequence(s, spawn_key=(i,))``), as in :mod:`~hyperspy_lacbed.train.structures`.

Held-out structure types (evaluation on unseen types): a training set with
``exclude_prototypes=names`` and a test set with ``prototypes=names, random_fraction=0``
(see :func:`held_out_configs`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.crystal.scattering import atomic_number
from hyperspy_lacbed.crystal.structure import Crystal, StructureError
from hyperspy_lacbed.train.structures import (
    COVALENT_RADII,
    GenerationStats,
    StructureConfig,
    StructureGenerator,
    SyntheticStructure,
    _orbit,
    _sample_rng,
    arrangement_space_group,
    space_group_operations,
)

__all__ = [
    "ELEMENT_FREQUENCIES",
    "IONIC_RADII",
    "LATTICE_PARAMETER_HISTOGRAM",
    "METALLIC_RADII",
    "PROTOTYPES",
    "RADII",
    "RARE_ELEMENT_WEIGHT",
    "ROLES",
    "SHARED_TEST_COMPOSITIONS",
    "SPACE_GROUP_FREQUENCIES",
    "USUAL_CHARGES",
    "ChemicalVariant",
    "Prototype",
    "RealisticConfig",
    "RealisticGenerator",
    "build_prototype",
    "excluded_compositions",
    "held_out_configs",
    "prototype_counts",
    "prototype_names",
    "reduced_formula",
    "target_lattice_histogram",
]

# ----------------------------------------------------------------------------------------
# Facts of the real distribution (from ../shared/reference/icsd_cubic_distribution.json)
# ----------------------------------------------------------------------------------------

#: Fraction of the 14,270 ICSD cubic entries of the method paper (Webb, Beanland & Römer,
#: arXiv:2503.02852; their ``scripts/data/metadata.csv``, newest entry per formula) in each
#: space group, both origin choices merged (Fd-3m: 22.08 % origin 2 + 4.60 % origin 1).
#: Copied from ``icsd_cubic_distribution.json`` ("space_group_fraction"); P4_232 (208) has
#: no entry. Sums to 1.
SPACE_GROUP_FREQUENCIES: dict[int, float] = {
    227: 0.2668, 225: 0.1835, 221: 0.1317, 216: 0.0722, 230: 0.0462, 204: 0.0418,
    223: 0.0351, 198: 0.0266, 220: 0.0236, 217: 0.0227, 205: 0.0202, 229: 0.0200,
    206: 0.0164, 218: 0.0159, 226: 0.0121, 215: 0.0083, 212: 0.0077, 213: 0.0072,
    203: 0.0063, 197: 0.0060, 201: 0.0050, 200: 0.0039, 202: 0.0034, 228: 0.0029,
    224: 0.0028, 199: 0.0027, 214: 0.0024, 219: 0.0019, 196: 0.0017, 222: 0.0014,
    195: 0.0009, 209: 0.0004, 210: 0.0001, 211: 0.0001, 207: 0.0001,
}  # fmt: skip

#: Fraction of those entries containing each element (same file,
#: "element_occurrence_fraction"; the 60 most common). Elements of a role list are drawn
#: with these weights (:data:`RARE_ELEMENT_WEIGHT` for the others).
ELEMENT_FREQUENCIES: dict[str, float] = {
    "O": 0.5801, "Fe": 0.1855, "Al": 0.1463, "Ti": 0.1202, "Si": 0.1093, "Mn": 0.1062,
    "H": 0.1041, "Mg": 0.1025, "Li": 0.0933, "Ba": 0.0933, "Co": 0.0900, "Ni": 0.0839,
    "Zn": 0.0800, "Cu": 0.0793, "Na": 0.0740, "S": 0.0683, "N": 0.0677, "Sr": 0.0671,
    "Zr": 0.0642, "La": 0.0641, "Sn": 0.0640, "Ca": 0.0626, "Bi": 0.0595, "Sb": 0.0588,
    "Cr": 0.0583, "Ga": 0.0536, "C": 0.0484, "Ge": 0.0467, "K": 0.0461, "Nb": 0.0444,
    "Y": 0.0437, "In": 0.0421, "Ce": 0.0414, "P": 0.0408, "V": 0.0397, "Se": 0.0360,
    "F": 0.0351, "Cs": 0.0330, "Gd": 0.0316, "Mo": 0.0310, "Pb": 0.0308, "B": 0.0301,
    "Te": 0.0285, "Cl": 0.0275, "Cd": 0.0273, "Ag": 0.0255, "Nd": 0.0238, "W": 0.0232,
    "Pd": 0.0222, "Ta": 0.0222, "Yb": 0.0217, "Eu": 0.0214, "D": 0.0212, "Ru": 0.0211,
    "Sc": 0.0189, "Sm": 0.0183, "Rb": 0.0180, "Pr": 0.0167, "Br": 0.0164, "As": 0.0157,
}  # fmt: skip

#: Weight of an element that is not among the 60 most common ones.
RARE_ELEMENT_WEIGHT = 0.01

#: Lattice-parameter histogram of the same entries (Å; "lattice_parameter_histogram_A"),
#: used to report how close a sampled set comes.
LATTICE_PARAMETER_HISTOGRAM: dict[str, list[float]] = {
    "edges": [0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 25, 30, 100],
    "counts": [53, 1047, 997, 1151, 604, 1036, 2684, 923, 2448, 559, 1155, 604, 415, 417, 111,
               66],
}  # fmt: skip

# ----------------------------------------------------------------------------------------
# Test crystals kept out of training
# ----------------------------------------------------------------------------------------

#: Reduced formulas (:func:`reduced_formula`) of the crystals in the project's shared test
#: folder ``../shared/structures/`` (CaF2.cif, Cu.cif, Fe_bcc.cif, GaAs.cif, MgO.cif,
#: NaCl.cif, Si.cif, SrTiO3.cif), computed with ``load_structure`` and embedded here
#: because that folder does not ship with the package. tests/test_prototypes.py checks
#: the list against the folder whenever it is present.
SHARED_TEST_COMPOSITIONS: tuple[str, ...] = (
    "AsGa", "CaF2", "ClNa", "Cu", "Fe", "MgO", "O3SrTi", "Si",
)  # fmt: skip


def reduced_formula(elements: Any, occupancies: Any = None) -> str:
    """Composition as a reduced formula, elements in alphabetical order (``"O3SrTi"``).

    Counts are summed occupancies. Integer counts are divided by their greatest common
    divisor; non-integer ones (partial occupancy) are divided by the smallest count and
    written with up to three decimals, so they never equal an ordered compound's formula.

    Parameters
    ----------
    elements
        Element symbol of each atom.
    occupancies
        Occupancy of each atom (default 1).
    """
    elements = list(elements)
    occ = np.ones(len(elements)) if occupancies is None else np.asarray(occupancies, float)
    counts: dict[str, float] = {}
    for e, o in zip(elements, occ):
        counts[e] = counts.get(e, 0.0) + float(o)
    if not counts:
        return ""
    values = np.array([counts[e] for e in sorted(counts)])
    if np.allclose(values, np.round(values), atol=1e-6):
        ints = np.round(values).astype(int)
        ints = ints // math.gcd(*ints.tolist())
        parts = [(e, str(n) if n > 1 else "") for e, n in zip(sorted(counts), ints)]
    else:
        rel = values / values.min()
        parts = [(e, "" if abs(r - 1) < 1e-9 else f"{r:.3f}".rstrip("0").rstrip("."))
                 for e, r in zip(sorted(counts), rel)]  # fmt: skip
    return "".join(e + n for e, n in parts)


@functools.cache
def _package_example_compositions() -> tuple[str, ...]:
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.data import example_path, example_structures

    out = set()
    for name in example_structures():
        c = load_structure(example_path(name))
        out.add(reduced_formula(c.elements, c.occupancies))
    return tuple(sorted(out))


def excluded_compositions() -> frozenset[str]:
    """Reduced formulas never produced for training: the test and example crystals.

    The union of :data:`SHARED_TEST_COMPOSITIONS` and the compositions of the example
    crystals shipped in ``hyperspy_lacbed/data/structures`` (read at run time).
    """
    return frozenset(SHARED_TEST_COMPOSITIONS) | frozenset(_package_example_compositions())


# ----------------------------------------------------------------------------------------
# Radii and chemical roles
# ----------------------------------------------------------------------------------------

#: Radii (Å) of the lattice-parameter rule: the covalent radii of Cordero et al. (2008)
#: used by the random generator (:data:`~hyperspy_lacbed.train.structures.COVALENT_RADII`),
#: completed from the same table for the lanthanides, Th and Po.
RADII: dict[str, float] = {
    **COVALENT_RADII,
    "Pr": 2.03, "Nd": 2.01, "Sm": 1.98, "Eu": 1.98, "Gd": 1.96, "Tb": 1.94, "Dy": 1.92,
    "Ho": 1.92, "Er": 1.89, "Tm": 1.90, "Yb": 1.87, "Lu": 1.87, "Th": 2.06, "Po": 1.40,
}  # fmt: skip

#: Effective ionic radii (Å) of R. D. Shannon, Acta Cryst. A32 (1976) 751, six-fold
#: coordination (high spin for Mn, Fe, Co), by (element, charge); used by the lattice rule
#: of the ionic variants (the ratio to the reference compound cancels the coordination).
IONIC_RADII: dict[tuple[str, int], float] = {
    ("Li", 1): 0.76, ("Na", 1): 1.02, ("K", 1): 1.38, ("Rb", 1): 1.52, ("Cs", 1): 1.67,
    ("Tl", 1): 1.50, ("Ag", 1): 1.15, ("Cu", 1): 0.77,
    ("Be", 2): 0.45, ("Mg", 2): 0.72, ("Ca", 2): 1.00, ("Sr", 2): 1.18, ("Ba", 2): 1.35,
    ("Pb", 2): 1.19, ("Eu", 2): 1.17, ("Mn", 2): 0.83, ("Fe", 2): 0.78, ("Co", 2): 0.745,
    ("Ni", 2): 0.69, ("Cu", 2): 0.73, ("Zn", 2): 0.74, ("Cd", 2): 0.95,
    ("B", 3): 0.27, ("Al", 3): 0.535, ("Ga", 3): 0.62, ("In", 3): 0.80, ("Sc", 3): 0.745,
    ("Ti", 3): 0.67, ("V", 3): 0.64, ("Cr", 3): 0.615, ("Mn", 3): 0.645, ("Fe", 3): 0.645,
    ("Co", 3): 0.61, ("Y", 3): 0.90, ("La", 3): 1.032, ("Ce", 3): 1.01, ("Pr", 3): 0.99,
    ("Nd", 3): 0.983, ("Sm", 3): 0.958, ("Eu", 3): 0.947, ("Gd", 3): 0.938, ("Dy", 3): 0.912,
    ("Ho", 3): 0.901, ("Er", 3): 0.89, ("Yb", 3): 0.868, ("Lu", 3): 0.861, ("Bi", 3): 1.03,
    ("Si", 4): 0.40, ("Ge", 4): 0.53, ("Sn", 4): 0.69, ("Pb", 4): 0.775, ("Ti", 4): 0.605,
    ("Zr", 4): 0.72, ("Hf", 4): 0.71, ("Mn", 4): 0.53, ("Ru", 4): 0.62, ("Ir", 4): 0.625,
    ("Ce", 4): 0.87, ("Th", 4): 0.94, ("Pt", 4): 0.625, ("Pd", 4): 0.615, ("Re", 4): 0.63,
    ("Os", 4): 0.63, ("Te", 4): 0.97,
    ("Nb", 5): 0.64, ("Ta", 5): 0.64, ("V", 5): 0.54, ("Sb", 5): 0.60,
    ("W", 6): 0.60, ("Mo", 6): 0.59, ("Re", 6): 0.55, ("Te", 6): 0.56,
    ("F", -1): 1.33, ("Cl", -1): 1.81, ("Br", -1): 1.96, ("I", -1): 2.20,
    ("O", -2): 1.40, ("S", -2): 1.84, ("Se", -2): 1.98, ("Te", -2): 2.21,
}  # fmt: skip

#: Metallic radii (Å) for twelve-fold coordination (E. T. Teatum, K. A. Gschneidner and
#: J. T. Waber, LA-4003 (1968), as tabulated in Greenwood & Earnshaw, and Pauling's values
#: for the semimetals), used by the metallic variants.
METALLIC_RADII: dict[str, float] = {
    "Li": 1.56, "Be": 1.12, "Na": 1.91, "Mg": 1.60, "Al": 1.43, "Si": 1.32, "K": 2.35,
    "Ca": 1.97, "Sc": 1.64, "Ti": 1.47, "V": 1.35, "Cr": 1.29, "Mn": 1.37, "Fe": 1.26,
    "Co": 1.25, "Ni": 1.25, "Cu": 1.28, "Zn": 1.37, "Ga": 1.41, "Ge": 1.37, "As": 1.39,
    "Rb": 2.50, "Sr": 2.15, "Y": 1.80, "Zr": 1.60, "Nb": 1.46, "Mo": 1.39, "Ru": 1.34,
    "Rh": 1.34, "Pd": 1.37, "Ag": 1.44, "Cd": 1.52, "In": 1.66, "Sn": 1.62, "Sb": 1.59,
    "Te": 1.60, "Cs": 2.72, "Ba": 2.24, "La": 1.87, "Ce": 1.82, "Pr": 1.82, "Nd": 1.82,
    "Sm": 1.81, "Eu": 2.04, "Gd": 1.80, "Dy": 1.78, "Yb": 1.94, "Lu": 1.73, "Hf": 1.58,
    "Ta": 1.46, "W": 1.39, "Re": 1.37, "Os": 1.35, "Ir": 1.36, "Pt": 1.39, "Au": 1.44,
    "Hg": 1.55, "Tl": 1.71, "Pb": 1.75, "Bi": 1.70, "Th": 1.80,
}  # fmt: skip

#: The usual cation charge of the elements of mixed-valence roles (elpasolite B and B').
USUAL_CHARGES: dict[str, int] = {
    "Li": 1, "Na": 1, "Mg": 2, "Ca": 2, "Co": 2, "Ni": 2, "Zn": 2, "Mn": 2, "Fe": 2,
    "Al": 3, "Ga": 3, "Sc": 3, "Cr": 3, "In": 3, "Y": 3, "W": 6, "Mo": 6, "Te": 6, "Nb": 5,
    "Ta": 5,
}  # fmt: skip

#: Element lists by chemical role. A variant of a prototype assigns a role to each site.
ROLES: dict[str, tuple[str, ...]] = {
    "alkali": ("Li", "Na", "K", "Rb", "Cs"),
    "alkali_large": ("K", "Rb", "Cs", "Tl"),
    "alkaline_earth": ("Mg", "Ca", "Sr", "Ba"),
    "A2_large": ("Ca", "Sr", "Ba", "Pb", "Eu"),
    "M2": ("Mg", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Cd"),
    "M2_tet": ("Mg", "Mn", "Fe", "Co", "Zn", "Cd"),
    "M3": ("Al", "Ga", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "In"),
    "M3_small": ("Al", "Ga", "Cr", "Fe", "Mn", "V", "Co"),
    "M4": ("Ti", "Zr", "Hf", "Sn", "Mn", "Ru", "Ge", "Pb", "Ce", "Ir"),
    "M4_fluorite": ("Zr", "Hf", "Ce", "Th"),
    "M5": ("Nb", "Ta", "V", "Sb"),
    "M6": ("W", "Mo", "Re"),
    "Ln": ("La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Dy", "Ho", "Er", "Yb", "Lu", "Y"),
    "Ln_small": ("Sc", "Y", "Gd", "Dy", "Ho", "Er", "Yb", "Lu", "In"),
    "Ln_large": ("La", "Ce", "Pr", "Nd", "Sm", "Gd", "Bi", "Y"),
    "filler": ("La", "Ce", "Pr", "Nd", "Yb", "Eu", "Ca", "Sr", "Ba"),
    "triel": ("B", "Al", "Ga", "In"),
    "tetrel": ("Si", "Ge", "Sn", "Pb"),
    "pnictogen": ("N", "P", "As", "Sb", "Bi"),
    "pnictogen_heavy": ("P", "As", "Sb", "Bi"),
    "chalcogen": ("O", "S", "Se", "Te"),
    "chalcogen_heavy": ("S", "Se", "Te"),
    "halogen": ("F", "Cl", "Br", "I"),
    "halogen_heavy": ("Cl", "Br", "I"),
    "oxygen": ("O",),
    "fluorine": ("F",),
    "boron": ("B",),
    "beryllium": ("Be",),
    "zinc_group": ("Zn", "Cd"),
    "CN": ("C", "N"),
    "tm_early": ("Sc", "Ti", "V", "Cr", "Y", "Zr", "Nb", "Mo", "Hf", "Ta", "W"),
    "tm_late": ("Mn", "Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ag", "Ir", "Pt", "Au"),
    "tm_late_small": ("Fe", "Co", "Ni", "Cu", "Rh", "Pd", "Pt"),
    "tm_heusler_y": ("Ti", "V", "Cr", "Mn", "Zr", "Hf", "Nb", "Sc"),
    "sp_metal": ("Al", "Ga", "In", "Si", "Ge", "Sn", "Sb"),
    "sp_metal_b2": ("Al", "Ga", "In", "Zn", "Cd", "Be", "Mg"),
    "noble": ("Cu", "Ag", "Au"),
    "coinage_pt": ("Ni", "Pd", "Pt"),
    "co_group": ("Co", "Rh", "Ir"),
    "fe_group": ("Fe", "Ru", "Os"),
    "pyrite_m": ("Mn", "Fe", "Co", "Ni", "Ru", "Os", "Pt", "Zn", "Cd"),
    "b20_m": ("Cr", "Mn", "Fe", "Co", "Rh", "Ru", "Pd"),
    "laves_a": ("Mg", "Ca", "Ti", "Zr", "Hf", "Y", "La", "Ce", "Gd", "Nb"),
    "laves_b": ("Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Al", "V", "Mo", "W"),
    "a15_a": ("V", "Nb", "Cr", "Mo", "Ta", "Ti", "Zr"),
    "a15_b": ("Si", "Ge", "Sn", "Al", "Ga", "Au", "Pt", "Ir", "Os", "Sb"),
    "fcc_tm": ("Ni", "Pd", "Pt", "Ag", "Rh", "Ir", "Co"),
    "fcc_div": ("Ca", "Sr", "Yb", "Pb"),
    "fcc_f": ("Ce", "Th"),
    "bcc_tm": ("V", "Cr", "Nb", "Mo", "Ta", "W"),
    "bcc_div": ("Ba", "Eu"),
    "sc_metal": ("Po",),
    "group14": ("C", "Si", "Ge", "Sn"),
    "alkali_light": ("Li", "Na"),
    "natl_b": ("Al", "Ga", "In", "Tl", "Zn", "Cd"),
    "cuprite_m": ("Cu", "Ag"),
    "cuprite_x": ("O", "S"),
    "kptcl_m": ("Pt", "Pd", "Sn", "Ti", "Zr", "Re", "Os", "Ir", "Te", "Ge", "Si"),
    "elpasolite_b": ("Li", "Na", "Mg", "Ca", "Co", "Ni", "Zn", "Mn", "Fe"),
    "elpasolite_b2": ("Al", "Ga", "Sc", "Cr", "In", "Y", "W", "Mo", "Te", "Nb", "Ta"),
    "sulvanite_m": ("V", "Nb", "Ta"),
    "brass_a": ("Cu", "Ag", "Au", "Fe", "Co", "Ni", "Pd"),
    "brass_b": ("Zn", "Cd", "Hg", "Al", "Ga", "In"),
    "mn_alloy": ("Mn", "Co", "Fe", "Ag", "Al", "Zn", "Ni", "Cr"),
    "be13_a": ("Ca", "Sr", "Ba", "La", "Ce", "Nd", "Zr", "Hf", "Th", "Y", "Sc"),
    "na_zn13_a": ("Na", "K", "Ca", "Sr", "Ba", "La", "Ce"),
    "tetrahedrite_m": ("Sb", "As", "Bi"),
    "tetrahedrite_cu": ("Cu", "Ag"),
}


# ----------------------------------------------------------------------------------------
# Prototypes
# ----------------------------------------------------------------------------------------

Coordinate = float | str  # a number, or "x", "-x", "x+0.25", "0.5-x" with a free parameter


@dataclass(frozen=True)
class ChemicalVariant:
    """One chemical family of a prototype.

    Attributes
    ----------
    name
        Short label (``"halide"``, ``"oxide"``, ...).
    roles
        Role (key of :data:`ROLES`) of each site label.
    reference
        Element of each site label in the reference compound.
    a_ref
        Measured lattice parameter of the reference compound (Å).
    weight
        Relative probability among the prototype's variants.
    charges
        For ionic families, the formal charge of each site label (``None`` for a label:
        the element's usual charge, :data:`USUAL_CHARGES`); the lattice rule then uses
        Shannon's ionic radii (:data:`IONIC_RADII`). Empty: covalent radii (:data:`RADII`).
    metallic
        Intermetallic and metallic families: the rule uses the twelve-coordinated metallic
        radii of :data:`METALLIC_RADII`.
    """

    name: str
    roles: dict[str, str]
    reference: dict[str, str]
    a_ref: float
    weight: float = 1.0
    charges: dict[str, int | None] = field(default_factory=dict)
    metallic: bool = False

    def radius(self, label: str, element: str) -> float:
        """Radius (Å) of ``element`` on site ``label`` for the lattice rule."""
        if self.metallic:
            return METALLIC_RADII[element]
        if not self.charges:
            return RADII[element]
        q = self.charges[label]
        q = USUAL_CHARGES[element] if q is None else int(q)
        if (element, q) in IONIC_RADII:
            return IONIC_RADII[(element, q)]
        # A guest of another valence on the site (the B cation on the octahedral site of an
        # inverse spinel): its radius at the nearest tabulated charge of the same sign.
        near = sorted((abs(c - q), c) for e, c in IONIC_RADII if e == element and c * q > 0)
        if not near:
            raise KeyError(f"No ionic radius of {element} with the sign of charge {q}.")
        return IONIC_RADII[(element, near[0][1])]


@dataclass(frozen=True)
class Prototype:
    """A cubic structure type: space group, Wyckoff sites, free parameters, chemistry.

    Attributes
    ----------
    name
        Identifier (``"rocksalt"``, ``"spinel"``, ...).
    formula
        Formula of the type compound (``"NaCl"``).
    space_group
        Intended space-group number (the built crystal has it; spglib checks).
    sites
        ``(label, (x, y, z))`` representatives of the Wyckoff orbits, in the ITA standard
        setting of :func:`~hyperspy_lacbed.train.structures.space_group_operations`
        (origin choice 2 where there are two). Several sites may share a label (one element).
    variants
        Chemical families (see :class:`ChemicalVariant`).
    bonds
        Label pairs whose radius sums set the lattice parameter.
    params
        Range (lo, hi) of each free coordinate.
    weight
        Relative probability among the prototypes of its space group.
    strukturbericht
        Strukturbericht designation or short description.
    invert
        Build with the operations of ``space_group`` and invert every position (gives the
        enantiomorph, e.g. P4_332 from a P4_132 description).
    """

    name: str
    formula: str
    space_group: int
    sites: tuple[tuple[str, tuple[Coordinate, Coordinate, Coordinate]], ...]
    variants: tuple[ChemicalVariant, ...]
    bonds: tuple[tuple[str, str], ...]
    params: dict[str, tuple[float, float]] = field(default_factory=dict)
    weight: float = 1.0
    strukturbericht: str = ""
    invert: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """Distinct site labels, in order."""
        return tuple(dict.fromkeys(label for label, _ in self.sites))

    @property
    def build_group(self) -> int:
        """The group whose operations expand the sites."""
        return (
            {212: 213}.get(self.space_group, self.space_group)
            if self.invert
            else (self.space_group)
        )


def _v(name, roles, reference, a_ref, weight=1.0, charges=None, metallic=False) -> ChemicalVariant:
    return ChemicalVariant(
        name,
        dict(roles),
        dict(reference),
        float(a_ref),
        float(weight),
        dict(charges or {}),
        bool(metallic),
    )


H, Q, E = 0.5, 0.25, 0.125  # 1/2, 1/4, 1/8

#: The structure types, grouped by space group. Reference lattice parameters are
#: room-temperature literature values of the reference compound.
PROTOTYPES: tuple[Prototype, ...] = (
    # ---- Fm-3m (225)
    Prototype("rocksalt", "NaCl", 225, (("A", (0, 0, 0)), ("X", (H, H, H))),
              (_v("halide", {"A": "alkali", "X": "halogen"}, {"A": "Na", "X": "Cl"}, 5.640, 2, {"A": 1, "X": -1}),
               _v("oxide", {"A": "M2", "X": "oxygen"}, {"A": "Mg", "X": "O"}, 4.212, 2, {"A": 2, "X": -2}),
               _v("chalcogenide", {"A": "A2_large", "X": "chalcogen_heavy"},
                  {"A": "Pb", "X": "S"}, 5.936, 1, {"A": 2, "X": -2}),
               _v("pnictide", {"A": "Ln", "X": "pnictogen"}, {"A": "La", "X": "N"}, 5.301),
               _v("carbide", {"A": "tm_early", "X": "CN"}, {"A": "Ti", "X": "C"}, 4.328)),
              (("A", "X"),), weight=0.30, strukturbericht="B1"),
    Prototype("fluorite", "CaF2", 225, (("A", (0, 0, 0)), ("X", (Q, Q, Q))),
              (_v("fluoride", {"A": "A2_large", "X": "fluorine"}, {"A": "Ca", "X": "F"}, 5.463, 1, {"A": 2, "X": -1}),
               _v("oxide", {"A": "M4_fluorite", "X": "oxygen"}, {"A": "Ce", "X": "O"}, 5.411, 1, {"A": 4, "X": -2}),
               _v("silicide", {"A": "coinage_pt", "X": "tetrel"}, {"A": "Pt", "X": "Si"}, 5.40,
                  0.3)),
              (("A", "X"),), weight=0.10, strukturbericht="C1"),
    Prototype("antifluorite", "Li2O", 225, (("X", (0, 0, 0)), ("A", (Q, Q, Q))),
              (_v("chalcogenide", {"A": "alkali", "X": "chalcogen"}, {"A": "Li", "X": "O"}, 4.619, 1, {"A": 1, "X": -2}),
               _v("Mg2Si", {"A": "alkaline_earth", "X": "tetrel"}, {"A": "Mg", "X": "Si"},
                  6.351, 0.5)),
              (("A", "X"),), weight=0.07, strukturbericht="C1 (anti)"),
    Prototype("fcc", "Cu", 225, (("M", (0, 0, 0)),),
              (_v("transition", {"M": "fcc_tm"}, {"M": "Ni"}, 3.524, 2, metallic=True),
               _v("divalent", {"M": "fcc_div"}, {"M": "Ca"}, 5.588, metallic=True),
               _v("f-metal", {"M": "fcc_f"}, {"M": "Ce"}, 5.161, 0.5, metallic=True)),
              (("M", "M"),), weight=0.08, strukturbericht="A1"),
    Prototype("heusler_L21", "Cu2MnAl", 225,
              (("X", (Q, Q, Q)), ("Y", (H, H, H)), ("Z", (0, 0, 0))),
              (_v("heusler", {"X": "tm_late_small", "Y": "tm_heusler_y", "Z": "sp_metal"},
                  {"X": "Cu", "Y": "Mn", "Z": "Al"}, 5.949, metallic=True),),
              (("X", "Y"), ("X", "Z")), weight=0.12, strukturbericht="L2_1"),
    Prototype("BiF3", "BiF3 / Li3Bi / Fe3Al", 225,
              (("B", (0, 0, 0)), ("A", (H, H, H)), ("A", (Q, Q, Q))),
              (_v("Li3Bi", {"A": "alkali_light", "B": "pnictogen_heavy"},
                  {"A": "Li", "B": "Bi"}, 6.722),
               _v("Fe3Al", {"A": "tm_late_small", "B": "sp_metal"}, {"A": "Fe", "B": "Al"},
                  5.792, metallic=True),
               _v("BiF3", {"A": "fluorine", "B": "Ln_large"}, {"A": "F", "B": "Bi"}, 5.865,
                  0.5)),
              (("A", "B"),), weight=0.08, strukturbericht="D0_3"),
    Prototype("K2PtCl6", "K2PtCl6", 225,
              (("M", (0, 0, 0)), ("A", (Q, Q, Q)), ("X", ("x", 0, 0))),
              (_v("halide", {"A": "alkali_large", "M": "kptcl_m", "X": "halogen"},
                  {"A": "K", "M": "Pt", "X": "Cl"}, 9.755, 1, {"A": 1, "M": 4, "X": -1}),),
              (("A", "X"), ("M", "X")), {"x": (0.21, 0.25)}, weight=0.07,
              strukturbericht="J1_1 (antifluorite of MX6)"),
    Prototype("elpasolite", "K2NaAlF6 / Ba2MgWO6", 225,
              (("B", (0, 0, 0)), ("C", (H, H, H)), ("A", (Q, Q, Q)), ("X", ("x", 0, 0))),
              (_v("fluoride", {"A": "alkali_large", "B": "elpasolite_b", "C": "elpasolite_b2",
                               "X": "fluorine"}, {"A": "K", "B": "Na", "C": "Al", "X": "F"}, 8.093, 1, {"A": 1, "B": None, "C": None, "X": -1}),
               _v("double perovskite", {"A": "A2_large", "B": "elpasolite_b",
                                        "C": "elpasolite_b2", "X": "oxygen"},
                  {"A": "Ba", "B": "Mg", "C": "W", "X": "O"}, 8.105, 2, {"A": 2, "B": None, "C": None, "X": -2})),
              (("B", "X"), ("C", "X")), {"x": (0.235, 0.265)}, weight=0.15,
              strukturbericht="E2_1 ordered (double perovskite)"),
    # ---- Pm-3m (221)
    Prototype("perovskite", "CaTiO3 (cubic SrTiO3)", 221,
              (("A", (0, 0, 0)), ("B", (H, H, H)), ("X", (0, H, H))),
              (_v("oxide 2-4", {"A": "A2_large", "B": "M4", "X": "oxygen"},
                  {"A": "Sr", "B": "Ti", "X": "O"}, 3.905, 2, {"A": 2, "B": 4, "X": -2}),
               _v("oxide 1-5", {"A": "alkali_large", "B": "M5", "X": "oxygen"},
                  {"A": "K", "B": "Ta", "X": "O"}, 3.989, 1, {"A": 1, "B": 5, "X": -2}),
               _v("oxide 3-3", {"A": "Ln_large", "B": "M3", "X": "oxygen"},
                  {"A": "La", "B": "Al", "X": "O"}, 3.79, 1, {"A": 3, "B": 3, "X": -2}),
               _v("fluoride", {"A": "alkali_large", "B": "M2", "X": "fluorine"},
                  {"A": "K", "B": "Mg", "X": "F"}, 3.989, 1, {"A": 1, "B": 2, "X": -1}),
               _v("halide", {"A": "alkali_large", "B": "tetrel", "X": "halogen_heavy"},
                  {"A": "Cs", "B": "Pb", "X": "Br"}, 5.874, 0.5)),
              (("B", "X"),), weight=0.38, strukturbericht="E2_1"),
    Prototype("antiperovskite", "Mn3GaN / Li3OCl", 221,
              (("A", (0, 0, 0)), ("X", (H, H, H)), ("M", (0, H, H))),
              (_v("nitride", {"A": "sp_metal", "X": "CN", "M": "tm_late"},
                  {"A": "Ga", "X": "N", "M": "Mn"}, 3.898),
               _v("Li3OCl", {"A": "halogen_heavy", "X": "oxygen", "M": "alkali_light"},
                  {"A": "Cl", "X": "O", "M": "Li"}, 3.91, 1, {"A": -1, "X": -2, "M": 1}),
               _v("Ca3SnO", {"A": "tetrel", "X": "oxygen", "M": "A2_large"},
                  {"A": "Sn", "X": "O", "M": "Ca"}, 4.82)),
              (("M", "X"),), weight=0.09, strukturbericht="E2_1 (anti)"),
    Prototype("CsCl", "CsCl", 221, (("A", (0, 0, 0)), ("B", (H, H, H))),
              (_v("halide", {"A": "alkali_large", "B": "halogen_heavy"}, {"A": "Cs", "B": "Cl"}, 4.123, 1, {"A": 1, "B": -1}),
               _v("B2 intermetallic", {"A": "tm_late", "B": "sp_metal_b2"},
                  {"A": "Ni", "B": "Al"}, 2.887, 2, metallic=True)),
              (("A", "B"),), weight=0.15, strukturbericht="B2"),
    Prototype("L12", "AuCu3", 221, (("A", (0, 0, 0)), ("B", (0, H, H))),
              (_v("intermetallic", {"A": "sp_metal", "B": "tm_late"}, {"A": "Al", "B": "Ni"},
                  3.567, metallic=True),
               _v("noble", {"A": "noble", "B": "tm_late_small"}, {"A": "Au", "B": "Cu"}, 3.749, metallic=True)),
              (("B", "B"), ("A", "B")), weight=0.12, strukturbericht="L1_2"),
    Prototype("ReO3", "ReO3 / Cu3N", 221, (("M", (0, 0, 0)), ("X", (H, 0, 0))),
              (_v("oxide", {"M": "M6", "X": "oxygen"}, {"M": "Re", "X": "O"}, 3.747, 1, {"M": 6, "X": -2}),
               _v("fluoride", {"M": "M3", "X": "fluorine"}, {"M": "Sc", "X": "F"}, 4.016, 1, {"M": 3, "X": -1}),
               _v("anti (Cu3N)", {"M": "CN", "X": "noble"}, {"M": "N", "X": "Cu"}, 3.815,
                  0.5)),
              (("M", "X"),), weight=0.08, strukturbericht="D0_9"),
    Prototype("CaB6", "CaB6", 221, (("A", (0, 0, 0)), ("B", ("x", H, H))),
              (_v("boride", {"A": "filler", "B": "boron"}, {"A": "Ca", "B": "B"}, 4.145),),
              (("B", "B"),), {"x": (0.196, 0.210)}, weight=0.08, strukturbericht="D2_1"),
    Prototype("sc", "α-Po", 221, (("M", (0, 0, 0)),),
              (_v("metal", {"M": "sc_metal"}, {"M": "Po"}, 3.359),),
              (("M", "M"),), weight=0.005, strukturbericht="A_h"),
    # ---- F-43m (216)
    Prototype("zincblende", "ZnS", 216, (("A", (0, 0, 0)), ("X", (Q, Q, Q))),
              (_v("III-V", {"A": "triel", "X": "pnictogen"}, {"A": "Ga", "X": "As"}, 5.653, 2),
               _v("II-VI", {"A": "M2_tet", "X": "chalcogen_heavy"}, {"A": "Zn", "X": "S"},
                  5.409, 2),
               _v("I-VII", {"A": "noble", "X": "halogen_heavy"}, {"A": "Cu", "X": "Cl"}, 5.420),
               _v("IV-IV", {"A": "group14", "X": "group14"}, {"A": "Si", "X": "C"}, 4.360,
                  0.5)),
              (("A", "X"),), weight=0.6, strukturbericht="B3"),
    Prototype("half_heusler", "MgAgAs / TiNiSn", 216,
              (("Y", (0, 0, 0)), ("Z", (H, H, H)), ("X", (Q, Q, Q))),
              (_v("TiNiSn", {"X": "tm_late_small", "Y": "tm_heusler_y", "Z": "sp_metal"},
                  {"X": "Ni", "Y": "Ti", "Z": "Sn"}, 5.93, 2, metallic=True),
               _v("Nowotny-Juza", {"X": "pnictogen", "Y": "zinc_group", "Z": "alkali_light"},
                  {"X": "As", "Y": "Zn", "Z": "Li"}, 5.911)),
              (("X", "Y"), ("X", "Z")), weight=0.4, strukturbericht="C1_b"),
    # ---- Fd-3m (227), origin choice 2
    Prototype("spinel", "MgAl2O4", 227,
              (("A", (E, E, E)), ("B", (H, H, H)), ("X", ("x", "x", "x"))),
              (_v("oxide", {"A": "M2_tet", "B": "M3_small", "X": "oxygen"},
                  {"A": "Mg", "B": "Al", "X": "O"}, 8.083, 3, {"A": 2, "B": 3, "X": -2}),
               _v("oxide 4-2", {"A": "tetrel", "B": "M2", "X": "oxygen"},
                  {"A": "Si", "B": "Mg", "X": "O"}, 8.07, 0.5, {"A": 4, "B": 2, "X": -2}),
               _v("thiospinel", {"A": "M2_tet", "B": "M3", "X": "chalcogen_heavy"},
                  {"A": "Cd", "B": "In", "X": "S"}, 10.797, 1, {"A": 2, "B": 3, "X": -2})),
              (("B", "X"), ("A", "X")), {"x": (0.255, 0.268)}, weight=0.42,
              strukturbericht="H1_1"),
    Prototype("inverse_spinel", "NiFe2O4 (B[AB]O4)", 227,
              (("B", (E, E, E)), ("AB", (H, H, H)), ("X", ("x", "x", "x"))),
              (_v("oxide", {"B": "M3_small", "AB": "M2", "X": "oxygen"},
                  {"B": "Fe", "AB": "Ni", "X": "O"}, 8.339, 1, {"B": 3, "AB": 2, "X": -2}),),
              (("AB", "X"), ("B", "X")), {"x": (0.252, 0.262)}, weight=0.18,
              strukturbericht="H1_1 (inverse)"),
    Prototype("pyrochlore", "Gd2Ti2O7", 227,
              (("A", (H, H, H)), ("B", (0, 0, 0)), ("X", ("x", E, E)), ("Y", (3 * E, 3 * E, 3 * E))),
              (_v("oxide", {"A": "Ln_large", "B": "M4", "X": "oxygen", "Y": "oxygen"},
                  {"A": "Gd", "B": "Ti", "X": "O", "Y": "O"}, 10.185, 1, {"A": 3, "B": 4, "X": -2, "Y": -2}),),
              (("B", "X"), ("A", "X")), {"x": (0.315, 0.345)}, weight=0.16,
              strukturbericht="pyrochlore A2B2O6O'"),
    Prototype("laves_C15", "MgCu2", 227, (("A", (E, E, E)), ("B", (H, H, H))),
              (_v("intermetallic", {"A": "laves_a", "B": "laves_b"}, {"A": "Zr", "B": "Fe"},
                  7.070, metallic=True),),
              (("A", "B"), ("B", "B")), weight=0.14, strukturbericht="C15"),
    Prototype("diamond", "C", 227, (("M", (E, E, E)),),
              (_v("element", {"M": "group14"}, {"M": "Si"}, 5.431),),
              (("M", "M"),), weight=0.02, strukturbericht="A4"),
    Prototype("NaTl", "NaTl", 227, (("A", (E, E, E)), ("B", (3 * E, 3 * E, 3 * E))),
              (_v("intermetallic", {"A": "alkali_light", "B": "natl_b"}, {"A": "Na", "B": "Tl"},
                  7.473, metallic=True),),
              (("A", "B"),), weight=0.04, strukturbericht="B32"),
    Prototype("cristobalite", "β-SiO2 (ideal)", 227, (("M", (E, E, E)), ("X", (0, 0, 0))),
              (_v("oxide", {"M": "tetrel", "X": "oxygen"}, {"M": "Si", "X": "O"}, 7.16, 1, {"M": 4, "X": -2}),
               _v("BeF2-like", {"M": "beryllium", "X": "fluorine"}, {"M": "Be", "X": "F"}, 6.60, 0.3, {"M": 2, "X": -1})),
              (("M", "X"),), weight=0.04, strukturbericht="C9"),
    # ---- Ia-3d (230)
    Prototype("garnet", "Y3Al5O12", 230,
              (("A", (E, 0, Q)), ("B", (0, 0, 0)), ("C", (3 * E, 0, Q)), ("X", ("x", "y", "z"))),
              (_v("aluminate", {"A": "Ln_small", "B": "M3_small", "C": "M3_small",
                                "X": "oxygen"}, {"A": "Y", "B": "Al", "C": "Al", "X": "O"}, 12.005, 1, {"A": 3, "B": 3, "C": 3, "X": -2}),
               _v("silicate", {"A": "M2", "B": "M3_small", "C": "tetrel", "X": "oxygen"},
                  {"A": "Ca", "B": "Al", "C": "Si", "X": "O"}, 11.851, 1, {"A": 2, "B": 3, "C": 4, "X": -2})),
              (("A", "X"), ("B", "X"), ("C", "X")),
              {"x": (-0.040, -0.026), "y": (0.046, 0.058), "z": (0.146, 0.155)},
              strukturbericht="garnet"),
    # ---- Im-3 (204)
    Prototype("skutterudite", "CoAs3", 204, (("M", (Q, Q, Q)), ("X", (0, "y", "z"))),
              (_v("pnictide", {"M": "co_group", "X": "pnictogen_heavy"}, {"M": "Co", "X": "As"},
                  8.204),),
              (("M", "X"),), {"y": (0.333, 0.348), "z": (0.148, 0.160)}, weight=0.5,
              strukturbericht="D0_2"),
    Prototype("filled_skutterudite", "LaFe4Sb12", 204,
              (("R", (0, 0, 0)), ("M", (Q, Q, Q)), ("X", (0, "y", "z"))),
              (_v("pnictide", {"R": "filler", "M": "fe_group", "X": "pnictogen_heavy"},
                  {"R": "La", "M": "Fe", "X": "Sb"}, 9.139),),
              (("M", "X"),), {"y": (0.333, 0.348), "z": (0.150, 0.162)}, weight=0.5,
              strukturbericht="filled D0_2"),
    # ---- Pm-3n (223)
    Prototype("A15", "Cr3Si", 223, (("B", (0, 0, 0)), ("A", (Q, 0, H))),
              (_v("intermetallic", {"A": "a15_a", "B": "a15_b"}, {"A": "Nb", "B": "Sn"}, 5.29, metallic=True),),
              (("A", "B"), ("A", "A")), strukturbericht="A15"),
    # ---- P2_13 (198)
    Prototype("B20", "FeSi", 198, (("M", ("x", "x", "x")), ("X", ("u", "u", "u"))),
              (_v("silicide", {"M": "b20_m", "X": "tetrel"}, {"M": "Fe", "X": "Si"}, 4.489),),
              (("M", "X"),), {"x": (0.132, 0.140), "u": (0.838, 0.846)}, weight=0.6,
              strukturbericht="B20"),
    Prototype("ullmannite", "NiSbS", 198,
              (("M", ("x", "x", "x")), ("P", ("u", "u", "u")), ("S", ("v", "v", "v"))),
              (_v("sulfide", {"M": "coinage_pt", "P": "pnictogen_heavy", "S": "chalcogen_heavy"},
                  {"M": "Ni", "P": "Sb", "S": "S"}, 5.93),),
              (("M", "P"), ("M", "S")),
              {"x": (0.020, 0.030), "u": (0.378, 0.390), "v": (0.615, 0.628)}, weight=0.4,
              strukturbericht="F0_1"),
    # ---- I-43d (220)
    Prototype("Th3P4", "Th3P4", 220, (("A", (3 * E, 0, Q)), ("X", ("x", "x", "x"))),
              (_v("pnictide", {"A": "M4_fluorite", "X": "pnictogen_heavy"},
                  {"A": "Th", "X": "P"}, 8.618),
               _v("chalcogenide", {"A": "Ln", "X": "chalcogen_heavy"}, {"A": "La", "X": "S"},
                  8.730)),
              (("A", "X"),), {"x": (0.070, 0.090)}, strukturbericht="D7_3"),
    # ---- I-43m (217)
    Prototype("gamma_brass", "Cu5Zn8", 217,
              (("B", ("x", "x", "x")), ("A", ("u", "u", "u")), ("A", ("v", 0, 0)),
               ("B", ("w", "w", "z"))),
              (_v("intermetallic", {"A": "brass_a", "B": "brass_b"}, {"A": "Cu", "B": "Zn"},
                  8.866, metallic=True),),
              (("A", "B"),),
              {"x": (0.104, 0.112), "u": (0.822, 0.832), "v": (0.350, 0.360),
               "w": (0.308, 0.316), "z": (0.030, 0.042)},
              weight=0.6, strukturbericht="D8_2"),
    Prototype("tetrahedrite", "Cu12Sb4S13", 217,
              (("C", (Q, H, 0)), ("C", ("x", 0, 0)), ("M", ("u", "u", "u")),
               ("S", ("v", "v", "w")), ("S", (0, 0, 0))),
              (_v("sulfosalt", {"C": "tetrahedrite_cu", "M": "tetrahedrite_m",
                                "S": "chalcogen_heavy"}, {"C": "Cu", "M": "Sb", "S": "S"},
                  10.32),),
              (("C", "S"), ("M", "S")),
              {"x": (0.210, 0.222), "u": (0.262, 0.272), "v": (0.112, 0.118),
               "w": (0.358, 0.366)},
              weight=0.4, strukturbericht="tetrahedrite"),
    # ---- Pa-3 (205)
    Prototype("pyrite", "FeS2", 205, (("M", (0, 0, 0)), ("X", ("x", "x", "x"))),
              (_v("dichalcogenide", {"M": "pyrite_m", "X": "chalcogen_heavy"},
                  {"M": "Fe", "X": "S"}, 5.418),
               _v("dipnictide", {"M": "coinage_pt", "X": "pnictogen_heavy"},
                  {"M": "Pt", "X": "As"}, 5.967, 0.3)),
              (("M", "X"),), {"x": (0.375, 0.405)}, strukturbericht="C2"),
    # ---- Im-3m (229)
    Prototype("bcc", "W", 229, (("M", (0, 0, 0)),),
              (_v("transition", {"M": "bcc_tm"}, {"M": "W"}, 3.165, 2, metallic=True),
               _v("alkali", {"M": "alkali"}, {"M": "Na"}, 4.291, metallic=True),
               _v("divalent", {"M": "bcc_div"}, {"M": "Ba"}, 5.028, 0.5, metallic=True)),
              (("M", "M"),), strukturbericht="A2"),
    # ---- Ia-3 (206)
    Prototype("bixbyite", "Mn2O3 / Y2O3", 206,
              (("M", (Q, Q, Q)), ("M", ("x", 0, Q)), ("X", ("u", "v", "w"))),
              (_v("oxide", {"M": "Ln_small", "X": "oxygen"}, {"M": "Y", "X": "O"}, 10.604, 1, {"M": 3, "X": -2}),
               _v("manganese", {"M": "M3", "X": "oxygen"}, {"M": "Mn", "X": "O"}, 9.41, 1, {"M": 3, "X": -2})),
              (("M", "X"),),
              {"x": (-0.036, -0.028), "u": (0.386, 0.395), "v": (0.148, 0.156),
               "w": (0.376, 0.385)},
              strukturbericht="D5_3"),
    # ---- P-43n (218)
    Prototype("sodalite", "Na8Al6Si6O24Cl2", 218,
              (("N", ("x", "x", "x")), ("T", (Q, 0, H)), ("S", (Q, H, 0)),
               ("O", ("u", "v", "w")), ("X", (0, 0, 0))),
              (_v("aluminosilicate", {"N": "alkali_light", "T": "triel", "S": "tetrel",
                                      "O": "oxygen", "X": "halogen_heavy"},
                  {"N": "Na", "T": "Al", "S": "Si", "O": "O", "X": "Cl"}, 8.870, 1, {"N": 1, "T": 3, "S": 4, "O": -2, "X": -1}),),
              (("T", "O"), ("S", "O")),
              {"x": (0.172, 0.182), "u": (0.135, 0.143), "v": (0.145, 0.153),
               "w": (0.434, 0.442)},
              strukturbericht="sodalite"),
    # ---- Fm-3c (226)
    Prototype("NaZn13", "NaZn13 / UBe13", 226,
              (("A", (Q, Q, Q)), ("B", (0, 0, 0)), ("B", (0, "y", "z"))),
              (_v("beryllide", {"A": "be13_a", "B": "beryllium"}, {"A": "Th", "B": "Be"}, 10.395,
                  2, metallic=True),
               _v("zincide", {"A": "na_zn13_a", "B": "zinc_group"}, {"A": "Na", "B": "Zn"},
                  12.284, metallic=True)),
              (("B", "B"), ("A", "B")), {"y": (0.174, 0.182), "z": (0.112, 0.121)},
              strukturbericht="D2_3"),
    # ---- P-43m (215)
    Prototype("sulvanite", "Cu3VS4", 215,
              (("M", (0, 0, 0)), ("C", (H, 0, 0)), ("X", ("x", "x", "x"))),
              (_v("sulfide", {"M": "sulvanite_m", "C": "tetrahedrite_cu",
                              "X": "chalcogen_heavy"}, {"M": "V", "C": "Cu", "X": "S"}, 5.393),),
              (("M", "X"), ("C", "X")), {"x": (0.228, 0.245)}, strukturbericht="H2_4"),
    # ---- P4_132 (213) and its enantiomorph P4_332 (212)
    Prototype("beta_Mn", "β-Mn", 213, (("M", ("x", "x", "x")), ("N", (E, "y", "y+0.25"))),
              (_v("alloy", {"M": "mn_alloy", "N": "mn_alloy"}, {"M": "Mn", "N": "Mn"}, 6.315, metallic=True),),
              (("M", "N"),), {"x": (0.058, 0.068), "y": (0.198, 0.206)},
              strukturbericht="A13"),
    Prototype("beta_Mn_enantiomorph", "β-Mn (inverted)", 212,
              (("M", ("x", "x", "x")), ("N", (E, "y", "y+0.25"))),
              (_v("alloy", {"M": "mn_alloy", "N": "mn_alloy"}, {"M": "Mn", "N": "Mn"}, 6.315, metallic=True),),
              (("M", "N"),), {"x": (0.058, 0.068), "y": (0.198, 0.206)},
              strukturbericht="A13 (enantiomorph)", invert=True),
    # ---- Pn-3m (224), origin choice 2
    Prototype("cuprite", "Cu2O / Ag2O", 224, (("X", (Q, Q, Q)), ("M", (0, 0, 0))),
              (_v("oxide", {"M": "cuprite_m", "X": "cuprite_x"}, {"M": "Cu", "X": "O"}, 4.27),),
              (("M", "X"),), strukturbericht="C3"),
)  # fmt: skip

_BY_NAME = {p.name: p for p in PROTOTYPES}
_COORD = re.compile(
    r"^\s*(?:([-+]?[0-9.]+)\s*([-+]))?\s*(-?)([a-z])\s*(?:([-+])\s*([0-9.]+))?\s*$"
)


def prototype_names() -> list[str]:
    """Names of every prototype in :data:`PROTOTYPES`."""
    return [p.name for p in PROTOTYPES]


def _coordinate(c: Coordinate, params: dict[str, float]) -> float:
    """A coordinate: a number, or ``[c ±] [-]p [± c]`` with a free parameter p."""
    if not isinstance(c, str):
        return float(c)
    m = _COORD.match(c)
    if not m:
        raise ValueError(f"Cannot read the coordinate {c!r}.")
    pre, pre_sign, neg, name, post_sign, post = m.groups()
    v = -params[name] if neg else params[name]
    if pre is not None:
        v = float(pre) + (v if pre_sign == "+" else -v)
    if post is not None:
        v += float(post) if post_sign == "+" else -float(post)
    return v


# ----------------------------------------------------------------------------------------
# Building one crystal
# ----------------------------------------------------------------------------------------


def _element_weights(pool: tuple[str, ...]) -> np.ndarray:
    w = np.array([ELEMENT_FREQUENCIES.get(e, RARE_ELEMENT_WEIGHT) for e in pool], float)
    return w / w.sum()


def _b_iso(element: str, rng: np.random.Generator, b_range: tuple[float, float]) -> float:
    b = rng.uniform(0.3, 1.0) * (30.0 / atomic_number(element)) ** 0.25
    return float(np.clip(b, *b_range))


def build_prototype(
    prototype: Prototype | str,
    elements: dict[str, str | dict[str, float]] | None = None,
    params: dict[str, float] | None = None,
    lattice_parameter: float | None = None,
    b_iso: dict[str, float] | float = 0.5,
    variant: int = 0,
    name: str | None = None,
) -> Crystal:
    """One crystal of a prototype with given chemistry (no randomness).

    Parameters
    ----------
    prototype
        A :class:`Prototype` or its name.
    elements
        Element of each site label, or ``{element: occupancy}`` for a mixed/partial site;
        default the variant's reference compound.
    params
        Free coordinates; default the middle of each range.
    lattice_parameter
        a in Å; default the variant's ``a_ref``.
    b_iso
        B (Å²) per label, or one value for all.
    variant
        Index of the variant whose reference compound is the default.
    name
        Crystal name; default the formula and prototype.

    Returns
    -------
    Crystal
        The validated crystal (every atom of the conventional cell).
    """
    p = _BY_NAME[prototype] if isinstance(prototype, str) else prototype
    v = p.variants[variant]
    chem = {k: {e: 1.0} if isinstance(e, str) else dict(e) for k, e in
            (elements or v.reference).items()}  # fmt: skip
    missing = set(p.labels) - set(chem)
    if missing:
        raise ValueError(f"No element for the sites {sorted(missing)} of {p.name}.")
    par = {k: 0.5 * (lo + hi) for k, (lo, hi) in p.params.items()}
    par.update(params or {})
    a = float(lattice_parameter or v.a_ref)
    rot, trans = space_group_operations(p.build_group)
    els, pos, occ, bs = [], [], [], []
    for label, xyz in p.sites:
        point = np.array([_coordinate(c, par) for c in xyz])
        orbit = _orbit(np.mod(point, 1.0), rot, trans)
        if p.invert:
            orbit = np.mod(-orbit, 1.0)
        b = b_iso[label] if isinstance(b_iso, dict) else float(b_iso)
        for e, o in chem[label].items():
            els += [e] * len(orbit)
            pos.append(orbit)
            occ += [o] * len(orbit)
            bs += [b] * len(orbit)
    formula = reduced_formula(els, occ)
    return Crystal.from_dict(
        {
            "name": name or f"{formula} ({p.name})",
            "lattice_parameters": [a, a, a, 90.0, 90.0, 90.0],
            "elements": els,
            "positions": np.concatenate(pos).tolist(),
            "occupancies": occ,
            "b_iso": bs,
        }
    )


@functools.cache
def _multiplicities(name: str) -> tuple[int, ...]:
    """Atoms per conventional cell of each site of a prototype."""
    prototype = _BY_NAME[name]
    rot, trans = space_group_operations(prototype.build_group)
    par = {k: 0.5 * (lo + hi) for k, (lo, hi) in prototype.params.items()}
    return tuple(
        len(_orbit(np.mod([_coordinate(c, par) for c in xyz], 1.0), rot, trans))
        for _, xyz in prototype.sites
    )


# ----------------------------------------------------------------------------------------
# The sampler
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealisticConfig:
    """Settings of :class:`RealisticGenerator` (see the module docstring).

    Attributes
    ----------
    random_fraction
        Fraction of all crystals drawn from the random-Wyckoff generator (in the space
        group drawn from the real frequencies). When the groups without an allowed
        prototype already carry more than this, all of their draws are random and the
        prototype groups get none.
    prototypes
        Names of the allowed prototypes (default all). With a subset, only space groups
        that have one of them are drawn (frequencies renormalised) unless
        ``random_fraction`` > 0.
    exclude_prototypes
        Names of prototypes never drawn (held-out structure types).
    lattice_parameter_range
        Accepted a in Å; ``None`` accepts every a.
    lattice_spread
        Relative standard deviation ε of the lattice parameter around the radius rule.
    partial_probability
        Probability that one site is a solid solution or has vacancies.
    b_iso_range
        Debye–Waller factors B are clipped to this range (Å²).
    max_prototype_attempts
        Failed prototype draws in one space group before the random generator fills in.
    lattice_weighting
        Reweight the prototype draws' lattice parameters towards the ICSD histogram
        (:data:`LATTICE_PARAMETER_HISTOGRAM`, restricted to ``lattice_parameter_range``):
        a draw in 1 Å bin b is kept with probability w_b (rejection in the same space group,
        so the space-group frequencies are untouched). The weights are calibrated once per
        setting on 200 cheap chemistry draws per space group with a fixed seed
        (:meth:`RealisticGenerator.lattice_weights`), so they never depend on the seed.
    lattice_weight_floor
        Smallest acceptance weight of a bin. Lower values match the ICSD histogram more
        closely but shift the mix of structure types within a space group further towards
        the large-cell ones (e.g. pyrochlore over spinel); the default 0.2 keeps the mix
        close to the prototype weights.
    random
        Settings of :class:`~hyperspy_lacbed.train.structures.StructureConfig` for the
        random part (its space groups and lattice range are set per draw).
    """

    random_fraction: float = 0.2
    prototypes: tuple[str, ...] = ()
    exclude_prototypes: tuple[str, ...] = ()
    lattice_parameter_range: tuple[float, float] | None = (3.0, 12.0)
    lattice_spread: float = 0.02
    partial_probability: float = 0.15
    b_iso_range: tuple[float, float] = (0.2, 1.5)
    max_prototype_attempts: int = 200
    lattice_weighting: bool = True
    lattice_weight_floor: float = 0.2
    random: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.random_fraction <= 1:
            raise ValueError(f"random_fraction must lie in [0, 1], got {self.random_fraction}.")
        unknown = sorted((set(self.prototypes) | set(self.exclude_prototypes)) - set(_BY_NAME))
        if unknown:
            raise ValueError(
                f"Unknown prototypes {unknown}; choose from {', '.join(prototype_names())}."
            )
        if not self.allowed() and self.random_fraction < 1:
            raise ValueError(
                "No prototype is left (prototypes minus exclude_prototypes is empty); allow "
                "some or set random_fraction = 1."
            )
        if self.lattice_parameter_range is not None:
            lo, hi = self.lattice_parameter_range
            if not 0 < lo < hi:
                raise ValueError(f"lattice_parameter_range must be 0 < lo < hi, got {(lo, hi)}.")
        if not 0 < self.lattice_weight_floor <= 1:
            raise ValueError("lattice_weight_floor must lie in (0, 1].")
        if not 0 <= self.partial_probability <= 1:
            raise ValueError("partial_probability must lie in [0, 1].")
        if self.lattice_spread < 0:
            raise ValueError("lattice_spread must be non-negative.")
        StructureConfig.from_dict(dict(self.random))  # validate

    def allowed(self) -> tuple[Prototype, ...]:
        """The prototypes that may be drawn."""
        names = set(self.prototypes) if self.prototypes else set(_BY_NAME)
        names -= set(self.exclude_prototypes)
        return tuple(p for p in PROTOTYPES if p.name in names)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        for k in ("prototypes", "exclude_prototypes", "b_iso_range"):
            d[k] = list(d[k])
        if d["lattice_parameter_range"] is not None:
            d["lattice_parameter_range"] = list(d["lattice_parameter_range"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RealisticConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown realistic-structure settings {sorted(unknown)}; known are "
                f"{sorted(cls.__dataclass_fields__)}."
            )
        for k in ("prototypes", "exclude_prototypes", "b_iso_range", "lattice_parameter_range"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


def held_out_configs(
    names: list[str] | tuple[str, ...], **settings: Any
) -> tuple[RealisticConfig, RealisticConfig]:
    """Training and evaluation settings that hold whole structure types out.

    Parameters
    ----------
    names
        Prototypes reserved for evaluation.
    **settings
        Other :class:`RealisticConfig` settings of both.

    Returns
    -------
    train, held_out
        ``train`` never draws ``names`` (their space groups fall back to the other
        prototypes or the random generator); ``held_out`` draws only ``names`` with no
        random crystals.
    """
    train = RealisticConfig(exclude_prototypes=tuple(names), **settings)
    test_settings = {**settings, "random_fraction": 0.0}
    held = RealisticConfig(prototypes=tuple(names), **test_settings)
    return train, held


class RealisticGenerator:
    """Draws reproducible realistic cubic crystals (see the module docstring).

    Same interface as :class:`~hyperspy_lacbed.train.structures.StructureGenerator`:
    :meth:`structure` returns a
    :class:`~hyperspy_lacbed.train.structures.SyntheticStructure` whose recipe names the
    prototype (``"random"`` for the random-Wyckoff part).

    Parameters
    ----------
    seed
        Seed of the set; sample ``i`` depends only on ``(seed, i)``.
    config
        Settings; default :class:`RealisticConfig`.

    Examples
    --------
    >>> from hyperspy_lacbed.train.prototypes import RealisticGenerator
    >>> s = RealisticGenerator(seed=0).structure(0)
    >>> s.crystal.space_group_number == s.space_group
    True
    """

    def __init__(self, seed: int = 0, config: RealisticConfig | None = None):
        self.seed = int(seed)
        self.config = config or RealisticConfig()
        self.stats = GenerationStats()
        self._excluded = excluded_compositions()
        allowed = self.config.allowed()
        self._by_group: dict[int, list[Prototype]] = {}
        for p in allowed:
            self._by_group.setdefault(p.space_group, []).append(p)
        groups = np.array(sorted(SPACE_GROUP_FREQUENCIES), int)
        freq = np.array([SPACE_GROUP_FREQUENCIES[g] for g in groups], float)
        covered = np.array([g in self._by_group for g in groups])
        r = self.config.random_fraction
        if r == 0:  # only prototype groups
            freq = np.where(covered, freq, 0.0)
        self.groups = groups
        self.probabilities = freq / freq.sum()
        m0 = float(self.probabilities[~covered].sum())
        # Random draws in prototype groups so that the overall random share is r.
        self.random_in_covered = max(0.0, (r - m0) / (1 - m0)) if m0 < 1 else 1.0
        self._lattice_weights: tuple[np.ndarray, np.ndarray] | None = None

    def lattice_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges (Å) and acceptance weights w_b of the lattice weighting.

        Found by iterative proportional fitting: with q(b | g) the calibrated distribution
        of a over the bins for the prototypes of group g and m_g the group's share of
        prototype draws, the achieved histogram Σ_g m_g q(b | g) w_b / Σ_b' q(b' | g) w_b'
        is driven towards the target; w is scaled to a maximum of 1 and kept at least
        ``lattice_weight_floor`` (at most 1 / floor draws per kept one in any bin).
        """
        if self._lattice_weights is None:
            self._lattice_weights = _calibrate(self)
        return self._lattice_weights

    def lattice_acceptance(self, a: float) -> float:
        """Probability that a prototype draw with lattice parameter a (Å) is kept."""
        edges, w = self.lattice_weights()
        b = int(np.searchsorted(edges, a, side="right")) - 1
        return float(w[b]) if 0 <= b < len(w) else 1.0

    def target_frequencies(self) -> dict[int, float]:
        """The space-group distribution this generator draws from."""
        return {int(g): float(p) for g, p in zip(self.groups, self.probabilities) if p > 0}

    def _draw_group(self, rng: np.random.Generator) -> int:
        return int(self.groups[rng.choice(len(self.groups), p=self.probabilities)])

    def space_group(self, index: int) -> int:
        """Space group of sample ``index`` (its first draw; cheap, no crystal is built)."""
        return self._draw_group(_sample_rng(self.seed, index))

    def structure(self, index: int) -> SyntheticStructure:
        """Sample ``index`` (independent of every other sample).

        Raises
        ------
        RuntimeError
            Neither a prototype nor the random generator gave an acceptable crystal.
        """
        rng = _sample_rng(self.seed, index)
        sg = self._draw_group(rng)
        protos = self._by_group.get(sg, [])
        use_random = not protos or rng.random() < self.random_in_covered
        stats = GenerationStats()
        try:
            if not use_random:
                for attempt in range(self.config.max_prototype_attempts):
                    stats.attempts += 1
                    result = self._draw_prototype(sg, protos, rng, index, attempt)
                    if isinstance(result, str):
                        stats.rejected[result] += 1
                        continue
                    stats.accepted += 1
                    return result
            return self._draw_random(sg, index, stats)
        finally:
            self.stats.update(stats)

    def generate(self, n: int, start: int = 0) -> list[SyntheticStructure]:
        """Samples ``start`` … ``start + n − 1``."""
        return [self.structure(i) for i in range(start, start + int(n))]

    # -- the two sources
    def _draw_random(self, sg: int, index: int, stats: GenerationStats) -> SyntheticStructure:
        cfg = dict(self.config.random)
        lo_hi = self.config.lattice_parameter_range or (3.0, 12.0)
        cfg.update(space_groups=[sg], lattice_parameter_range=list(lo_hi))
        config = StructureConfig.from_dict(cfg)
        for retry in range(20):
            # Its own seed per (seed, index, retry): independent of the prototype draws.
            sub = int(np.random.SeedSequence([self.seed, int(index), retry]).generate_state(1)[0])
            gen = StructureGenerator(sub, config)
            s = gen.structure(0)
            stats.update(gen.stats)
            stats.accepted -= 1  # counted once below
            formula = reduced_formula(s.crystal.elements, s.crystal.occupancies)
            if formula in self._excluded:
                stats.rejected["excluded_composition"] += 1
                continue
            stats.accepted += 1
            recipe = {
                "generator": "hyperspy_lacbed.train.prototypes",
                "prototype": "random",
                "seed": self.seed,
                "index": int(index),
                "space_group": sg,
                "formula": formula,
                "random_recipe": s.recipe,
            }
            return SyntheticStructure(s.crystal, s.space_group, recipe)
        raise RuntimeError(f"Only excluded compositions in space group {sg}; widen the elements.")

    def _draw_chemistry(self, protos: list[Prototype], rng: np.random.Generator) -> Any:
        """Prototype, variant, elements per site, partial occupancy, ε and a of one draw.

        Returns a reason string when no element is left for a site. No crystal is built,
        so this is cheap (it is also what the lattice weighting is calibrated on).
        """
        cfg = self.config
        w = np.array([p.weight for p in protos], float)
        proto = protos[int(rng.choice(len(protos), p=w / w.sum()))]
        vw = np.array([v.weight for v in proto.variants], float)
        k = int(rng.choice(len(proto.variants), p=vw / vw.sum()))
        variant = proto.variants[k]
        labels = proto.labels
        # Distinct labels get distinct elements (unless the variant's reference repeats one:
        # pyrochlore O and O', β-Mn), so that chemistry cannot raise the symmetry.
        shared = {lab: next(m for m in labels if variant.reference[m] == variant.reference[lab]
                            and variant.roles[m] == variant.roles[lab]) for lab in labels}  # fmt: skip
        chem: dict[str, dict[str, float]] = {}
        used: set[str] = set()
        for lab in labels:
            if shared[lab] != lab:
                chem[lab] = dict(chem[shared[lab]])
                continue
            pool = tuple(e for e in ROLES[variant.roles[lab]] if e not in used)
            if not pool:
                return "no_element"
            e = str(rng.choice(pool, p=_element_weights(pool)))
            used.add(e)
            chem[lab] = {e: 1.0}
        if proto.name == "inverse_spinel":
            # B[AB]O4: the octahedral site holds A and B half and half.
            chem["AB"] = {next(iter(chem["AB"])): 0.5, next(iter(chem["B"])): 0.5}
        partial = None
        if rng.random() < cfg.partial_probability:
            lab = labels[int(rng.integers(len(labels)))]
            host = next(iter(chem[lab]))
            if rng.random() < 0.25:
                occ = round(float(rng.uniform(0.80, 0.98)), 4)
                chem[lab] = {e: o * occ for e, o in chem[lab].items()}
                partial = {"site": lab, "kind": "vacancy", "occupancy": occ}
            else:
                pool = tuple(e for e in ROLES[variant.roles[lab]] if e not in used)
                if pool and len(chem[lab]) == 1:
                    guest = str(rng.choice(pool, p=_element_weights(pool)))
                    x = round(float(rng.uniform(0.2, 0.8)), 4)
                    chem[lab] = {host: 1 - x, guest: x}
                    partial = {"site": lab, "kind": "solid_solution", "fraction": x,
                               "element": guest}  # fmt: skip
            for other in labels:  # labels that share the element share the site's chemistry
                if other != lab and shared[other] == shared[lab]:
                    chem[other] = dict(chem[lab])

        def radius(label: str, c: dict[str, float]) -> float:
            return sum(variant.radius(label, e) * o for e, o in c.items()) / sum(c.values())

        ref = variant.reference
        num = sum(radius(i, chem[i]) + radius(j, chem[j]) for i, j in proto.bonds)
        den = sum(variant.radius(i, ref[i]) + variant.radius(j, ref[j]) for i, j in proto.bonds)
        eps = float(np.clip(rng.normal(0.0, 1.0), -3, 3)) * cfg.lattice_spread
        a = round(variant.a_ref * num / den * (1 + eps), 5)
        return proto, k, chem, partial, eps, a

    def _draw_prototype(
        self,
        sg: int,
        protos: list[Prototype],
        rng: np.random.Generator,
        index: int,
        attempt: int,
    ) -> SyntheticStructure | str:
        cfg = self.config
        drawn = self._draw_chemistry(protos, rng)
        if isinstance(drawn, str):
            return drawn
        proto, k, chem, partial, eps, a = drawn
        variant = proto.variants[k]
        params = {n: round(float(rng.uniform(lo, hi)), 5) for n, (lo, hi) in proto.params.items()}
        b = {lab: round(_b_iso(max(chem[lab], key=chem[lab].get), rng, cfg.b_iso_range), 4)
             for lab in proto.labels}  # fmt: skip
        rng_a = cfg.lattice_parameter_range
        if rng_a is not None and not rng_a[0] <= a <= rng_a[1]:
            return "lattice_too_large" if a > rng_a[1] else "lattice_too_small"
        if cfg.lattice_weighting and rng.random() >= self.lattice_acceptance(a):
            return "lattice_weighting"
        els, occ = [], []
        for lab, mult in zip((lab for lab, _ in proto.sites), _multiplicities(proto.name)):
            for e, o in chem[lab].items():
                els.append(e)
                occ.append(o * mult)
        formula = reduced_formula(els, occ)
        if formula in self._excluded:
            return "excluded_composition"
        name = f"{formula} {proto.name} #{sg} (seed {self.seed}, sample {index})"
        try:
            crystal = build_prototype(proto, chem, params, a, b, k, name=name)
        except StructureError:
            return "invalid"
        if crystal.space_group_number != sg:
            return "space_group"
        recipe = {
            "generator": "hyperspy_lacbed.train.prototypes",
            "prototype": proto.name,
            "variant": variant.name,
            "seed": self.seed,
            "index": int(index),
            "attempt": int(attempt),
            "space_group": sg,
            "formula": formula,
            "elements": chem,
            "params": params,
            "b_iso": b,
            "lattice_rule": {
                "a_ref": variant.a_ref,
                "reference": variant.reference,
                "epsilon": round(eps, 6),
            },
            "partial": partial,
            "n_atoms": len(crystal),
            "config": cfg.to_dict(),
        }
        return SyntheticStructure(crystal, arrangement_space_group(crystal), recipe)


def target_lattice_histogram(
    lattice_parameter_range: tuple[float, float] | None = (3.0, 12.0),
) -> tuple[np.ndarray, np.ndarray]:
    """The ICSD lattice-parameter histogram restricted to a range, normalised.

    Returns
    -------
    edges, fractions
        Bin edges (Å; the 1 Å bins of :data:`LATTICE_PARAMETER_HISTOGRAM` cut at the range)
        and the fraction of the entries in the range that fall in each bin (uniform density
        assumed inside a bin that the range cuts).
    """
    edges = np.asarray(LATTICE_PARAMETER_HISTOGRAM["edges"], float)
    counts = np.asarray(LATTICE_PARAMETER_HISTOGRAM["counts"], float)
    lo, hi = lattice_parameter_range or (edges[0], edges[-1])
    cut = np.clip(edges, lo, hi)
    keep = cut[1:] > cut[:-1]
    frac = counts * (cut[1:] - cut[:-1]) / (edges[1:] - edges[:-1])
    out_edges = np.append(cut[:-1][keep], cut[1:][keep][-1])
    return out_edges, frac[keep] / frac[keep].sum()


def _calibrate(gen: RealisticGenerator) -> tuple[np.ndarray, np.ndarray]:
    key = json.dumps(gen.config.to_dict(), sort_keys=True)
    return _calibrated_weights(key)


@functools.lru_cache(maxsize=16)
def _calibrated_weights(config_json: str) -> tuple[np.ndarray, np.ndarray]:
    config = RealisticConfig.from_dict(json.loads(config_json))
    gen = RealisticGenerator(0, replace(config, lattice_weighting=False))
    edges, target = target_lattice_histogram(config.lattice_parameter_range)
    nb = len(target)
    q, m = [], []
    for g, pg in zip(gen.groups, gen.probabilities):
        protos = gen._by_group.get(int(g))
        if not protos or pg == 0:
            continue
        rng = np.random.default_rng(np.random.SeedSequence([_CALIBRATION_SEED, int(g)]))
        a = []
        for _ in range(_CALIBRATION_DRAWS):
            drawn = gen._draw_chemistry(protos, rng)
            if not isinstance(drawn, str):
                a.append(drawn[-1])
        h = np.histogram(a, bins=edges)[0].astype(float)
        if h.sum() == 0:
            continue
        q.append(h / h.sum())
        m.append(pg)
    q_arr, m_arr = np.array(q), np.array(m) / np.sum(m)
    w = np.ones(nb)
    for _ in range(300):
        dist = q_arr * w
        dist /= dist.sum(axis=1, keepdims=True)
        achieved = m_arr @ dist
        ratio = np.where(achieved > 0, target / np.where(achieved > 0, achieved, 1), 1.0)
        w = w * np.sqrt(ratio)
        w = np.clip(w / w.max(), config.lattice_weight_floor, 1.0)
    w.setflags(write=False)
    return edges, w


_CALIBRATION_SEED = 20251201  # fixed: the weights are a property of the settings only
_CALIBRATION_DRAWS = 200


def prototype_counts(structures: list[SyntheticStructure]) -> Counter:
    """How many of ``structures`` came from each prototype (``"random"`` included)."""
    return Counter(s.recipe.get("prototype", "random") for s in structures)
