"""The beam pool and beam rule of a set of :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings`.

One home for what every calculation derives from the settings before it builds
matrices: the pool's size, the strong/weak rule, the surface normal in the frame and
K (refracted by the mean inner potential when the settings ask). The engine
(:mod:`~hyperspy_lacbed.bloch.discs`), the refinement's differentiable model and the
surrogates' physics layer all take their pools from :func:`prepare_pool`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch import convergence as conv
from hyperspy_lacbed.bloch.holz import HolzReach
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.bloch.solver import BeamPool, BeamRule, build_pool, refracted_wavenumber
from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame
from hyperspy_lacbed.units import electron_wavelength

__all__ = [
    "beam_rule",
    "explicit_beams",
    "holz_reach",
    "is_explicit",
    "normal_in_frame",
    "pool_size",
    "prepare_pool",
]


def explicit_beams(settings: SimulationSettings) -> tuple[int, int]:
    """(strong, weak) of an explicit choice; a count not given takes 100 strong / 0 weak."""
    strong = conv.FALLBACK_STRONG_BEAMS if settings.strong_beams is None else settings.strong_beams
    return strong, settings.weak_beams or 0


def is_explicit(settings: SimulationSettings) -> bool:
    """Whether the settings fix the beams (counts or a preset) instead of a tolerance."""
    return (
        settings.strong_beams is not None
        or settings.weak_beams is not None
        or settings.preset is not None
    )


def pool_size(settings: SimulationSettings) -> int:
    """Reflections in the pool: about three times the strong beams, and room for the weak."""
    if settings.beam_pool:
        return settings.beam_pool
    strong, weak = explicit_beams(settings)
    return max(3 * strong + 30, math.ceil(1.5 * (strong + weak)) + 30, 60)


def beam_rule(settings: SimulationSettings) -> BeamRule:
    """The strong/weak selection rule of the settings' explicit beam counts."""
    strong, weak = explicit_beams(settings)
    return BeamRule(
        strong_beams=strong,
        weak_beams=weak,
        s_step=settings.strong_beam_step,
        count_uncoupled=settings.strong_beam_step > 0,
    )


def normal_in_frame(crystal: Crystal, frame: ZoneFrame, surface_normal: Any) -> np.ndarray:
    """Unit surface normal in the zone-axis frame (the beam direction when not given)."""
    if surface_normal is None:
        return np.array([0.0, 0.0, 1.0])
    n_cart = np.asarray(surface_normal, float) @ crystal.direct_basis
    return frame.rotation @ (n_cart / np.linalg.norm(n_cart))


def prepare_pool(
    crystal: Crystal,
    frame: ZoneFrame,
    settings: SimulationSettings,
    normal: np.ndarray,
    required: np.ndarray,
    g_max: float | None = None,
    factors: dict | None = None,
    tilt_radius: float | None = None,
) -> tuple[BeamPool, BeamRule]:
    """The beam pool (with K) and the beam rule for a set of settings.

    ``factors``: see :func:`~hyperspy_lacbed.bloch.solver.cached_optical_factors`. With
    ``settings.holz`` the pool holds the upper-Laue-zone reflections that the settings'
    largest thickness and tolerance need (:func:`holz_reach`) for tilts up to
    ``tilt_radius`` (1/Å; default the settings' disc radius).
    """
    k = 1.0 / electron_wavelength(settings.voltage)
    if settings.mean_inner_potential:
        # Inside the crystal K² = K_vac² + U_0 (refraction by the mean inner potential).
        k = refracted_wavenumber(
            crystal, k, settings.voltage, settings.scattering_factors, settings.debye_waller
        )
    pool = build_pool(
        crystal,
        frame,
        k,
        settings.voltage,
        pool_size(settings),
        g_max=g_max,
        laue_zones=settings.laue_zones,
        scattering_factors=settings.scattering_factors,
        debye_waller=settings.debye_waller,
        absorption=settings.absorption,
        absorption_fraction=settings.absorption_fraction,
        diagonal=settings.diagonal,
        normal=normal,
        required=required,
        factors=factors,
        holz=holz_reach(settings, tilt_radius) if settings.holz else None,
    )
    return pool, beam_rule(settings)


def holz_reach(settings: SimulationSettings, tilt_radius: float | None = None) -> HolzReach:
    """What decides the HOLZ reflections of a calculation: its largest thickness, its
    tolerance (the default one where the tolerance is ``inf``), its tilt radius and its
    strong + weak beams."""
    radius = settings.disc_radius if tilt_radius is None else tilt_radius
    tolerance = settings.tolerance if math.isfinite(settings.tolerance) else conv.DEFAULT_TOLERANCE
    strong, weak = explicit_beams(settings)
    return HolzReach(max(settings.thickness), tolerance, float(radius or 0.0), strong + weak)
