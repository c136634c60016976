"""Convergence of the beam set: choose strong and weak (Bethe) beams by a tolerance, and say how right.

A Bloch-wave calculation truncates an infinite set of beams. How many are needed depends on the
crystal (heavy columns channel, and their bound states need beams far out in reciprocal
space), the thickness and the absorption, so a fixed count is right for silicon and tens of
percent off for a perovskite. This module

1. **guesses** a beam set from the physics (:func:`physical_beam_counts`): a beam g far from
   the Ewald sphere shifts the Bloch-wave eigenvalues by about ``|U_g|² / (4K² |s_g|)``,
   which over the thickness t is a phase ``2π t |U_g|² / (4K² |s_g|)``; ``|U_g|`` includes the
   Debye–Waller decay and the absorptive part. The beams are ranked by ``|s_g|`` as the engine
   ranks them, and the set is cut where the phase of everything left out falls below the
   tolerance. Strong beams are cut at the tolerance itself, strong + weak (Bethe) beams ten
   times deeper, because Bethe potentials recover most, not all, of a left-out beam;
2. **verifies** it (:func:`choose_beams`): on probe tilts of the run's own grid, spread
   over the irreducible wedge of the disc (:func:`select_probes`; every disc of the
   symmetry orbit is checked there, so a probe stands for all its images), it solves the
   beam set and one enlarged by ``ConvergenceBudget.growth`` (about half) and takes the
   largest difference of any disc at any thickness, in units of that image's maximum,
   times ``ConvergenceBudget.safety`` (what the enlarged set itself still misses), as the
   convergence estimate. While the estimate exceeds the tolerance the set
   grows (by what the estimate asks for, at most by half), up to ``ConvergenceBudget.max_strong`` strong and
   ``ConvergenceBudget.max_beams`` strong + weak beams; then a :class:`ConvergenceWarning`
   says by how much the result misses the tolerance. The probes' solves of the chosen set
   are pixels of the result and are not solved again;
3. **reports** it (:class:`ConvergenceReport`): beam counts, the estimate, the tolerance, the
   tilts it was measured on and whether it converged, for ``metadata.LACBED.convergence``.

Explicit beam counts are honoured exactly; their estimate is still measured, on fewer probes.

This module works on plain arrays and the crystal; it imports neither HyperSpy nor the signal
classes.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors
from hyperspy_lacbed.bloch.solver import (
    BeamPool,
    BeamRule,
    cached_optical_factors,
    pool_reflections,
    solve_tilts,
)
from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame

#: Default tolerance of :func:`hyperspy_lacbed.simulate`: 1 % of each image's maximum.
DEFAULT_TOLERANCE = 0.01
#: Beam counts of an explicit choice when only one of the two is given (the former default).
FALLBACK_STRONG_BEAMS = 100
#: Tolerances below this use the exact (complex128) solver with ``solver="auto"``: the
#: complex64 eigen-solve is 1e-4 to 5e-4 of the image maximum off the exact one.
FAST_SOLVER_TOLERANCE = 5e-3


class ConvergenceWarning(UserWarning):
    """The beam budget could not bring a simulation within its tolerance."""


@dataclass(frozen=True)
class ConvergenceBudget:
    """Limits of the automatic beam choice.

    Attributes
    ----------
    max_strong
        Most strong beams (the eigen-solve is O(n³) in them): 400 costs about 0.1 s per
        tilt in single precision on one core. Heavy small cells need more: Cu3Au [001]
        (Au columns 3.75 Å apart) missed 1 % at 400 + 800 beams (1.4 %,
        benchmarks/bench_convergence.py --section table). A smaller ``max_beams`` of the
        settings caps it at ``max(400, max_beams // 3)``.
    max_beams
        Most strong + weak beams; weak beams cost O(n_strong² n_weak) each tilt.
    min_strong
        Fewest strong beams of an automatic choice.
    growth
        Factor by which the verification enlarges a beam set (and the choice grows while
        it fails).
    probe_tilts
        Tilts of the grid on which a choice (automatic or explicit) is verified, spread over
        the irreducible wedge (:func:`select_probes`). Each stands for its symmetry images,
        so 16 probes of a square zone (8 operations) sample the disc like 128. A grid with
        no more representative tilts than this is verified on all of them, and the
        verification is then the whole calculation.
    explicit_probe_tilts
        Probes on which an explicit choice is measured (cheaper): the first of the same
        farthest-point order, so a subset of an automatic choice's probes.
    error_order
        The order p of the beam-set error ``∝ n^-p`` (the growth rule's n⁻³): the set
        enlarged by ``growth`` still misses ``growth^-p`` of the error, so the difference
        to it is divided by ``1 − growth^-p`` (:attr:`safety`).
    strong_factor, total_factor
        The physical guess cuts strong beams where the left-out phase is
        ``strong_factor × tolerance`` and strong + weak where it is ``total_factor ×
        tolerance``. Calibrated on Si, GaAs and SrTiO3 [001], 50–200 nm: the error of n
        strong beams (with twice as many Bethe weak beams) is 0.03 (Si), 0.2 (GaAs) and
        0.8 (SrTiO3) times the phase left out beyond n, because channelling in heavy
        columns couples beams through every U_{g−h}, not only through U_g; 1.5 lands light
        and medium crystals at or below the tolerance at once and heavy ones after one
        growth step.
    """

    max_strong: int = 600
    max_beams: int = 1800
    min_strong: int = 30
    growth: float = 1.5
    error_order: float = 3.0
    probe_tilts: int = 16
    explicit_probe_tilts: int = 5
    strong_factor: float = 1.5
    total_factor: float = 0.1

    def __post_init__(self) -> None:
        if not (1 <= self.min_strong <= self.max_strong <= self.max_beams):
            raise ValueError(
                "ConvergenceBudget needs 1 ≤ min_strong ≤ max_strong ≤ max_beams, got "
                f"{self.min_strong}, {self.max_strong}, {self.max_beams}."
            )
        if not self.growth > 1:
            raise ValueError(f"ConvergenceBudget.growth must exceed 1, got {self.growth}.")
        if self.probe_tilts < 1 or self.explicit_probe_tilts < 1:
            raise ValueError("ConvergenceBudget needs at least one probe tilt.")
        if not self.error_order > 0:
            raise ValueError(
                f"ConvergenceBudget.error_order must be positive, got {self.error_order}."
            )

    @property
    def safety(self) -> float:
        """Factor from the difference to the enlarged set to the error: ``1 / (1 − growth^-p)``.

        With the default growth 1.5 and p = 3, 1.42. Measured on 14 cases, heavy columns
        with absorption included (benchmarks/bench_convergence.py --section table, every
        pixel): the error against 600 + 1200 beams was at most 1.39× (CaF2 [001]) the
        difference to the enlarged set.
        """
        return 1.0 / (1.0 - self.growth**-self.error_order)


DEFAULT_BUDGET = ConvergenceBudget()


@dataclass
class ConvergenceReport:
    """How converged a simulation is, for ``metadata.LACBED.convergence``.

    Attributes
    ----------
    mode
        ``"auto"`` (chosen by the tolerance) or ``"explicit"`` (given by the user or a
        preset).
    strong_beams, weak_beams
        The beam counts used (minimum strong beams per tilt, weak Bethe beams per tilt).
    reference_strong_beams, reference_weak_beams
        The enlarged set the estimate compares with.
    tolerance
        The requested tolerance (fraction of each image's maximum), or None.
    estimate
        Largest difference between the two sets over the probe tilts, every requested disc
        (and its symmetry images) and every thickness, in units of each image's maximum
        (after the full run, that of the full image), times ``ConvergenceBudget.safety``.
    estimate_per_thickness
        The same, per thickness (largest over the discs).
    verified_tilts
        Number of probe tilts.
    converged
        ``estimate ≤ tolerance`` (False without a tolerance).
    steps
        The sets tried by an automatic choice, with their estimates.
    seconds
        Time spent on the choice and the verification.
    """

    mode: str
    strong_beams: int
    weak_beams: int
    reference_strong_beams: int
    reference_weak_beams: int
    tolerance: float | None
    estimate: float
    estimate_per_thickness: list[float]
    verified_tilts: int
    converged: bool
    steps: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    # Largest probe differences per (thickness, disc) (safety factor included), to
    # renormalise by the full images.
    probe_difference: np.ndarray | None = field(default=None, repr=False)
    # The chosen set's intensities at the probes (T, n_t, R_orbit): pixels of the result.
    probe_intensities: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for metadata."""
        d = asdict(self)
        d.pop("probe_difference")
        d.pop("probe_intensities")
        return d

    def normalise_by(self, discs: np.ndarray) -> ConvergenceReport:
        """The report with the estimate in units of the full images' maxima.

        Parameters
        ----------
        discs
            The full result, (n_thickness, n_reflections, ny, nx), in the order of the
            requested reflections the probes were solved for.
        """
        if self.probe_difference is None:
            return self
        peak = np.asarray(discs).max(axis=(-2, -1))  # (n_t, R)
        rel = self.probe_difference / image_scale(peak)
        per_t = rel.max(axis=1)
        estimate = float(per_t.max())
        return replace(
            self,
            estimate=estimate,
            estimate_per_thickness=[float(x) for x in per_t],
            converged=self.tolerance is not None and estimate <= self.tolerance,
        )


_TINY = 1e-30
#: Images darker than this fraction of the brightest disc at the same thickness are
#: measured against that level: a disc forbidden by the lattice (exactly zero, e.g. 200 of
#: Si [001]) or nearly so must not demand 1 % of nothing.
DARK_IMAGE = 1e-3


def image_scale(peak: np.ndarray) -> np.ndarray:
    """The maxima (n_t, R) the differences are measured against, dark images floored.

    Each image's maximum, but at least ``DARK_IMAGE`` times the brightest image of the
    same thickness (and never zero).
    """
    peak = np.asarray(peak, float)
    floor = DARK_IMAGE * peak.max(axis=-1, keepdims=True)
    return np.maximum(np.maximum(peak, floor), _TINY)


def select_probes(tilts: np.ndarray, count: int) -> np.ndarray:
    """Which of a grid's tilts to verify on: ``count`` of them, spread as evenly as possible.

    Farthest-point sampling: the tilt nearest the zone axis first, then each time the tilt
    farthest from those already taken, so that the probes reach the edges and corners of
    the tilts given (the irreducible wedge of the grid) and fill them evenly. Deterministic.

    Parameters
    ----------
    tilts
        (T, 2) tilts (kx, ky) in 1/Å, e.g. the representatives of the folded grid.
    count
        Number of probes (≥ 1); all T when T ≤ count.

    Returns
    -------
    numpy.ndarray
        Indices into ``tilts``, in the order they were taken.
    """
    if count < 1:
        raise ValueError(f"select_probes needs at least one probe, got {count}.")
    tilts = np.asarray(tilts, float)
    if len(tilts) <= count:
        return np.arange(len(tilts))
    taken = [int(np.argmin(np.hypot(*tilts.T)))]
    distance = np.hypot(*(tilts - tilts[taken[0]]).T)
    for _ in range(count - 1):
        taken.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.hypot(*(tilts - tilts[taken[-1]]).T))
    return np.array(taken)


def left_out_phase(
    crystal: Crystal,
    frame: ZoneFrame,
    k: np.ndarray,
    k0: float,
    thickness: float,
    *,
    voltage: float,
    laue_zones: Sequence[int] = (0,),
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
    absorption: str = "proportional",
    absorption_fraction: float = 0.1,
    candidates: int = 4000,
    factors: dict | None = None,
) -> np.ndarray:
    """Phase left out by keeping only the n beams nearest the Ewald sphere, for every n.

    A beam g far from the Ewald sphere shifts the Bloch-wave eigenvalues by about
    ``|U_g + iU'_g|² / (4K² |s_g|)`` (second-order perturbation); over the thickness t that
    is a phase ``2π t |U_g|² / (4K² |s_g|)``. The beams are ranked by |s_g| at each tilt, as the
    engine ranks them, and the phases of all beams beyond rank n are summed.

    Parameters
    ----------
    crystal, frame
        The crystal and its zone-axis frame.
    k
        Incident wave vectors (T, 3) in the frame, ``|k| = k0``.
    k0
        Wave number in 1/Å.
    thickness
        The largest thickness, Å.
    candidates
        Number of shortest reflections considered.
    factors
        Cache of structure factors shared with the calculation's pools
        (:func:`~hyperspy_lacbed.bloch.solver.cached_optical_factors`).

    Returns
    -------
    numpy.ndarray
        ``phase[n]``: the largest over the tilts of the phase left out by keeping n beams
        (000 included), radians; non-increasing in n.
    """
    hkl = pool_reflections(crystal, frame.zone_axis, candidates, laue_zones)
    u, u_abs = cached_optical_factors(
        factors,
        crystal,
        hkl,
        voltage,
        absorption,
        absorption_fraction,
        scattering_factors,
        debye_waller,
    )
    coupling = np.abs(u + 1j * u_abs)
    g = crystal.g_vectors(hkl) @ frame.rotation.T
    s = np.abs(excitation_errors(np.atleast_2d(k), g, k0))  # (T, P)
    origin = (hkl == 0).all(1)
    s[:, origin] = 0.0
    coupling[origin] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        phase = np.nan_to_num(2 * math.pi * thickness * coupling**2 / (4 * k0**2 * s), posinf=0.0)
    ranked = np.take_along_axis(phase, np.argsort(s, axis=1, kind="stable"), axis=1)
    tail = np.cumsum(ranked[:, ::-1], axis=1)[:, ::-1]  # tail[:, n] = Σ_{rank ≥ n}
    return np.concatenate([tail.max(0), [0.0]])


def physical_beam_counts(
    phase: np.ndarray, tolerance: float, budget: ConvergenceBudget = DEFAULT_BUDGET
) -> tuple[int, int]:
    """Strong and weak beam counts from the left-out phase of :func:`left_out_phase`.

    Strong beams: the fewest whose left-out phase is below ``strong_factor × tolerance``.
    Strong + weak: the fewest below ``total_factor × tolerance``, at least three times the
    strong beams (Bethe beams are cheap: with twice as many weak as strong beams the error
    of SrTiO3 fell 3–4× at the cost of 10 %). Both within the budget.
    """
    strong = _first_below(phase, budget.strong_factor * tolerance)
    total = _first_below(phase, budget.total_factor * tolerance)
    strong = int(np.clip(strong, budget.min_strong, budget.max_strong))
    total = int(min(max(total, 3 * strong), budget.max_beams))
    return strong, max(total - strong, 0)


def _first_below(phase: np.ndarray, level: float) -> int:
    below = np.flatnonzero(phase <= level)
    return int(below[0]) if below.size else len(phase)


@dataclass(frozen=True)
class ProbeProblem:
    """What the verification solves: a pool maker, tilts, thicknesses and discs.

    Attributes
    ----------
    pool_for
        ``pool_for(strong, weak)`` returns the beam pool the engine uses for that beam set
        (the pool must not depend on anything else, so that an explicit rerun with the
        chosen counts reproduces the result).
    rule
        The beam rule of the calculation; its counts are replaced.
    tilts
        (T, 2) probe tilts (kx, ky) in 1/Å.
    thickness
        Thicknesses in Å.
    reflections
        The discs solved, (R', 3): the requested ones and their symmetry images.
    groups
        (n_ops, R) columns of ``reflections`` holding the images R⁻¹g of each requested
        disc g: the image of g at tilt R k is the image of R⁻¹g at k, so the error of g is
        the largest over its column group (:func:`difference`). None: the reflections are
        the requested discs.
    solver, device
        As for :func:`~hyperspy_lacbed.bloch.solver.solve_tilts`.
    reference_pool_for
        Pool maker for the enlarged (reference) set; default ``pool_for``. An explicit
        ``beam_pool`` (the Felix preset) limits the calculation but must not limit the
        reference.
    """

    pool_for: Callable[[int, int], BeamPool]
    rule: BeamRule
    tilts: np.ndarray
    thickness: np.ndarray
    reflections: np.ndarray
    groups: np.ndarray | None = None
    solver: str = "fast"
    device: str = "cpu"
    max_memory: float = 2**30
    reference_pool_for: Callable[[int, int], BeamPool] | None = None

    def solve(self, strong: int, weak: int, reference: bool = False) -> np.ndarray:
        """Intensities (T, n_t, R) at the probe tilts for a beam set."""
        maker = self.reference_pool_for if reference and self.reference_pool_for else None
        pool = (maker or self.pool_for)(strong, weak)
        k = incident_vectors(self.tilts[:, 0], self.tilts[:, 1], pool.k0)
        outputs = np.array([_index_of(pool.hkl, h) for h in self.reflections])
        rule = replace(self.rule, strong_beams=int(strong), weak_beams=int(weak))
        return solve_tilts(
            pool,
            k,
            np.asarray(self.thickness, float),
            outputs,
            rule,
            solver=self.solver,
            device=self.device,
            max_memory=self.max_memory,
        )


def _index_of(hkl: np.ndarray, h: Sequence[int]) -> int:
    hits = np.flatnonzero((hkl == np.asarray(h)).all(1))
    if not hits.size:
        raise ValueError(f"Reflection {list(h)} is not in the beam pool.")
    return int(hits[0])


def difference(
    a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``|a − b|`` over the tilts, and its ratio to b's largest value, per (thickness, disc).

    Dark images are measured against ``DARK_IMAGE`` of the brightest (:func:`image_scale`).

    Parameters
    ----------
    a, b
        Intensities (T, n_t, R'); b is the reference.
    groups
        (n_ops, R) columns making up each disc (:class:`ProbeProblem`); None: R' = R.
    """
    diff, peak = np.abs(a - b).max(axis=0), b.max(axis=0)
    if groups is not None:
        diff, peak = diff[:, groups].max(axis=1), peak[:, groups].max(axis=1)
    return diff, diff / image_scale(peak)


def grow(strong: int, weak: int, factor: float) -> tuple[int, int]:
    """A beam set enlarged by ``factor`` (each count rounded up; at least one more strong)."""
    return max(math.ceil(factor * strong), strong + 1), math.ceil(factor * weak)


def choose_beams(
    problem: ProbeProblem,
    tolerance: float | None,
    *,
    initial: tuple[int, int],
    explicit: bool,
    budget: ConvergenceBudget = DEFAULT_BUDGET,
) -> ConvergenceReport:
    """Verify a beam set on the probe tilts, enlarging an automatic one until it converges.

    Parameters
    ----------
    problem
        The probe calculation.
    tolerance
        Fraction of each image's maximum; None only measures (explicit sets).
    initial
        (strong, weak) to start from: the physical guess, or the user's counts.
    explicit
        Honour ``initial`` exactly and only measure it.
    budget
        Limits of the automatic choice.

    Returns
    -------
    ConvergenceReport
        With the chosen counts. Its estimate is in units of the probes' maxima until
        :meth:`ConvergenceReport.normalise_by` rescales it by the full images.
    """
    t0 = time.perf_counter()
    strong, weak = initial
    current = problem.solve(strong, weak)
    steps: list[dict[str, float]] = []
    while True:
        ref_strong, ref_weak = grow(strong, weak, budget.growth)
        reference = problem.solve(ref_strong, ref_weak, reference=True)
        diff, rel = difference(current, reference, problem.groups)
        diff, rel = budget.safety * diff, budget.safety * rel
        estimate = float(rel.max())
        steps.append({"strong_beams": strong, "weak_beams": weak, "estimate": estimate})
        if explicit or tolerance is None or estimate <= tolerance:
            break
        if strong >= budget.max_strong and strong + weak >= budget.max_beams:
            break
        # Grow by what the estimate asks for if it falls as n⁻³ (SrTiO3 and GaAs [001]: n⁻³
        # to n⁻⁴ near 1 %), with 10 % margin, between 1.15× and the growth factor; at the
        # growth factor the reference becomes the candidate and its solve is reused.
        factor = float(np.clip(1.1 * (estimate / tolerance) ** (1 / 3), 1.15, budget.growth))
        grown = grow(strong, weak, factor)
        new_strong = min(grown[0], budget.max_strong)
        new_weak = max(min(grown[1], budget.max_beams - new_strong), 0)
        if (new_strong, new_weak) == (strong, weak):  # nothing left to grow within the budget
            break
        if (new_strong, new_weak) == (ref_strong, ref_weak) and not problem.reference_pool_for:
            current = reference
        else:
            current = problem.solve(new_strong, new_weak)
        strong, weak = new_strong, new_weak
    per_t = rel.max(axis=1)
    return ConvergenceReport(
        mode="explicit" if explicit else "auto",
        strong_beams=int(strong),
        weak_beams=int(weak),
        reference_strong_beams=int(ref_strong),
        reference_weak_beams=int(ref_weak),
        tolerance=tolerance,
        estimate=estimate,
        estimate_per_thickness=[float(x) for x in per_t],
        verified_tilts=len(problem.tilts),
        converged=tolerance is not None and estimate <= tolerance,
        steps=steps,
        seconds=time.perf_counter() - t0,
        probe_difference=diff,
        probe_intensities=current,
    )


def warn_if_unconverged(report: ConvergenceReport, what: str = "The simulation") -> None:
    """Emit a :class:`ConvergenceWarning` when an automatic choice missed its tolerance."""
    if report.mode != "auto" or report.tolerance is None or report.converged:
        return
    warnings.warn(
        f"{what} is not converged to the tolerance {report.tolerance:g}: with the beam budget "
        f"({report.strong_beams} strong + {report.weak_beams} weak beams) the discs are off by "
        f"up to an estimated {report.estimate:.3g} of their maximum. "
        "Pass a larger tolerance, fewer/thinner thicknesses, or explicit strong_beams= / "
        "weak_beams= beyond the budget.",
        ConvergenceWarning,
        stacklevel=3,
    )
