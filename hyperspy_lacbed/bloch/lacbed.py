"""LACBED discs from the Bloch-wave engine: ``hyperspy_lacbed.simulate``.

:func:`compute_discs` works on plain arrays (no HyperSpy); :func:`simulate` wraps its
result in a calibrated :class:`~hyperspy_lacbed.signals.lacbed.LACBED` signal whose
metadata holds every setting, so that ``simulate(**signal.metadata.LACBED.settings)``
reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch import convergence as conv
from hyperspy_lacbed.bloch.convergence import DEFAULT_BUDGET, DEFAULT_TOLERANCE
from hyperspy_lacbed.bloch.geometry import (
    TiltSymmetry,
    fold_tilts,
    frame_point_group,
    incident_vectors,
    tilt_grid,
)
from hyperspy_lacbed.bloch.solver import BeamPool, BeamRule, SolveStats, build_pool, solve_tilts
from hyperspy_lacbed.crystal.structure import (
    Crystal,
    integer_direction,
    load_structure,
    zolz_reflections,
    zone_frame,
)
from hyperspy_lacbed.crystal.structure_factors import (
    absorptive_structure_factors,
    structure_factors,
)
from hyperspy_lacbed.units import electron_wavelength, to_magnitude

PRESETS = ("felix",)


@dataclass(frozen=True)
class SimulationSettings:
    """Every setting of a Bloch-wave LACBED calculation, in internal units.

    Lengths in Å, reciprocal lengths in 1/Å (no 2π), voltage in V. The defaults are the
    package's default physics; :func:`felix_settings` gives Felix's conventions.
    """

    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] | None = None
    surface_normal: tuple[int, int, int] | None = None
    voltage: float = 200e3
    thickness: tuple[float, ...] = (500.0, 1000.0, 1500.0, 2000.0)
    reflections: tuple[tuple[int, int, int], ...] | None = None
    pixels: int = 64
    disc_radius: float | None = None
    absorption: str = "proportional"
    absorption_fraction: float = 0.1
    scattering_factors: str = "kirkland"
    debye_waller: bool = True
    strong_beams: int | None = None
    weak_beams: int | None = None
    tolerance: float | None = DEFAULT_TOLERANCE
    max_beams: int = DEFAULT_BUDGET.max_beams
    beam_pool: int | None = None
    strong_beam_step: float = 0.0
    laue_zones: tuple[int, ...] = (0,)
    mean_inner_potential: bool = True
    mean_absorption: bool = True
    solver: str = "auto"
    symmetry: bool = True
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for metadata."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def felix_settings(**overrides: Any) -> dict[str, Any]:
    """Settings that reproduce Felix's conventions (see ``shared/reference`` case.json).

    Vacuum K (no mean-inner-potential correction), exact s_g alone on the diagonal (no U_0
    or U'_0 there), proportional absorption of U_g only, a beam pool of 329 reflections
    and strong beams by |s_g| with the threshold raised in 0.005 1/Å steps.
    """
    base = {
        "mean_inner_potential": False,
        "mean_absorption": False,
        "strong_beam_step": 0.005,
        "beam_pool": 329,
        "absorption": "proportional",
        "absorption_fraction": 0.1,
        "scattering_factors": "kirkland",
    }
    base.update(overrides)
    return base


def _parse_reflections(reflections: Any) -> tuple[tuple[int, int, int], ...] | None:
    if reflections is None:
        return None
    arr = np.asarray(reflections, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.allclose(arr, np.round(arr)):
        raise ValueError(
            f"reflections must be a list of integer [h, k, l] triples, got {reflections!r}."
        )
    return tuple(tuple(int(x) for x in row) for row in np.round(arr))


def _as_settings(**kwargs: Any) -> SimulationSettings:
    preset = kwargs.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {', '.join(PRESETS)}.")
        explicit = {k: v for k, v in kwargs.items() if v is not None}
        kwargs = {**felix_settings(), **explicit}
    voltage = to_magnitude(kwargs.pop("voltage", 200e3), "V", "voltage")
    if not (10e3 <= voltage <= 1000e3):
        raise ValueError(
            f"voltage {voltage / 1e3:g} kV is outside 10–1000 kV; give e.g. '200 kV' "
            "(plain numbers are volts)."
        )
    thickness = to_magnitude(
        kwargs.pop("thickness", SimulationSettings.thickness), "angstrom", "thickness"
    )
    thickness = tuple(float(t) for t in np.atleast_1d(thickness))
    if len(thickness) > 1 and np.any(np.diff(thickness) <= 0):
        raise ValueError(
            f"thicknesses must be strictly increasing, got {list(thickness)} Å; sort them "
            "(e.g. sorted(set(values)))."
        )
    if not thickness or not all(math.isfinite(t) and t > 0 for t in thickness):
        raise ValueError(
            f"thickness must be positive, got {thickness} Å; give e.g. '100 nm' or [500, 1000] "
            "(plain numbers are Å)."
        )
    pixels = int(kwargs.pop("pixels", 64))
    if pixels < 2 or pixels % 2:
        raise ValueError(f"pixels must be an even number ≥ 2 (the disc is 2N × 2N), got {pixels}.")
    # --- beam choice (issue 16): None = chosen by the tolerance -------------------------
    strong = kwargs.pop("strong_beams", None)
    if strong is not None:
        strong = int(strong)
        if strong < 1:
            raise ValueError(f"strong_beams must be at least 1, got {strong}.")
    weak = kwargs.pop("weak_beams", None)
    if weak is not None:
        weak = int(weak)
        if weak < 0:
            raise ValueError(f"weak_beams must be ≥ 0, got {weak}.")
    tolerance = kwargs.pop("tolerance", DEFAULT_TOLERANCE)
    if tolerance is not None:
        tolerance = float(tolerance)
        if not (0 < tolerance < 1):
            raise ValueError(
                f"tolerance is a fraction of each image's maximum in (0, 1), got {tolerance}; "
                "e.g. 0.01 for 1 %."
            )
    elif strong is None and weak is None and kwargs.get("preset") is None:
        raise ValueError(
            "tolerance=None measures nothing, so the beams cannot be chosen by it; give "
            "strong_beams= (and weak_beams=) or a tolerance such as 0.01."
        )
    max_beams = int(kwargs.pop("max_beams", DEFAULT_BUDGET.max_beams))
    if max_beams < DEFAULT_BUDGET.min_strong:
        raise ValueError(
            f"max_beams must be at least {DEFAULT_BUDGET.min_strong}, got {max_beams}."
        )
    # ----------------------------------------------------------------------------------
    solver = kwargs.pop("solver", "auto")
    if solver not in ("auto", "exact", "fast"):
        raise ValueError(f"Unknown solver {solver!r}; choose 'auto', 'exact' or 'fast'.")
    settings = SimulationSettings(
        zone_axis=integer_direction(kwargs.pop("zone_axis", (0, 0, 1)), "The zone axis"),
        voltage=float(voltage),
        thickness=thickness,
        pixels=pixels,
        strong_beams=strong,
        weak_beams=weak,
        tolerance=tolerance,
        max_beams=max_beams,
        solver=solver,
        reflections=_parse_reflections(kwargs.pop("reflections", None)),
        **{k: v for k, v in kwargs.items() if k not in ("disc_radius",)},
    )
    radius = kwargs.get("disc_radius")
    if radius is not None:
        radius = _radius_in_inverse_angstrom(radius, voltage)
        if not (math.isfinite(radius) and radius > 0):
            raise ValueError(f"disc_radius must be positive, got {radius}.")
        settings = replace(settings, disc_radius=float(radius))
    return settings


def _radius_in_inverse_angstrom(radius: Any, voltage: float) -> float:
    import pint

    from hyperspy_lacbed.units import ureg

    q = ureg().Quantity(radius) if isinstance(radius, str) else radius
    if isinstance(q, pint.Quantity) and q.check("[]"):
        # an angle: mrad = 1000 λ k
        return float(q.to("rad").magnitude / electron_wavelength(voltage))
    return float(to_magnitude(q, "1/angstrom", "disc_radius"))


@dataclass
class DiscResult:
    """Plain-array result of :func:`compute_discs`."""

    discs: np.ndarray  # (n_thickness, n_reflections, 2N, 2N)
    reflections: np.ndarray  # (R, 3)
    g_vectors: np.ndarray  # (R, 2) in the frame, 1/Å
    dk: float
    settings: SimulationSettings
    crystal: Crystal
    stats: SolveStats = field(default_factory=SolveStats)
    convergence: conv.ConvergenceReport | None = None


def default_reflections(crystal: Crystal, zone_axis: Sequence[int], shells: int = 2) -> np.ndarray:
    """000 and the first ``shells`` shells of ZOLZ reflections with non-zero U_g."""
    hkl = zolz_reflections(crystal, zone_axis, 3.0)
    u = np.abs(structure_factors(crystal, hkl, debye_waller=False))
    allowed = hkl[u > 1e-6 * u.max()]
    lengths = np.round(np.linalg.norm(crystal.g_vectors(allowed), axis=1), 6)
    levels = np.unique(lengths)[: shells + 1]
    return allowed[np.isin(lengths, levels)]


def _solver_for(settings: SimulationSettings) -> str:
    """Resolve ``solver="auto"``.

    The fast solver (single-precision eigen-solve) matched the exact one to better than
    1e-3 of the image maximum on every reference case of ``benchmarks/bench_engine.py``
    (1–3e-4); presets that reproduce another program's conventions use the exact solver.
    """
    if settings.solver != "auto":
        return settings.solver
    return "exact" if settings.preset is not None else "fast"


def _explicit_beams(settings: SimulationSettings) -> tuple[int, int]:
    """(strong, weak) of an explicit choice; a count not given takes 100 strong / 0 weak."""
    strong = conv.FALLBACK_STRONG_BEAMS if settings.strong_beams is None else settings.strong_beams
    return strong, settings.weak_beams or 0


def _is_explicit(settings: SimulationSettings) -> bool:
    return (
        settings.strong_beams is not None
        or settings.weak_beams is not None
        or settings.preset is not None
    )


def _pool_size(settings: SimulationSettings) -> int:
    """Reflections in the pool: about three times the strong beams, and room for the weak."""
    if settings.beam_pool:
        return settings.beam_pool
    strong, weak = _explicit_beams(settings)
    return max(3 * strong + 30, math.ceil(1.5 * (strong + weak)) + 30, 60)


def _beam_rule(settings: SimulationSettings) -> BeamRule:
    strong, weak = _explicit_beams(settings)
    return BeamRule(
        strong_beams=strong,
        weak_beams=weak,
        s_step=settings.strong_beam_step,
        count_uncoupled=settings.strong_beam_step > 0,
    )


def compute_discs(
    structure: Any,
    settings: SimulationSettings | None = None,
    *,
    device: str = "auto",
    max_memory: float = 2**30,
    show_progressbar: bool | None = None,
    **kwargs: Any,
) -> DiscResult:
    """LACBED disc intensities as plain arrays (see :func:`simulate` for the parameters)."""
    crystal = load_structure(structure)
    if settings is None:
        settings = _as_settings(**kwargs)
    frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
    settings = replace(settings, zone_axis=frame.zone_axis, x_direction=frame.x_direction)
    normal = _normal_in_frame(crystal, frame, settings.surface_normal)

    if settings.reflections is None:
        requested = default_reflections(crystal, frame.zone_axis)
    else:
        requested = np.array(settings.reflections, int)
        layer = requested @ np.asarray(frame.zone_axis)
        bad = ~np.isin(layer, settings.laue_zones)
        if bad.any():
            raise ValueError(
                f"Reflection {requested[bad][0].tolist()} is not in the Laue zone(s) "
                f"{list(settings.laue_zones)} of zone axis {list(frame.zone_axis)} "
                "(h·u + k·v + l·w must be 0 for the zero-order zone); choose reflections of "
                "the zone or add laue_zones."
            )
    if not (requested == 0).all(1).any():
        requested = np.concatenate([[[0, 0, 0]], requested])
    settings = replace(settings, reflections=tuple(tuple(int(x) for x in r) for r in requested))

    g_req = crystal.g_vectors(requested) @ frame.rotation.T
    if settings.disc_radius is None:
        nonzero = np.linalg.norm(g_req[:, :2], axis=1)
        nonzero = nonzero[nonzero > 1e-9]
        radius = 0.5 * float(nonzero.min()) if nonzero.size else 0.25
        settings = replace(settings, disc_radius=radius)
    n_half = settings.pixels // 2
    dk = settings.disc_radius / n_half

    # Symmetry: operations keeping beam and normal; the output set must be closed under them.
    ops = frame_point_group(crystal, frame, normal) if settings.symmetry else np.eye(3)[None]
    kx, ky = tilt_grid(n_half, dk)
    fold = fold_tilts(kx, ky, ops)
    orbit = _orbit(crystal, frame, requested, fold.rotations)

    # --- beam choice and convergence (issue 16) ------------------------------------------
    report, pools = None, {}
    if settings.tolerance is not None:
        report = _choose_beams(
            crystal, frame, settings, normal, orbit, requested, device, max_memory, pools
        )
        settings = replace(
            settings, strong_beams=report.strong_beams, weak_beams=report.weak_beams
        )
    key = (_pool_size(settings), settings.beam_pool)
    if key in pools:  # built for the verification already
        pool, rule = pools[key], _beam_rule(settings)
    else:
        pool, rule = _prepare_pool(crystal, frame, settings, normal, orbit)
    # ----------------------------------------------------------------------------------
    out_idx = np.array([_index_of(pool.hkl, h) for h in orbit])
    k_all = incident_vectors(kx.ravel(), ky.ravel(), pool.k0)
    reps = fold.representatives
    if device == "auto":
        device = _auto_device()
    stats = SolveStats()
    with _progress(len(reps), show_progressbar) as bar:
        intens = solve_tilts(
            pool,
            k_all[reps],
            np.asarray(settings.thickness),
            out_idx,
            rule,
            solver=_solver_for(settings),
            device=device,
            max_memory=max_memory,
            progress=bar.update,
            stats=stats,
        )
    discs = _unfold(intens, reps, fold, crystal, frame, orbit, requested, kx.shape)
    if report is not None:
        report = report.normalise_by(discs)
        conv.warn_if_unconverged(report, f"The simulation of {crystal.name}")
    strong, weak = _explicit_beams(settings)
    settings = replace(
        settings, solver=_solver_for(settings), strong_beams=strong, weak_beams=weak
    )
    return DiscResult(discs, requested, g_req[:, :2], dk, settings, crystal, stats, report)


def _choose_beams(
    crystal: Crystal,
    frame,
    settings: SimulationSettings,
    normal: np.ndarray,
    orbit: np.ndarray,
    requested: np.ndarray,
    device: str,
    max_memory: float,
    pools: dict,
) -> conv.ConvergenceReport:
    """Choose (automatic) or measure (explicit) the beam set on probe tilts; see convergence."""
    explicit = _is_explicit(settings)
    budget = replace(
        DEFAULT_BUDGET,
        max_beams=settings.max_beams,
        max_strong=min(DEFAULT_BUDGET.max_strong, settings.max_beams),
        min_strong=min(DEFAULT_BUDGET.min_strong, settings.max_beams),
    )

    def pool_for(strong: int, weak: int, free: bool = False) -> BeamPool:
        chosen = replace(settings, strong_beams=strong, weak_beams=weak)
        if free:
            chosen = replace(chosen, beam_pool=None)
        key = (_pool_size(chosen), chosen.beam_pool)
        if key not in pools:
            pools[key] = _prepare_pool(crystal, frame, chosen, normal, orbit)[0]
        return pools[key]

    tilts = conv.probe_tilts(
        settings.disc_radius, budget.explicit_probe_tilts if explicit else budget.probe_tilts
    )
    problem = conv.ProbeProblem(
        pool_for=pool_for,
        rule=_beam_rule(settings),
        tilts=tilts,
        thickness=np.asarray(settings.thickness),
        reflections=requested,
        solver=_solver_for(settings),
        device=_auto_device() if device == "auto" else device,
        max_memory=max_memory,
        # An explicit pool (the Felix preset) limits the calculation, not its reference.
        reference_pool_for=(lambda s, w: pool_for(s, w, True)) if settings.beam_pool else None,
    )
    if explicit:
        initial = _explicit_beams(settings)
    else:
        k0 = pool_for(budget.min_strong, 0).k0
        phase = conv.left_out_phase(
            crystal,
            frame,
            incident_vectors(tilts[:, 0], tilts[:, 1], k0),
            k0,
            max(settings.thickness),
            voltage=settings.voltage,
            laue_zones=settings.laue_zones,
            scattering_factors=settings.scattering_factors,
            debye_waller=settings.debye_waller,
            absorption=settings.absorption,
            absorption_fraction=settings.absorption_fraction,
        )
        initial = conv.physical_beam_counts(phase, settings.tolerance, budget)
    return conv.choose_beams(
        problem, settings.tolerance, initial=initial, explicit=explicit, budget=budget
    )


def _normal_in_frame(crystal: Crystal, frame, surface_normal) -> np.ndarray:
    if surface_normal is None:
        return np.array([0.0, 0.0, 1.0])
    n_cart = np.asarray(surface_normal, float) @ crystal.direct_basis
    return frame.rotation @ (n_cart / np.linalg.norm(n_cart))


def _prepare_pool(
    crystal: Crystal,
    frame,
    settings: SimulationSettings,
    normal: np.ndarray,
    required: np.ndarray,
    g_max: float | None = None,
) -> tuple[BeamPool, BeamRule]:
    """The beam pool (with K) and the beam rule for a set of settings."""
    k_vac = 1.0 / electron_wavelength(settings.voltage)
    pool = build_pool(
        crystal,
        frame,
        k_vac,
        settings.voltage,
        _pool_size(settings),
        g_max=g_max,
        laue_zones=settings.laue_zones,
        scattering_factors=settings.scattering_factors,
        debye_waller=settings.debye_waller,
        absorption=settings.absorption,
        absorption_fraction=settings.absorption_fraction,
        diagonal=_diagonal_mode(settings),
        normal=normal,
        required=required,
    )
    if settings.mean_inner_potential:
        # Inside the crystal K² = K_vac² + U_0 (refraction by the mean inner potential).
        u0 = structure_factors(
            crystal,
            np.zeros((1, 3), int),
            settings.voltage,
            settings.scattering_factors,
            settings.debye_waller,
        )[0].real
        pool = replace(pool, k0=math.sqrt(k_vac**2 + u0))
    return pool, _beam_rule(settings)


def beam_intensities(
    structure: Any,
    tilts: Any = ((0.0, 0.0),),
    thickness: Any = (500.0, 1000.0, 2000.0),
    reflections: Sequence[Sequence[int]] = ((0, 0, 0),),
    *,
    g_max: float | None = None,
    device: str = "cpu",
    max_memory: float = 2**30,
    **kwargs: Any,
) -> np.ndarray:
    """Beam intensities ``|ψ_g(t)|²`` at arbitrary incident tilts, as a plain array.

    Parameters
    ----------
    structure
        Anything :func:`~hyperspy_lacbed.crystal.structure.load_structure` accepts.
    tilts
        Transverse incident wave vectors (kx, ky) in 1/Å in the zone-axis frame, (T, 2);
        (0, 0) is exact zone-axis incidence.
    thickness
        Thicknesses (numbers in Å, or strings / quantities).
    reflections
        The beams to return.
    g_max
        When given, every reflection of the Laue zones with |g| ≤ g_max (1/Å) is in the
        pool and is a strong beam (set ``strong_beams`` large), as in abTEM and py4DSTEM.
    **kwargs
        Physics settings of :func:`simulate` (zone_axis, voltage, absorption, ...); the
        solver defaults to ``"exact"`` here. The beam counts are fixed, not chosen by a
        tolerance: ``strong_beams`` (default 100) and ``weak_beams`` (default 0).

    Returns
    -------
    numpy.ndarray
        Shape (T, n_thickness, n_reflections).
    """
    crystal = load_structure(structure)
    kwargs.setdefault("solver", "exact")
    settings = _as_settings(thickness=thickness, reflections=reflections, **kwargs)
    frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
    normal = _normal_in_frame(crystal, frame, settings.surface_normal)
    requested = np.array(settings.reflections, int)
    pool, rule = _prepare_pool(crystal, frame, settings, normal, requested, g_max=g_max)
    t = np.atleast_2d(np.asarray(tilts, float))
    k = incident_vectors(t[:, 0], t[:, 1], pool.k0)
    out_idx = np.array([_index_of(pool.hkl, h) for h in requested])
    return solve_tilts(
        pool,
        k,
        np.asarray(settings.thickness),
        out_idx,
        rule,
        solver=_solver_for(settings),
        device=device,
        max_memory=max_memory,
    )


def mean_absorption_factor(
    structure: Any,
    thickness: Any,
    voltage: Any = "200 kV",
    absorption: str = "proportional",
    absorption_fraction: float = 0.1,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> np.ndarray:
    """Intensity factor exp(−2π U'_0 t / K) of the mean absorptive potential.

    The mean absorption i U'_0 on the diagonal of the structure matrix shifts every
    eigenvalue by i U'_0 / 2K, so it multiplies every beam's intensity by this factor (to
    about 1e-4 across a disc, where k·n differs from K). ``simulate(...,
    mean_absorption=False)`` times this factor is the default physics.

    Returns
    -------
    numpy.ndarray
        One factor per thickness (thickness in Å, or strings / quantities).
    """
    crystal = load_structure(structure)
    volts = to_magnitude(voltage, "V", "voltage")
    t = np.atleast_1d(to_magnitude(thickness, "angstrom", "thickness")).astype(float)
    zero = np.zeros((1, 3), int)
    u0 = structure_factors(crystal, zero, volts, scattering_factors, debye_waller)
    u0_abs = absorptive_structure_factors(
        crystal,
        zero,
        volts,
        absorption,
        absorption_fraction,
        scattering_factors,
        debye_waller,
        u_real=u0,
    )[0].real
    k = math.sqrt((1.0 / electron_wavelength(volts)) ** 2 + u0[0].real)
    return np.exp(-2 * math.pi * u0_abs * t / k)


def _diagonal_mode(settings: SimulationSettings) -> str:
    if not settings.mean_absorption:
        return "none"
    return "absorptive" if settings.mean_inner_potential else "full"


def _index_of(hkl: np.ndarray, h: Sequence[int]) -> int:
    hits = np.flatnonzero((hkl == np.asarray(h)).all(1))
    return int(hits[0])


def _orbit(crystal: Crystal, frame, requested: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """All images of the requested reflections under the operations (requested first)."""
    out = [tuple(r) for r in requested]
    for r in rotations:
        for h in _rotate_hkl(crystal, frame, requested, r):
            if tuple(h) not in out:
                out.append(tuple(h))
    return np.array(out, int)


def _rotate_hkl(crystal: Crystal, frame, hkl: np.ndarray, r: np.ndarray) -> np.ndarray:
    g_frame = crystal.g_vectors(hkl) @ frame.rotation.T
    g_cart = (g_frame @ r.T) @ frame.rotation
    h = g_cart @ crystal.direct_basis.T
    return np.round(h).astype(int)


def _unfold(intens, reps, fold: TiltSymmetry, crystal, frame, orbit, requested, shape):
    """Map the representatives' intensities to every pixel: I_g(R k) = I_{R⁻¹ g}(k)."""
    n_pix = fold.rep_of.size
    row_of_rep = np.empty(n_pix, int)
    row_of_rep[reps] = np.arange(len(reps))
    lookup = {tuple(h): i for i, h in enumerate(orbit)}
    # For each op, the orbit index of R⁻¹ g for each requested g.
    src = np.array(
        [
            [lookup[tuple(h)] for h in _rotate_hkl(crystal, frame, requested, r.T)]
            for r in fold.rotations
        ]
    )  # (n_ops, R)
    rows = row_of_rep[fold.rep_of]  # (n_pix,)
    cols = src[fold.op_of]  # (n_pix, R)
    out = intens[rows[:, None], :, cols]  # (n_pix, R, n_t)
    out = np.moveaxis(out, -1, 0)  # (n_t, n_pix, R)
    return np.moveaxis(out, -1, 1).reshape(intens.shape[1], len(requested), *shape)


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _want_progress(show: bool | None) -> bool:
    """Resolve ``show_progressbar=None`` to HyperSpy's preference."""
    if show is not None:
        return bool(show)
    try:
        import hyperspy.api as hs

        return bool(hs.preferences.General.show_progressbar)
    except Exception:  # HyperSpy absent or not configured
        return False


class _progress:
    def __init__(self, total: int, show: bool | None):
        self._bar = None
        if _want_progress(show):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="Bloch-wave tilts", unit="tilt")

    def __enter__(self):
        return self

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()


def simulate(
    structure: Any,
    zone_axis: Sequence[int] = (0, 0, 1),
    x_direction: Sequence[int] | None = None,
    voltage: Any = "200 kV",
    thickness: Any = (500.0, 1000.0, 1500.0, 2000.0),
    reflections: Sequence[Sequence[int]] | None = None,
    pixels: int = 64,
    disc_radius: Any = None,
    absorption: str = "proportional",
    absorption_fraction: float = 0.1,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
    strong_beams: int | None = None,
    weak_beams: int | None = None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    max_beams: int = DEFAULT_BUDGET.max_beams,
    surface_normal: Sequence[int] | None = None,
    beam_pool: int | None = None,
    laue_zones: Sequence[int] = (0,),
    solver: str = "auto",
    symmetry: bool = True,
    preset: str | None = None,
    device: str = "auto",
    max_memory: Any = "1 GiB",
    show_progressbar: bool | None = None,
    client: Any = None,
    strong_beam_step: float = 0.0,
    mean_inner_potential: bool = True,
    mean_absorption: bool = True,
):
    """Simulate LACBED discs of a crystal with the Bloch-wave method.

    Parameters
    ----------
    structure
        A CIF path, a ``diffpy.structure.Structure``, a
        :class:`~hyperspy_lacbed.crystal.structure.Crystal` or the name of a
        shipped example (``"Si"``, ``"GaAs"``, ...).
    zone_axis
        Beam direction [uvw] (direct-lattice indices).
    x_direction
        Direct-lattice direction perpendicular to the beam that fixes kx; default the
        shortest one ([100] for [001]).
    voltage
        Accelerating voltage: ``"200 kV"``, a pint quantity, or a number in V.
    thickness
        One or more thicknesses: ``"100 nm"``, quantities, or numbers in Å.
    reflections
        The discs to return, as [h, k, l]; 000 is always included. Default: 000 and the
        first two shells of ZOLZ reflections with non-zero structure factor.
    pixels
        Disc size 2N × 2N (even).
    disc_radius
        Disc radius as ``"0.25 1/Å"``, ``"6 mrad"``, a quantity or a number in 1/Å;
        default half the smallest |g| of the requested reflections.
    absorption
        ``"none"``, ``"proportional"`` (U' = κU) or ``"bird-king"``.
    absorption_fraction
        κ for proportional absorption (0.1 = 10 %).
    scattering_factors
        ``"kirkland"`` or ``"lobato"``.
    debye_waller
        Apply the atoms' Debye–Waller factors.
    strong_beams
        Minimum number of strong beams per tilt (Felix's IMinStrongBeams). Default (None,
        with ``weak_beams`` None too): chosen by ``tolerance``. Given, it is used exactly
        (with ``weak_beams`` 0 unless given).
    weak_beams
        Number of further beams folded in as Bethe potentials (0: none). Default: chosen
        by ``tolerance``; given alone, with 100 strong beams.
    tolerance
        Convergence tolerance as a fraction of each image's maximum (0.01 = 1 %). Without
        explicit beam counts the strong and weak beams are chosen from the physics (the
        phase that left-out beams would add, from |U_g| with its Debye–Waller decay and
        the excitation errors), then verified on a few tilts across the disc against a
        set larger by half, and enlarged until the discs agree within the tolerance or the
        budget (400 strong, ``max_beams`` strong + weak) is reached, which raises a
        :class:`~hyperspy_lacbed.bloch.convergence.ConvergenceWarning`. With explicit
        counts the same estimate is measured (on fewer tilts) and reported only. The
        estimate, the beam counts and the verdict go to ``metadata.LACBED.convergence``.
        None (explicit counts only) skips the measurement.
    max_beams
        Budget of strong + weak beams of the automatic choice.
    surface_normal
        Direct-lattice direction of the surface normal; default the beam direction.
    beam_pool
        Number of reflections in the pool from which beams are chosen; default about
        three times ``strong_beams``.
    laue_zones
        Laue zones of the pool; (0,) is the zero-order zone only.
    solver
        ``"exact"`` (complex128 eigen-solve), ``"fast"`` (complex64 eigen-solve, within 1e-3
        of the image maximum of the exact one) or ``"auto"`` (fast, or exact for presets).
    symmetry
        Solve tilts related by the zone-axis point group once and map them.
    preset
        ``"felix"`` adopts Felix's conventions for like-for-like comparison.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    max_memory
        Working memory of the batched eigen-solves (``"1 GiB"``, bytes as a number).
    show_progressbar
        Show a progress bar; default HyperSpy's preference.
    client
        With a list of structures: a ``dask.distributed.Client`` that runs one task per
        structure on its workers; without one, the structures run through dask's local
        threaded scheduler.
    strong_beam_step
        Raise the strong-beam threshold on |s_g| in steps of this size (Felix: 0.005 1/Å);
        0 takes exactly ``strong_beams`` (ties included).
    mean_inner_potential
        Refract the beam by the mean inner potential (K² = K_vac² + U_0); Felix does not.
    mean_absorption
        Put the mean absorptive potential i U'_0 on the diagonal, so that intensity decays
        with thickness; Felix leaves it out.

    Notes
    -----
    ``metadata.LACBED.settings`` holds every argument above and the structure, so that
    ``simulate(**s.metadata.LACBED.settings.as_dictionary())`` computes ``s`` again (with the
    chosen beam counts, now explicit). ``metadata.LACBED.convergence`` holds the beam
    counts, the convergence ``estimate`` (largest change of any disc at any thickness, in
    units of its image's maximum, when the beam set grows by half, measured on
    ``verified_tilts`` tilts), the ``tolerance`` and ``converged``.

    Returns
    -------
    LACBED or list of LACBED
        Navigation axes (thickness, reflection), signal axes (ky, kx) in 1/Å, with all
        settings in ``metadata.LACBED.settings`` and ``metadata.LACBED.source == "bloch"``.
        A list of structures gives a list of signals, in the same order.

    Examples
    --------
    >>> import hyperspy_lacbed as hl
    >>> s = hl.simulate("Si", thickness="100 nm", pixels=16, strong_beams=30)
    >>> s.data.shape
    (9, 16, 16)
    """
    memory = _parse_memory(max_memory)
    settings = _as_settings(
        zone_axis=zone_axis,
        x_direction=_opt_tuple(x_direction, "The x-direction"),
        voltage=voltage,
        thickness=thickness,
        reflections=reflections,
        pixels=pixels,
        disc_radius=disc_radius,
        absorption=absorption,
        absorption_fraction=absorption_fraction,
        scattering_factors=scattering_factors,
        debye_waller=debye_waller,
        strong_beams=strong_beams,
        weak_beams=weak_beams,
        tolerance=tolerance,
        max_beams=max_beams,
        surface_normal=_opt_tuple(surface_normal, "The surface normal"),
        beam_pool=beam_pool,
        laue_zones=tuple(laue_zones),
        solver=solver,
        symmetry=symmetry,
        preset=preset,
        strong_beam_step=strong_beam_step,
        mean_inner_potential=mean_inner_potential,
        mean_absorption=mean_absorption,
    )
    if _is_many(structure):
        results = compute_many(
            structure,
            settings,
            device=device,
            max_memory=memory,
            client=client,
            show_progressbar=show_progressbar,
        )
        return [to_signal(r) for r in results]
    result = compute_discs(
        structure, settings, device=device, max_memory=memory, show_progressbar=show_progressbar
    )
    return to_signal(result)


def compute_many(
    structures: Sequence[Any],
    settings: SimulationSettings,
    *,
    device: str = "auto",
    max_memory: float = 2**30,
    client: Any = None,
    num_workers: int | None = None,
    show_progressbar: bool | None = None,
) -> list[DiscResult]:
    """Run :func:`compute_discs` for many structures as a dask graph (one task each).

    With a ``dask.distributed.Client`` the tasks run on its workers (a LocalCluster, or an
    HPC cluster through dask-jobqueue) with no other change; otherwise on local threads.
    Each task's eigen-solves already use every torch thread, so the local default runs
    one task at a time (``num_workers=1``).
    """
    import dask

    if not structures:
        raise ValueError("No structures given: pass at least one CIF path, Structure or name.")
    crystals = [load_structure(s) for s in structures]  # fail fast on bad input
    tasks = [
        dask.delayed(compute_discs)(
            c, settings, device=device, max_memory=max_memory, show_progressbar=False
        )
        for c in crystals
    ]
    if client is not None:
        return list(client.gather(client.compute(tasks)))
    from dask.diagnostics import ProgressBar

    with ProgressBar() if _want_progress(show_progressbar) else _NullContext():
        return list(dask.compute(*tasks, scheduler="threads", num_workers=num_workers or 1))


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _is_many(structure: Any) -> bool:
    # A diffpy Structure is itself a list (of atoms): it is one structure.
    if not isinstance(structure, (list, tuple)):
        return False
    try:
        from diffpy.structure import Structure
    except ImportError:  # pragma: no cover - diffpy is a core dependency
        return True
    return not isinstance(structure, Structure)


def _opt_tuple(v: Any, what: str) -> tuple[int, ...] | None:
    return None if v is None else integer_direction(v, what)


def _parse_memory(value: Any) -> float:
    if isinstance(value, (int, float)):
        mem = float(value)
    else:
        mem = float(to_magnitude(value, "byte", "max_memory"))
    if not (mem > 0 and math.isfinite(mem)):
        raise ValueError(f"max_memory must be a positive amount of memory, got {value!r}.")
    return mem


def to_signal(result: DiscResult):
    """Wrap a :class:`DiscResult` in a LACBED signal."""
    from hyperspy_lacbed.signals.lacbed import LACBED

    settings = result.settings.to_dict()
    settings["structure"] = result.crystal.to_dict()
    signal = LACBED.from_discs(
        np.squeeze(result.discs, axis=0) if result.discs.shape[0] == 1 else result.discs,
        reflections=result.reflections.tolist(),
        g_vectors=result.g_vectors.tolist(),
        thickness=list(result.settings.thickness),
        dk=result.dk,
        voltage=result.settings.voltage,
        zone_axis=list(result.settings.zone_axis),
        x_direction=list(result.settings.x_direction),
        source="bloch",
        settings=settings,
    )
    signal.metadata.set_item("LACBED.timing", asdict(result.stats))
    if result.convergence is not None:
        signal.metadata.set_item("LACBED.convergence", result.convergence.to_dict())
    return signal
