"""Random cubic crystal structures for training the cGAN surrogates.

Every structure belongs to one of the 36 cubic space groups (195–230). Its atoms sit on
Wyckoff positions of that group (special and general) and are expanded by the group's
operations; the elements, Debye–Waller factors and free coordinates are random, and the
lattice parameter follows from a bond-length rule so that no two atoms are closer than
``bond_factor × (r_i + r_j)``. A structure is kept only when spglib finds the requested
space group again, it has at most ``max_atoms`` atoms per cell and its lattice parameter
lies in the configured range; otherwise it is redrawn (the acceptance rate is reported).
Its label is the symmetry of its atoms' arrangement (:func:`arrangement_space_group`),
which is higher than the requested group when only the per-site Debye–Waller factors
told its sites apart.

Reproducibility: sample ``i`` of seed ``s`` is drawn from its own generator
``numpy.random.default_rng(numpy.random.SeedSequence(s, spawn_key=(i,)))`` (the ``i``-th
child of ``SeedSequence(s).spawn``), so it never depends on how many other samples are
drawn, in which order, or on which worker. The space group of sample ``i`` is
``space_groups[i % len(space_groups)]`` (round robin), so any ``n`` consecutive samples
are balanced across the groups.

Symmetry operations come from spglib's database, in the ITA standard setting of each
group (origin choice 2, at a centre of symmetry, for the five groups that have two).
Wyckoff positions are derived from the operations: the isolated fixed points of site-
symmetry groups (on the 1/8 grid, which holds every zero-parameter position of the cubic
groups), the fixed lines of rotations, the fixed planes of mirrors and the general
position, merged when the group maps one onto another.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hyperspy_lacbed.crystal.scattering import atomic_number
from hyperspy_lacbed.crystal.structure import Crystal, StructureError
from hyperspy_lacbed.parsing import dataclass_kwargs

__all__ = [
    "COVALENT_RADII",
    "CUBIC_SPACE_GROUPS",
    "DEFAULT_ELEMENTS",
    "GenerationStats",
    "StructureConfig",
    "StructureGenerator",
    "SyntheticStructure",
    "WyckoffSite",
    "arrangement_space_group",
    "generate_structures",
    "space_group_operations",
    "wyckoff_positions",
]

#: The 36 cubic space groups.
CUBIC_SPACE_GROUPS: tuple[int, ...] = tuple(range(195, 231))

#: Covalent radii (Å) from B. Cordero et al., "Covalent radii revisited", Dalton Trans.
#: (2008) 2832–2838, Table 2 (C: sp³; Mn, Fe, Co: low-spin values). Used only for the
#: bond-length rule d_ij ≥ bond_factor · (r_i + r_j) of the synthetic crystals.
COVALENT_RADII: dict[str, float] = {
    "Li": 1.28, "Be": 0.96, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57,
    "Na": 1.66, "Mg": 1.41, "Al": 1.21, "Si": 1.11, "P": 1.07, "S": 1.05, "Cl": 1.02,
    "K": 2.03, "Ca": 1.76, "Sc": 1.70, "Ti": 1.60, "V": 1.53, "Cr": 1.39, "Mn": 1.39,
    "Fe": 1.32, "Co": 1.26, "Ni": 1.24, "Cu": 1.32, "Zn": 1.22, "Ga": 1.22, "Ge": 1.20,
    "As": 1.19, "Se": 1.20, "Br": 1.20, "Rb": 2.20, "Sr": 1.95, "Y": 1.90, "Zr": 1.75,
    "Nb": 1.64, "Mo": 1.54, "Ru": 1.46, "Rh": 1.42, "Pd": 1.39, "Ag": 1.45, "Cd": 1.44,
    "In": 1.42, "Sn": 1.39, "Sb": 1.39, "Te": 1.38, "I": 1.39, "Cs": 2.44, "Ba": 2.15,
    "La": 2.07, "Ce": 2.04, "Hf": 1.75, "Ta": 1.70, "W": 1.62, "Re": 1.51, "Os": 1.44,
    "Ir": 1.41, "Pt": 1.36, "Au": 1.36, "Hg": 1.32, "Tl": 1.45, "Pb": 1.46, "Bi": 1.48,
}  # fmt: skip

#: Default element list: light to heavy, metals, semiconductors and anion formers.
DEFAULT_ELEMENTS: tuple[str, ...] = (
    "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca",
    "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Sr",
    "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Cs",
    "Ba", "La", "Hf", "Ta", "W", "Pt", "Au", "Pb", "Bi",
)  # fmt: skip

#: Groups whose Wyckoff positions of multiplicity ≤ 64 all have the same coordinates as
#: positions of a supergroup (e.g. Fd-3 and Fd-3m, F432 and Fm-3m, F-43c and Fm-3c): in
#: 750 draws each with a cap of 64 atoms, every cell had a higher symmetry. Their general
#: positions have 96 or 192 sites; they get a cap of 128 atoms per cell.
LARGE_CELL_GROUPS: tuple[tuple[int, int], ...] = (
    (203, 128), (209, 128), (219, 128), (226, 128), (228, 128),
)  # fmt: skip

#: Hall numbers (spglib) of the ITA standard settings; origin choice 2 where there are two.
_HALL_NUMBER = {195 + k: 489 + k for k in range(6)}
_HALL_NUMBER.update({201: 496, 202: 497, 203: 499, 204: 500, 205: 501, 206: 502})
_HALL_NUMBER.update({n: 503 + (n - 207) for n in range(207, 222)})
_HALL_NUMBER.update({222: 519, 223: 520, 224: 522, 225: 523, 226: 524, 227: 526, 228: 528})
_HALL_NUMBER.update({229: 529, 230: 530})

_FRAC_TOL = 1e-6  # fractional tolerance of fixed-point and membership tests
_ORBIT_TOL = 1e-4  # fractional tolerance when merging symmetry copies of a site


@dataclass(frozen=True)
class StructureConfig:
    """Settings of the random cubic structure generator.

    Attributes
    ----------
    space_groups
        Space-group numbers drawn in turn (round robin); default all 36 cubic groups.
    elements
        Element symbols to draw from (each needs a radius in :data:`COVALENT_RADII`).
    max_atoms
        Most atoms per conventional cell.
    max_atoms_overrides
        (space group, cap) pairs that replace ``max_atoms`` for some groups; by default
        :data:`LARGE_CELL_GROUPS`, the groups that no cell of ≤ 64 atoms can have.
    max_sites
        Most symmetry-distinct sites (Wyckoff orbits) per structure.
    max_elements
        Most distinct elements per structure.
    general_probability
        Probability that a site is placed on the general position (when it fits).
    lattice_parameter_range
        Accepted cubic lattice parameters a in Å.
    bond_factor
        Atoms i, j are at least ``bond_factor · (r_i + r_j)`` apart.
    lattice_slack
        a is the smallest lattice parameter allowed by the bond rule times a factor
        drawn uniformly in [1, 1 + lattice_slack].
    b_iso_range
        Isotropic Debye–Waller factors B (Å²) lie in this range: a uniform draw scaled
        by (30 / Z)^0.2, so light atoms vibrate more, then clipped.
    placement_trials
        Random placements tried per site with free coordinates; the one that allows the
        smallest cell is kept (random sequential addition, fewer rejected draws).
    max_attempts
        Draws per sample before giving up (an error names the space group).
    """

    space_groups: tuple[int, ...] = CUBIC_SPACE_GROUPS
    elements: tuple[str, ...] = DEFAULT_ELEMENTS
    max_atoms: int = 64
    max_atoms_overrides: tuple[tuple[int, int], ...] = LARGE_CELL_GROUPS
    max_sites: int = 4
    max_elements: int = 3
    general_probability: float = 0.25
    lattice_parameter_range: tuple[float, float] = (3.0, 12.0)
    bond_factor: float = 0.9
    lattice_slack: float = 0.15
    b_iso_range: tuple[float, float] = (0.3, 1.5)
    placement_trials: int = 8
    max_attempts: int = 2000

    def __post_init__(self) -> None:
        bad = [n for n in self.space_groups if int(n) not in CUBIC_SPACE_GROUPS]
        if bad or not self.space_groups:
            raise ValueError(
                f"space_groups must be cubic space-group numbers 195–230, got {bad or '[]'}."
            )
        missing = [e for e in self.elements if e not in COVALENT_RADII]
        if missing or not self.elements:
            raise ValueError(
                f"No covalent radius for {missing or 'an empty list'}; choose elements from "
                f"{', '.join(COVALENT_RADII)}."
            )
        lo, hi = self.lattice_parameter_range
        if not 0 < lo < hi:
            raise ValueError(f"lattice_parameter_range must be 0 < lo < hi, got {(lo, hi)}.")
        if self.max_atoms < 1 or self.max_sites < 1 or self.max_elements < 1:
            raise ValueError("max_atoms, max_sites and max_elements must be at least 1.")
        if not 0 <= self.general_probability <= 1:
            raise ValueError("general_probability must lie in [0, 1].")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["max_atoms_overrides"] = [list(p) for p in self.max_atoms_overrides]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StructureConfig:
        """Inverse of :meth:`to_dict` (missing keys take their defaults)."""
        d = dataclass_kwargs(cls, d or {}, "structure-generator settings")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        if "max_atoms_overrides" in kw:
            kw["max_atoms_overrides"] = tuple(
                tuple(int(x) for x in p) for p in kw["max_atoms_overrides"]
            )
        return cls(**kw)


@dataclass(frozen=True)
class WyckoffSite:
    """One Wyckoff position of a space group, as an affine subspace of the cell.

    A point of the position is ``origin + params @ directions`` with ``dof`` free
    parameters in [0, 1).

    Attributes
    ----------
    multiplicity
        Atoms per conventional cell generated by a generic point of the position.
    dof
        Free coordinates (0: fixed point, 1: line, 2: plane, 3: general position).
    origin, directions
        Fractional origin (3,) and integer directions (dof, 3).
    """

    multiplicity: int
    dof: int
    origin: np.ndarray = field(compare=False)
    directions: np.ndarray = field(compare=False)

    def point(self, params: np.ndarray) -> np.ndarray:
        """The fractional point for ``dof`` parameters."""
        params = np.asarray(params, float).reshape(self.dof)
        return np.mod(self.origin + params @ self.directions.reshape(self.dof, 3), 1.0)


@dataclass(frozen=True)
class SyntheticStructure:
    """A generated crystal with its space group and the recipe that made it.

    Attributes
    ----------
    crystal
        The validated :class:`~hyperspy_lacbed.crystal.structure.Crystal` (all atoms).
    space_group
        The space group of the atoms' arrangement (:func:`arrangement_space_group`): the
        drawn one (``recipe["space_group"]``, which ``crystal.space_group_number`` finds)
        or a supergroup of it, when the sites differ only in their Debye–Waller factors,
        which the generators draw per site (e.g. two Mn sites of P4_332 that together are
        the one site of I4_132).
    recipe
        Seed, sample index, attempt, lattice-parameter rule and the sites (element,
        Wyckoff multiplicity and free parameters, representative position, B).
    """

    crystal: Crystal
    space_group: int
    recipe: dict[str, Any]

    @property
    def lattice_parameter(self) -> float:
        """Cubic lattice parameter a in Å."""
        return float(self.crystal.lattice_parameters[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: the crystal's ``to_dict`` plus ``recipe``."""
        d = self.crystal.to_dict()
        d["space_group"] = int(self.space_group)
        d["recipe"] = self.recipe
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SyntheticStructure:
        """Inverse of :meth:`to_dict` (the crystal is validated again)."""
        return cls(Crystal.from_dict(d), int(d["space_group"]), dict(d.get("recipe", {})))


@dataclass
class GenerationStats:
    """Counts of accepted and rejected draws.

    Attributes
    ----------
    attempts, accepted
        Draws made and structures kept.
    rejected
        Rejections by reason: ``"lattice_too_large"`` / ``"lattice_too_small"`` (the
        bond rule gives a lattice parameter outside the range), ``"space_group"`` (spglib
        finds another, usually higher, symmetry), ``"too_many_atoms"`` and ``"invalid"``
        (refused by :class:`~hyperspy_lacbed.crystal.structure.Crystal`).
    """

    attempts: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def acceptance_rate(self) -> float:
        """accepted / attempts (1.0 before any draw)."""
        return self.accepted / self.attempts if self.attempts else 1.0

    def update(self, other: GenerationStats) -> None:
        """Add another set of counts."""
        self.attempts += other.attempts
        self.accepted += other.accepted
        self.rejected.update(other.rejected)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, with the acceptance rate."""
        return {
            "attempts": self.attempts,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "rejected": dict(self.rejected),
        }


# ----------------------------------------------------------------------------------------
# Space-group operations and Wyckoff positions
# ----------------------------------------------------------------------------------------


@functools.cache
def space_group_operations(number: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetry operations (W, w) of a cubic space group in its ITA standard setting.

    Parameters
    ----------
    number
        Space-group number, 195–230.

    Returns
    -------
    rotations, translations
        Integer (n, 3, 3) and fractional (n, 3) arrays from spglib's database, centring
        translations included, so x' = W x + w lists every copy in the conventional cell.
    """
    if int(number) not in _HALL_NUMBER:
        raise ValueError(f"{number} is not a cubic space group (195–230).")
    import warnings

    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's error-handling notice
        sym = spglib.get_symmetry_from_database(_HALL_NUMBER[int(number)])
    rot = np.asarray(sym["rotations"], int)
    trans = np.mod(np.asarray(sym["translations"], float), 1.0)
    rot.setflags(write=False)
    trans.setflags(write=False)
    return rot, trans


def _orbit(point: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Distinct images (mod 1) of a fractional point under the operations."""
    images = np.mod(rot @ point + trans, 1.0)
    keys = np.round(images / _ORBIT_TOL).astype(np.int64) % round(1 / _ORBIT_TOL)
    _, first = np.unique(keys, axis=0, return_index=True)
    out = images[np.sort(first)]
    out[np.abs(out - 1.0) < _ORBIT_TOL] = 0.0
    return out


def _frac_close(p: np.ndarray, q: np.ndarray, tol: float = _ORBIT_TOL) -> bool:
    d = p - q
    return bool(np.all(np.abs(d - np.round(d)) < tol))


def _lattice_basis(null: np.ndarray) -> np.ndarray:
    """Short integer vectors spanning the same subspace as the rows of ``null``."""
    dof = null.shape[0]
    if dof == 3:
        return np.eye(3, dtype=int)
    cands = [np.array(c) for c in itertools.product((-1, 0, 1), repeat=3) if any(c)]
    proj = null.T @ null  # projector onto the subspace
    inside = [c for c in cands if np.allclose(proj @ c, c, atol=1e-8)]
    inside.sort(key=lambda c: (np.count_nonzero(c), -int(c.sum())))
    basis: list[np.ndarray] = []
    for c in inside:
        if np.linalg.matrix_rank(np.array([*basis, c])) == len(basis) + 1:
            basis.append(c)
        if len(basis) == dof:
            return np.array(basis, int)
    raise RuntimeError("No short lattice basis of a fixed subspace (not a cubic group?).")


def _null_space(m: np.ndarray) -> np.ndarray:
    _, s, vt = np.linalg.svd(m)
    rank = int((s > 1e-8).sum())
    return vt[rank:]


_SHIFTS_2 = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), float)


def _on_subspace(points: np.ndarray, origin: np.ndarray, directions: np.ndarray) -> bool:
    """Whether any of ``points`` lies on ``origin + span(directions) + Z³``."""
    d = np.mod(points - origin + 0.5, 1.0) - 0.5  # (n, 3), nearest lattice image
    if directions.shape[0] == 0:
        return bool(np.any(np.all(np.abs(d) < 1e-6, axis=1)))
    q, _ = np.linalg.qr(directions.T.astype(float))
    perp = np.eye(3) - q @ q.T
    moved = d[:, None, :] + _SHIFTS_2[None]  # (n, 125, 3)
    return bool(np.any(np.linalg.norm(moved @ perp.T, axis=-1) < 1e-6))


@functools.cache
def wyckoff_positions(number: int) -> tuple[WyckoffSite, ...]:
    """The Wyckoff positions of a cubic space group (standard setting).

    Derived from the operations: isolated fixed points of site-symmetry groups on the 1/8
    grid, fixed lines of rotations, fixed planes of mirrors and the general position;
    subspaces that the group maps onto each other are one position.

    Returns
    -------
    tuple of WyckoffSite
        Sorted by multiplicity, then degrees of freedom (like the ITA letters a, b, ...).
    """
    rot, trans = space_group_operations(number)
    eye = np.eye(3)
    generic = np.array([0.1234567, 0.3456789, 0.2718281])
    candidates: list[tuple[int, np.ndarray, np.ndarray]] = []

    # Zero-parameter positions: grid points whose site group fixes only that point.
    unique_w, inverse = np.unique(rot.reshape(len(rot), 9), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    isolated: dict[frozenset, bool] = {}
    grid = np.array(list(itertools.product(np.arange(8) / 8, repeat=3)))
    moved = np.einsum("nij,pj->pni", rot, grid) + trans[None] - grid[:, None]
    on_site = np.all(np.abs(moved - np.round(moved)) < _FRAC_TOL, axis=2)  # (points, ops)
    for p, site in zip(grid, on_site):
        if site.sum() < 2:
            continue
        key = frozenset(inverse[site].tolist())
        if key not in isolated:
            stacked = (unique_w[sorted(key)].reshape(-1, 3, 3) - eye).reshape(-1, 3)
            isolated[key] = _null_space(stacked).shape[0] == 0
        if isolated[key]:
            candidates.append((0, p, np.zeros((0, 3), int)))

    # Lines and planes: fixed subspaces of single operations (rotations and mirrors),
    # solved once per distinct rotation part for every translation and lattice shift.
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    seen: set[tuple] = set()
    for k, w_flat in enumerate(unique_w):
        m = w_flat.reshape(3, 3) - eye
        null = _null_space(m)
        dof = null.shape[0]
        if dof not in (1, 2):
            continue
        directions = _lattice_basis(null)
        rhs = -(trans[inverse == k][:, None, :] + shifts[None]).reshape(-1, 3)
        x = rhs @ np.linalg.pinv(m).T
        ok = np.all(np.abs(x @ m.T - rhs) < 1e-8, axis=1)
        for origin in np.mod(x[ok], 1.0):
            key = (dof, *np.round(origin, 6), *directions.ravel())
            if key not in seen:
                seen.add(key)
                candidates.append((dof, origin, directions))

    candidates.append((3, np.zeros(3), np.eye(3, dtype=int)))

    sites: list[WyckoffSite] = []
    for dof, origin, directions in candidates:
        point = np.mod(origin + generic[:dof] @ directions.reshape(dof, 3), 1.0)
        orbit = _orbit(point, rot, trans)
        same = any(
            s.dof == dof
            and s.multiplicity == len(orbit)
            and _on_subspace(orbit, s.origin, s.directions)
            for s in sites
        )
        if not same:
            sites.append(WyckoffSite(len(orbit), dof, origin, np.asarray(directions, int)))
    sites.sort(key=lambda s: (s.multiplicity, s.dof))
    return tuple(sites)


def arrangement_space_group(crystal: Crystal) -> int:
    """The space group of a crystal's arrangement of atoms, thermal factors left out.

    :attr:`~hyperspy_lacbed.crystal.structure.Crystal.space_group_number` tells sites
    apart by their Debye–Waller factors too; here a site's type is its composition
    (elements and occupancies) only, so that equal atoms on positions that a supergroup
    makes one orbit count as one site, as a structure type counts them.

    Parameters
    ----------
    crystal
        The crystal.

    Returns
    -------
    int
        The space-group number spglib finds (tolerance 10⁻³, as the crystal's own), 1
        when it finds none.
    """
    import spglib

    positions = np.mod(np.asarray(crystal.positions, float), 1.0)
    keys = np.round(positions / _ORBIT_TOL).astype(np.int64) % round(1 / _ORBIT_TOL)
    sites: dict[tuple[int, ...], tuple[np.ndarray, list[tuple[str, float]]]] = {}
    for key, p, element, occupancy in zip(
        map(tuple, keys), positions, crystal.elements, crystal.occupancies
    ):
        sites.setdefault(key, (p, []))[1].append((str(element), round(float(occupancy), 4)))
    kinds: dict[tuple, int] = {}
    types = [kinds.setdefault(tuple(sorted(comp)), len(kinds) + 1) for _, comp in sites.values()]
    cell = (crystal.direct_basis, np.array([p for p, _ in sites.values()]), types)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's error-handling notice
        data = spglib.get_symmetry_dataset(cell, symprec=1e-3)
    return 1 if data is None else int(data.number)


# ----------------------------------------------------------------------------------------
# Random structures
# ----------------------------------------------------------------------------------------


def _sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``: child ``index`` of ``SeedSequence(seed)``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def _min_lattice_parameter(
    positions: np.ndarray, radii: np.ndarray, bond_factor: float, new_from: int = 0
) -> float:
    """Smallest cubic a (Å) with every pair at least bond_factor · (r_i + r_j) apart.

    Only pairs with at least one atom of index ≥ ``new_from`` are checked (the others
    were checked when they were placed).
    """
    new = positions[new_from:]
    d = new[:, None, :] - positions[None, :, :]
    # A cubic cell is orthogonal, so the minimum image is exact: d − round(d) per axis.
    d -= np.round(d)
    dist = np.sqrt((d * d).sum(-1))  # a = 1
    rows = np.arange(len(new))
    dist[rows, new_from + rows] = 1.0  # an atom and its own lattice translate
    need = bond_factor * (radii[new_from:, None] + radii[None, :])
    with np.errstate(divide="ignore"):
        ratio = np.where(dist > 0, need / dist, np.inf)
    return float(ratio.max()) if ratio.size else 0.0


class StructureGenerator:
    """Draws reproducible random cubic crystals (see the module docstring).

    Parameters
    ----------
    seed
        Seed of the whole set; sample ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``.
    config
        Generator settings; default :class:`StructureConfig`.

    Attributes
    ----------
    stats
        Accepted and rejected draws so far (:class:`GenerationStats`).

    Examples
    --------
    >>> from hyperspy_lacbed.train.structures import StructureGenerator
    >>> gen = StructureGenerator(seed=1)
    >>> s = gen.structure(0)
    >>> s.space_group, s.crystal.space_group_number
    (195, 195)
    """

    def __init__(self, seed: int = 0, config: StructureConfig | None = None):
        self.seed = int(seed)
        self.config = config or StructureConfig()
        self.stats = GenerationStats()

    def max_atoms(self, number: int) -> int:
        """The atom cap of a space group (``max_atoms`` or its override)."""
        return int(dict(self.config.max_atoms_overrides).get(int(number), self.config.max_atoms))

    def space_group(self, index: int) -> int:
        """Space group of sample ``index`` (round robin over ``config.space_groups``)."""
        groups = self.config.space_groups
        return int(groups[int(index) % len(groups)])

    def structure(self, index: int) -> SyntheticStructure:
        """Sample ``index`` (independent of every other sample).

        Raises
        ------
        RuntimeError
            No acceptable structure in ``config.max_attempts`` draws.
        """
        number = self.space_group(index)
        rng = _sample_rng(self.seed, index)
        stats = GenerationStats()
        try:
            for attempt in range(self.config.max_attempts):
                stats.attempts += 1
                result = self._draw(number, rng, index, attempt)
                if isinstance(result, str):
                    stats.rejected[result] += 1
                    continue
                stats.accepted += 1
                return result
        finally:
            self.stats.update(stats)
        raise RuntimeError(
            f"No acceptable structure for space group {number} in {self.config.max_attempts} "
            f"draws (rejections: {dict(stats.rejected)}); widen lattice_parameter_range or "
            "raise max_atoms."
        )

    def generate(self, n: int, start: int = 0) -> list[SyntheticStructure]:
        """Samples ``start`` … ``start + n − 1``."""
        return [self.structure(i) for i in range(start, start + int(n))]

    def _draw(
        self, number: int, rng: np.random.Generator, index: int, attempt: int
    ) -> SyntheticStructure | str:
        """One draw of a crystal of space group ``number``, or the reason it was rejected.

        The order of the draws from ``rng`` is part of what a seed means: a stored dataset
        holds the crystals of this order.
        """
        cfg = self.config
        n_sites = int(rng.integers(1, cfg.max_sites + 1))
        n_elements = int(rng.integers(1, min(cfg.max_elements, n_sites) + 1))
        palette = [str(e) for e in rng.choice(cfg.elements, size=n_elements, replace=False)]
        cap = self.max_atoms(number)
        sites, pos, atoms_el, atoms_b = self._place_sites(number, rng, n_sites, palette, cap)
        if len(atoms_el) > cap or not atoms_el or len(set(atoms_el)) < n_elements:
            return "too_many_atoms"  # also: the palette did not fit under the atom cap
        radii = np.array([COVALENT_RADII[e] for e in atoms_el])
        a_min = _min_lattice_parameter(pos, radii, cfg.bond_factor)
        slack = float(rng.uniform(1.0, 1.0 + cfg.lattice_slack))
        a = a_min * slack
        lo, hi = cfg.lattice_parameter_range
        if not (math.isfinite(a) and a <= hi):
            return "lattice_too_large"
        if a < lo:
            return "lattice_too_small"
        formula = _formula(atoms_el)
        name = f"{formula} #{number} (seed {self.seed}, sample {index})"
        crystal = _cubic_crystal(name, round(a, 6), pos, atoms_el, atoms_b)
        if crystal is None:
            return "invalid"
        if crystal.space_group_number != number:
            return "space_group"
        recipe = {
            "generator": "hyperspy_lacbed.train.structures",
            "seed": self.seed,
            "index": int(index),
            "attempt": int(attempt),
            "space_group": int(number),
            "formula": formula,
            "n_atoms": len(atoms_el),
            "a_min": round(a_min, 6),
            "lattice_slack": round(slack, 6),
            "sites": sites,
            "config": cfg.to_dict(),
        }
        return SyntheticStructure(crystal, arrangement_space_group(crystal), recipe)

    def _place_sites(
        self, number: int, rng: np.random.Generator, n_sites: int, palette: list[str], cap: int
    ) -> tuple[list[dict[str, Any]], np.ndarray, list[str], list[float]]:
        """Up to ``n_sites`` Wyckoff orbits filled in turn, while they fit under ``cap``.

        Returns the sites' recipes and the atoms' fractional positions, elements and B.
        """
        cfg = self.config
        rot, trans = space_group_operations(number)
        positions = wyckoff_positions(number)
        general = [s for s in positions if s.dof == 3]
        special = [s for s in positions if s.dof < 3]
        lo_b, hi_b = cfg.b_iso_range
        sites: list[dict[str, Any]] = []
        atoms_pos = np.zeros((0, 3))
        atoms_el: list[str] = []
        atoms_b: list[float] = []
        used_fixed: set[int] = set()
        for k in range(n_sites):
            site = self._choose_site(general, special, used_fixed, cap - len(atoms_el), rng)
            if site is None:
                break
            # Every element of the palette appears; the rest are random.
            element = palette[k] if k < len(palette) else palette[int(rng.integers(len(palette)))]
            b = float(
                np.clip(rng.uniform(0.4, 1.2) * (30.0 / atomic_number(element)) ** 0.2, lo_b, hi_b)
            )
            params, orbit = self._best_placement(
                site, element, rot, trans, atoms_pos, atoms_el, rng
            )
            sites.append(
                {
                    "element": element,
                    "multiplicity": site.multiplicity,
                    "dof": site.dof,
                    "params": params.round(10).tolist(),
                    "position": site.point(params).round(10).tolist(),
                    "b_iso": round(b, 6),
                }
            )
            atoms_pos = np.concatenate([atoms_pos, orbit])
            atoms_el.extend([element] * len(orbit))
            atoms_b.extend([b] * len(orbit))
        return sites, atoms_pos, atoms_el, atoms_b

    def _choose_site(
        self,
        general: list[WyckoffSite],
        special: list[WyckoffSite],
        used_fixed: set[int],
        room: int,
        rng: np.random.Generator,
    ) -> WyckoffSite | None:
        """A Wyckoff position with at most ``room`` atoms; None when none fits.

        The general position with probability ``general_probability`` (or when no special
        one fits), else a random special one; a fixed point is used once (``used_fixed``).
        """
        fits_general = [s for s in general if s.multiplicity <= room]
        fits_special = [
            j for j, s in enumerate(special) if s.multiplicity <= room and j not in used_fixed
        ]
        if fits_general and (not fits_special or rng.random() < self.config.general_probability):
            return fits_general[0]
        if not fits_special:
            return None
        j = fits_special[int(rng.integers(len(fits_special)))]
        if special[j].dof == 0:
            used_fixed.add(j)
        return special[j]

    def _best_placement(
        self,
        site: WyckoffSite,
        element: str,
        rot: np.ndarray,
        trans: np.ndarray,
        atoms_pos: np.ndarray,
        atoms_el: list[str],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(free parameters, orbit) of the best of a few random placements of a site.

        Best: the one that allows the smallest cell (random sequential addition, so that
        atoms spread out as in real crystals).
        """
        radii = np.array([COVALENT_RADII[e] for e in atoms_el])
        best = None
        for _ in range(self.config.placement_trials if site.dof else 1):
            params = rng.random(site.dof)
            orbit = _orbit(site.point(params), rot, trans)
            need = _min_lattice_parameter(
                np.concatenate([atoms_pos, orbit]),
                np.concatenate([radii, np.full(len(orbit), COVALENT_RADII[element])]),
                self.config.bond_factor,
                new_from=len(atoms_pos),
            )
            if best is None or need < best[0]:
                best = (need, params, orbit)
        _, params, orbit = best
        return params, orbit


def _cubic_crystal(
    name: str, a: float, positions: np.ndarray, elements: list[str], b_iso: list[float]
) -> Crystal | None:
    """The cubic crystal of the atoms, or None when :class:`Crystal` refuses them."""
    try:
        return Crystal.from_dict(
            {
                "name": name,
                "lattice_parameters": [a, a, a, 90.0, 90.0, 90.0],
                "elements": elements,
                "positions": positions.tolist(),
                "occupancies": [1.0] * len(elements),
                "b_iso": b_iso,
            }
        )
    except StructureError:
        return None


def _formula(elements: list[str]) -> str:
    counts = Counter(elements)
    return "".join(f"{e}{n if n > 1 else ''}" for e, n in sorted(counts.items()))


def generate_structures(
    n: int,
    seed: int = 0,
    config: StructureConfig | None = None,
    start: int = 0,
) -> tuple[list[SyntheticStructure], GenerationStats]:
    """Draw samples ``start`` … ``start + n − 1`` of a seed.

    Parameters
    ----------
    n
        Number of structures.
    seed
        Seed of the set (sample ``i`` depends only on ``seed`` and ``i``).
    config
        Generator settings.
    start
        Index of the first sample.

    Returns
    -------
    structures, stats
        The structures (space groups round robin) and the acceptance statistics.
    """
    gen = StructureGenerator(seed, config)
    return gen.generate(n, start), gen.stats


def space_group_symbol(number: int) -> str:
    """The short international symbol of a cubic space group (195–230); "" otherwise."""
    try:
        import spglib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sg_type = spglib.get_spacegroup_type(_HALL_NUMBER[int(number)])
        return str(sg_type.international_short)
    except Exception:  # not cubic, or spglib missing
        return ""
