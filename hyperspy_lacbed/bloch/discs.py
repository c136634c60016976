"""LACBED discs of the Bloch-wave engine as plain arrays.

:func:`compute_discs` turns a structure and
:class:`~hyperspy_lacbed.bloch.settings.SimulationSettings` into a :class:`DiscResult`
of NumPy arrays (no HyperSpy);
:func:`hyperspy_lacbed.simulate` wraps it in a calibrated LACBED signal.
:func:`beam_intensities` gives beam intensities at arbitrary tilts and
:func:`mean_absorption_factor` the uniform decay of the mean absorptive potential.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch import convergence as conv
from hyperspy_lacbed.bloch.convergence import DEFAULT_BUDGET
from hyperspy_lacbed.bloch.geometry import (
    TiltSymmetry,
    fold_tilts,
    frame_point_group,
    incident_vectors,
    tilt_grid,
)
from hyperspy_lacbed.bloch.holz import holz_beam_share
from hyperspy_lacbed.bloch.pool import (
    beam_rule,
    explicit_beams,
    is_explicit,
    normal_in_frame,
    pool_size,
    prepare_pool,
)
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.bloch.solver import (
    BeamPool,
    BeamRule,
    SolveStats,
    refracted_wavenumber,
    solve_tilts,
)
from hyperspy_lacbed.crystal.structure import (
    Crystal,
    load_structure,
    zolz_reflections,
    zone_frame,
)
from hyperspy_lacbed.crystal.structure_factors import (
    optical_structure_factors,
    structure_factors,
)
from hyperspy_lacbed.progress import ProgressBar, want_progress
from hyperspy_lacbed.units import electron_wavelength, to_magnitude


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


#: Strong beams an automatic choice may always reach within its ``max_beams``.
STRONG_CAP = 400


def _solver_for(settings: SimulationSettings) -> str:
    """Resolve ``solver="auto"``.

    The fast solver (single-precision eigen-solve) matched the exact one to better than
    1e-3 of the image maximum on every reference case of ``benchmarks/bench_engine.py``
    (1–3e-4); presets that reproduce another program's conventions use the exact solver.
    A tolerance below ``conv.FAST_SOLVER_TOLERANCE`` (5e-3) also takes the exact one: the
    single-precision error (up to 5e-4 of the image maximum, benchmarks/bench_convergence.py
    --section domain) would otherwise be a tenth of it, and no beam count removes it.
    """
    if settings.solver != "auto":
        return settings.solver
    if settings.preset is not None or settings.tolerance < conv.FAST_SOLVER_TOLERANCE:
        return "exact"
    return "fast"


def compute_discs(
    structure: Any,
    settings: SimulationSettings | None = None,
    *,
    device: str = "auto",
    max_memory: float = 2**30,
    show_progressbar: bool | None = None,
    **kwargs: Any,
) -> DiscResult:
    """LACBED disc intensities as plain arrays (see :func:`hyperspy_lacbed.simulate` for the parameters)."""
    crystal = load_structure(structure)
    if settings is None:
        settings = SimulationSettings.from_user(**kwargs)
    frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
    settings = replace(settings, zone_axis=frame.zone_axis, x_direction=frame.x_direction)
    normal = normal_in_frame(crystal, frame, settings.surface_normal)

    if settings.reflections is None:
        requested = default_reflections(crystal, frame.zone_axis)
    else:
        requested = np.array(settings.reflections, int)
        layer = requested @ np.asarray(frame.zone_axis)
        bad = ~np.isin(layer, settings.laue_zones) & (not settings.holz)
        if bad.any():
            raise ValueError(
                f"Reflection {requested[bad][0].tolist()} is not in the Laue zone(s) "
                f"{list(settings.laue_zones)} of zone axis {list(frame.zone_axis)} "
                "(h·u + k·v + l·w must be 0 for the zero-order zone); choose reflections of "
                "the zone, add laue_zones or set holz=True."
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
    grid = _Grid.of(crystal, frame, settings, normal, requested)
    kx, ky, fold, orbit = grid.kx, grid.ky, grid.fold, grid.orbit

    # --- beam choice and convergence (issue 16) ------------------------------------------
    report, pools = None, {}
    if math.isfinite(settings.tolerance):
        report = _choose_beams(crystal, frame, settings, normal, grid, device, max_memory, pools)
        settings = replace(
            settings, strong_beams=report.strong_beams, weak_beams=report.weak_beams
        )
    key = _pool_key(settings)
    if key in pools:  # built for the verification already
        pool, rule = pools[key], beam_rule(settings)
    else:
        pool, rule = prepare_pool(crystal, frame, settings, normal, orbit)
    # ----------------------------------------------------------------------------------
    out_idx = np.array([_index_of(pool.hkl, h) for h in orbit])
    k_all = incident_vectors(kx.ravel(), ky.ravel(), pool.k0)
    reps = fold.representatives
    if device == "auto":
        device = _auto_device()
    stats = SolveStats()
    # The verification solved the chosen set at its probes already: those pixels are done.
    intens = np.empty((len(reps), len(settings.thickness), len(orbit)))
    todo = np.ones(len(reps), bool)
    if report is not None and report.probe_intensities is not None:
        probes = grid.probes(report.verified_tilts)
        intens[probes] = report.probe_intensities
        todo[probes] = False
    with ProgressBar(int(todo.sum()), show_progressbar, "Bloch-wave tilts", "tilt") as bar:
        if todo.any():
            intens[todo] = _solve(
                pool,
                k_all[reps[todo]],
                out_idx,
                rule,
                settings,
                device,
                max_memory,
                bar.update,
                stats,
            )
    discs = _unfold(intens, reps, fold, grid.sources, kx.shape)
    if report is not None:
        report = report.normalise_by(discs)
        conv.warn_if_unconverged(report, f"The simulation of {crystal.name}")
    strong, weak = explicit_beams(settings)
    settings = replace(
        settings, solver=_solver_for(settings), strong_beams=strong, weak_beams=weak
    )
    dk = settings.disc_radius / (settings.pixels // 2)
    return DiscResult(discs, requested, g_req[:, :2], dk, settings, crystal, stats, report)


def converged_beam_counts(
    structure: Any,
    settings: SimulationSettings,
    *,
    device: str = "auto",
    max_memory: float = 2**30,
) -> tuple[int, int]:
    """The strong and weak beam counts that :func:`compute_discs` would choose.

    The same tolerance-driven choice (``settings.tolerance`` of each image's maximum,
    within ``settings.max_beams``), for a model that needs fixed counts (the
    refinement's :class:`~hyperspy_lacbed.refinement.model.BlochModel`, converged like
    the data). ``settings.reflections``, ``disc_radius`` and ``thickness`` describe the
    discs; explicit counts are returned as they are.

    Returns
    -------
    strong, weak
    """
    crystal = load_structure(structure)
    if is_explicit(settings):
        return explicit_beams(settings)
    if not math.isfinite(settings.tolerance):
        raise ValueError("tolerance=inf chooses no beams; give strong_beams= and weak_beams=.")
    frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
    normal = normal_in_frame(crystal, frame, settings.surface_normal)
    requested = np.array(settings.reflections or default_reflections(crystal, frame.zone_axis))
    if not (requested == 0).all(1).any():
        requested = np.concatenate([[[0, 0, 0]], requested])
    if settings.disc_radius is None:
        raise ValueError("converged_beam_counts needs settings.disc_radius (1/Å).")
    grid = _Grid.of(crystal, frame, settings, normal, requested)
    report = _choose_beams(crystal, frame, settings, normal, grid, device, max_memory, {})
    return report.strong_beams, report.weak_beams


@dataclass(frozen=True)
class _Grid:
    """The tilt grid of a calculation, folded by the zone-axis symmetry, and its discs."""

    kx: np.ndarray
    ky: np.ndarray
    fold: TiltSymmetry
    orbit: np.ndarray  # the requested reflections and their images, requested first
    sources: np.ndarray  # (n_ops, R): orbit index of R⁻¹g for each operation and requested g

    @classmethod
    def of(cls, crystal, frame, settings: SimulationSettings, normal, requested) -> _Grid:
        # Symmetry: operations keeping beam and normal; the output set must be closed under them.
        ops = frame_point_group(crystal, frame, normal) if settings.symmetry else np.eye(3)[None]
        n_half = settings.pixels // 2
        kx, ky = tilt_grid(n_half, settings.disc_radius / n_half)
        fold = fold_tilts(kx, ky, ops)
        orbit = _orbit(crystal, frame, requested, fold.rotations)
        lookup = {tuple(h): i for i, h in enumerate(orbit)}
        sources = np.array(
            [
                [lookup[tuple(h)] for h in _rotate_hkl(crystal, frame, requested, r.T)]
                for r in fold.rotations
            ]
        )
        return cls(kx, ky, fold, orbit, sources)

    def tilts(self) -> np.ndarray:
        """(n_reps, 2) tilts of the representatives, 1/Å."""
        reps = self.fold.representatives
        return np.stack([self.kx.ravel()[reps], self.ky.ravel()[reps]], axis=1)

    def probes(self, count: int) -> np.ndarray:
        """The ``count`` representatives (indices into them) a verification solves."""
        return conv.select_probes(self.tilts(), count)


def _choose_beams(
    crystal: Crystal,
    frame,
    settings: SimulationSettings,
    normal: np.ndarray,
    grid: _Grid,
    device: str,
    max_memory: float,
    pools: dict,
) -> conv.ConvergenceReport:
    """Choose (automatic) or measure (explicit) the beam set on probe tilts; see convergence."""
    explicit = is_explicit(settings)
    budget = replace(
        DEFAULT_BUDGET,
        max_beams=settings.max_beams,
        # One strong beam in three, but 400 (the former cap) where the budget allows it.
        max_strong=min(
            DEFAULT_BUDGET.max_strong, max(STRONG_CAP, settings.max_beams // 3), settings.max_beams
        ),
        min_strong=min(DEFAULT_BUDGET.min_strong, settings.max_beams),
    )

    factors: dict = {}  # structure factors shared by the guess and every pool

    def pool_for(strong: int, weak: int, free: bool = False) -> BeamPool:
        chosen = replace(settings, strong_beams=strong, weak_beams=weak)
        if free:
            chosen = replace(chosen, beam_pool=None)
        key = _pool_key(chosen)
        if key not in pools:
            pools[key] = prepare_pool(crystal, frame, chosen, normal, grid.orbit, factors=factors)[
                0
            ]
        return pools[key]

    tilts = grid.tilts()[
        grid.probes(budget.explicit_probe_tilts if explicit else budget.probe_tilts)
    ]
    problem = conv.ProbeProblem(
        pool_for=pool_for,
        rule=beam_rule(settings),
        tilts=tilts,
        thickness=np.asarray(settings.thickness),
        reflections=grid.orbit,
        groups=grid.sources,
        solver=_solver_for(settings),
        device=_auto_device() if device == "auto" else device,
        max_memory=max_memory,
        # An explicit pool (the Felix preset) limits the calculation, not its reference.
        reference_pool_for=(lambda s, w: pool_for(s, w, True)) if settings.beam_pool else None,
    )
    if explicit:
        initial = explicit_beams(settings)
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
            factors=factors,
        )
        initial = conv.physical_beam_counts(phase, settings.tolerance, budget)
        if settings.holz:
            initial = _with_holz_beams(initial, pool_for, frame, tilts, budget)
    return conv.choose_beams(
        problem, settings.tolerance, initial=initial, explicit=explicit, budget=budget
    )


def _pool_key(settings: SimulationSettings) -> tuple:
    """What a pool depends on: its size and, with HOLZ, the strong + weak beams (the HOLZ
    reflections reach as far from the Ewald sphere as the zero-order beams they take)."""
    holz = sum(explicit_beams(settings)) if settings.holz else None
    return pool_size(settings), settings.beam_pool, holz


def _with_holz_beams(initial, pool_for, frame, tilts, budget) -> tuple[int, int]:
    """Zero-order beam counts enlarged by the HOLZ beams that come nearer the sphere.

    The left-out phase of the zero-order guess is a 2-D estimate; HOLZ beams near the
    Ewald sphere would take strong and weak places from the ZOLZ beams it asks for, so
    the HOLZ beams nearer than the last strong (and the last weak) ZOLZ beam at any probe
    tilt are added on top. The verification then measures the result as usual.
    """
    strong, weak = initial
    pool = pool_for(strong, weak)
    k = incident_vectors(tilts[:, 0], tilts[:, 1], pool.k0)
    extra_strong = holz_beam_share(pool, frame.zone_axis, k, strong)
    extra_all = holz_beam_share(pool, frame.zone_axis, k, strong + weak)
    strong = min(strong + extra_strong, budget.max_strong)
    total = min(strong + weak + extra_all - extra_strong, budget.max_beams)
    return strong, max(total - strong, 0)


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
        Physics settings of :func:`hyperspy_lacbed.simulate` (zone_axis, voltage, absorption, ...); the
        solver defaults to ``"exact"`` here. The beam counts are fixed, not chosen by a
        tolerance: ``strong_beams`` (default 100) and ``weak_beams`` (default 0).

    Returns
    -------
    numpy.ndarray
        Shape (T, n_thickness, n_reflections).
    """
    crystal = load_structure(structure)
    kwargs.setdefault("solver", "exact")
    settings = SimulationSettings.from_user(thickness=thickness, reflections=reflections, **kwargs)
    frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
    normal = normal_in_frame(crystal, frame, settings.surface_normal)
    requested = np.array(settings.reflections, int)
    t = np.atleast_2d(np.asarray(tilts, float))
    # HOLZ reflections are chosen for the disc (or, without one, the tilts) they cover
    radius = max(float(np.linalg.norm(t, axis=1).max()), settings.disc_radius or 0.0)
    pool, rule = prepare_pool(
        crystal, frame, settings, normal, requested, g_max=g_max, tilt_radius=radius
    )
    k = incident_vectors(t[:, 0], t[:, 1], pool.k0)
    out_idx = np.array([_index_of(pool.hkl, h) for h in requested])
    return _solve(pool, k, out_idx, rule, settings, device, max_memory)


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
    about 1e-4 across a disc, where k·n differs from K). ``hyperspy_lacbed.simulate(...,
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
    _, u0_abs = optical_structure_factors(
        crystal, zero, volts, absorption, absorption_fraction, scattering_factors, debye_waller
    )
    u0_abs = u0_abs[0].real
    k = refracted_wavenumber(
        crystal, 1.0 / electron_wavelength(volts), volts, scattering_factors, debye_waller
    )
    return np.exp(-2 * math.pi * u0_abs * t / k)


def _solve(
    pool: BeamPool,
    k: np.ndarray,
    out_idx: np.ndarray,
    rule: BeamRule,
    settings: SimulationSettings,
    device: Any,
    max_memory: float,
    progress: Any = None,
    stats: SolveStats | None = None,
) -> np.ndarray:
    """:func:`solve_tilts` at the settings' thicknesses with the settings' solver."""
    return solve_tilts(
        pool,
        k,
        np.asarray(settings.thickness),
        out_idx,
        rule,
        solver=_solver_for(settings),
        device=device,
        max_memory=max_memory,
        progress=progress,
        stats=stats,
    )


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


def _unfold(intens, reps, fold: TiltSymmetry, sources: np.ndarray, shape):
    """Map the representatives' intensities to every pixel: I_g(R k) = I_{R⁻¹ g}(k).

    ``sources`` (n_ops, R) holds the orbit index of R⁻¹g for each operation and requested g.
    """
    n_pix = fold.rep_of.size
    row_of_rep = np.empty(n_pix, int)
    row_of_rep[reps] = np.arange(len(reps))
    rows = row_of_rep[fold.rep_of]  # (n_pix,)
    cols = sources[fold.op_of]  # (n_pix, R)
    out = intens[rows[:, None], :, cols]  # (n_pix, R, n_t)
    out = np.moveaxis(out, -1, 0)  # (n_t, n_pix, R)
    return np.moveaxis(out, -1, 1).reshape(intens.shape[1], sources.shape[1], *shape)


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
    from dask.diagnostics import ProgressBar as DaskProgressBar

    with DaskProgressBar() if want_progress(show_progressbar) else contextlib.nullcontext():
        return list(dask.compute(*tasks, scheduler="threads", num_workers=num_workers or 1))
