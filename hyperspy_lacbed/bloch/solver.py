"""Bloch-wave solver: beam pool, structure matrices, batched eigen-solves, thickness propagation.

For each incident tilt the structure matrix (:doc:`/user_guide/conventions`) has the exact excitation error
s_g on the diagonal and (U_{g−h} + i U'_{g−h}) / 2K off it. Its eigenpairs (γ_j, C) give
ψ(t) = C diag(exp(2πi γ_j t)) C⁻¹ ψ(0) for every thickness from one solve. Many tilts are
solved at once as a batch with ``torch.linalg.eig``.

This module works on plain arrays; it imports neither HyperSpy nor the signal classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hyperspy_lacbed.bloch.geometry import excitation_errors
from hyperspy_lacbed.bloch.holz import HolzReach, holz_reflections
from hyperspy_lacbed.bloch.matrix import output_positions, structure_matrices, with_diagonal
from hyperspy_lacbed.bloch.propagate import eigen_propagate, output_intensities
from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame, zolz_reflections
from hyperspy_lacbed.crystal.structure_factors import (
    optical_structure_factors,
    structure_factors,
)

SOLVERS = ("exact", "fast")
#: Bytes of working memory one tilt needs per beam², complex128: the gathered matrix, its
#: copies through scaling and padding, eigenvectors, LAPACK workspace and the solve. A
#: deliberately conservative figure: the peak RSS measured by benchmarks/bench_engine.py
#: stays below the estimate.
BYTES_PER_BEAM2 = 16 * 10


@dataclass(frozen=True)
class BeamPool:
    """Tilt-independent part of a Bloch-wave calculation.

    Attributes
    ----------
    hkl
        Miller indices of the pool, (P, 3), 000 first.
    g
        The pool's reciprocal vectors in the zone-axis frame, (P, 3), 1/Å.
    potential
        Matrix of U_{g_i − g_j} + i U'_{g_i − g_j} in Å⁻², (P, P). Its diagonal holds the
        mean absorptive potential i U'_0 (the real U_0 is folded into K), U_0 + i U'_0, or
        zeros where the physics leaves it out (Felix).
    coupled
        Whether each beam is reachable from 000 through non-zero Fourier coefficients;
        the others can never be excited and are left out of every matrix.
    u_zero
        |U_g| of each beam (its coupling to 000), used by the strong-beam rule.
    k0
        Wave number K = 1/λ in 1/Å.
    normal
        Unit surface normal in the frame.
    """

    hkl: np.ndarray
    g: np.ndarray
    potential: np.ndarray
    coupled: np.ndarray
    u_zero: np.ndarray
    k0: float
    normal: np.ndarray


def _lattice_centring_allowed(hkl: np.ndarray, symbol: str) -> np.ndarray:
    h, k, l = hkl.T
    c = symbol[:1].upper()
    if c == "F":
        return (h % 2 == k % 2) & (k % 2 == l % 2)
    if c == "I":
        return (h + k + l) % 2 == 0
    if c == "A":
        return (k + l) % 2 == 0
    if c == "B":
        return (h + l) % 2 == 0
    if c == "C":
        return (h + k) % 2 == 0
    if c == "R":
        return (-h + k + l) % 3 == 0
    return np.ones(len(hkl), bool)


def build_pool(
    crystal: Crystal,
    frame: ZoneFrame,
    k0: float,
    voltage: float,
    pool_size: int | None,
    *,
    g_max: float | None = None,
    laue_zones: Sequence[int] = (0,),
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
    absorption: str = "proportional",
    absorption_fraction: float = 0.1,
    diagonal: str = "absorptive",
    normal: np.ndarray | None = None,
    required: np.ndarray | None = None,
    factors: dict | None = None,
    holz: HolzReach | None = None,
) -> BeamPool:
    """Enumerate the beam pool and compute every Fourier coefficient the matrices need.

    The pool holds the ``pool_size`` shortest reflections of the Laue zones, whole shells
    included so that it keeps the crystal's symmetry, and ``required`` ones. ``diagonal``
    is one of :data:`~hyperspy_lacbed.bloch.matrix.DIAGONAL_MODES`. ``factors`` is a
    cache for :func:`cached_optical_factors`, shared by the pools of one calculation.
    With ``holz`` the upper-Laue-zone reflections of
    :func:`~hyperspy_lacbed.bloch.holz.holz_reflections` follow the zero-order ones
    (``k0`` is then the wave number in the crystal).
    """
    import torch

    if g_max is not None:
        hkl = zolz_reflections(crystal, frame.zone_axis, g_max, laue_zones)
        hkl = hkl[_lattice_centring_allowed(hkl, crystal.space_group_symbol)]
    else:
        hkl = pool_reflections(crystal, frame.zone_axis, pool_size, laue_zones)
    if holz is not None:
        hkl = np.concatenate(
            [hkl, holz_reflections(crystal, frame, k0, voltage, holz, hkl,
                                   scattering_factors=scattering_factors,
                                   debye_waller=debye_waller)]
        )  # fmt: skip
    if required is not None and len(required):
        missing = [tuple(r) for r in np.asarray(required) if not (hkl == r).all(1).any()]
        if missing:
            hkl = np.concatenate([hkl, np.array(missing, int)])
    diff = (hkl[:, None, :] - hkl[None, :, :]).reshape(-1, 3)
    # One int64 key per difference (mixed radix, so the order is lexicographic as with
    # np.unique(axis=0), which is ~20x slower on the millions of pairs of a large pool).
    lo = diff.min(0)
    span = diff.max(0) - lo + 1
    key = ((diff[:, 0] - lo[0]) * span[1] + (diff[:, 1] - lo[1])) * span[2] + (diff[:, 2] - lo[2])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    uniq = diff[first]
    u, u_abs = cached_optical_factors(
        factors,
        crystal,
        uniq,
        voltage,
        absorption,
        absorption_fraction,
        scattering_factors,
        debye_waller,
    )
    full = (u + 1j * u_abs)[inverse.reshape(-1)].reshape(len(hkl), len(hkl))
    full = with_diagonal(torch.as_tensor(full), diagonal).numpy()
    g = crystal.g_vectors(hkl) @ frame.rotation.T
    scale = np.abs(full).max()
    coupled = connected_to_origin(np.abs(full) > 1e-10 * scale)
    n = np.array([0.0, 0.0, 1.0]) if normal is None else np.asarray(normal, float)
    return BeamPool(hkl, g, full, coupled, np.abs(full[:, 0]), k0, n / np.linalg.norm(n))


def cached_optical_factors(
    cache: dict | None, crystal: Crystal, hkl: np.ndarray, *physics
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~hyperspy_lacbed.crystal.structure_factors.optical_structure_factors`, remembered.

    The verification of a beam choice builds pools of several sizes, each needing U_g of
    the differences of its reflections, and the physical guess needs them for thousands of
    reflections; with Bird–King absorption (a numerical integral per |g|) computing each
    once cut GeSn [1-10]'s setup by a third. ``cache`` maps Miller indices to
    ``(U_g, U'_g)`` for one crystal and one ``physics`` (the positional arguments after
    ``hkl``); None computes without remembering.
    """
    if cache is None:
        return optical_structure_factors(crystal, hkl, *physics)
    keys = list(map(tuple, np.asarray(hkl).tolist()))
    missing = [i for i, key in enumerate(keys) if key not in cache]
    if missing:
        u, u_abs = optical_structure_factors(crystal, np.asarray(hkl)[missing], *physics)
        cache.update(zip([keys[i] for i in missing], zip(u, u_abs), strict=True))
    both = np.array([cache[key] for key in keys], complex).reshape(-1, 2)
    return both[:, 0], both[:, 1]


def refracted_wavenumber(
    crystal: Crystal,
    k_vac: float,
    voltage: float,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> float:
    """Wave number inside the crystal, ``K = sqrt(K_vac² + U_0)`` (1/Å).

    The mean inner potential U_0 refracts the incident wave: ``K² = K_vac² + U_0``.

    Parameters
    ----------
    crystal
        The crystal.
    k_vac
        Wave number in vacuum, 1/Å.
    voltage
        Accelerating voltage in V.
    scattering_factors, debye_waller
        As for :func:`~hyperspy_lacbed.crystal.structure_factors.structure_factors`.
    """
    zero = np.zeros((1, 3), int)
    u0 = structure_factors(crystal, zero, voltage, scattering_factors, debye_waller)[0].real
    return math.sqrt(k_vac**2 + u0)


def pool_reflections(
    crystal: Crystal, zone_axis: Sequence[int], count: int, laue_zones: Sequence[int] = (0,)
) -> np.ndarray:
    """The ``count`` shortest reflections allowed by the lattice centring, whole shells kept."""
    g_try = 1.0
    while True:
        hkl = zolz_reflections(crystal, zone_axis, g_try, laue_zones)
        # Lattice-centring extinctions are exact zeros that no path can excite (Felix drops
        # them too).
        hkl = hkl[_lattice_centring_allowed(hkl, crystal.space_group_symbol)]
        if len(hkl) > count or g_try > 30:
            break
        g_try *= 1.3
    lengths = np.linalg.norm(crystal.g_vectors(hkl), axis=1)  # sorted ascending
    cut = lengths[min(count, len(lengths)) - 1] + 1e-6
    return hkl[lengths <= cut]


def connected_to_origin(adjacency: np.ndarray) -> np.ndarray:
    """Which beams are reachable from 000 (index 0) through the coupling ``adjacency`` (P, P).

    The others can never be excited, so they are left out of every matrix.
    """
    reached = np.zeros(len(adjacency), bool)
    reached[0] = True
    frontier = reached.copy()
    while frontier.any():
        new = adjacency[frontier].any(axis=0) & ~reached
        reached |= new
        frontier = new
    return reached


@dataclass(frozen=True)
class BeamRule:
    """Strong/weak beam selection (Felix's rule by default).

    A beam is strong when |s_g| < s_max, with s_max the smallest multiple of ``s_step`` for
    which at least ``strong_beams`` beams qualify (``s_step=0`` takes the exact count, ties
    included), or when |U_g| / (2K |s_g|) ≥ ``perturbation_strength``. Weak beams are the
    next ``weak_beams`` by |s_g|; they enter as Bethe potentials.
    """

    strong_beams: int = 100
    weak_beams: int = 0
    s_step: float = 0.0
    perturbation_strength: float = 0.5
    count_uncoupled: bool = False


def select_beams(
    s: np.ndarray,
    pool: BeamPool,
    rule: BeamRule,
    forced: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose strong (and weak) beams for each tilt.

    Returns
    -------
    strong, weak
        Boolean masks (T, P).
    """
    abs_s = np.abs(s)
    ranked = abs_s if rule.count_uncoupled else np.where(pool.coupled[None], abs_s, np.inf)
    n = min(rule.strong_beams, int(np.isfinite(ranked[0]).sum()))
    kth = np.partition(ranked, n - 1, axis=1)[:, n - 1 : n]
    if rule.s_step > 0:
        s_max = (np.floor(kth / rule.s_step) + 1) * rule.s_step
        strong = ranked < s_max
    else:
        strong = ranked <= kth * (1 + 1e-9) + 1e-15
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.nan_to_num(pool.u_zero[None] / (2 * pool.k0 * abs_s), nan=np.inf)
    strong |= strength >= rule.perturbation_strength
    strong[:, forced] = True
    strong &= pool.coupled[None]
    weak = np.zeros_like(strong)
    if rule.weak_beams > 0:
        rest = np.where(strong | ~pool.coupled[None], np.inf, abs_s)
        m = min(rule.weak_beams, int(np.isfinite(rest[0]).sum()))
        if m > 0:
            kth_w = np.partition(rest, m - 1, axis=1)[:, m - 1 : m]
            weak = (rest <= kth_w * (1 + 1e-9) + 1e-15) & np.isfinite(rest)
    return strong, weak


def padded_indices(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the True entries of each row, padded with -1 to equal length.

    Parameters
    ----------
    mask
        Boolean (T, N), e.g. the strong or weak beams of each tilt.

    Returns
    -------
    indices, counts
        (T, M) indices in ascending order, M the largest count, -1 past each row's count;
        and the count of each row, (T,).
    """
    counts = mask.sum(1)
    m = int(counts.max()) if len(counts) else 0
    order = np.argsort(~mask, axis=1, kind="stable")[:, :m]
    valid = np.arange(m)[None, :] < counts[:, None]
    return np.where(valid, order, -1), counts


def memory_per_tilt(n_beams: int, n_outputs: int, n_thickness: int, n_weak: int = 0) -> int:
    """Estimated bytes of working memory for one tilt with ``n_beams`` strong beams.

    ``n_weak`` Bethe beams add the strong × weak coupling blocks (U_gw, U_wg and the
    einsum's operands, complex128), not an (n_beams + n_weak)² matrix.
    """
    return (
        BYTES_PER_BEAM2 * n_beams**2
        + 16 * n_beams * (n_outputs + 4) * max(n_thickness, 1)
        + 16 * 4 * n_beams * n_weak
    )


@dataclass
class SolveStats:
    """What a solve did: counts and where its time went."""

    tilts: int = 0
    max_beams: int = 0
    mean_beams: float = 0.0
    eig_seconds: float = 0.0
    total_seconds: float = 0.0
    chunks: int = 0


def solve_tilts(
    pool: BeamPool,
    k: np.ndarray,
    thickness: np.ndarray,
    outputs: np.ndarray,
    rule: BeamRule,
    *,
    solver: str = "exact",
    device: str = "cpu",
    max_memory: float = 2**30,
    progress: Callable[[int], None] | None = None,
    stats: SolveStats | None = None,
) -> np.ndarray:
    """Beam intensities ``|ψ_g(t)|²`` for a set of incident tilts.

    Parameters
    ----------
    pool
        From :func:`build_pool`.
    k
        Incident wave vectors in the frame, (T, 3), |k| = K.
    thickness
        Thicknesses in Å, (n_t,).
    outputs
        Indices into the pool of the beams to return, (R,).
    rule
        Beam selection.
    solver
        ``"exact"``: complex128 non-Hermitian eigen-solve. ``"fast"``: the matrices and their
        eigen-solve in complex64 (about 1.6–2× faster on CPU; 1–4e-4 of the image maximum
        from the exact solve in ``benchmarks/bench_engine.py``); the propagation stays in
        complex128.
    device
        torch device.
    max_memory
        Bytes the batched solve may use; tilts are processed in chunks that fit.
    progress
        Called with the number of tilts finished after each chunk.

    Returns
    -------
    numpy.ndarray
        Intensities, shape (T, n_t, R).
    """
    import time

    import torch

    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}; choose 'exact' or 'fast'.")
    t_start = time.perf_counter()
    stats = stats if stats is not None else SolveStats()
    s = excitation_errors(k, pool.g, pool.k0)
    strong, weak = select_beams(s, pool, rule, outputs)
    counts = strong.sum(1)
    n_max = int(counts.max())
    per_tilt = memory_per_tilt(n_max, len(outputs), len(thickness), int(weak.sum(1).max()))
    if per_tilt > max_memory:
        raise ValueError(
            f"max_memory={max_memory / 2**20:.1f} MiB is too small for one tilt with "
            f"{n_max} beams (needs about {per_tilt / 2**20:.1f} MiB); raise max_memory or "
            "lower strong_beams."
        )
    chunk = max(1, int(max_memory // per_tilt))
    dev = torch.device(device)
    result = np.empty((len(k), len(thickness), len(outputs)))
    thick = torch.as_tensor(np.asarray(thickness, float), device=dev)
    potential = torch.as_tensor(pool.potential, device=dev)
    if solver == "fast":
        # The eigen-solve rounds the matrices to complex64 anyway: assembling them (the
        # Bethe sums over hundreds of weak beams) in complex64 halves that cost and memory
        # and changes nothing the solve keeps (benchmarks/bench_revisions.py).
        potential = potential.to(torch.complex64)
    for start in range(0, len(k), chunk):
        sl = slice(start, min(start + chunk, len(k)))
        result[sl] = _solve_chunk(
            pool,
            k[sl],
            s[sl],
            strong[sl],
            weak[sl],
            outputs,
            thick,
            potential,
            solver,
            dev,
            stats,
        )
        stats.chunks += 1
        if progress is not None:
            progress(sl.stop - sl.start)
    stats.tilts += len(k)
    stats.max_beams = max(stats.max_beams, n_max)
    stats.mean_beams = float(counts.mean())
    stats.total_seconds += time.perf_counter() - t_start
    return result


def _solve_chunk(pool, k, s, strong, weak, outputs, thick, potential, solver, dev, stats):
    import time

    import torch

    idx, _ = padded_indices(strong)  # (T, M)
    widx = padded_indices(weak)[0] if weak.any() else None
    as_t = lambda v: torch.as_tensor(v, device=dev)  # noqa: E731
    a, scale = structure_matrices(
        potential,
        as_t(s),
        pool.k0,
        as_t(k @ pool.normal),
        as_t(pool.g @ pool.normal),
        as_t(idx),
        None if widx is None else as_t(widx),
    )
    pos = output_positions(idx, outputs)
    pos_t = as_t(np.where(pos < 0, 0, pos))
    t0 = time.perf_counter()
    psi = eigen_propagate(a, thick, pos_t, single=solver == "fast")
    stats.eig_seconds += time.perf_counter() - t0
    return output_intensities(psi, scale, pos_t, as_t(pos < 0)).cpu().numpy()
