"""Refinable parameters: names, bounds, and how each one acts on the crystal.

A parameter is named by a short string (``"thickness"``, ``"B[Ge]"``, ``"xyz[O1]"``,
``"Ug[1,1,1]"``, ...); :func:`resolve_parameters` checks each name against the crystal
(an element that is not there, a coordinate fixed by symmetry, a phase that symmetry
forbids: clear errors) and expands it into scalar :class:`Parameter` objects with
physical start values and bounds. Symmetry comes from spglib on the crystal's sites:
free Wyckoff coordinates move along the directions the site symmetry allows, and every
atom of the orbit moves with its image of that displacement.

Plain arrays only (numpy); no torch, no HyperSpy.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hyperspy_lacbed.crystal.structure import Crystal

#: Parameter kinds and what they mean (units in brackets).
KINDS = {
    "thickness": "specimen thickness [Å]",
    "B": "isotropic Debye–Waller factor of an element or a site [Å²]",
    "occupancy": "site occupancy of an element or a site",
    "xyz": "free fractional coordinate of a site along a symmetry-allowed direction",
    "Ug": "relative change of |U_g| of a reflection and its symmetry equivalents",
    "Ug_phase": "phase change of U_g (only where symmetry does not fix it) [rad]",
    "absorption": "proportional absorption fraction κ (U' = κ U)",
    "lattice": "a lattice parameter a, b or c, with the lengths symmetry ties to it [Å]",
    "scale": "disc calibration: factor on the pixel size dk",
    "offset": "tilt-grid centre offset (kx, ky) [1/Å]",
    "blur": "Gaussian blur σ of the simulation [data pixels]",
    "background": "additive background level (least squares only) [data units]",
}


class ParameterError(ValueError):
    """A parameter the crystal or the figure of merit cannot have, with the fix."""


@dataclass
class Parameter:
    """One scalar refinable parameter.

    Attributes
    ----------
    name
        Unique name, e.g. ``"B[Ge]"``, ``"xyz[O1].1"``, ``"offset_x"``.
    kind
        One of :data:`KINDS`.
    value
        Start value in physical units.
    lower, upper
        Bounds (the optimiser works on a logistic transform that keeps them).
    unit
        Unit of the value.
    step
        Typical size of a change, used to scale the finite-difference Jacobian.
    atoms
        For B/occupancy/xyz: how the parameter changes the atoms (per-atom weights,
        or a displacement pattern (n_atoms, 3) for coordinates).
    hkl
        For U_g parameters: the tied reflections (n, 3) and their signs (+1 for g-like,
        −1 for the Friedel mates that take the complex conjugate).
    axes
        For lattice parameters: which cell lengths (a, b, c) scale with it, (3,) of 0/1.
    """

    name: str
    kind: str
    value: float
    lower: float
    upper: float
    unit: str = ""
    step: float = 1.0
    atoms: np.ndarray | None = field(default=None, repr=False)
    hkl: np.ndarray | None = field(default=None, repr=False)
    signs: np.ndarray | None = field(default=None, repr=False)
    axes: np.ndarray | None = field(default=None, repr=False)
    reference: float = field(default=math.nan, repr=False)

    def __post_init__(self) -> None:
        # The crystal's own value, from which B, occupancy and xyz changes are measured;
        # unlike ``value`` it never changes during a fit.
        if math.isnan(self.reference):
            self.reference = float(self.value)

    def to_dict(self) -> dict:
        """Plain values (for metadata)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "value": float(self.value),
            "lower": float(self.lower),
            "upper": float(self.upper),
            "unit": self.unit,
        }


@dataclass(frozen=True)
class Site:
    """A symmetry orbit of crystal positions (mixed-occupancy atoms share it)."""

    label: str
    elements: tuple[str, ...]
    atoms: np.ndarray  # indices of every atom on the orbit
    representative: np.ndarray  # fractional position of one member
    free_directions: np.ndarray  # (n_free, 3) fractional displacement basis
    displacement: np.ndarray  # (n_free, n_atoms_total, 3): each atom's image of each direction


def _same_position(a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    d = a - b
    d -= np.round(d)
    return np.all(np.abs(d) < tol, axis=-1)


def space_group_operations(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Space-group operations (rotations, translations) on fractional coordinates, and the sites.

    Returns
    -------
    rotations, translations
        (n_ops, 3, 3) integer and (n_ops, 3) arrays from spglib.
    positions
        One list entry per distinct position: the indices of the atoms there.
    """
    import spglib

    groups: list[list[int]] = []
    for i, p in enumerate(crystal.positions):
        for g in groups:
            if _same_position(crystal.positions[g[0]], p):
                g.append(i)
                break
        else:
            groups.append([i])
    keys: dict = {}
    types = []
    for g in groups:
        key = tuple(
            sorted(
                (
                    crystal.elements[i],
                    round(float(crystal.occupancies[i]), 4),
                    round(float(crystal.b_iso[i]), 3),
                )
                for i in g
            )
        )
        types.append(keys.setdefault(key, len(keys) + 1))
    cell = (crystal.direct_basis, crystal.positions[[g[0] for g in groups]], types)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = spglib.get_symmetry_dataset(cell, symprec=1e-3)
    if data is None:
        return np.eye(3, dtype=int)[None], np.zeros((1, 3)), [np.array(g) for g in groups]
    return (
        np.asarray(data.rotations),
        np.asarray(data.translations),
        [np.array(g) for g in groups],
    )


def crystal_sites(crystal: Crystal) -> list[Site]:
    """The crystal's symmetry orbits with their free (Wyckoff) coordinate directions.

    The directions a site may move along are the fixed space of its site-symmetry group
    (the average of the site operations' rotations is the projector onto it); the atom
    that operation (R, t) maps the representative onto moves by R·d.
    """
    rotations, translations, groups = space_group_operations(crystal)
    pos = crystal.positions
    n_atoms = len(crystal)
    assigned = np.zeros(len(groups), bool)
    first = np.array([g[0] for g in groups])
    sites: list[Site] = []
    counters: dict[str, int] = {}
    for gi, g in enumerate(groups):
        if assigned[gi]:
            continue
        r0 = pos[g[0]]
        images = pos[first]
        member_ops: dict[int, int] = {}
        site_ops = []
        for o, (rot, tr) in enumerate(zip(rotations, translations)):
            image = rot @ r0 + tr
            hit = np.flatnonzero(_same_position(images, image))
            if len(hit):
                member_ops.setdefault(int(hit[0]), o)
            if _same_position(image, r0):
                site_ops.append(rot)
        members = sorted(member_ops)
        assigned[members] = True
        projector = np.mean(np.array(site_ops, float), axis=0)
        u, s, _ = np.linalg.svd(projector)
        basis = u[:, s > 0.5].T  # (n_free, 3)
        basis = np.array([b / b[np.argmax(np.abs(b))] for b in basis]).reshape(-1, 3)
        basis[np.abs(basis) < 1e-9] = 0.0
        disp = np.zeros((len(basis), n_atoms, 3))
        atoms = []
        for m in members:
            rot = rotations[member_ops[m]]
            for a in groups[m]:
                atoms.append(a)
                for k, b in enumerate(basis):
                    disp[k, a] = rot @ b
        element = crystal.elements[g[0]]
        counters[element] = counters.get(element, 0) + 1
        sites.append(
            Site(
                label=f"{element}{counters[element]}",
                elements=tuple(sorted({crystal.elements[i] for i in g})),
                atoms=np.array(sorted(atoms)),
                representative=r0.copy(),
                free_directions=basis,
                displacement=disp,
            )
        )
    return sites


_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\[(.*)\])?\s*(?:\.(\w+))?\s*$")


def _parse_hkl(text: str) -> tuple[int, int, int]:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if len(parts) == 1 and re.fullmatch(r"-?\d-?\d-?\d", parts[0]):
        parts = re.findall(r"-?\d", parts[0])
    if len(parts) != 3:
        raise ParameterError(
            f"Cannot read a reflection from {text!r}; write it as 'Ug[1,1,1]' or 'Ug[111]'."
        )
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _atoms_of(crystal: Crystal, sites: list[Site], key: str, kind: str) -> tuple[np.ndarray, str]:
    """Atom indices an element name or a site label refers to."""
    by_label = {s.label: s for s in sites}
    if key in crystal.elements:
        return np.array([i for i, e in enumerate(crystal.elements) if e == key]), key
    if key in by_label:
        site = by_label[key]
        return site.atoms, key
    raise ParameterError(
        f"{kind}[{key}]: {key!r} is neither an element of the crystal "
        f"({', '.join(sorted(set(crystal.elements)))}) nor a site "
        f"({', '.join(by_label)}); use one of those."
    )


def reflection_orbit(crystal: Crystal, hkl: Sequence[int]) -> tuple[np.ndarray, bool]:
    """The symmetry equivalents of reflection ``hkl`` and whether −g is among them.

    Reciprocal vectors transform with the transposed rotation: if r → R r then h → h R⁻¹,
    and the set is the same over the whole group.
    """
    h = np.asarray(hkl, int)
    rotations = crystal.point_group_rotations
    images = {tuple(int(v) for v in h @ r) for r in rotations}
    orbit = np.array(sorted(images))
    return orbit, tuple(-h) in images


def resolve_parameters(
    names: Sequence[str],
    crystal: Crystal,
    *,
    thickness: float,
    absorption: str,
    absorption_fraction: float,
    fom: str,
    blur: float,
    keep_site_sums: bool = True,
    disc_radius: float = 1.0,
) -> list[Parameter]:
    """Expand user parameter names into scalar :class:`Parameter` objects.

    Parameters
    ----------
    names
        ``"thickness"``, ``"B"`` (one per element), ``"B[El]"`` (an element),
        ``"B[Site]"`` (a site label, see :func:`crystal_sites`), ``"occupancy[El or Site]"``,
        ``"xyz[Site]"``, ``"Ug[h,k,l]"``, ``"Ug[h,k,l].phase"``, ``"absorption"``,
        ``"scale"``, ``"offset"``, ``"blur"``, ``"background"``, and the lattice
        parameters ``"a"`` (every length symmetry ties to a: all three in a cubic or
        rhombohedral cell, a and b in a tetragonal, trigonal or hexagonal one), ``"c"``
        (where c is free of a) and ``"b"`` (orthorhombic and lower).
    crystal
        The start crystal.
    thickness
        Start thickness in Å.
    absorption, absorption_fraction
        The absorption model (``"absorption"`` needs ``"proportional"``).
    fom
        ``"zncc"`` or ``"lsq"`` (a background cannot change the ZNCC).
    blur
        Start blur σ in data pixels.
    keep_site_sums
        Occupancies on a mixed site keep their sum: the others change by the opposite
        amount, shared in proportion to their start values.
    disc_radius
        Disc radius in 1/Å (bounds of the tilt offset).

    Returns
    -------
    list of Parameter
    """
    if isinstance(names, str):
        names = [names]
    ctx = _Context(
        crystal, crystal_sites(crystal), thickness, absorption, absorption_fraction, fom,
        blur, keep_site_sums, disc_radius,
    )  # fmt: skip
    out: list[Parameter] = []
    seen: set[str] = set()
    for raw in names:
        m = _PATTERN.match(str(raw))
        if not m:
            raise ParameterError(f"Cannot read parameter {raw!r}; see KINDS for the names.")
        kind, key, suffix = m.group(1), m.group(2), m.group(3)
        build = _BUILDERS.get(kind if kind in ("B", "b_iso", "B_iso") else kind.lower())
        if build is None:
            raise ParameterError(
                f"Unknown parameter {raw!r}; choose from {', '.join(KINDS)} "
                "(e.g. 'B[Ge]', 'xyz[O1]', 'Ug[1,1,1]')."
            )
        for p in build(ctx, None if key is None else key.strip(), suffix, str(raw)):
            if p.name in seen:
                raise ParameterError(f"Parameter {p.name!r} is given twice; list it once.")
            seen.add(p.name)
            out.append(p)
    for p in out:
        if not (p.lower <= p.value <= p.upper) or not math.isfinite(p.value):
            raise ParameterError(
                f"{p.name} starts at {p.value}, outside its bounds [{p.lower}, {p.upper}]."
            )
    return out


@dataclass(frozen=True)
class _Context:
    """What the parameter builders read: the crystal, its sites and the fit's settings."""

    crystal: Crystal
    sites: list[Site]
    thickness: float
    absorption: str
    absorption_fraction: float
    fom: str
    blur: float
    keep_site_sums: bool
    disc_radius: float

    @property
    def elements(self) -> list[str]:
        return sorted(set(self.crystal.elements), key=self.crystal.elements.index)

    def atom_weights(self, atoms: np.ndarray) -> np.ndarray:
        weights = np.zeros(len(self.crystal))
        weights[atoms] = 1.0
        return weights


def _thickness(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    t = ctx.thickness
    return [Parameter("thickness", "thickness", t, 0.5 * t, 2.0 * t, "Å", 10.0)]


def _b_iso(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    out = []
    for k in ctx.elements if key is None else [key]:
        atoms, label = _atoms_of(ctx.crystal, ctx.sites, k, "B")
        b0 = float(np.mean(ctx.crystal.b_iso[atoms]))
        if not np.allclose(ctx.crystal.b_iso[atoms], b0):
            raise ParameterError(
                f"B[{label}]: its atoms start with different B; refine the sites "
                f"separately ({', '.join(s.label for s in ctx.sites)})."
            )
        w = ctx.atom_weights(atoms)
        out.append(Parameter(f"B[{label}]", "B", b0, 0.0, max(4.0, 3 * b0), "Å²", 0.05, w))
    return out


def _occupancy(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    if key is None:
        raise ParameterError("occupancy needs an element or site: 'occupancy[Sn]'.")
    c = ctx.crystal
    atoms, label = _atoms_of(c, ctx.sites, key, "occupancy")
    o0 = float(np.mean(c.occupancies[atoms]))
    weights = ctx.atom_weights(atoms)
    if ctx.keep_site_sums:
        # the other atoms of a mixed site change by the opposite amount, shared in
        # proportion to their start occupancies
        for a in atoms:
            others = [
                j
                for j in range(len(c))
                if j not in atoms and _same_position(c.positions[j], c.positions[a])
            ]
            total = c.occupancies[others].sum()
            for j in others:
                weights[j] -= c.occupancies[j] / total if total > 0 else 0.0
    # Above 1 is unphysical but keeps a full site off the bound of the transform.
    return [Parameter(f"occupancy[{label}]", "occupancy", o0, 0.0, 1.5, "", 0.01, weights)]


def _xyz(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    by_label = {s.label: s for s in ctx.sites}
    if key is None or key not in by_label:
        hint = ", ".join(f"{s.label} ({len(s.free_directions)} free)" for s in ctx.sites)
        raise ParameterError(f"xyz needs a site label, got {key!r}; the sites are: {hint}.")
    site = by_label[key]
    n_free = len(site.free_directions)
    if n_free == 0:
        raise ParameterError(
            f"xyz[{site.label}]: the site at {np.round(site.representative, 4).tolist()} "
            "is fixed by symmetry (no free coordinate); refine another site or lower "
            "the symmetry of the model."
        )
    return [
        Parameter(
            f"xyz[{site.label}]" + (f".{k + 1}" if n_free > 1 else ""),
            "xyz",
            0.0,
            -0.05,
            0.05,
            "fractional",
            1e-3,
            site.displacement[k],
        )
        for k in range(n_free)
    ]


def _ug(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    from hyperspy_lacbed.crystal.structure_factors import structure_factors

    if key is None:
        raise ParameterError("Ug needs a reflection: 'Ug[1,1,1]'.")
    hkl = _parse_hkl(key)
    if hkl == (0, 0, 0):
        raise ParameterError("Ug[0,0,0] is the mean inner potential; refine a reflection g ≠ 0.")
    orbit, friedel = reflection_orbit(ctx.crystal, hkl)
    if abs(structure_factors(ctx.crystal, np.array([hkl]))[0]) < 1e-9:
        raise ParameterError(
            f"Ug[{','.join(map(str, hkl))}] is zero (forbidden reflection); refine an "
            "allowed reflection."
        )
    in_orbit = {tuple(o) for o in orbit}
    mates = np.array([r for r in (-orbit).tolist() if tuple(r) not in in_orbit]).reshape(-1, 3)
    allh = np.concatenate([orbit, mates])
    signs = np.concatenate([np.ones(len(orbit)), -np.ones(len(mates))])
    label = ",".join(map(str, hkl))
    if suffix is None:
        return [
            Parameter(f"Ug[{label}]", "Ug", 0.0, -0.2, 0.2, "relative", 1e-3, hkl=allh,
                      signs=signs)
        ]  # fmt: skip
    if suffix != "phase":
        raise ParameterError(f"Unknown suffix .{suffix} of {raw!r}; only '.phase'.")
    if friedel:
        raise ParameterError(
            f"Ug[{label}].phase: symmetry maps g onto −g, which fixes the phase of "
            "U_g; refine its amplitude 'Ug[...]' only."
        )
    return [
        Parameter(f"Ug[{label}].phase", "Ug_phase", 0.0, -0.5, 0.5, "rad", 1e-3, hkl=allh,
                  signs=signs)
    ]  # fmt: skip


def _absorption(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    if ctx.absorption != "proportional":
        raise ParameterError(
            f"'absorption' refines the proportional fraction κ, but the absorption model "
            f"is {ctx.absorption!r}; use absorption='proportional' or drop the parameter."
        )
    return [Parameter("absorption", "absorption", ctx.absorption_fraction, 0.0, 0.5, "", 0.005)]


def _offset(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    lim, step = 0.3 * ctx.disc_radius, 1e-3 * ctx.disc_radius
    return [
        Parameter("offset_x", "offset", 0.0, -lim, lim, "1/Å", step),
        Parameter("offset_y", "offset", 0.0, -lim, lim, "1/Å", step),
    ]


def lattice_axes(crystal: Crystal, name: str) -> np.ndarray:
    """Which cell lengths (a, b, c) the lattice parameter ``name`` scales, kept by symmetry.

    Cubic and rhombohedral cells (a = b = c, equal angles) have one length, ``"a"``;
    tetragonal, trigonal and hexagonal cells on hexagonal axes have ``"a"`` (a = b) and
    ``"c"``; lower symmetry has ``"a"``, ``"b"`` and ``"c"``. Angles stay fixed.
    """
    a, b, c, al, be, ga = crystal.lattice_parameters
    number = crystal.space_group_number
    tied_ab = number >= 75 and math.isclose(a, b, rel_tol=1e-6)
    tied_abc = (
        tied_ab
        and math.isclose(a, c, rel_tol=1e-6)
        and (
            number >= 195
            or (math.isclose(al, be, rel_tol=1e-6) and math.isclose(be, ga, rel_tol=1e-6))
        )
    )
    if tied_abc:
        axes = {"a": (1, 1, 1)}
    elif tied_ab:
        axes = {"a": (1, 1, 0), "c": (0, 0, 1)}
    else:
        axes = {"a": (1, 0, 0), "b": (0, 1, 0), "c": (0, 0, 1)}
    if name not in axes:
        raise ParameterError(
            f"Lattice parameter {name!r} is tied to 'a' by the symmetry of "
            f"{crystal.space_group_symbol} (a, b, c = {a:g}, {b:g}, {c:g} Å); refine "
            f"{' and '.join(repr(k) for k in axes)} instead."
        )
    return np.array(axes[name], float)


def _lattice(name: str):
    def build(ctx: _Context, key, suffix, raw) -> list[Parameter]:
        if ctx.absorption == "bird-king":
            raise ParameterError(
                f"Lattice parameter {name!r} with Bird–King absorption is not supported (its "
                "absorptive form factors are tabulated at the start cell); use "
                "absorption='proportional' or 'none'."
            )
        axes = lattice_axes(ctx.crystal, name)
        v = float(ctx.crystal.lattice_parameters["abc".index(name)])
        return [Parameter(name, "lattice", v, 0.95 * v, 1.05 * v, "Å", 1e-4 * v, axes=axes)]

    return build


def _background(ctx: _Context, key, suffix, raw) -> list[Parameter]:
    if ctx.fom == "zncc":
        raise ParameterError(
            "'background' cannot change the ZNCC (it ignores offsets); refine it with "
            "fom='lsq' or drop it."
        )
    return [Parameter("background", "background", 0.0, -1.0, 1.0, "relative", 1e-3)]


#: The builder of each parameter kind (lower-case name; ``B`` as written).
_BUILDERS = {
    "thickness": _thickness,
    "B": _b_iso,
    "b_iso": _b_iso,
    "B_iso": _b_iso,
    "occupancy": _occupancy,
    "occ": _occupancy,
    "xyz": _xyz,
    "ug": _ug,
    "absorption": _absorption,
    "scale": lambda ctx, *_: [Parameter("scale", "scale", 1.0, 0.85, 1.15, "", 1e-3)],
    "offset": _offset,
    "blur": lambda ctx, *_: [Parameter("blur", "blur", max(ctx.blur, 0.3), 0.1, 6.0, "px", 0.01)],
    "background": _background,
    "a": _lattice("a"),
    "b": _lattice("b"),
    "c": _lattice("c"),
}
