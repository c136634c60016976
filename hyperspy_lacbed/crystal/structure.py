"""Crystal structures: loading, validation, symmetry and the zone-axis frame.

A :class:`Crystal` is the validated, symmetry-expanded unit cell that every other part
of the package works from. It is built from a CIF file, a ``diffpy.structure.Structure``
or the name of an example crystal shipped with the package (``"Si"``, ``"GaAs"``, ...).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperspy_lacbed.crystal.scattering import atomic_number
from hyperspy_lacbed.parsing import as_direction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffpy.structure import Structure

#: Isotropic Debye–Waller factor B (Å²) used for atoms whose CIF gives neither B nor U.
#: 0.5 Å² is typical of inorganic crystals at room temperature.
DEFAULT_B_ISO = 0.5

#: Atoms closer than this (Å) are one shared site (mixed occupancy), not two atoms.
SHARED_SITE_TOLERANCE = 0.01

#: Distinct atoms closer than this (Å) are physically impossible and rejected.
MIN_INTERATOMIC_DISTANCE = 0.5


class StructureError(ValueError):
    """A crystal structure that cannot be used, with the reason and the fix."""


@dataclass(frozen=True)
class Crystal:
    """A validated unit cell with every atom of the cell listed (space group P1 expanded).

    Parameters
    ----------
    lattice_parameters
        (a, b, c, α, β, γ) in Å and degrees.
    elements
        Element symbol of each atom.
    positions
        Fractional coordinates, shape (n, 3), wrapped into [0, 1).
    occupancies
        Site occupancy of each atom, in (0, 1].
    b_iso
        Isotropic Debye–Waller factor B of each atom in Å².
    name
        A label for the crystal (the CIF data block or the example name).
    """

    lattice_parameters: tuple[float, float, float, float, float, float]
    elements: tuple[str, ...]
    positions: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray
    name: str = ""
    source: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.elements)

    @cached_property
    def atomic_numbers(self) -> np.ndarray:
        """Atomic number of each atom."""
        return np.array([atomic_number(e) for e in self.elements])

    @cached_property
    def direct_basis(self) -> np.ndarray:
        """Rows are the lattice vectors a, b, c in Cartesian Å (a along x, b in the xy plane)."""
        a, b, c, al, be, ga = self.lattice_parameters
        al, be, ga = np.radians([al, be, ga])
        cx = c * math.cos(be)
        cy = c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
        cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
        basis = np.array(
            [[a, 0, 0], [b * math.cos(ga), b * math.sin(ga), 0], [cx, cy, cz]], dtype=float
        )
        basis[np.abs(basis) < 1e-12] = 0.0
        return basis

    @cached_property
    def reciprocal_basis(self) -> np.ndarray:
        """Rows are a*, b*, c* in Cartesian 1/Å, without 2π (a·a* = 1)."""
        return np.linalg.inv(self.direct_basis).T

    @property
    def volume(self) -> float:
        """Unit-cell volume Ω in Å³."""
        return float(abs(np.linalg.det(self.direct_basis)))

    @property
    def cartesian_positions(self) -> np.ndarray:
        """Atom positions in Cartesian Å."""
        return self.positions @ self.direct_basis

    @property
    def is_cubic(self) -> bool:
        """True when the space group is cubic (numbers 195–230)."""
        return 195 <= self.space_group_number <= 230

    @cached_property
    def _symmetry(self) -> dict[str, Any]:
        import spglib

        # Mixed-occupancy sites get one type per distinct composition, so that a site shared
        # by Ge 0.9 / Sn 0.1 is one species for the symmetry search.
        sites, types, keys = [], [], {}
        for pos, comp in _group_sites(self):
            key = tuple(sorted((e, round(o, 4), round(b, 3)) for e, o, b in comp))
            types.append(keys.setdefault(key, len(keys) + 1))
            sites.append(pos)
        cell = (self.direct_basis, np.array(sites), types)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # spglib's error-handling notice
            data = spglib.get_symmetry_dataset(cell, symprec=1e-3)
        if data is None:
            return {"number": 1, "symbol": "P1", "rotations": np.eye(3, dtype=int)[None]}
        rotations = np.unique(np.asarray(data.rotations), axis=0)
        return {
            "number": int(data.number),
            "symbol": str(data.international),
            "rotations": rotations,
            "translations": np.asarray(data.translations),
        }

    @property
    def space_group_number(self) -> int:
        """International Tables space-group number found by spglib."""
        return self._symmetry["number"]

    @property
    def space_group_symbol(self) -> str:
        """Hermann–Mauguin symbol of the space group found by spglib."""
        return self._symmetry["symbol"]

    @property
    def point_group_rotations(self) -> np.ndarray:
        """Point-group rotations acting on fractional coordinates, shape (n, 3, 3), integer."""
        return self._symmetry["rotations"]

    def g_vectors(self, hkl: np.ndarray) -> np.ndarray:
        """Cartesian reciprocal vectors (1/Å, no 2π) of Miller indices ``hkl`` (..., 3)."""
        return np.asarray(hkl, dtype=float) @ self.reciprocal_basis

    def with_positions(self, positions: np.ndarray) -> Crystal:
        """A copy with other fractional positions (used for origin shifts)."""
        return Crystal(
            self.lattice_parameters,
            self.elements,
            np.mod(np.asarray(positions, float), 1.0),
            self.occupancies,
            self.b_iso,
            self.name,
            self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly description (for metadata and dataset recipes)."""
        return {
            "name": self.name,
            "lattice_parameters": list(self.lattice_parameters),
            "elements": list(self.elements),
            "positions": self.positions.tolist(),
            "occupancies": self.occupancies.tolist(),
            "b_iso": self.b_iso.tolist(),
            "space_group": self.space_group_number,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Crystal:
        """Rebuild a crystal from :meth:`to_dict` output (validated again)."""
        return _validated(
            tuple(d["lattice_parameters"]),
            list(d["elements"]),
            np.asarray(d["positions"], float),
            np.asarray(d["occupancies"], float),
            np.asarray(d["b_iso"], float),
            name=d.get("name", ""),
            source="dict",
        )


def _group_sites(crystal: Crystal) -> list[tuple[np.ndarray, list[tuple[str, float, float]]]]:
    """Group atoms that share a position (mixed-occupancy sites)."""
    cart = crystal.cartesian_positions
    groups: list[tuple[np.ndarray, list]] = []
    assigned = np.full(len(crystal), -1)
    for i in range(len(crystal)):
        if assigned[i] >= 0:
            continue
        d = _periodic_distances(crystal.positions[i], crystal.positions, crystal.direct_basis)
        members = np.flatnonzero((d < SHARED_SITE_TOLERANCE) & (assigned < 0))
        assigned[members] = len(groups)
        comp = [
            (crystal.elements[j], float(crystal.occupancies[j]), float(crystal.b_iso[j]))
            for j in members
        ]
        groups.append((crystal.positions[i], comp))
    del cart
    return groups


def _periodic_distances(p: np.ndarray, positions: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Shortest distances (Å) from fractional point ``p`` to each of ``positions``."""
    d = positions - p
    d -= np.round(d)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    cart = (d[:, None, :] + shifts[None]) @ basis
    return np.sqrt((cart**2).sum(-1)).min(axis=1)


def _validated(
    lattice_parameters: Sequence[float],
    elements: Sequence[str],
    positions: np.ndarray,
    occupancies: np.ndarray,
    b_iso: np.ndarray,
    name: str,
    source: str,
) -> Crystal:
    lp = tuple(float(x) for x in lattice_parameters)
    if len(lp) != 6 or not all(math.isfinite(x) for x in lp):
        raise StructureError(
            f"Lattice parameters {lp} are not six finite numbers (a, b, c, α, β, γ)."
        )
    if min(lp[:3]) <= 0:
        raise StructureError(
            f"Lattice lengths must be positive, got a, b, c = {lp[:3]} Å; fix the cell in the CIF."
        )
    al, be, ga = np.radians(lp[3:])
    if min(lp[3:]) <= 0 or max(lp[3:]) >= 180:
        raise StructureError(f"Cell angles must lie between 0 and 180°, got {lp[3:]}.")
    gram = 1 - np.cos(al) ** 2 - np.cos(be) ** 2 - np.cos(ga) ** 2
    gram += 2 * np.cos(al) * np.cos(be) * np.cos(ga)
    if gram <= 1e-10:
        raise StructureError(f"Cell angles {lp[3:]} do not form a cell of positive volume.")
    if len(elements) == 0:
        raise StructureError(
            f"The structure {name or source!r} has no atoms; a CIF needs an _atom_site loop "
            "with at least one atom."
        )
    elements = tuple(_element_symbol(e) for e in elements)
    positions = np.asarray(positions, float).reshape(-1, 3)
    if not np.all(np.isfinite(positions)):
        raise StructureError("Atom positions contain NaN or inf; every atom needs x, y, z.")
    occupancies = np.asarray(occupancies, float)
    bad = np.flatnonzero(~np.isfinite(occupancies) | (occupancies <= 0) | (occupancies > 1))
    if bad.size:
        i = bad[0]
        raise StructureError(
            f"Atom {i} ({elements[i]}) has occupancy {occupancies[i]}; occupancies must lie in "
            "(0, 1]. Remove atoms that are absent instead of giving them occupancy 0."
        )
    b_iso = np.asarray(b_iso, float)
    if np.any(~np.isfinite(b_iso) | (b_iso < 0)):
        raise StructureError("Debye–Waller factors B must be finite and non-negative.")
    crystal = Crystal(
        lp, elements, np.mod(positions, 1.0), occupancies, b_iso, name=name, source=source
    )
    _check_distances(crystal)
    return crystal


def _element_symbol(label: Any) -> str:
    from hyperspy_lacbed.crystal.scattering import ELEMENTS

    try:
        return ELEMENTS[atomic_number(str(label)) - 1]
    except ValueError as exc:
        raise StructureError(str(exc)) from exc


def _check_distances(crystal: Crystal) -> None:
    basis = crystal.direct_basis
    for site_pos, comp in _group_sites(crystal):
        total = sum(o for _, o, _ in comp)
        if total > 1 + 1e-3:
            names = ", ".join(f"{e} ({o:g})" for e, o, _ in comp)
            raise StructureError(
                f"Overlapping atoms at fractional position {np.round(site_pos, 4).tolist()}: "
                f"{names} with total occupancy {total:g} > 1. Remove duplicates or lower the "
                "occupancies of a shared site so that they sum to at most 1."
            )
    positions = crystal.positions
    for i in range(len(crystal)):
        d = _periodic_distances(positions[i], positions, basis)
        close = np.flatnonzero((d >= SHARED_SITE_TOLERANCE) & (d < MIN_INTERATOMIC_DISTANCE))
        if close.size:
            j = close[0]
            raise StructureError(
                f"Overlapping atoms: {crystal.elements[i]} at {np.round(positions[i], 4).tolist()} "
                f"and {crystal.elements[j]} at {np.round(positions[j], 4).tolist()} are "
                f"{d[j]:.3f} Å apart (minimum {MIN_INTERATOMIC_DISTANCE} Å). Check the "
                "coordinates and the symmetry operations of the CIF."
            )


def _b_from_cif(path: Path) -> bool:
    """Whether the CIF gives any displacement parameter at all."""
    text = path.read_text(errors="replace").lower()
    return any(
        tag in text
        for tag in (
            "_atom_site_b_iso",
            "_atom_site_u_iso",
            "_atom_site_aniso_u",
            "_atom_site_aniso_b",
        )
    )


def _from_diffpy(structure: Structure, name: str, source: str, has_b: bool) -> Crystal:
    lp = structure.lattice.abcABG()
    elements = [a.element for a in structure]
    positions = np.array([a.xyz for a in structure], float).reshape(-1, 3)
    occ = np.array([a.occupancy for a in structure], float)
    b = np.array([a.Bisoequiv for a in structure], float)
    if not has_b or (b.size and np.all(b == 0)):
        b = np.full(len(elements), DEFAULT_B_ISO)
    return _validated(lp, elements, positions, occ, b, name=name, source=source)


def load_structure(
    source: str | os.PathLike | Structure | Crystal, name: str | None = None
) -> Crystal:
    """Load and validate a crystal structure.

    Parameters
    ----------
    source
        A path to a CIF file, a ``diffpy.structure.Structure``, a
        :class:`~hyperspy_lacbed.crystal.structure.Crystal`
        (returned unchanged), or the name of an example crystal shipped with the package
        (see :func:`hyperspy_lacbed.example_structures`).
    name
        A label for the crystal; by default the CIF's data block or the example name.

    Returns
    -------
    Crystal
        Every atom of the unit cell (the CIF's symmetry operations applied), with
        occupancies and isotropic Debye–Waller factors B in Å². When the CIF gives no
        displacement parameter, B =
        :data:`~hyperspy_lacbed.crystal.structure.DEFAULT_B_ISO` (0.5 Å²) is used; U is turned
        into B = 8π²U.

    Raises
    ------
    StructureError
        A malformed CIF, no atoms, an unknown element, overlapping atoms, an occupancy
        outside (0, 1] or a cell of non-positive size; the message names the problem.
    FileNotFoundError
        When ``source`` is neither an existing file nor an example name.

    Examples
    --------
    >>> from hyperspy_lacbed import load_structure
    >>> si = load_structure("Si")
    >>> len(si), si.space_group_number
    (8, 227)
    """
    if isinstance(source, Crystal):
        return source
    if isinstance(source, dict):  # Crystal.to_dict(), e.g. from a signal's metadata
        return Crystal.from_dict(source)
    try:
        from diffpy.structure import Structure
    except ImportError:  # pragma: no cover - diffpy is a core dependency
        Structure = ()
    if Structure and isinstance(source, Structure):
        return _from_diffpy(source, name or source.title or "structure", "diffpy", True)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"load_structure takes a CIF path, a diffpy Structure or an example name, "
            f"not {type(source).__name__}."
        )
    path = Path(source)
    if not path.is_file():
        from hyperspy_lacbed.data import example_path

        example = example_path(str(source))
        if example is None:
            from hyperspy_lacbed.data import example_structures

            raise FileNotFoundError(
                f"No CIF file at {str(source)!r} and no example crystal of that name; "
                f"examples are {', '.join(example_structures())}."
            )
        path, name = example, name or str(source)
    from diffpy.structure import loadStructure
    from diffpy.structure.structureerrors import StructureFormatError

    try:
        structure = loadStructure(str(path), fmt="cif")
    except StructureFormatError as exc:
        raise StructureError(
            f"Cannot read {path.name} as a CIF: {str(exc).strip().splitlines()[0]}. "
            "Check that it is a complete CIF with a cell and an _atom_site loop."
        ) from exc
    except Exception as exc:  # PyCifRW and diffpy raise a variety of parser errors
        raise StructureError(
            f"Cannot read {path.name} as a CIF ({type(exc).__name__}: {exc}). "
            "Check that it is a complete CIF with a cell and an _atom_site loop."
        ) from exc
    if structure is None or len(structure) == 0:
        raise StructureError(
            f"The CIF {path.name} has no atoms; it needs an _atom_site loop with at least one "
            "atom (label, type symbol, fractional x, y, z)."
        )
    return _from_diffpy(structure, name or path.stem, str(path), _b_from_cif(path))


def as_crystal(structure: Any) -> Crystal:
    """Accept anything :func:`load_structure` accepts."""
    return load_structure(structure)


def _smallest_perpendicular(direction: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The shortest integer lattice direction [uvw] perpendicular to ``direction`` (Cartesian)."""
    rng = range(-3, 4)
    cands = np.array([[u, v, w] for u in rng for v in rng for w in rng if (u, v, w) != (0, 0, 0)])
    cart = cands @ basis
    perp = np.abs(cart @ direction) < 1e-8 * np.linalg.norm(cart, axis=1)
    cands, cart = cands[perp], cart[perp]
    if not len(cands):
        raise StructureError("No low-index direction is perpendicular to the zone axis.")
    # Shortest first, then prefer positive components (so [001] gives [100]).
    order = np.lexsort(
        (-cands[:, 2], -cands[:, 1], -cands[:, 0], np.round(np.linalg.norm(cart, axis=1), 8))
    )
    return cands[order[0]]


@dataclass(frozen=True)
class ZoneFrame:
    """The laboratory frame of a zone-axis orientation.

    ``ex``, ``ey``, ``ez`` are Cartesian unit vectors: ez along the beam (the zone axis
    [uvw]), ex along the x-direction and ey = ez × ex. Tilts (kx, ky) and projected
    potentials (x, y) are expressed in this frame.
    """

    zone_axis: tuple[int, int, int]
    x_direction: tuple[int, int, int]
    ex: np.ndarray
    ey: np.ndarray
    ez: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        """Rows ex, ey, ez: maps crystal Cartesian vectors to frame coordinates."""
        return np.stack([self.ex, self.ey, self.ez])


def zone_frame(
    crystal: Crystal,
    zone_axis: Sequence[int] = (0, 0, 1),
    x_direction: Sequence[int] | None = None,
) -> ZoneFrame:
    """The frame of zone axis [uvw] (a real-space direction) with in-plane x-direction.

    Parameters
    ----------
    crystal
        The crystal.
    zone_axis
        Beam direction [uvw] in direct-lattice indices.
    x_direction
        A direct-lattice direction perpendicular to the zone axis that fixes kx and x;
        by default the shortest such direction ([100] for [001]).

    Raises
    ------
    ValueError
        A zero, non-integer or non-perpendicular direction.
    """
    uvw = as_direction(zone_axis, "The zone axis")
    basis = crystal.direct_basis
    ez = np.asarray(uvw, float) @ basis
    ez /= np.linalg.norm(ez)
    if x_direction is None:
        xd = tuple(int(x) for x in _smallest_perpendicular(ez, basis))
    else:
        xd = as_direction(x_direction, "The x-direction")
    ex = np.asarray(xd, float) @ basis
    ex_norm = np.linalg.norm(ex)
    if abs(ex @ ez) > 1e-6 * ex_norm:
        angle = math.degrees(math.acos(np.clip(ex @ ez / ex_norm, -1, 1)))
        raise ValueError(
            f"The x-direction {list(xd)} is not perpendicular to the zone axis {list(uvw)} "
            f"(angle {angle:.2f}°); choose [u, v, w] with u·[zone] = 0 in Cartesian terms."
        )
    ex /= ex_norm
    ey = np.cross(ez, ex)
    return ZoneFrame(uvw, xd, ex, ey, ez)  # type: ignore[arg-type]


def lattice_period(crystal: Crystal, direction_cartesian: np.ndarray) -> tuple[np.ndarray, float]:
    """The shortest direct-lattice vector along a Cartesian direction and its length (Å)."""
    direction = np.asarray(direction_cartesian, float)
    direction = direction / np.linalg.norm(direction)
    frac = direction @ np.linalg.inv(crystal.direct_basis)
    scale = np.max(np.abs(frac))
    frac = frac / scale
    for n in range(1, 97):
        cand = frac * n
        if np.allclose(cand, np.round(cand), atol=1e-6):
            uvw = np.round(cand).astype(int)
            g = math.gcd(*(abs(int(x)) for x in uvw))
            uvw //= g
            return uvw, float(np.linalg.norm(uvw @ crystal.direct_basis))
    raise StructureError(
        f"The direction {direction.round(4).tolist()} is not a lattice direction with small indices."
    )


def _layer_point(uvw: np.ndarray, n: int) -> np.ndarray:
    """An integer [hkl] with h·u + k·v + l·w = n (uvw with gcd 1)."""
    if n == 0:
        return np.zeros(3, int)
    for r in range(1, 50):
        rng = np.arange(-r, r + 1)
        cand = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
        hit = cand[cand @ uvw == n]
        if len(hit):
            return hit[np.argmin(np.abs(hit).sum(1))]
    raise StructureError(f"No reflection found in Laue zone {n} of {uvw.tolist()}.")


def _zone_plane_basis(crystal: Crystal, uvw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two integer vectors spanning the lattice {hkl : hkl·uvw = 0}, Gauss-reduced."""
    rng = np.arange(-6, 7)
    cand = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    cand = cand[(cand @ uvw == 0) & np.any(cand != 0, axis=1)]
    lengths = np.linalg.norm(crystal.g_vectors(cand), axis=1)
    cand = cand[np.argsort(lengths, kind="stable")]
    b1 = cand[0]
    # A pair is a basis of that lattice exactly when its cross product is ±[uvw].
    for b2 in cand[1:]:
        cross = np.cross(b1, b2)
        if np.array_equal(cross, uvw) or np.array_equal(cross, -uvw):
            return b1, b2
    raise StructureError(f"Could not find a basis of the zone plane of {uvw.tolist()}.")


def zolz_reflections(
    crystal: Crystal,
    zone_axis: Sequence[int] = (0, 0, 1),
    g_max: float = 2.0,
    laue_zones: Sequence[int] = (0,),
) -> np.ndarray:
    """Miller indices of the reflections of given Laue zones with |g| ≤ g_max (1/Å).

    The zero-order Laue zone holds the g with h·u + k·v + l·w = 0. Sorted by |g|,
    then by index, with 000 first.
    """
    uvw = np.asarray(as_direction(zone_axis, "The zone axis"))
    uvw = uvw // math.gcd(*(abs(int(x)) for x in uvw))
    # Enumerate each Laue layer as a 2-D lattice (two reduced integer basis vectors of the
    # plane h·uvw = 0 plus one point of the layer) instead of a 3-D box, which grows as
    # g_max³ and dominates the cost of fine potentials.
    b1, b2 = _zone_plane_basis(crystal, uvw)
    g1, g2 = crystal.g_vectors(b1), crystal.g_vectors(b2)
    area = np.linalg.norm(np.cross(g1, g2))
    layers = []
    for n in laue_zones:
        h0 = _layer_point(uvw, int(n))
        g0 = crystal.g_vectors(h0)
        reach = g_max + np.linalg.norm(g0)
        m1 = int(np.ceil(reach * np.linalg.norm(g2) / area)) + 1
        m2 = int(np.ceil(reach * np.linalg.norm(g1) / area)) + 1
        i, j = np.meshgrid(np.arange(-m1, m1 + 1), np.arange(-m2, m2 + 1), indexing="ij")
        layers.append(h0 + i.reshape(-1, 1) * b1 + j.reshape(-1, 1) * b2)
    hkl = np.concatenate(layers)
    glen = np.linalg.norm(crystal.g_vectors(hkl), axis=1)
    keep = glen <= g_max + 1e-9
    hkl, glen = hkl[keep], glen[keep]
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], np.round(glen, 9)))
    return hkl[order]
