"""Higher-order Laue zones (HOLZ): which upper-zone reflections enter the beam pool, and where their lines lie.

The zone axis [uvw] is a direct-lattice direction and the reflections (hkl) live in
reciprocal space; a reflection belongs to Laue zone n = h·u + k·v + l·w, and the zones are
planes at height g_z = n / ``|r_uvw|`` along the beam (r_uvw the lattice vector [uvw]). The
engine's beam travels along +[uvw] (k_z > 0), so the Ewald sphere, which curves away from
the beam's direction of travel, meets the zones of **negative** n: zone n < 0 on a ring of
radius about sqrt(2K ``|n|`` / ``|r_uvw|``). The engine computes every excitation error exactly in
three dimensions (:func:`~hyperspy_lacbed.bloch.geometry.excitation_errors`: the distance
along k̂ from g to the Ewald sphere of the tilt's own wave vector), so HOLZ beams need no
approximation of their own: they only have to be in the pool.

:func:`holz_reflections` chooses them. A reflection of a zone n ≠ 0 enters the pool when

1. it can come, somewhere in the disc, as close to the Ewald sphere as the zero-order
   beams that the beam counts take (``s_reach``: the largest |s_g| anywhere in the disc of
   the ``beams`` zero-order beams nearest the sphere at the zone axis, to first order in
   the tilt). The strong/weak rule ranks every pool beam by |s_g| at each tilt, so a HOLZ
   beam farther out would never be chosen; nearer ones compete with the ZOLZ beams on
   equal terms, and the tolerance-driven beam counts decide how many are strong or Bethe
   beams; and
2. its line can be seen at the tolerance: its kinematic depth at the largest thickness,
   (π t |U_g| / K)², the intensity the reflection takes from 000 where s_g = 0, is at
   least ``DEPTH_FRACTION`` times the tolerance. That bounds how far out in reciprocal
   space the zones go: an upper bound of |U_g| that falls monotonically with |g| (the
   atoms' scattering factors with their smallest Debye–Waller factors, in phase) gives
   the largest |g| any such reflection can have, and with it the highest zone.

:func:`line_excitation_errors` and :func:`line_crossing` are the kinematic geometry of
the lines (s_g at each tilt of a disc; where s_g = 0 along a path); :func:`~hyperspy_lacbed.bloch.holz_lines.line_branches`
their first-order dynamical positions (the line splits where the HOLZ beam meets each
zero-order Bloch state); the engine's lines are validated against both
(``benchmarks/bench_holz.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors
from hyperspy_lacbed.crystal.scattering import scattering_factor
from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame, zolz_reflections
from hyperspy_lacbed.crystal.structure_factors import structure_factors
from hyperspy_lacbed.units import relativistic_gamma

__all__ = [
    "DEPTH_FRACTION",
    "HolzReach",
    "holz_beam_share",
    "holz_reflections",
    "laue_zone_spacing",
    "line_crossing",
    "line_excitation_errors",
]

#: A HOLZ reflection enters the pool when its kinematic line depth (π t |U_g| / K)² at
#: the largest thickness is at least this fraction of the tolerance.
DEPTH_FRACTION = 0.1
#: Largest |g| (1/Å) enumerated whatever the bound says (a crystal with no Debye–Waller
#: factors has scattering factors that fall only as 1/q²).
G_CEILING = 8.0


@dataclass(frozen=True)
class HolzReach:
    """What decides which HOLZ reflections a calculation needs.

    Attributes
    ----------
    thickness
        The largest thickness, Å.
    tolerance
        The convergence tolerance (fraction of the image maximum).
    tilt_radius
        Largest transverse tilt ``|k_t|`` of the calculation (the disc radius), 1/Å.
    beams
        Strong + weak beams of each tilt: a HOLZ beam farther from the Ewald sphere than
        the zero-order beam of this rank is never chosen.
    """

    thickness: float
    tolerance: float
    tilt_radius: float
    beams: int


def laue_zone_spacing(crystal: Crystal, zone_axis) -> float:
    """Height (1/Å) between successive Laue zones of [uvw]: 1 / ``|r_uvw|``, uvw reduced."""
    uvw = np.asarray(zone_axis, int)
    uvw = uvw // math.gcd(*(abs(int(x)) for x in uvw))
    return 1.0 / float(np.linalg.norm(uvw @ crystal.direct_basis))


def _u_bound(crystal: Crystal, q: np.ndarray, voltage: float, table: str, dw: bool) -> np.ndarray:
    """An upper bound of |U_g| at |g| = q that never rises with q (Å⁻²).

    Every atom in phase, with its smallest Debye–Waller factor (the smallest eigenvalue of
    an anisotropic tensor).
    """
    if not dw:
        b_low = np.zeros(len(crystal))
    elif crystal.u_aniso is None:
        b_low = np.asarray(crystal.b_iso, float)
    else:
        b_low = 8 * math.pi**2 * np.clip(np.linalg.eigvalsh(crystal.u_aniso)[:, 0], 0, None)
    total = np.zeros_like(q)
    for element in set(crystal.elements):
        f = np.abs(scattering_factor(element, q, table=table))
        for j in np.flatnonzero(np.asarray(crystal.elements) == element):
            total += crystal.occupancies[j] * f * np.exp(-b_low[j] * q**2 / 4)
    bound = relativistic_gamma(voltage) / (math.pi * crystal.volume) * total
    # a running maximum from the far end makes it non-increasing whatever the table does
    return np.maximum.accumulate(bound[::-1])[::-1]


def holz_reflections(
    crystal: Crystal,
    frame: ZoneFrame,
    k0: float,
    voltage: float,
    reach: HolzReach,
    zero_order: np.ndarray,
    *,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> np.ndarray:
    """Miller indices (n, 3) of the upper-Laue-zone reflections a calculation needs.

    Parameters
    ----------
    crystal, frame
        The crystal and its zone-axis frame.
    k0
        Wave number K in the crystal, 1/Å.
    voltage
        Accelerating voltage, V.
    reach
        Thickness, tolerance and tilt radius of the calculation.
    zero_order
        The zero-order pool's reflections (m, 3).
    scattering_factors, debye_waller
        As for :func:`~hyperspy_lacbed.crystal.structure_factors.structure_factors`.

    Returns
    -------
    numpy.ndarray
        Integer (n, 3), sorted by |g|; the reflections with h·u + k·v + l·w ≠ 0 whose
        smallest |s_g| over the disc (first order in the tilt) is at most ``s_reach``
        and whose kinematic line depth (π t |U_g| / K)² at ``reach.thickness`` is at
        least :data:`DEPTH_FRACTION` × ``reach.tolerance``. Empty (0, 3) when none is.
    """
    axis = np.array([[0.0, 0.0, k0]])
    g0 = crystal.g_vectors(np.asarray(zero_order).reshape(-1, 3)) @ frame.rotation.T
    s_zero = np.abs(excitation_errors(axis, g0, k0)[0])
    # first order in the tilt: |s_g(k_t)| ≤ |s_g(0)| + |k_t| |g_t| / K (5 % spare)
    spread = 1.05 * reach.tilt_radius * np.linalg.norm(g0[:, :2], axis=1) / k0
    taken = np.argsort(s_zero, kind="stable")[: max(reach.beams, 1)]
    s_reach = float((s_zero + spread)[taken].max())
    u_min = k0 * math.sqrt(DEPTH_FRACTION * reach.tolerance) / (math.pi * reach.thickness)
    q = np.linspace(0.0, G_CEILING, 801)
    above = np.flatnonzero(
        _u_bound(crystal, q, voltage, scattering_factors, debye_waller) >= u_min
    )
    empty = np.zeros((0, 3), int)
    if not above.size:
        return empty
    g_max = float(q[min(above[-1] + 1, len(q) - 1)])
    spacing = laue_zone_spacing(crystal, frame.zone_axis)
    # |s_g| ≥ |n|·spacing ∓ g²/2K − (tilt spread): zones below the beam (n < 0) come
    # within s_reach while their ring fits within g_max; zones above it (n > 0) only
    # within s_reach of the plane.
    spread = reach.tilt_radius * g_max / k0 + reach.tilt_radius**2 / k0
    n_low = math.floor((s_reach + g_max**2 / (2 * k0) + spread) / spacing)
    n_high = math.floor((s_reach + spread) / spacing)
    zones = [n for n in range(-n_low, n_high + 1) if n != 0]
    if not zones:
        return empty
    hkl = zolz_reflections(crystal, frame.zone_axis, g_max, zones)
    g = crystal.g_vectors(hkl) @ frame.rotation.T
    s0 = excitation_errors(axis, g, k0)[0]
    # First order in the tilt, s_g(k_t) = s_g(0) − k_t·g_t / K (+ O(k_t²)); 5 % spare.
    g_t = np.linalg.norm(g[:, :2], axis=1)
    margin = 1.05 * reach.tilt_radius * g_t / k0 + reach.tilt_radius**2 * np.abs(g[:, 2]) / k0**2
    near = np.abs(s0) - margin <= s_reach
    hkl = hkl[near]
    if not len(hkl):
        return empty
    # Reflections forbidden by the lattice or the space group have U_g = 0 and go here.
    u = np.abs(structure_factors(crystal, hkl, voltage, scattering_factors, debye_waller))
    return hkl[u >= u_min]


def line_excitation_errors(
    crystal: Crystal,
    frame: ZoneFrame,
    hkl: np.ndarray,
    kx: np.ndarray,
    ky: np.ndarray,
    k0: float,
) -> np.ndarray:
    """Kinematic excitation errors s_g (1/Å) of reflections at tilts: their lines are s_g = 0.

    Parameters
    ----------
    crystal, frame
        The crystal and its zone-axis frame.
    hkl
        Reflections (R, 3).
    kx, ky
        Transverse tilts (any shape, 1/Å).
    k0
        Wave number K in the crystal (the engine's ``pool.k0``), 1/Å.

    Returns
    -------
    numpy.ndarray
        s_g of shape ``kx.shape + (R,)``.
    """
    g = crystal.g_vectors(np.asarray(hkl).reshape(-1, 3)) @ frame.rotation.T
    shape = np.shape(kx)
    k = incident_vectors(np.ravel(kx), np.ravel(ky), k0)
    return excitation_errors(k, g, k0).reshape(*shape, len(g))


def line_crossing(
    crystal: Crystal,
    frame: ZoneFrame,
    hkl,
    k0: float,
    point,
    direction,
    span: float,
) -> float:
    """Where the kinematic line of ``hkl`` (s_g = 0) crosses a straight path of tilts.

    Parameters
    ----------
    crystal, frame
        The crystal and its zone-axis frame.
    hkl
        One reflection.
    k0
        Wave number K in the crystal, 1/Å.
    point, direction
        The path k_t = point + u · direction (1/Å; ``direction`` need not be a unit vector).
    span
        The path runs over u in [−span, span].

    Returns
    -------
    float
        u of the crossing, NaN when s_g keeps its sign over the path.
    """
    from scipy.optimize import brentq

    p, d = np.asarray(point, float), np.asarray(direction, float)

    def s_at(u: float) -> float:
        k = p + u * d
        return float(line_excitation_errors(crystal, frame, [hkl], k[0], k[1], k0)[0])

    lo, hi = s_at(-span), s_at(span)
    if lo * hi > 0:
        return math.nan
    return float(brentq(s_at, -span, span, xtol=1e-12))


def holz_beam_share(pool, zone_axis, k: np.ndarray, beams: int) -> int:
    """How many HOLZ beams of ``pool`` come nearer the Ewald sphere than the ``beams``-th
    zero-order beam, at the worst of the incident vectors ``k`` (T, 3).

    The automatic beam choice adds them to the counts its zero-order physics asks for, so
    that HOLZ beams join the zero-order ones instead of displacing them.
    """
    layer = pool.hkl @ np.asarray(zone_axis)
    s = np.abs(excitation_errors(np.atleast_2d(k), pool.g, pool.k0))  # (T, P)
    zero = (layer == 0) & pool.coupled
    n = min(max(int(beams), 1), int(zero.sum()))
    kth = np.partition(s[:, zero], n - 1, axis=1)[:, n - 1 : n]
    upper = (layer != 0) & pool.coupled
    return int((s[:, upper] <= kth).sum(1).max()) if upper.any() else 0
