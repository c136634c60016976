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

from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.refinement.driver import Problem, covariance, lbfgs
from hyperspy_lacbed.refinement.fom import disc_mask
from hyperspy_lacbed.refinement.parameters import Parameter
from hyperspy_lacbed.units import relativistic_gamma, u_to_volts

__all__ = [
    "CoefficientBlochModel",
    "coefficients_to_potential",
    "potential_coefficients",
    "refine_potential",
    "zolz_classes",
]


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


class CoefficientBlochModel:
    """LACBED discs of a cubic [001] pattern as a differentiable function of its ZOLZ U_g.

    The model is the surrogates' few-beam layer
    (:class:`~hyperspy_lacbed.nets.bloch_layer.FewBeamBloch`, the engine's core): the
    coefficients of the potential are its structure factors, so it needs no atoms. Its
    parameters are the thickness (optional) and one real factor per symmetry class:
    class i's U_g become ``(1 + f_i) U_g``; f may pass −1, so a class can change sign
    (a centrosymmetric projection fixes phases to 0 or π) or vanish.

    Parameters
    ----------
    coefficients
        ``c V_g`` (V·Å) of the start potential, ``(2 h_max + 1)²``, ``[k + h_max, h + h_max]``.
    lattice_parameter
        Cubic a (Å).
    classes
        The refined classes (each an (m, 3) array, :func:`zolz_classes`).
    reflections, pixels, dk
        The discs (R, 3), their side D (even) and pixel size (1/Å).
    thickness
        Start thickness (Å).
    voltage
        Accelerating voltage (V).
    strong_beams, weak_beams
        The layer's beams per tilt.
    absorption_fraction
        Proportional absorption U'_g = fraction · U_g.
    refine_thickness
        Whether the thickness is a parameter (±20 %).
    max_change
        Bounds of each factor: −1 − max_change ≤ f ≤ max_change.
    potential
        The start's ``P × P`` image (V·Å): when given, the 4mm operations that leave it
        invariant (up to a translation, to 1 % of its variance: a network's potential is
        symmetric to its own accuracy) fold the tilt grid, so that one tilt of each orbit
        is solved (the class factors keep that symmetry).
    """

    def __init__(
        self,
        coefficients: np.ndarray,
        lattice_parameter: float,
        classes: list[np.ndarray],
        reflections: np.ndarray,
        pixels: int,
        dk: float,
        *,
        thickness: float,
        voltage: float = 200e3,
        strong_beams: int = 40,
        weak_beams: int = 80,
        absorption_fraction: float = 0.1,
        refine_thickness: bool = True,
        max_change: float = 2.0,
        potential: np.ndarray | None = None,
    ):
        import torch

        from hyperspy_lacbed.nets.bloch_layer import FewBeamBloch, fold_orbits, pool_h_max_for
        from hyperspy_lacbed.nets.physics_informed import SquareSymmetriser

        c = np.asarray(coefficients, complex)
        self._h_max = hm = (c.shape[-1] - 1) // 2
        self.a = float(lattice_parameter)
        self.pixels, self.dk = int(pixels), float(dk)
        self.thickness0 = float(thickness)
        self.chunk = self.pixels**2  # one call: the layer is cheap per tilt
        self.layer = FewBeamBloch(
            reflections, self.pixels, self.dk * self.pixels / 2 * self.a / 2, voltage,
            strong_beams, weak_beams, absorption_fraction=absorption_fraction,
            pool_h_max=min(pool_h_max_for(strong_beams + weak_beams), hm // 2),
        )  # fmt: skip
        self.u_per_cv = 1.0 / (self.a * u_to_volts(relativistic_gamma(voltage)))
        self._u0 = torch.as_tensor(c * self.u_per_cv)
        member = np.full(c.shape, -1)
        for ci, cls in enumerate(classes):
            for h, k, _ in cls.tolist():
                if abs(h) <= hm and abs(k) <= hm:
                    member[k + hm, h + hm] = ci
        self._member = torch.as_tensor(member)
        self.classes = classes
        t0 = self.thickness0
        self.parameters = (
            [Parameter("thickness", "thickness", t0, 0.8 * t0, 1.2 * t0, "Å", step=0.01 * t0)]
            if refine_thickness
            else []
        ) + [
            Parameter(_class_name(k), "Ug", 0.0, -1.0 - max_change, max_change, "", step=0.01)
            for k in classes
        ]
        self.names = [p.name for p in self.parameters]
        self._n_thickness = int(refine_thickness)
        #: a common factor of every U_g (g ≠ 0), set by the coarse scan of refine_potential
        self.gain = 1.0
        self._fold = None
        if potential is not None:
            img = np.asarray(potential, float)
            # a network's potential is symmetric only to its own accuracy: 1 % of the
            # variance, not the generator's 1e-4 (the class factors keep the symmetry)
            sym = SquareSymmetriser(
                np.asarray(reflections, int), self.pixels, img.shape[-1], tolerance=1e-2
            )
            self._fold = fold_orbits(sym, sym.symmetries(torch.as_tensor(img)[None]))
        self.choose_beams(self.start_vector())

    def _a(self):
        import torch

        return torch.tensor([self.a], dtype=torch.float64)

    def choose_beams(self, x) -> None:
        """Fix the beams of every tilt at ``x`` (the model is then smooth in the parameters)."""
        import torch

        pixels = None if self._fold is None else self._fold[0]
        with torch.no_grad():
            self.beams = self.layer.choose_beams(self.table(x)[None], self._a(), pixels)
        self.max_beams = int(self.beams.strong.shape[1])

    def start_vector(self):
        """The start: the thickness (when refined) and zero class factors."""
        import torch

        return torch.tensor([p.value for p in self.parameters], dtype=torch.float64)

    def get(self, x, name: str, default: float):
        """Value of the parameter ``name`` in ``x`` (``default`` when it is not refined)."""
        import torch

        if name in self.names:
            return x[self.names.index(name)]
        return torch.tensor(default, dtype=torch.float64)

    def factors(self, x):
        """The class factors f of ``x`` (the entries after the thickness)."""
        return x[self._n_thickness :]

    def table(self, x):
        """U_g table (n, n) complex Å⁻² at ``x``: the start's, each class times (1 + f)."""
        import torch

        one = torch.ones(1, dtype=torch.float64)
        f = torch.cat([one, 1 + self.factors(x)])[torch.clamp(self._member + 1, min=0)]
        n = self._member.shape[-1]
        gain = torch.full((n, n), float(self.gain), dtype=torch.float64)
        gain[n // 2, n // 2] = 1.0  # U_0 (refraction) is not scaled
        return self._u0 * (f * gain).to(torch.complex128)

    def intensities(self, x, index: np.ndarray | None = None):
        """``|ψ_g|²`` of the discs at the pixels ``index`` (all by default), (T, R)."""
        import torch

        t = self.get(x, "thickness", self.thickness0).reshape(1)
        u = self.table(x)[None]
        if index is None and self._fold is not None:
            from hyperspy_lacbed.nets.bloch_layer import unfold

            pixels, rows, cols = self._fold
            inten = self.layer.intensities(u, self._a(), t, pixels, beams=self.beams)
            discs = unfold(inten, rows, cols, self.pixels)[0]  # (R, D, D)
            return discs.reshape(len(discs), -1).T
        if index is None:
            return self.layer.intensities(u, self._a(), t, beams=self.beams)
        pixels = [np.asarray(index)]
        with torch.no_grad():
            beams = self.layer.choose_beams(
                self.table(self.start_vector())[None], self._a(), pixels
            )
        return self.layer.intensities(u, self._a(), t, pixels, beams=beams)

    def discs(self, x):
        """Intensities as images (R, D, D)."""
        n = self.pixels
        return self.intensities(x).T.reshape(-1, n, n)

    def refined_coefficients(self, x) -> np.ndarray:
        """The ``c V_g`` array at ``x`` (the common gain and the class factors applied)."""
        return self.table(x).detach().numpy() / self.u_per_cv


def _class_name(cls: np.ndarray) -> str:
    """A class named by its member with h ≥ k ≥ 0, e.g. ``"U(2,2,0)"``."""
    return "U({},{},{})".format(*max(map(tuple, cls.tolist())))


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
    n_classes: int = 24,
    h_max: int | None = None,
    refine_thickness: bool = True,
    binning: int = 1,
    max_iter: int = 60,
    max_change: float = 2.0,
    fom: str = "lsq",
    coupling_threshold: float = 1e-2,
    gains: Any = (),
    class_sweeps: int = 0,
    class_grid: Any = (0.0, 0.25, 0.5, 0.75, 1.5, 2.0, 3.0),
    prior: float | None = 1e-2,
    uncertainties: bool = True,
    **physics: Any,
) -> dict[str, Any]:
    """Refine the ZOLZ structure factors of a projected potential against its discs.

    The model is the engine's core through the few-beam layer
    (:class:`CoefficientBlochModel`), with Bethe weak beams; the fit is the package's one
    driver (:func:`~hyperspy_lacbed.refinement.driver.lbfgs`). The result never fits the
    pattern worse than the start: if the fit does not lower the figure of merit, the start
    is returned and ``improved`` is False.

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
        ``(R, 3)`` Miller indices of the discs (ZOLZ of [001]).
    thickness
        Start thickness (Å).
    n_classes
        Number of lowest-order symmetry classes refined (:func:`zolz_classes`), counting
        only classes whose largest ``|coefficient|`` exceeds ``coupling_threshold`` of the
        largest (g ≠ 0) one: (nearly) forbidden reflections are left alone.
    coupling_threshold
        That fraction.
    gains
        Common factors of all coefficients (g ≠ 0) scanned before the fit (the best is
        the start of the fit); ``None``: 13 values from 0.5 to 4 (geometric); default
        ``()``, no scan (scans lead far from the network's start, into minima where the
        pattern fits and the potential is wrong).
    class_sweeps, class_grid
        Sweeps of a coarse scan of each class factor ``1 + f`` over ``class_grid`` in turn
        (after the gain scan, before L-BFGS; default 0, none).
    prior
        Weight λ of a Gaussian prior on the class factors, ``λ Σ f²`` added to the figure
        of merit (a MAP fit that keeps classes the pattern does not determine at the
        network's values); None for none.
    h_max
        Band of coefficients taken from the image into the model; default: what the beam
        pool's differences need (``2 · pool_h_max_for(strong + weak)``), within the image's
        Nyquist limit. A narrower band starves the pool of beams (and the model of
        convergence).
    refine_thickness
        Refine the thickness too (within ±20 %; default yes).
    binning
        Discs binned by this factor (D must be divisible; default none).
    max_iter
        L-BFGS iterations.
    max_change
        Bounds of each class factor f (coefficients scaled by 1 + f, with
        −1 − max_change ≤ f ≤ max_change: a class may vanish or change sign).
    fom
        ``"lsq"`` (default: mean squared residual relative to the brightest pixel, the
        intensity scale profiled out) or ``"zncc"``.
    uncertainties
        Estimate the standard uncertainty of each refined parameter (Gauss–Newton,
        :func:`~hyperspy_lacbed.refinement.driver.covariance`).
    **physics
        ``voltage``, ``strong_beams`` and ``weak_beams`` (default 40 + 80),
        ``absorption`` (``"proportional"`` or ``"none"``) and ``absorption_fraction``;
        ``zone_axis`` and ``x_direction`` must be [001] and [100] when given.

    Returns
    -------
    dict
        ``potential`` (refined image), ``coefficients`` (refined c·V_g), ``thickness``,
        ``factors`` {class: 1 + f}, ``sigma`` {parameter: standard uncertainty},
        ``gain`` (the common factor, before ``factors``), ``fom_before``, ``fom_after``,
        ``improved``, ``iterations`` (figure-of-merit evaluations), ``message`` (why the
        fit stopped) and ``beams`` (strong, weak).
    """
    data_b = _binned_discs(discs, binning)
    pix = data_b.shape[-1]
    p = np.asarray(potential, float)
    layer_kw = _layer_physics(physics)
    if h_max is None:
        from hyperspy_lacbed.nets.bloch_layer import pool_h_max_for

        h_max = 2 * pool_h_max_for(layer_kw["strong_beams"] + layer_kw["weak_beams"])
    coeff = potential_coefficients(p, min(h_max, (p.shape[-1] - 1) // 2))
    classes = _coupled_classes(coeff, n_classes, coupling_threshold)
    model = CoefficientBlochModel(
        coeff, lattice_parameter, classes, np.asarray(reflections, int), pix, dk * binning,
        thickness=float(thickness), refine_thickness=refine_thickness,
        max_change=max_change, potential=p, **layer_kw,
    )  # fmt: skip
    mask = np.broadcast_to(disc_mask(pix), data_b.shape)
    # uniform weights: the sum of squares relative to the brightest pixel (a profiled scale)
    inv_sigma = np.full(data_b.shape, 1.0 / max(float(data_b.max()), 1e-300))
    problem = Problem(model, data_b, mask, fom, (0, False), 0.0, inv_sigma)
    if prior is not None:
        n_t = model._n_thickness
        problem.penalty = lambda x: float(prior) * (x[n_t:] ** 2).sum()
    x0 = model.start_vector()
    before = problem.fit_value(x0)
    scanned, start = _scan_start(problem, x0, gains, class_sweeps, class_grid)
    # L-BFGS from the scanned start and from the gain-only start (the scan can lead into
    # a worse basin); the lower figure of merit wins, and never one above the scan's
    starts = [start] if bool((start == x0).all()) else [start, x0]
    history: list[float] = []
    # a tight stop: the figure of merit of a good fit is itself small (≲ 1e-8)
    runs = [lbfgs(problem, s0, int(max_iter), history, None, 1e-15) for s0 in starts]
    x, objective, message = min(runs, key=lambda r: r[1])
    if not objective <= scanned:
        x, message = start, f"{message}; kept the scanned start"
    after = problem.fit_value(x)
    improved = after < before
    if not improved:  # never a worse pattern fit than the start's
        model.gain, x, after = 1.0, x0, before
        message = f"{message}; the start fits best, returned unchanged"
    sigma = _sigma(problem, x) if uncertainties else {}
    out = _potential_result(p, model, x, fom, before, after, len(history), message)
    out.update(sigma=sigma, improved=bool(improved), beams=list(model.layer.rule_counts))
    return out


def _layer_physics(physics: dict[str, Any]) -> dict[str, Any]:
    """The layer's settings from simulate-style keywords, checked for the [001] domain."""
    known = {"voltage", "strong_beams", "weak_beams", "absorption", "absorption_fraction",
             "zone_axis", "x_direction"}  # fmt: skip
    unknown = set(physics) - known
    if unknown:
        raise TypeError(
            f"refine_potential does not take {sorted(unknown)}; it takes {sorted(known)}."
        )
    settings = SimulationSettings.from_user(
        **{k: v for k, v in physics.items() if k not in ("strong_beams", "weak_beams")}
    )
    if tuple(settings.zone_axis) != (0, 0, 1) or settings.x_direction not in (None, (1, 0, 0)):
        raise ValueError(
            "refine_potential models cubic crystals along [001] with x along [100] (the "
            f"surrogates' domain); got zone axis {list(settings.zone_axis)}."
        )
    if settings.absorption not in ("proportional", "none"):
        raise ValueError(
            f"absorption={settings.absorption!r} needs atoms; a potential-only model takes "
            "'proportional' or 'none'."
        )
    fraction = settings.absorption_fraction if settings.absorption == "proportional" else 0.0
    return {
        "voltage": settings.voltage,
        "strong_beams": int(physics.get("strong_beams") or 40),
        "weak_beams": int(80 if physics.get("weak_beams") is None else physics["weak_beams"]),
        "absorption_fraction": fraction,
    }


def _sigma(problem: Problem, x) -> dict[str, float]:
    """Standard uncertainties of the refined parameters at ``x`` (Gauss–Newton)."""
    cov, _, _ = covariance(problem, x)
    sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {n: float(v) for n, v in zip(problem.model.names, sig)}


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
