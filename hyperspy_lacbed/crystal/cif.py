"""Reading CIF files: the asymmetric unit, its symmetry operations and displacement tensors.

The CIF's own symmetry operations are the truth: when the file lists them
(``_space_group_symop_operation_xyz`` or ``_symmetry_equiv_pos_as_xyz``) the asymmetric
unit is expanded with exactly those. Otherwise the operations come from the Hall symbol,
or from the Hermann–Mauguin symbol with its setting (``:1``/``:2`` origin choice,
``:H``/``:R`` axes, ICSD's trailing ``S``/``Z``/``H``/``R``), or from the space-group
number, through spglib's table of the 530 Hall settings
(:mod:`hyperspy_lacbed.crystal.spacegroup`). A rhombohedral space group named
without its axes is read on rhombohedral axes when the cell is rhombohedral (a = b = c,
α = β = γ ≠ 90°) and on hexagonal axes otherwise. A file with no symmetry tag at all is P1.

Anisotropic displacement parameters (``_atom_site_aniso_U_ij``, ``_B_ij`` or ``_beta_ij``)
are returned as Cartesian U tensors (Å²) and transformed with each symmetry operation,
U' = R U Rᵀ, when the asymmetric unit is expanded.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperspy_lacbed.crystal.spacegroup import (
    Operations,
    SpaceGroupError,
    canonical,
    cartesian_rotations,
    check_group,
    operations_from_symbols,
    parse_fraction,
    parse_operation,
    point_group_order,
    same_operations,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Images of one site closer than this (Å) are the same atom (a special position whose
#: coordinates the CIF rounds); the site is then put exactly on the special position.
SITE_MERGE_TOLERANCE = 0.01

#: Largest difference (Å²) allowed between a site's U tensor and its image under the site's
#: own symmetry (R U Rᵀ): a little above what 4-decimal CIF values round to.
U_SYMMETRY_TOLERANCE = 5e-4

#: CIF tags that state a space group or list its operations (old and new dictionaries).
SYMMETRY_TAGS = (
    "_space_group_symop_operation_xyz",
    "_symmetry_equiv_pos_as_xyz",
    "_space_group_it_number",
    "_symmetry_int_tables_number",
    "_space_group_name_h-m_alt",
    "_space_group_name_h-m_ref",
    "_symmetry_space_group_name_h-m",
    "_space_group_name_hall",
    "_symmetry_space_group_name_hall",
)


class CifError(ValueError):
    """A CIF that cannot be read, with the reason and the fix."""


@dataclass(frozen=True)
class AsymmetricUnit:
    """The atoms a CIF lists, before symmetry expansion.

    ``b_iso`` is NaN where the CIF gives no value for an atom; ``u_cif`` is (m, 3, 3) in the
    CIF's convention (U_ij on the basis a*·a, b*·b, c*·c), NaN for atoms without an
    anisotropic entry, or None when the file has no aniso loop. ``multiplicity`` is the
    CIF's ``_atom_site_symmetry_multiplicity`` (0 where not given).
    """

    name: str
    lattice_parameters: tuple[float, float, float, float, float, float]
    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    positions: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray
    u_cif: np.ndarray | None
    multiplicity: np.ndarray
    operations: Operations
    has_displacements: bool


# ----------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------


def cif_number(value: Any) -> float:
    """A CIF numeric value as float: ``"0.1234(5)"`` → 0.1234, ``"1/3"`` → 0.333…, NaN for
    ``"?"`` or ``"."`` (unknown / not applicable)."""
    text = str(value).strip().strip("'\"")
    if text in ("", "?", "."):
        return math.nan
    text = re.sub(r"\(\d*\)$", "", text)
    try:
        return parse_fraction(text)
    except ValueError:
        raise CifError(f"{value!r} is not a number; CIF numbers look like 0.1234(5).") from None


# ----------------------------------------------------------------------------------------
# The file
# ----------------------------------------------------------------------------------------


@contextmanager
def _quiet_parser() -> Iterator[None]:
    # PyCifRW's grammar prints its syntax errors; the exception carries them already.
    from CifFile import yapps3_compiled_rt

    saved = yapps3_compiled_rt.print_error
    yapps3_compiled_rt.print_error = lambda *a, **k: None
    try:
        yield
    finally:
        yapps3_compiled_rt.print_error = saved


def _block(path: Path) -> tuple[str, Any]:
    from CifFile import CifFile

    try:
        with _quiet_parser():
            cif = CifFile(str(path), grammar="auto")
    except Exception as exc:  # PyCifRW raises StarError, YappsSyntaxError, ValueError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CifError(
            f"Cannot read {path.name} as a CIF: {first}. Check that it is a complete CIF with "
            "a cell and an _atom_site loop."
        ) from exc
    names = list(cif.keys())
    for name in names:
        block = cif[name]
        if "_atom_site_fract_x" in block or "_atom_site_cartn_x" in block:
            return name, block
    if not names:
        raise CifError(f"Cannot read {path.name} as a CIF: it has no data_ block.")
    return names[0], cif[names[0]]


def _get(block: Any, *tags: str) -> str:
    for tag in tags:
        if tag in block:
            value = block[tag]
            value = value[0] if isinstance(value, list) else value
            value = str(value).strip()
            if value not in ("?", "."):
                return value
    return ""


def _column(block: Any, tag: str, n: int, default: float = math.nan) -> np.ndarray:
    if tag not in block:
        return np.full(n, default)
    try:
        return np.array([cif_number(v) for v in block[tag]], float)
    except CifError as exc:
        raise CifError(f"{tag}: {exc}") from None


def _cell(block: Any, filename: str) -> tuple[float, float, float, float, float, float]:
    values = []
    for tag in ("a", "b", "c", "alpha", "beta", "gamma"):
        raw = _get(block, f"_cell_length_{tag}" if len(tag) == 1 else f"_cell_angle_{tag}")
        value = cif_number(raw) if raw else (90.0 if len(tag) > 1 else math.nan)
        values.append(value)
    if not all(math.isfinite(v) for v in values):
        raise CifError(
            f"Cannot read {filename} as a CIF: the cell lengths _cell_length_a, _b and _c "
            "must all be given."
        )
    return tuple(values)  # type: ignore[return-value]


def _symbols(block: Any) -> tuple[str, str, str]:
    """The Hall symbol, H-M symbol and number the CIF states (empty where it does not)."""
    hall = _get(block, "_space_group_name_hall", "_symmetry_space_group_name_hall")
    hm = _get(
        block,
        "_space_group_name_h-m_alt",
        "_space_group_name_h-m_ref",
        "_symmetry_space_group_name_h-m",
    )
    number = _get(block, "_space_group_it_number", "_symmetry_int_tables_number")
    return hall, hm, number


def _warn_if_other_setting(
    listed: Operations, block: Any, lp: tuple[float, ...], filename: str
) -> None:
    """Say so when the listed operations are not those of the setting the symbols name."""
    hall, hm, number = _symbols(block)
    if not (hall or hm or number):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            named = operations_from_symbols(hall, hm, number, lp)
    except SpaceGroupError:
        return  # a symbol we cannot read says nothing against the list
    if not same_operations(listed, named):
        warnings.warn(
            f"{filename} names {named.source} but lists the operations of another setting "
            "(e.g. the other origin choice); the listed operations are used.",
            UserWarning,
            stacklevel=6,  # the caller of load_structure
        )


def _operations(block: Any, lp: tuple[float, ...], filename: str) -> Operations:
    for tag in ("_space_group_symop_operation_xyz", "_symmetry_equiv_pos_as_xyz"):
        if tag in block:
            raw = block[tag]
            raw = raw if isinstance(raw, list) else [raw]
            ops = [parse_operation(t) for t in raw]
            operations = canonical(
                Operations(
                    np.array([w for w, _ in ops]),
                    np.array([t for _, t in ops]),
                    f"the {len(ops)} operations listed in the CIF",
                )
            )
            check_group(operations)
            number = _get(block, "_space_group_it_number", "_symmetry_int_tables_number")
            order = point_group_order(number) if number else None
            n_rot = len(np.unique(operations.rotations.reshape(len(operations), -1), axis=0))
            if order is not None and n_rot != order:
                raise CifError(
                    f"{filename} states space group {number} (point group of order {order}) "
                    f"but its operations have {n_rot} distinct rotations; give the complete "
                    "list of operations, or the right space-group number."
                )
            _warn_if_other_setting(operations, block, lp, filename)
            return operations
    hall, hm, number = _symbols(block)
    if not (hall or hm or number):
        if any(tag in block for tag in SYMMETRY_TAGS):
            raise CifError(
                f"{filename} has a space-group tag with no value; give the space group (a "
                "Hall or Hermann–Mauguin symbol, or the number) or list the operations."
            )
        # Every atom of the cell is listed (a "P1 cell" as VESTA or ASE write them).
        return Operations(np.eye(3, dtype=int)[None], np.zeros((1, 3)), "P1 (no symmetry tag)")
    return operations_from_symbols(hall, hm, number, lp)


def _file_operations(block: Any, lp: tuple[float, ...], filename: str) -> Operations:
    try:
        return _operations(block, lp, filename)
    except SpaceGroupError as exc:
        raise CifError(f"{filename}: {exc}") from None


def _aniso(block: Any, labels: tuple[str, ...], lp: tuple[float, ...]) -> np.ndarray | None:
    """U_ij in the CIF's convention per atom of ``labels`` (NaN where absent), or None."""
    kinds = {"u": 1.0, "b": 1.0 / (8 * math.pi**2), "beta": None}
    for kind, scale in kinds.items():
        if f"_atom_site_aniso_{kind}_11" not in block:
            continue
        # The aniso columns usually have a loop of their own; some files append them to the
        # atom loop, which then labels them.
        label_tag = next(
            (t for t in ("_atom_site_aniso_label", "_atom_site_label") if t in block), None
        )
        if label_tag is None:
            raise CifError(
                "The aniso loop has no _atom_site_aniso_label column; add it, naming each "
                "atom as _atom_site_label does."
            )
        aniso_labels = [str(v) for v in block[label_tag]]
        n = len(aniso_labels)
        u = np.zeros((n, 3, 3))
        for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)):
            col = np.nan_to_num(_column(block, f"_atom_site_aniso_{kind}_{i + 1}{j + 1}", n, 0.0))
            u[:, i, j] = u[:, j, i] = col
        if scale is None:
            # β_ij = 2π² a*_i a*_j U_ij (dimensionless, on the reciprocal axes).
            rec = _reciprocal_lengths(lp)
            u /= 2 * math.pi**2 * np.outer(rec, rec)
        else:
            u *= scale
        out = np.full((len(labels), 3, 3), np.nan)
        index = {label: k for k, label in enumerate(labels)}
        for k, label in enumerate(aniso_labels):
            if label not in index:
                raise CifError(
                    f"The aniso loop names atom {label!r}, which the _atom_site loop does not "
                    "list; make _atom_site_aniso_label match _atom_site_label."
                )
            out[index[label]] = u[k]
        return out
    return None


def _reciprocal_lengths(lp: tuple[float, ...]) -> np.ndarray:
    return np.linalg.norm(np.linalg.inv(direct_basis(lp)).T, axis=1)


def direct_basis(lp: tuple[float, ...]) -> np.ndarray:
    """Rows a, b, c in Cartesian Å (a along x, b in the xy plane), as ``Crystal`` uses."""
    a, b, c, al, be, ga = lp
    al, be, ga = np.radians([al, be, ga])
    cx = c * math.cos(be)
    cy = c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    basis = np.array([[a, 0, 0], [b * math.cos(ga), b * math.sin(ga), 0], [cx, cy, cz]], float)
    basis[np.abs(basis) < 1e-12] = 0.0
    return basis


def u_cif_to_cartesian(u_cif: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """U (…, 3, 3) from the CIF's convention to Cartesian Å².

    The CIF's U_ij are components on the direct axes scaled by the reciprocal lengths:
    U* = N U_cif N with N = diag(``|a*|``, ``|b*|``, ``|c*|``) is the covariance of the fractional
    displacements, and U_cart = A U* Aᵀ with A's columns the lattice vectors
    (Grosse-Kunstleve & Adams, J. Appl. Cryst. 35, 477 (2002)). ``basis`` has the lattice
    vectors as rows.
    """
    n = np.linalg.norm(np.linalg.inv(basis).T, axis=1)
    u_star = u_cif * np.outer(n, n)
    return basis.T @ u_star @ basis


def read_cif(path: Path) -> AsymmetricUnit:
    """Read the first data block of a CIF that has atoms.

    Raises
    ------
    CifError
        A file that PyCifRW cannot parse, no cell, a bad number or symmetry operation, or
        symmetry operations that are not a group.
    """
    name, block = _block(path)
    lp = _cell(block, path.name)
    if "_atom_site_label" in block:
        labels = tuple(str(v) for v in block["_atom_site_label"])
    elif "_atom_site_type_symbol" in block:
        labels = tuple(str(v) for v in block["_atom_site_type_symbol"])
    else:
        labels = ()
    n = len(labels)
    symbols = (
        tuple(str(v) for v in block["_atom_site_type_symbol"])
        if "_atom_site_type_symbol" in block
        else tuple(re.sub(r"[^A-Za-z].*$", "", label) or label for label in labels)
    )
    if "_atom_site_fract_x" in block:
        xyz = np.stack([_column(block, f"_atom_site_fract_{c}", n) for c in "xyz"], -1)
    elif n:
        cart = np.stack([_column(block, f"_atom_site_cartn_{c}", n) for c in "xyz"], -1)
        xyz = cart @ np.linalg.inv(direct_basis(lp))
    else:
        xyz = np.zeros((0, 3))
    missing = np.flatnonzero(~np.all(np.isfinite(xyz), axis=1))
    if missing.size:
        raise CifError(
            f"Atom {labels[missing[0]]} of {path.name} has no coordinates ('?' or '.'); every "
            "atom needs _atom_site_fract_x, _y and _z."
        )
    occ = np.nan_to_num(_column(block, "_atom_site_occupancy", n, 1.0), nan=1.0)
    b_iso = _column(block, "_atom_site_b_iso_or_equiv", n)
    u_iso = _column(block, "_atom_site_u_iso_or_equiv", n)
    b_iso = np.where(np.isnan(b_iso), 8 * math.pi**2 * u_iso, b_iso)
    u_cif = _aniso(block, labels, lp)
    if u_cif is not None and "_atom_site_adp_type" in block:
        # An atom the file calls isotropic (Uiso, Biso) keeps its U_iso even where the aniso
        # loop has a row for it: that row is the refinement's left-over, not its result.
        types = [str(v).lower() for v in block["_atom_site_adp_type"]]
        u_cif[[t in ("uiso", "biso") for t in types]] = np.nan
    mult = np.nan_to_num(_column(block, "_atom_site_symmetry_multiplicity", n, 0.0))
    has_displacements = bool(np.any(np.isfinite(b_iso))) or u_cif is not None
    return AsymmetricUnit(
        name=name,
        lattice_parameters=lp,
        labels=labels,
        symbols=symbols,
        positions=xyz,
        occupancies=occ,
        b_iso=b_iso,
        u_cif=u_cif,
        multiplicity=mult.astype(int),
        operations=_file_operations(block, lp, path.name)
        if n
        else Operations(np.eye(3, dtype=int)[None], np.zeros((1, 3)), "P1"),
        has_displacements=has_displacements,
    )


# ----------------------------------------------------------------------------------------
# Expansion of the asymmetric unit
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpandedCell:
    """Every atom of the cell: ``u_cart`` (n, 3, 3) in Cartesian Å², NaN rows for atoms
    without an anisotropic tensor, None when the CIF has no aniso loop."""

    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    positions: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray
    u_cart: np.ndarray | None


def expand(unit: AsymmetricUnit) -> ExpandedCell:
    """Apply the operations to every listed atom (positions and U tensors).

    Images of a site closer than :data:`SITE_MERGE_TOLERANCE` are one atom, put exactly on
    the special position (the mean of those images); its U is averaged over the site's
    own operations, U = ⟨R U Rᵀ⟩, after checking that the CIF's tensor already obeys them.

    Raises
    ------
    CifError
        A site whose images do not split into equal groups (the operations and the
        coordinates disagree), a multiplicity that differs from the CIF's
        ``_atom_site_symmetry_multiplicity``, or a U tensor that breaks its site symmetry.
    """
    ops = unit.operations
    basis = direct_basis(unit.lattice_parameters)
    cart_rot = cartesian_rotations(ops.rotations.astype(float), basis)
    k = len(ops)
    labels, symbols, positions, occ, b_iso, u_out = [], [], [], [], [], []
    for i, label in enumerate(unit.labels):
        p = unit.positions[i]
        offsets = p @ ops.rotations.transpose(0, 2, 1) + ops.translations - p
        offsets -= np.round(offsets)
        stabilizer = np.flatnonzero(np.linalg.norm(offsets @ basis, axis=1) < SITE_MERGE_TOLERANCE)
        p = p + offsets[stabilizer].mean(axis=0)
        images = np.mod(p @ ops.rotations.transpose(0, 2, 1) + ops.translations, 1.0)
        kept: list[int] = []
        for j in range(k):
            d = images[kept] - images[j]
            d -= np.round(d)
            if not kept or np.linalg.norm(d @ basis, axis=1).min() >= SITE_MERGE_TOLERANCE:
                kept.append(j)
        m = len(kept)
        if m * len(stabilizer) != k:
            raise CifError(
                f"Atom {label} at {np.round(unit.positions[i], 5).tolist()}: the {k} symmetry "
                f"operations ({ops.source}) give {m} images, which does not divide {k} evenly. "
                "The atom lies a little off a special position; give its coordinates exactly "
                "(e.g. 0.33333 for 1/3) or check the operations."
            )
        if unit.multiplicity[i] and unit.multiplicity[i] != m:
            raise CifError(
                f"Atom {label}: the CIF states multiplicity {unit.multiplicity[i]} but its "
                f"symmetry operations ({ops.source}) give {m} atoms. The operations and the "
                "coordinates belong to different settings (e.g. origin choice 1 and 2); list "
                "the operations of the setting the coordinates use, or name it (e.g. "
                "'F d -3 m :2')."
            )
        u_images = np.full((m, 3, 3), np.nan)
        if unit.u_cif is not None and np.all(np.isfinite(unit.u_cif[i])):
            u = u_cif_to_cartesian(unit.u_cif[i], basis)
            site_rot = cart_rot[stabilizer]
            mapped = site_rot @ u @ site_rot.transpose(0, 2, 1)
            worst = float(np.abs(mapped - u).max())
            if worst > U_SYMMETRY_TOLERANCE:
                raise CifError(
                    f"Atom {label}: its anisotropic displacement tensor breaks the symmetry of "
                    f"its site (R U Rᵀ differs from U by {worst:.2g} Å²). Give U_ij that obey "
                    "the site's constraints (e.g. U11 = U22 = 2 U12 on a 3-fold axis of "
                    "hexagonal axes) or check the operations."
                )
            u = mapped.mean(axis=0)
            u_images = cart_rot[kept] @ u @ cart_rot[kept].transpose(0, 2, 1)
        labels += [label] + [f"{label}_{n + 1}" for n in range(1, m)]
        symbols += [unit.symbols[i]] * m
        positions.append(images[kept])
        occ += [unit.occupancies[i]] * m
        b_iso += [unit.b_iso[i]] * m
        u_out.append(u_images)
    return ExpandedCell(
        labels=tuple(labels),
        symbols=tuple(symbols),
        positions=np.concatenate(positions) if positions else np.zeros((0, 3)),
        occupancies=np.array(occ, float),
        b_iso=np.array(b_iso, float),
        u_cart=None if unit.u_cif is None else np.concatenate(u_out),
    )
