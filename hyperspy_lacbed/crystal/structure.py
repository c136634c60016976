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

    from hyperspy_lacbed.crystal.cif import ExpandedCell

#: Isotropic Debye–Waller factor B (Å²) used for atoms whose CIF gives neither B nor U.
#: 0.5 Å² is typical of inorganic crystals at room temperature.
DEFAULT_B_ISO = 0.5

#: Atoms closer than this (Å) are one shared site (mixed occupancy), not two atoms.
SHARED_SITE_TOLERANCE = 0.01

#: Atoms closer than this (Å) cannot both be present: they are alternatives (a split or
#: disordered site), so the occupancies of each atom and its neighbours within this distance
#: must sum to at most 1.
MIN_INTERATOMIC_DISTANCE = 0.5

#: Rounding allowed per additional atom when the occupancies of close atoms are summed
#: (CIFs give occupancies to about three decimals, e.g. 3 × 0.334 = 1.002).
OCCUPANCY_TOLERANCE = 1e-3


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
        Isotropic Debye–Waller factor B of each atom in Å²; for an atom with an anisotropic
        tensor, B_eq = 8π² tr(U)/3.
    name
        A label for the crystal (the CIF data block or the example name).
    source
        Where the crystal came from (a path, ``"dict"``, ``"diffpy"``).
    u_aniso
        Anisotropic displacement tensors U of each atom, shape (n, 3, 3), in Å² in the
        Cartesian frame of :attr:`direct_basis`; atoms that are isotropic have U = B/(8π²)·I.
        None (the default) when the crystal is isotropic: the structure factors then use
        ``b_iso`` alone.
    """

    lattice_parameters: tuple[float, float, float, float, float, float]
    elements: tuple[str, ...]
    positions: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray
    name: str = ""
    source: str = ""
    u_aniso: np.ndarray | None = None
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
        ops_w, ops_t = np.asarray(data.rotations), np.asarray(data.translations)
        number, symbol = int(data.number), str(data.international)
        if self.u_aniso is not None:
            # spglib sees positions only: drop the operations that do not carry each atom's
            # tensor onto its image's (U_j = R U_i Rᵀ), so that tilts related by the point
            # group give the same pattern.
            keep = _keeps_tensors(self, ops_w, ops_t)
            if not keep.all():
                ops_w, ops_t = ops_w[keep], ops_t[keep]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    sg = spglib.get_spacegroup_type_from_symmetry(
                        ops_w, ops_t, self.direct_basis, symprec=1e-3
                    )
                number, symbol = int(sg.number), str(sg.international_short)
        return {
            "number": number,
            "symbol": symbol,
            "rotations": np.unique(ops_w, axis=0),
            "translations": ops_t,
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
            self.u_aniso,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly description (for metadata and dataset recipes).

        ``"u_aniso"`` (Cartesian U tensors, Å²) is present only for an anisotropic crystal.
        """
        d = {
            "name": self.name,
            "lattice_parameters": list(self.lattice_parameters),
            "elements": list(self.elements),
            "positions": self.positions.tolist(),
            "occupancies": self.occupancies.tolist(),
            "b_iso": self.b_iso.tolist(),
            "space_group": self.space_group_number,
        }
        if self.u_aniso is not None:
            d["u_aniso"] = self.u_aniso.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Crystal:
        """Rebuild a crystal from :meth:`to_dict` output (validated again)."""
        keys = ("lattice_parameters", "elements", "positions", "occupancies", "b_iso")
        missing = [k for k in keys if k not in d]
        if missing:
            raise StructureError(
                f"A crystal dict needs the keys {list(keys)} (Crystal.to_dict() output, e.g. "
                f"s.metadata.LACBED.settings.structure); {missing} are missing."
            )
        n = len(d["elements"])
        if not all(np.size(d[k]) == m for k, m in zip(keys[2:], (3 * n, n, n), strict=True)):
            raise StructureError(
                f"A crystal dict lists {n} elements but positions, occupancies or b_iso of "
                "another length; give one [x, y, z], occupancy and B per atom."
            )
        return _validated(
            tuple(d["lattice_parameters"]),
            list(d["elements"]),
            np.asarray(d["positions"], float),
            np.asarray(d["occupancies"], float),
            np.asarray(d["b_iso"], float),
            name=d.get("name", ""),
            source="dict",
            u_aniso=None if d.get("u_aniso") is None else np.asarray(d["u_aniso"], float),
        )


def _keeps_tensors(
    crystal: Crystal, rotations: np.ndarray, translations: np.ndarray
) -> np.ndarray:
    """Which operations (W, w) map every atom's U tensor onto that of its image."""
    from hyperspy_lacbed.crystal.cif import U_SYMMETRY_TOLERANCE
    from hyperspy_lacbed.crystal.spacegroup import cartesian_rotations

    basis = crystal.direct_basis
    elements = np.array(crystal.elements)
    same_kind = (elements[:, None] == elements[None]) & np.isclose(
        crystal.occupancies[:, None], crystal.occupancies[None]
    )
    cart = cartesian_rotations(rotations.astype(float), basis)
    keep = np.ones(len(rotations), bool)
    for k, (w, t) in enumerate(zip(rotations, translations, strict=True)):
        d = (crystal.positions @ w.T + t)[:, None, :] - crystal.positions[None]
        d -= np.round(d)
        match = (np.linalg.norm(d @ basis, axis=-1) < SHARED_SITE_TOLERANCE) & same_kind
        if not match.any(axis=1).all():
            keep[k] = False
            continue
        image = match.argmax(axis=1)
        mapped = cart[k] @ crystal.u_aniso @ cart[k].T
        keep[k] = np.abs(mapped - crystal.u_aniso[image]).max() <= U_SYMMETRY_TOLERANCE
    return keep


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
    u_aniso: np.ndarray | None = None,
) -> Crystal:
    lp = _checked_lattice(lattice_parameters)
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
    if u_aniso is not None:
        u_aniso = _checked_u(np.asarray(u_aniso, float), elements, b_iso)
    crystal = Crystal(
        lp,
        elements,
        np.mod(positions, 1.0),
        occupancies,
        b_iso,
        name=name,
        source=source,
        u_aniso=u_aniso,
    )
    _check_distances(crystal)
    return crystal


def _checked_u(u: np.ndarray, elements: tuple[str, ...], b_iso: np.ndarray) -> np.ndarray:
    """Anisotropic tensors: one symmetric, positive semi-definite 3 × 3 per atom, with B_eq."""
    if u.shape != (len(elements), 3, 3) or not np.all(np.isfinite(u)):
        raise StructureError(
            f"u_aniso must hold one finite 3 × 3 tensor per atom, shape ({len(elements)}, 3, 3), "
            f"not {u.shape}; give None for an isotropic crystal."
        )
    if not np.allclose(u, u.transpose(0, 2, 1), rtol=0, atol=1e-9):
        raise StructureError("Each displacement tensor U must be symmetric (U_ij = U_ji).")
    smallest = np.linalg.eigvalsh(u)[:, 0]
    bad = np.flatnonzero(smallest < -1e-9)
    if bad.size:
        i = bad[0]
        raise StructureError(
            f"Atom {i} ({elements[i]}) has a displacement tensor that is not positive definite "
            f"(smallest eigenvalue {smallest[i]:.3g} Å²), so its Debye–Waller factor would grow "
            "with |g|. Fix its U_ij in the CIF or give it an isotropic U_iso instead."
        )
    b_eq = 8 * math.pi**2 * np.trace(u, axis1=1, axis2=2) / 3
    if not np.allclose(b_iso, b_eq, rtol=1e-6, atol=1e-9):
        i = int(np.argmax(np.abs(b_iso - b_eq)))
        raise StructureError(
            f"Atom {i} ({elements[i]}) has b_iso {b_iso[i]:g} Å² but its tensor U has "
            f"B_eq = 8π² tr(U)/3 = {b_eq[i]:g} Å². Give b_iso = B_eq, or drop u_aniso to use "
            "isotropic B alone."
        )
    return u


def _checked_lattice(lattice_parameters: Sequence[float]) -> tuple[float, ...]:
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
    return lp


def _element_symbol(label: Any) -> str:
    from hyperspy_lacbed.crystal.scattering import ELEMENTS

    try:
        return ELEMENTS[atomic_number(str(label)) - 1]
    except ValueError as exc:
        raise StructureError(str(exc)) from exc


def _check_distances(crystal: Crystal) -> None:
    """Refuse atoms closer than the overlap limit unless they are alternatives of one site.

    Atoms closer than :data:`MIN_INTERATOMIC_DISTANCE` cannot be present together, so they
    are read as a split or shared site (e.g. Li 0.95 and Mg 0.05 0.075 Å apart in
    Mg-doped LiNbO3): around every atom, its occupancy and those of its close neighbours
    must sum to at most 1, within the CIF's rounding.
    """
    basis = crystal.direct_basis
    positions, occ = crystal.positions, crystal.occupancies
    for i in range(len(crystal)):
        d = _periodic_distances(positions[i], positions, basis)
        near = np.flatnonzero(d < MIN_INTERATOMIC_DISTANCE)  # i itself included
        if near.size < 2:
            continue
        total = float(occ[near].sum())
        if total <= 1 + OCCUPANCY_TOLERANCE * (near.size - 1):
            continue
        others = [j for j in near if j != i]
        names = ", ".join(
            f"{crystal.elements[j]} ({occ[j]:g}) at {np.round(positions[j], 4).tolist()}, "
            f"{d[j]:.3f} Å away"
            for j in others[:4]
        )
        raise StructureError(
            f"Overlapping atoms: {crystal.elements[i]} ({occ[i]:g}) at "
            f"{np.round(positions[i], 4).tolist()} has {names}; atoms closer than "
            f"{MIN_INTERATOMIC_DISTANCE} Å are alternatives of one site, but their total "
            f"occupancy is {total:.4g} > 1. Lower the occupancies so that they sum to at most 1 "
            "(a split or shared site, e.g. Li 0.95 beside Mg 0.05), or remove the duplicate "
            "atom; if they are one atom on a special position, give its coordinates exactly "
            "(0.33333, not 0.333); if many atoms overlap, check that the symmetry operations "
            "are those of the setting the coordinates use (e.g. 'F d -3 m :2' for origin "
            "choice 2)."
        )


def _from_cell(
    cell: ExpandedCell, lp: tuple[float, ...], name: str, source: str, has_b: bool
) -> Crystal:
    """A crystal from an expanded CIF cell, with default B where the CIF gives none."""
    b = cell.b_iso.copy()
    u = None if cell.u_cart is None else cell.u_cart.copy()
    if u is None and (not has_b or np.all(np.nan_to_num(b) == 0)):
        # No displacement parameter at all (or only zeros, as structure databases write for
        # "unknown"): a typical room-temperature B rather than a frozen lattice.
        b[:] = DEFAULT_B_ISO
    b[np.isnan(b)] = DEFAULT_B_ISO
    if u is not None:
        aniso = np.all(np.isfinite(u), axis=(1, 2))
        b[aniso] = 8 * math.pi**2 * np.trace(u[aniso], axis1=1, axis2=2) / 3
        u[~aniso] = b[~aniso, None, None] / (8 * math.pi**2) * np.eye(3)
    return _validated(
        lp, cell.symbols, cell.positions, cell.occupancies, b, name=name, source=source, u_aniso=u
    )


def _from_diffpy(structure: Structure, name: str, source: str, has_b: bool) -> Crystal:
    from hyperspy_lacbed.crystal.cif import direct_basis, u_cif_to_cartesian

    lp = structure.lattice.abcABG()
    elements = [a.element for a in structure]
    positions = np.array([a.xyz for a in structure], float).reshape(-1, 3)
    occ = np.array([a.occupancy for a in structure], float)
    b = np.array([a.Bisoequiv for a in structure], float)
    if not has_b or (b.size and np.all(b == 0)):
        b = np.full(len(elements), DEFAULT_B_ISO)
    u = None
    if any(a.anisotropy for a in structure):
        basis = direct_basis(lp)
        u = np.array(
            [
                u_cif_to_cartesian(np.asarray(a.U, float), basis)
                if a.anisotropy
                else bi / (8 * math.pi**2) * np.eye(3)
                for a, bi in zip(structure, b, strict=True)
            ]
        )
        b = 8 * math.pi**2 * np.trace(u, axis1=1, axis2=2) / 3
    return _validated(lp, elements, positions, occ, b, name=name, source=source, u_aniso=u)


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

    A CIF is expanded with the symmetry operations it lists; when it lists none, with those
    of its Hall symbol, of its Hermann–Mauguin symbol and setting (``'F d -3 m :2'``,
    ``'R -3 m :R'``) or of its space-group number (origin choice 1, hexagonal axes unless
    the cell is rhombohedral); see ``hyperspy_lacbed.crystal.cif``. A CIF that states
    no space group and lists no symmetry operation (a "P1 cell": every atom listed, as
    many programs write them) is read as P1. The crystal's symmetry is then found from its
    atoms (``Crystal.space_group_number``, by spglib), so a P1 cell of a cubic crystal is
    cubic and works with the cubic-only surrogate models, while a P1 cell of lower
    symmetry is refused by them as "not cubic".

    Atoms closer than :data:`MIN_INTERATOMIC_DISTANCE` load as a split or shared site when
    their occupancies sum to at most 1 (e.g. Li 0.95 and Mg 0.05 0.075 Å apart).

    Returns
    -------
    Crystal
        Every atom of the unit cell (the CIF's symmetry operations applied), with
        occupancies and isotropic Debye–Waller factors B in Å². When the CIF gives no
        displacement parameter, B =
        :data:`~hyperspy_lacbed.crystal.structure.DEFAULT_B_ISO` (0.5 Å²) is used (also for
        an atom whose value is ``?``); U is turned into B = 8π²U. An aniso loop
        (``_atom_site_aniso_U_11`` …, ``_B_11`` … or ``_beta_11`` …) gives
        ``Crystal.u_aniso``, Cartesian U tensors carried through the symmetry operations
        (U' = R U Rᵀ), and B_eq = 8π² tr(U)/3 in ``b_iso``.

    Raises
    ------
    StructureError
        A malformed CIF, no atoms, an unknown element, overlapping atoms whose occupancies
        sum to more than 1, an occupancy outside (0, 1], symmetry operations that are not a
        group or disagree with the stated space group or multiplicities, a displacement
        tensor that breaks its site symmetry or is not positive definite, or a cell of
        non-positive size; the message names the problem.
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
    from hyperspy_lacbed.crystal.cif import CifError, expand, read_cif

    try:
        unit = read_cif(path)
        if not unit.labels:
            raise StructureError(
                f"The CIF {path.name} has no atoms; it needs an _atom_site loop with at least "
                "one atom (label, type symbol, fractional x, y, z)."
            )
        lp = _checked_lattice(unit.lattice_parameters)
        cell = expand(unit)
    except CifError as exc:
        raise StructureError(str(exc)) from exc
    return _from_cell(cell, lp, name or path.stem, str(path), unit.has_displacements)


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
        raise StructureError(
            "No lattice direction with indices up to 3 is perpendicular to the zone axis, "
            "so the tilts have no x-direction (an oblique cell seen along a direction with no "
            "perpendicular lattice row). Choose another zone axis, e.g. a cell edge at 90° to "
            "another one."
        )
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
