"""Physics refinement of a retrieved projected potential (crystal-free, ZOLZ only).

A LACBED pattern along a zone axis depends on the crystal only through the zero-order
Laue zone (ZOLZ) Fourier coefficients of its potential (plus the thickness and, weakly,
higher zones). A potential retrieved by the inverse cGAN therefore fixes a complete
Bloch-wave model: its coefficients ``c V_g`` (the 2-D DFT of the cell image / P²) become
the structure factors ``U_g = V_g / u_to_volts(γ)`` of a structure matrix that needs no
atoms. :func:`refine_potential` refines the lowest-order coefficients of that model —
one real factor per symmetry class of reflections (4mm of the cubic [001] zone with
Friedel's law: ``V_g`` of equivalent g keep their ratios and phases) — and the thickness
against the discs with the Bloch model of :mod:`hyperspy_lacbed.refinement.model`, then
rebuilds the potential image with the refined coefficients.

Image conventions as :mod:`hyperspy_lacbed.nets.fourier`: a ``P × P`` image of one
``a × a`` cell in V·Å, pixel ``[iy, ix]`` at ``(ix, iy) a / P``; ``V_proj(r) = a Σ V_g
exp(2πi g·r)``. Absorption is proportional (``U'_g = fraction · U_g``), as the models'
training simulations.

Plain arrays and torch; no HyperSpy.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import Crystal
from hyperspy_lacbed.refinement.driver import Problem, lbfgs
from hyperspy_lacbed.refinement.fom import disc_mask
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.refinement.parameters import Parameter
from hyperspy_lacbed.units import relativistic_gamma, u_to_volts

__all__ = ["PotentialBlochModel", "refine_potential", "zolz_classes"]


def zolz_classes(h_max: int) -> list[np.ndarray]:
    """Symmetry classes of the ZOLZ reflections (h, k, 0), ``0 < max(|h|, |k|) ≤ h_max``.

    Classes are the orbits of 4mm (signed permutations of h and k), which include each
    Friedel mate; sorted by ``|g|`` (then by h, k), so the first classes are the lowest
    orders. Each class is an (m, 3) array of Miller indices.
    """
    seen: set[tuple[int, int]] = set()
    classes = []
    r = range(-int(h_max), int(h_max) + 1)
    for h, k in sorted(
        ((h, k) for h in r for k in r if (h, k) != (0, 0)),
        key=lambda hk: (hk[0] ** 2 + hk[1] ** 2, -hk[0], -hk[1]),
    ):
        if (h, k) in seen:
            continue
        orbit = sorted(
            {(sh * a, sk * b) for a, b in ((h, k), (k, h)) for sh in (1, -1) for sk in (1, -1)}
        )
        seen.update(orbit)
        classes.append(np.array([(a, b, 0) for a, b in orbit], int))
    return classes


def potential_coefficients(potential: np.ndarray, h_max: int) -> np.ndarray:
    """``c V_g`` (V·Å, complex) of a cell image for ``|h|, |k| ≤ h_max``, ``[k + h_max, h + h_max]``."""
    p = np.asarray(potential, float)
    n = p.shape[-1]
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"The potential must be one square image, got shape {p.shape}.")
    if not 2 * h_max < n:
        raise ValueError(f"h_max = {h_max} needs more than {2 * h_max} pixels per cell; got {n}.")
    spec = np.fft.fft2(p) / n**2
    idx = np.arange(-h_max, h_max + 1) % n
    return spec[idx[:, None], idx[None, :]]


def coefficients_to_potential(coefficients: np.ndarray, pixels: int) -> np.ndarray:
    """The real P × P image of ``c V_g`` coefficients (Hermitian-symmetrised)."""
    c = np.asarray(coefficients, complex)
    h_max = (c.shape[-1] - 1) // 2
    c = 0.5 * (c + np.flip(c, axis=(-2, -1)).conj())
    spec = np.zeros((pixels, pixels), complex)
    idx = np.arange(-h_max, h_max + 1) % pixels
    spec[idx[:, None], idx[None, :]] = c
    return np.fft.ifft2(spec).real * pixels**2


def _carrier_crystal(a: float) -> Crystal:
    """A simple-cubic cell of edge a: it carries only the geometry (frame, beam pool)."""
    return Crystal.from_dict(
        {
            "lattice_parameters": [a, a, a, 90.0, 90.0, 90.0],
            "elements": ["Si"],
            "positions": [[0.0, 0.0, 0.0]],
            "occupancies": [1.0],
            "b_iso": [0.5],
            "name": "ZOLZ carrier",
        }
    )


class PotentialBlochModel(BlochModel):
    """A :class:`~hyperspy_lacbed.refinement.model.BlochModel` whose structure factors come from ZOLZ coefficients, not atoms.

    Parameters
    ----------
    coefficients
        ``c V_g`` (V·Å) of the projected potential, ``(2 h_max + 1, 2 h_max + 1)``,
        element ``[k + h_max, h + h_max]`` for (h, k, 0); coefficients outside this band
        and every higher-zone structure factor are zero.
    lattice_parameter
        Cubic a (Å).
    classes
        Symmetry classes refined (each an (m, 3) array, :func:`zolz_classes`): the
        parameter vector is ``[thickness, f_1, ..., f_n]`` (``[f_1, ..., f_n]`` when the
        thickness is fixed) and class i's coefficients are multiplied by ``1 + f_i``.
    refine_thickness
        Whether the thickness is a parameter (within ±20 % of ``thickness``).
    max_change
        Upper bound of each class factor f (−1 ≤ f ≤ max_change).
    coupling_threshold
        Beams whose ``|U_g|`` is below this fraction of the largest (g ≠ 0) are left uncoupled.
    settings, reflections, pixels, dk, thickness
        As for :class:`~hyperspy_lacbed.refinement.model.BlochModel` (the absorption must
        be ``"proportional"`` or ``"none"``; the beam counts must be explicit).
    """

    def __init__(
        self,
        coefficients: np.ndarray,
        lattice_parameter: float,
        classes: list[np.ndarray],
        settings: SimulationSettings,
        reflections: np.ndarray,
        pixels: int,
        dk: float,
        *,
        thickness: float = 1000.0,
        chunk: int = 256,
        coupling_threshold: float = 1e-2,
        refine_thickness: bool = True,
        max_change: float = 2.0,
    ):
        import torch

        if settings.strong_beams is None:
            raise ValueError(
                "A potential-only model needs explicit beam counts (its carrier crystal "
                "cannot be converged by the tolerance); give strong_beams=."
            )
        if settings.beam_pool is None:
            # the carrier couples every (h, k, 0); a larger pool leaves room for extinctions
            settings = replace(settings, beam_pool=max(6 * settings.strong_beams + 60, 120))
        if settings.absorption not in ("proportional", "none"):
            raise ValueError(
                f"absorption={settings.absorption!r} needs atoms; a potential-only model "
                "takes 'proportional' or 'none'."
            )
        physics = settings
        a = float(lattice_parameter)
        c = np.asarray(coefficients, complex)
        self._h_max = (c.shape[-1] - 1) // 2
        self._coeff = c
        self._a = a
        self._classes = [np.asarray(k, int).reshape(-1, 3) for k in classes]
        self._ready = False
        #: a common factor of every U_g (g ≠ 0), set by the coarse scan of refine_potential
        self.gain = 1.0
        super().__init__(
            _carrier_crystal(a), physics, reflections, pixels, dk, (), thickness=thickness,
            chunk=chunk,
        )  # fmt: skip
        hm = self._h_max
        u = np.zeros(len(self.uniq), complex)
        scale = a * u_to_volts(relativistic_gamma(physics.voltage))
        member = np.full(len(self.uniq), -1)
        lookup = {tuple(h): i for i, h in enumerate(self.uniq.tolist())}
        for i, (h, k, l) in enumerate(self.uniq.tolist()):
            if l == 0 and abs(h) <= hm and abs(k) <= hm:
                u[i] = c[k + hm, h + hm] / scale
        for ci, cls in enumerate(self._classes):
            for hkl in cls.tolist():
                j = lookup.get(tuple(hkl))
                if j is not None:
                    member[j] = ci
        self._u_base = torch.as_tensor(u)
        # The carrier's pool couples every beam; couple only the beams the potential does
        # (|U_g| above coupling_threshold of the strongest U_g, g ≠ 0), so that the strong
        # beams are not spent on (nearly) forbidden reflections.
        ug = np.array([u[lookup[tuple(h)]] if tuple(h) in lookup else 0 for h in self.pool.hkl])
        nonzero = (self.pool.hkl != 0).any(1)
        ref = np.abs(ug[nonzero]).max() if nonzero.any() else 1.0
        coupled = (np.abs(ug) > coupling_threshold * ref) | ~nonzero
        k0 = math.sqrt(self.k_vac**2 + max(u[self._zero].real, 0.0))
        self.pool = replace(self.pool, coupled=coupled, u_zero=np.abs(ug), k0=k0)
        self._member = torch.as_tensor(member)
        # each class named by its member with h ≥ k ≥ 0, e.g. "U(2,2,0)"
        t0 = self.thickness0
        self.parameters = (
            [Parameter("thickness", "thickness", t0, 0.8 * t0, 1.2 * t0, "Å", step=0.01 * t0)]
            if refine_thickness
            else []
        ) + [
            Parameter("U({},{},{})".format(*max(map(tuple, k.tolist()))), "Ug", 0.0, -1.0,
                      float(max_change), "", step=0.01)
            for k in self._classes
        ]  # fmt: skip
        self.names = [p.name for p in self.parameters]
        self._n_thickness = int(refine_thickness)
        self._ready = True
        self.choose_beams(self.start_vector())

    def start_vector(self):
        """The start values: the thickness (when refined) and zero class factors."""
        import torch

        if not getattr(self, "_ready", False):
            return torch.zeros(0, dtype=torch.float64)
        return torch.tensor([p.value for p in self.parameters], dtype=torch.float64)

    def factors(self, x):
        """The class factors f of ``x`` (the entries after the thickness)."""
        return x[self._n_thickness :]

    def fourier_coefficients(self, x):
        """U_g + i U'_g of every unique beam difference (Å⁻²) at ``x``."""
        import torch

        if not getattr(self, "_ready", False):
            # during BlochModel.__init__ (beam choice at the start): the carrier's atoms
            return super().fourier_coefficients(x)
        factors = torch.cat([torch.ones(1, dtype=torch.float64), 1 + self.factors(x)])
        f = factors[torch.clamp(self._member + 1, min=0)]
        u = self._u_base * f.to(torch.complex128) * self._gains()
        if self.settings.absorption == "none":
            return u
        return u + 1j * self.settings.absorption_fraction * u

    def _gains(self):
        import torch

        g = torch.full((len(self.uniq),), float(self.gain), dtype=torch.complex128)
        g[self._zero] = 1.0
        return g

    def refined_coefficients(self, x) -> np.ndarray:
        """The ``c V_g`` array with the gain and the class factors of ``x`` applied."""
        hm = self._h_max
        c = self._coeff * self.gain
        c[hm, hm] = self._coeff[hm, hm]
        for f, cls in zip(np.asarray(self.factors(x), float), self._classes):
            for h, k, _ in cls.tolist():
                if abs(h) <= hm and abs(k) <= hm:
                    c[k + hm, h + hm] *= 1 + f
        return c


def _bin(discs: np.ndarray, factor: int) -> np.ndarray:
    r, n, _ = discs.shape
    return discs.reshape(r, n // factor, factor, n // factor, factor).mean((2, 4))


def refine_potential(
    potential: np.ndarray,
    lattice_parameter: float,
    discs: np.ndarray,
    reflections: np.ndarray,
    dk: float,
    thickness: float,
    *,
    n_classes: int = 6,
    h_max: int = 12,
    refine_thickness: bool = False,
    binning: int = 4,
    max_iter: int = 60,
    max_change: float = 2.0,
    fom: str = "lsq",
    coupling_threshold: float = 1e-2,
    gains: Any = None,
    class_sweeps: int = 1,
    class_grid: Any = (0.0, 0.25, 0.5, 0.75, 1.5, 2.0, 3.0),
    **physics: Any,
) -> dict[str, Any]:
    """Refine the low-order ZOLZ coefficients of a projected potential against its discs.

    Parameters
    ----------
    potential
        ``P × P`` image of one cell in V·Å (the start, e.g. the inverse cGAN's).
    lattice_parameter
        Cubic a (Å).
    discs
        The pattern, ``(R, D, D)`` on the grid of pixel ``dk`` (1/Å) centred on each disc,
        in the engine's frame (as :meth:`~hyperspy_lacbed.nets.runner.InversePlan.model_discs`).
    reflections
        ``(R, 3)`` Miller indices of the discs (ZOLZ).
    thickness
        Start thickness (Å).
    n_classes
        Number of lowest-order symmetry classes refined (:func:`zolz_classes`), counting
        only classes whose largest ``|coefficient|`` exceeds ``coupling_threshold`` of the
        largest (g ≠ 0) one: (nearly) forbidden reflections are left alone.
    coupling_threshold
        That fraction; beams below it are also left uncoupled in the Bloch model.
    gains
        Common factors of all coefficients (g ≠ 0) scanned before the fit (the best is
        the start of the fit); default 13 values from 0.5 to 4 (geometric); ``()`` skips
        the scan.
    class_sweeps, class_grid
        Sweeps of a coarse scan of each class factor ``1 + f`` over ``class_grid`` in turn
        (after the gain scan, before L-BFGS; 0 skips it).
    h_max
        Band of coefficients taken from the image into the structure matrix.
    refine_thickness
        Refine the thickness too (within ±20 %).
    binning
        Discs binned by this factor (D must be divisible) for speed.
    max_iter
        L-BFGS iterations (:func:`~hyperspy_lacbed.refinement.driver.lbfgs`, the driver of
        every refinement).
    max_change
        Upper bound on each class factor ``f`` (coefficients scaled by 1 + f, with
        −1 ≤ f ≤ max_change: a class may vanish, e.g. a reflection the network invented).
    fom
        ``"lsq"`` (default: mean squared residual relative to the brightest pixel, the
        intensity scale profiled out) or ``"zncc"`` (1 − mean ZNCC over discs; poor when a
        disc is uniform, e.g. the dark ±200 discs of Si).
    **physics
        :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings` (voltage, zone_axis,
        x_direction, strong_beams, absorption_fraction, ...); ``strong_beams`` must be given.

    Returns
    -------
    dict
        ``potential`` (refined image), ``coefficients`` (refined c·V_g), ``thickness``,
        ``factors`` {class: 1 + f}, ``gain`` (the common factor, before ``factors``),
        ``fom_before``, ``fom_after``, ``iterations`` (figure-of-merit evaluations) and
        ``message`` (why the fit stopped).
    """
    data_b = _binned_discs(discs, binning)
    pix = data_b.shape[-1]
    p = np.asarray(potential, float)
    coeff = potential_coefficients(p, min(h_max, (p.shape[-1] - 1) // 2))
    classes = _coupled_classes(coeff, n_classes, coupling_threshold)
    model = PotentialBlochModel(
        coeff, lattice_parameter, classes, SimulationSettings.from_user(**physics),
        np.asarray(reflections, int), pix, dk * binning, thickness=float(thickness),
        coupling_threshold=coupling_threshold, refine_thickness=refine_thickness,
        max_change=max_change,
    )  # fmt: skip
    mask = np.broadcast_to(disc_mask(pix), data_b.shape)
    # uniform weights: the sum of squares relative to the brightest pixel (a profiled scale)
    inv_sigma = np.full(data_b.shape, 1.0 / max(float(data_b.max()), 1e-300))
    problem = Problem(model, data_b, mask, fom, (0, False), 0.0, inv_sigma)
    x0 = model.start_vector()
    before = problem.value(x0)
    scanned, start = _scan_start(problem, x0, gains, class_sweeps, class_grid)
    # L-BFGS from the scanned start and from the gain-only start (the scan can lead into
    # a worse basin); the lower figure of merit wins, and never one above the scan's
    starts = [start] if bool((start == x0).all()) else [start, x0]
    history: list[float] = []
    runs = [lbfgs(problem, s0, int(max_iter), history, None, 1e-10) for s0 in starts]
    x, after, message = min(runs, key=lambda r: r[1])
    if not after <= scanned:
        x, after, message = start, scanned, f"{message}; kept the scanned start"
    return _potential_result(p, model, x, fom, before, after, len(history), message)


def _binned_discs(discs: np.ndarray, binning: int) -> np.ndarray:
    """The discs checked and binned by ``binning`` (which must leave an even size)."""
    data = np.asarray(discs, float)
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise ValueError(f"discs must be (R, D, D), got shape {data.shape}.")
    if not np.isfinite(data).all():
        raise ValueError("The discs hold NaN or infinite values; mask or repair them first.")
    d = data.shape[-1]
    if binning < 1 or d % binning or (d // binning) % 2:
        raise ValueError(
            f"binning={binning} must divide the disc size {d} into an even number of pixels."
        )
    return _bin(data, binning)


def _coupled_classes(coeff: np.ndarray, n_classes: int, threshold: float) -> list[np.ndarray]:
    """The ``n_classes`` lowest-order classes the potential couples (forbidden ones hold noise)."""
    amp = np.abs(coeff)
    hm = (coeff.shape[-1] - 1) // 2
    ref = np.max(np.where(np.arange(amp.size).reshape(amp.shape) == amp.size // 2, 0, amp))
    return [
        c
        for c in zolz_classes(hm)
        if max(amp[k + hm, h + hm] for h, k, _ in c.tolist()) > threshold * ref
    ][: int(n_classes)]


def _scan_start(problem: Problem, x0, gains: Any, sweeps: int, grid: Any):
    """Coarse scans before L-BFGS: a common gain of every U_g, then each class in turn.

    The network's potentials can be too weak or strong as a whole, a direction in which
    the local fit is slow; and the landscape of each class factor has local minima. Sets
    the model's gain; returns the best figure of merit and the start it was found at.
    """
    model = problem.model
    best = (problem.value(x0), 1.0)
    gains = np.geomspace(0.5, 4.0, 13) if gains is None else np.asarray(gains, float)
    for gain in gains:
        model.gain = float(gain)
        best = min(best, (problem.value(x0), float(gain)))
    model.gain = best[1]
    start, value = x0.clone(), best[0]
    first = model._n_thickness
    for _ in range(int(sweeps)):
        for i in range(first, len(x0)):
            for f in grid:
                trial = start.clone()
                trial[i] = f - 1.0
                v = problem.value(trial)
                if v < value:
                    value, start = v, trial
    return value, start


def _potential_result(p, model, x, fom, before, after, evaluations, message) -> dict[str, Any]:
    """The refined potential image and the record of the fit."""
    c_ref = model.refined_coefficients(x)
    full = potential_coefficients(p, (p.shape[-1] - 1) // 2)
    # put the refined band back into the full spectrum: coefficients beyond h_max unchanged
    hm, hf = (c_ref.shape[-1] - 1) // 2, (full.shape[-1] - 1) // 2
    full[hf - hm : hf + hm + 1, hf - hm : hf + hm + 1] = c_ref
    delta = coefficients_to_potential(full, p.shape[-1]) - coefficients_to_potential(
        potential_coefficients(p, hf), p.shape[-1]
    )
    factors = model.factors(x).tolist()
    return {
        "potential": p + delta,
        "coefficients": c_ref,
        "thickness": float(model.get(x, "thickness", model.thickness0)),
        "factors": {
            p.name: 1 + f for p, f in zip(model.parameters[model._n_thickness :], factors)
        },
        "fom": fom,
        "fom_before": float(before),
        "fom_after": float(after),
        "gain": float(model.gain),
        "iterations": int(evaluations),
        "message": message,
    }
