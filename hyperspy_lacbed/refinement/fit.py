"""Refinement on plain arrays: coarse-to-fine L-BFGS through the Bloch engine, with uncertainties.

:func:`refine_discs` fits the parameters of :mod:`hyperspy_lacbed.refinement.parameters` to
recorded discs given as an array (R, ny, nx) with their reflections and pixel size. It

1. seeds the thickness (and, with ``orientation="auto"``, the image orientation) by a
   coarse scan: one eigen-solve per tilt serves a whole thickness series;
2. runs L-BFGS (torch, strong-Wolfe line search) on logistic transforms of the
   parameters that keep them inside their bounds, stage by stage from a binned tilt grid
   and few beams to the finest stage;
3. estimates standard uncertainties from the Gauss–Newton curvature JᵀJ of the residual
   vector at the optimum (J by central differences), scaled by the residual variance,
   and the correlation matrix;
4. compares the start and the result at full resolution, on one grid, and warns when
   the result fits worse there.

Without explicit stages, :func:`default_stages` chooses them from the disc size, the
fringe period of the crystal (:func:`fringe_period`) and the beams.

A fit whose figure of merit or gradient becomes non-finite, or whose solver fails, stops
at the best point so far with a warning that says why.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.analysis.compare import ORIENTATIONS, block_mean
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import Crystal, load_structure
from hyperspy_lacbed.refinement import fom as F
from hyperspy_lacbed.refinement.driver import Problem, RefinementWarning, covariance, lbfgs
from hyperspy_lacbed.refinement.model import BlochModel, fixed_beam_settings
from hyperspy_lacbed.refinement.parameters import resolve_parameters


@dataclass(frozen=True)
class Stage:
    """One stage of a coarse-to-fine fit.

    Attributes
    ----------
    bin
        Block size by which the recorded discs (and the tilt grid) are binned.
    strong_beams, weak_beams
        Strong beams and Bethe (weak) beams per tilt (default: the physics settings).
    max_iter
        L-BFGS iterations.
    supersample
        Tilts per binned pixel along each axis: the model is computed on a grid this much
        finer and block-averaged like the binned data (1: one tilt at each binned pixel's
        centre, which aliases fine fringes; ``bin``: the full-resolution grid).
    """

    bin: int = 1
    strong_beams: int | None = None
    weak_beams: int | None = None
    max_iter: int = 30
    supersample: int = 1


#: Model tilts per side of the finest default stage at :data:`_REF_BEAMS` strong beams
#: (fewer with more beams: a tilt costs about the cube of the beams).
_FINE_SIDE = 32
_REF_BEAMS = 60


def fringe_period(
    crystal: Crystal, reflections: np.ndarray, dk: float, thickness: float, voltage: float
) -> float:
    """Period (pixels) of the thickness fringes of the discs: K / (|g| t dk).

    Along a disc the excitation error of g changes by |g|/K per 1/Å of tilt, and the
    fringes repeat every 1/t in excitation error; |g| is the median over the non-zero
    discs (the shortest reflection of the zone with only 000).

    Parameters
    ----------
    crystal
        The crystal.
    reflections
        The discs (R, 3).
    dk
        Pixel size in 1/Å.
    thickness
        Thickness in Å.
    voltage
        Accelerating voltage in V.

    Returns
    -------
    float
    """
    from hyperspy_lacbed.units import electron_wavelength

    g = np.linalg.norm(crystal.g_vectors(np.asarray(reflections, int).reshape(-1, 3)), axis=1)
    g = g[g > 1e-9]
    g_typ = float(np.median(g)) if len(g) else 1.0 / max(crystal.lattice_parameters[:3])
    return 1.0 / (electron_wavelength(voltage) * g_typ * thickness * dk)


def default_stages(pixels: int, period: float, strong_beams: int) -> list[Stage]:
    """The coarse-to-fine stages ``refine_discs`` chooses for discs of ``pixels``.

    The finest stage computes at most ``_FINE_SIDE`` × ``_FINE_SIDE`` (32 × 32) tilts at
    60 strong beams (fewer with more beams, ∝ beams^−1.5 per side, at least 12), and no
    more than resolve the fringes (two tilts per ``period``, but at least 16 per side);
    it fits the data binned to that grid. The coarse stage before it bins the data four
    times as much (at most to 8 binned pixels per side) and computes 2 × 2 tilts per
    binned pixel, averaged like the data (``supersample=2``: the model is binned as the
    data are, so fine fringes average out instead of aliasing); it is left out when it
    would not be at least twice as coarse as the fine stage (discs of fewer than 16
    pixels, or many beams). Both use every beam of the physics.

    Parameters
    ----------
    pixels
        Disc size 2N.
    period
        Fringe period in pixels (:func:`fringe_period`).
    strong_beams
        Strong beams of the physics.

    Returns
    -------
    list of Stage
    """
    budget = round(_FINE_SIDE * (_REF_BEAMS / max(int(strong_beams), 1)) ** 1.5)
    budget = int(np.clip(budget, 12, _FINE_SIDE))
    need = math.ceil(pixels / max(period / 2.0, 1.0))
    fine_bin = max(1, math.ceil(pixels / min(budget, max(need, 16))))
    coarse_bin = min(4 * fine_bin, pixels // 8)
    if coarse_bin < 2 * fine_bin:
        return [Stage(bin=fine_bin, max_iter=30)]
    coarse = Stage(bin=coarse_bin, supersample=2, max_iter=20)
    return [coarse, Stage(bin=fine_bin, max_iter=20)]


def has_negative_values(data: np.ndarray, mask: np.ndarray) -> bool:
    """True when the data are not counts: a negative value inside the mask."""
    return bool((np.where(mask, data, 0.0) < 0).any())


def padded_size(pixels: int, factor: int) -> int:
    """The disc size a bin of ``factor`` needs: ``pixels`` rounded up to a multiple of 2·factor."""
    return 2 * factor * math.ceil(pixels / (2 * factor))


def _pad(images: np.ndarray, size: int, fill) -> np.ndarray:
    """Pad the last two axes symmetrically to ``size`` (the disc centre stays put)."""
    q = (size - images.shape[-1]) // 2
    if q == 0:
        return images
    width = [(0, 0)] * (images.ndim - 2) + [(q, q), (q, q)]
    return np.pad(images, width, constant_values=fill)


def _bin_stack(data: np.ndarray, mask: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means of the valid pixels (padded with invalid ones to a whole, even grid)."""
    if factor == 1:
        return data, mask
    size = padded_size(data.shape[-1], factor)
    data, mask = _pad(data, size, np.nan), _pad(mask, size, False)
    binned = block_mean(np.where(mask, data, 0.0), factor)
    frac = block_mean(mask.astype(float), factor)
    ok = frac > 0.999  # a block is valid when every pixel of it is
    return np.where(ok, binned, np.nan), ok


def refine_discs(
    structure: Any,
    data: np.ndarray,
    reflections: np.ndarray,
    dk: float,
    parameters: Sequence[str] = ("thickness",),
    *,
    thickness: float | Sequence[float] = 1000.0,
    orientation: tuple[int, bool] | str = (0, False),
    blur: float = 0.0,
    fom: str = "zncc",
    mask: np.ndarray | None = None,
    disc_shape: str = "circle",
    weights: str | np.ndarray | None = "poisson",
    stages: Sequence[Stage] | str | None = "auto",
    thickness_scan: int = 41,
    keep_site_sums: bool = True,
    tolerance: float = 1e-10,
    progress: bool = True,
    check: bool = True,
    **physics: Any,
):
    """Refine a crystal and the experimental parameters against recorded discs (arrays).

    Parameters
    ----------
    structure
        Start structure: CIF path, diffpy Structure, Crystal or example name.
    data
        Recorded discs (R, 2N, 2N), square, any intensity units (counts for ``fom="lsq"``
        with Poisson weights).
    reflections
        Their Miller indices (R, 3), zero-order Laue zone.
    dk
        Pixel size in 1/Å (disc radius / N).
    parameters
        Names, see :func:`~hyperspy_lacbed.refinement.parameters.resolve_parameters`.
    thickness
        Start thickness in Å, or (lower, upper) to scan. When ``"thickness"`` is refined
        the start is seeded by a scan of ``thickness_scan`` values (±25 % around a single
        value) on the first stage.
    orientation
        ``(k, transpose)`` with ``data ≈ orient(simulation, k, transpose)``
        (:func:`hyperspy_lacbed.analysis.square.orient`), or ``"auto"``: the best of the
        eight maps in the seed scan.
    blur
        Gaussian blur σ of the simulation in data pixels (start value when refined).
    fom
        ``"zncc"`` (1 − mean ZNCC over discs, Felix) or ``"lsq"`` (weighted least squares
        with a profiled intensity scale).
    mask
        Valid pixels, (2N, 2N) or (R, 2N, 2N); NaN pixels of ``data`` are invalid too.
    disc_shape
        ``"circle"`` (pixels inside the disc only) or ``"square"``.
    weights
        For ``"lsq"``: ``"poisson"`` (σ² = max(data, 1)), None (uniform) or an array of σ.
    stages
        Coarse-to-fine :class:`Stage` list, or ``"auto"`` (None too): the stages
        :func:`default_stages` chooses from the disc size, the fringe period of the crystal
        at the start thickness (:func:`fringe_period`) and the beams. Any bin is accepted:
        discs whose size the bin does not divide into an even number of binned pixels are
        padded with invalid pixels (which leave the blocks at the rim out).
    keep_site_sums
        Occupancy changes keep the total of mixed sites.
    tolerance
        L-BFGS stops when the figure of merit changes less than this.
    progress
        Show a tqdm progress bar (one tick per figure-of-merit evaluation).
    check
        Compare the result with the start at full resolution (every pixel, every beam),
        on the same grid: ``result.check`` holds both figures of merit and the result's
        images, ZNCC and best fit are those of full resolution. A result that fits worse
        than the start there comes with a
        :class:`~hyperspy_lacbed.refinement.driver.RefinementWarning` that says so.
        False: the last stage's grid (faster; nothing checked).
    **physics
        Settings of :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings`, as for
        :func:`~hyperspy_lacbed.simulate` (zone_axis, x_direction, surface_normal, voltage,
        absorption, strong_beams, preset, ...). Beam counts not given are chosen once, at
        the start, by the engine's tolerance (converged like :func:`~hyperspy_lacbed.simulate`).

    Returns
    -------
    RefinementResult
    """
    t_start = time.perf_counter()
    crystal = load_structure(structure) if not isinstance(structure, Crystal) else structure
    data, reflections = _checked_inputs(data, reflections, fom, dk)
    phys = SimulationSettings.from_user(**physics)
    pixels = data.shape[1]
    full_mask = F.disc_mask(pixels, disc_shape)[None] & np.isfinite(data)
    if mask is not None:
        mask = np.asarray(mask, bool)
        full_mask = full_mask & (mask if mask.ndim == 3 else mask[None])
    poisson, inv_sigma_full = _weights(fom, weights, data, full_mask)
    t_range = np.atleast_1d(np.asarray(thickness, float))
    t0 = float(t_range.mean())
    phys = fixed_beam_settings(crystal, phys, reflections, dk * pixels / 2, t0)
    params = resolve_parameters(
        parameters, crystal, thickness=t0, absorption=phys.absorption,
        absorption_fraction=phys.absorption_fraction, fom=fom, blur=blur,
        keep_site_sums=keep_site_sums, disc_radius=dk * pixels / 2,
    )  # fmt: skip
    if not params:
        raise ValueError(
            "No parameter to refine; give at least one, e.g. parameters=['thickness']."
        )
    start_values = {p.name: p.value for p in params}
    if stages is None or (isinstance(stages, str) and stages == "auto"):
        period = fringe_period(crystal, reflections, dk, t0, phys.voltage)
        stages = default_stages(pixels, period, phys.strong_beams)
    stages = _checked_stages(stages, pixels)
    run = _StageRun(
        crystal, phys, reflections, dk, params, data, full_mask, disc_shape, fom, poisson,
        inv_sigma_full, blur, t0, t_range, thickness_scan, orientation, tolerance,
    )  # fmt: skip
    bar = None
    if progress:
        from tqdm.auto import tqdm

        n_eval = sum(int(st.max_iter * 1.5) + 5 for st in stages)
        bar = tqdm(total=n_eval, desc="Refining", unit="eval")
    try:
        for si, st in enumerate(stages):
            if run.stage(si, st, bar).startswith("diverged"):
                break
    finally:
        if bar is not None:
            bar.close()
    recipe = {
        "structure": crystal.to_dict(),
        "reflections": reflections.tolist(),
        "dk": float(dk),
        "parameters": list(parameters) if not isinstance(parameters, str) else [parameters],
        "thickness": t_range.tolist(),
        "orientation": [int(run.orientation[0]), bool(run.orientation[1])],
        "blur": float(blur),
        "fom": fom,
        "disc_shape": disc_shape,
        "weights": weights if isinstance(weights, str) or weights is None else "array",
        "stages": [_stage_dict(s) for s in stages],
        "thickness_scan": thickness_scan,
        "keep_site_sums": keep_site_sums,
        "tolerance": tolerance,
        "check": check,
        "physics": _physics_record(phys),
    }
    result = run.result(start_values, recipe, check)
    result.wall_time = time.perf_counter() - t_start  # the check and the σ included
    return result


def _checked_inputs(data: Any, reflections: Any, fom: str, dk: float):
    """The discs (R, 2N, 2N) and reflections (R, 3) as arrays, or a clear error."""
    data = np.asarray(data, float)
    reflections = np.asarray(reflections, int).reshape(-1, 3)
    if data.ndim != 3 or data.shape[1] != data.shape[2] or data.shape[1] % 2:
        raise ValueError(
            f"data must be square discs (R, 2N, 2N) with an even side, got shape {data.shape}; "
            "crop or pad the discs to a common even square."
        )
    if len(reflections) != data.shape[0]:
        raise ValueError(
            f"{data.shape[0]} discs but {len(reflections)} reflections; give one [h, k, l] "
            "per disc."
        )
    if fom not in F.FOMS:
        raise ValueError(f"Unknown fom {fom!r}; choose 'zncc' or 'lsq'.")
    if not (math.isfinite(dk) and dk > 0):
        raise ValueError(f"dk must be a positive pixel size in 1/Å, got {dk}.")
    return data, reflections


def _weights(fom: str, weights: Any, data: np.ndarray, mask: np.ndarray):
    """(Poisson weights?, 1/σ per pixel or None) of a least-squares fit."""
    poisson = fom == "lsq" and isinstance(weights, str) and weights == "poisson"
    inv_sigma = None
    if fom == "lsq" and not poisson:
        if weights is None:
            inv_sigma = np.ones_like(data)
        elif isinstance(weights, str):
            raise ValueError(f"weights must be 'poisson', None or an array of σ, not {weights!r}.")
        else:
            inv_sigma = 1.0 / np.asarray(weights, float)
    if poisson and has_negative_values(data, mask):
        raise ValueError(
            "weights='poisson' needs non-negative counts; give weights=None or σ per pixel."
        )
    return poisson, inv_sigma


def _checked_stages(stages: Any, pixels: int) -> list[Stage]:
    """The stages, each checked against the disc size."""
    if isinstance(stages, (str, Stage)) or not stages:
        raise ValueError(
            f"stages must be 'auto' or a non-empty list of Stage, not {stages!r}; e.g. "
            "stages=[Stage(bin=4, supersample=2), Stage(bin=2)]."
        )
    stages = list(stages)
    for st in stages:
        if st.supersample < 1:
            raise ValueError(f"Stage supersample must be ≥ 1, got {st.supersample}.")
        if not 1 <= st.bin <= pixels // 2:
            raise ValueError(
                f"Stage bin {st.bin} leaves fewer than 2 × 2 binned pixels of a {pixels}-pixel "
                f"disc; give a bin from 1 to {pixels // 2}."
            )
    return stages


def _stage_dict(st: Stage) -> dict[str, Any]:
    return {
        "bin": st.bin,
        "strong_beams": st.strong_beams,
        "weak_beams": st.weak_beams,
        "max_iter": st.max_iter,
        "supersample": st.supersample,
    }


def _physics_record(phys: SimulationSettings) -> dict[str, Any]:
    """The physics alone, as keywords that rebuild it.

    The discs' own settings are the recipe's other entries, and the beam counts are
    fixed (so the engine's tolerance and budget played no part; ``tolerance`` would
    also collide with the optimiser's keyword).
    """
    skip = ("thickness", "reflections", "pixels", "disc_radius", "tolerance", "max_beams")
    return {k: v for k, v in phys.to_dict().items() if k not in skip}


class _StageRun:
    """The state of a coarse-to-fine fit: its data, parameters and the last stage's problem."""

    def __init__(
        self, crystal, phys, reflections, dk, params, data, mask, disc_shape, fom, poisson,
        inv_sigma, blur, t0, t_range, thickness_scan, orientation, tolerance,
    ):  # fmt: skip
        self.crystal, self.phys, self.reflections, self.dk = crystal, phys, reflections, dk
        self.params, self.data, self.mask, self.disc_shape = params, data, mask, disc_shape
        self.fom, self.poisson, self.inv_sigma, self.blur = fom, poisson, inv_sigma, blur
        self.t0, self.t_range, self.thickness_scan = t0, t_range, thickness_scan
        self.orientation, self.tolerance = orientation, tolerance
        self.history: list[float] = []
        self.log: list[dict[str, Any]] = []
        self.messages: list[str] = []
        self.problem: Problem | None = None
        self.bin = 1

    def _binned(self, st: Stage):
        """The stage's data, mask and 1/σ (block sums of counts are Poisson counts again)."""
        d_st, m_st = _bin_stack(self.data, self.mask, st.bin)
        m_st = m_st & F.disc_mask(d_st.shape[-1], self.disc_shape)[None]
        if self.poisson and st.bin > 1:
            d_st = d_st * st.bin**2
        inv_st = None
        if self.inv_sigma is not None:
            # the mean of f = bin² pixels has variance Σσ²/f²
            inv_st = _bin_stack(self.inv_sigma**-2, self.mask, st.bin)[0]
            inv_st = 1.0 / np.sqrt(np.maximum(np.nan_to_num(inv_st) / st.bin**2, 1e-300))
        return d_st, m_st, inv_st

    def stage(self, si: int, st: Stage, bar) -> str:
        """Fit one stage; returns its stop message."""
        d_st, m_st, inv_st = self._binned(st)
        if not m_st.any():
            raise ValueError(
                f"Stage bin {st.bin} leaves no binned pixel whose every pixel is valid (inside "
                f"the {self.disc_shape} disc and the mask); give a smaller bin, or "
                "disc_shape='square'."
            )
        ph = self.phys
        if st.strong_beams is not None:
            ph = replace(ph, strong_beams=st.strong_beams)
        if st.weak_beams is not None:
            ph = replace(ph, weak_beams=st.weak_beams)
        current = {p.name: p.value for p in self.params}
        side = d_st.shape[-1]
        model = BlochModel(
            self.crystal, ph, self.reflections, side * st.supersample,
            self.dk * st.bin / st.supersample, self.params,
            thickness=current.get("thickness", self.t0),
        )  # fmt: skip
        orient = self.orientation if self.orientation != "auto" else (0, False)
        problem = Problem(
            model, d_st, m_st, self.fom, orient, self.blur, inv_st,
            supersample=st.supersample, bin=st.bin,
        )  # fmt: skip
        x = model.start_vector()
        scan = self.thickness_scan > 1 and ("thickness" in model.names or len(self.t_range) > 1)
        if si == 0 and (scan or self.orientation == "auto"):
            # the scan sees every beam of the physics, as the engine's plain scan does
            seeder = problem
            if ph != self.phys:
                seeder = Problem(
                    BlochModel(
                        self.crystal, self.phys, self.reflections, model.pixels, model.dk,
                        self.params, thickness=current.get("thickness", self.t0),
                    ),
                    d_st, m_st, self.fom, orient, self.blur, inv_st,
                    supersample=st.supersample, bin=st.bin,
                )  # fmt: skip
            x, self.orientation = _seed(
                seeder, x, self.t_range, self.thickness_scan, self.orientation
            )
            problem.orientation = self.orientation
            problem.lo, problem.hi = seeder.lo, seeder.hi
            for p, v in zip(self.params, x.tolist()):
                p.value = v
        x, best, msg = lbfgs(problem, x, st.max_iter, self.history, bar, self.tolerance)
        self.messages.append(msg)
        for p, v in zip(self.params, x.tolist()):
            p.value = float(v)
        self.log.append(
            {
                "bin": st.bin, "pixels": side, "supersample": st.supersample,
                "model_pixels": model.pixels, "strong_beams": ph.strong_beams,
                "weak_beams": ph.weak_beams, "max_beams": model.max_beams, "fom": best,
                "evaluations": len(self.history), "message": msg,
            }
        )  # fmt: skip
        self.problem, self.bin = problem, st.bin
        return msg

    def full_resolution(self, start: dict[str, float]) -> dict[str, Any]:
        """The start and the result at full resolution (every pixel, every beam), one grid.

        Warns when the result fits worse than the start there.
        """
        import torch

        pixels = self.data.shape[-1]
        mask = self.mask & F.disc_mask(pixels, self.disc_shape)[None]
        model = BlochModel(
            self.crystal, self.phys, self.reflections, pixels, self.dk, self.params,
            thickness=self.t0,
        )  # fmt: skip
        problem = Problem(
            model, self.data, mask, self.fom, self.orientation, self.blur, self.inv_sigma
        )
        out: dict[str, Any] = {"pixels": pixels, "max_beams": model.max_beams}
        for key, values in (("start", start), ("end", {p.name: p.value for p in self.params})):
            x = torch.tensor([values[p.name] for p in self.params], dtype=torch.float64)
            with torch.no_grad():
                img = problem.images(model.intensities(x), x)
                out[f"zncc_{key}"] = F.zncc_per_disc(img, problem.data, problem.mask).numpy()
                out[f"fom_{key}"] = float(
                    F.figure_of_merit(self.fom, img, problem.data, problem.mask, problem.inv_sigma)
                )
            out[f"images_{key}"] = img.numpy()
        out["experiment"], out["mask"] = problem.data_np.copy(), problem.mask_np.copy()
        if out["fom_end"] > out["fom_start"]:
            warnings.warn(
                f"At full resolution ({pixels} × {pixels} pixels, {model.max_beams} beams) the "
                f"refined parameters fit worse than the start: {self.fom} figure of merit "
                f"{out['fom_start']:.6g} → {out['fom_end']:.6g}, mean ZNCC "
                f"{np.nanmean(out['zncc_start']):.4f} → {np.nanmean(out['zncc_end']):.4f}. "
                "The coarse stages did not represent the full-resolution discs; compare with "
                "result.start, or give finer stages (smaller bin, supersample, more beams).",
                RefinementWarning,
                stacklevel=4,
            )
        return out

    def result(self, start_values: dict[str, float], recipe: dict[str, Any], check=True):
        """The :class:`~hyperspy_lacbed.refinement.result.RefinementResult` of the fit."""
        import torch

        from hyperspy_lacbed.refinement.result import RefinementResult

        problem, params = self.problem, self.params
        model = problem.model
        x_final = torch.tensor([p.value for p in params], dtype=torch.float64)
        # the last stage's problem gives the uncertainties
        cov, _, s2 = covariance(problem, x_final)
        sigma = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sigma, sigma)
        fom_value = float(problem.value(x_final))
        if check:
            full = self.full_resolution(start_values)
            images = {k: full[k] for k in ("images_end", "experiment", "mask")}
            zncc_start, zncc_end, b = full["zncc_start"], full["zncc_end"], 1
            check_record = {k: v for k, v in full.items() if not k.startswith(("images", "exp"))}
            check_record.pop("mask")
        else:
            images, zncc_start, zncc_end = self._stage_images(problem, start_values, x_final)
            b, check_record = self.bin, None
        values = {p.name: float(p.value) for p in params}
        return RefinementResult(
            names=[p.name for p in params], values=values, start=start_values,
            uncertainties={p.name: float(s) for p, s in zip(params, sigma)},
            units={p.name: p.unit for p in params}, covariance=cov, correlation=corr,
            residual_variance=s2, crystal=model.crystal_at(x_final),
            thickness=values.get("thickness", self.t0), fom=self.fom,
            fom_value=fom_value, history=np.array(self.history),
            zncc_start=zncc_start, zncc=zncc_end, simulated=images["images_end"],
            experiment=images["experiment"], mask=images["mask"],
            reflections=self.reflections, dk=float(self.dk) * b, bin=b,
            message="; ".join(self.messages), stages=self.log, wall_time=math.nan,
            recipe=recipe, check=check_record,
        )  # fmt: skip

    def _stage_images(self, problem: Problem, start_values: dict[str, float], x_final):
        """Best fit, data and mask of the last stage, and the ZNCC at the start and the end."""
        import torch

        x_start = torch.tensor([start_values[p.name] for p in self.params], dtype=torch.float64)
        with torch.no_grad():
            best = problem.images(problem.model.intensities(x_final), x_final)
            end = F.zncc_per_disc(best, problem.data, problem.mask).numpy()
            first = problem.images(problem.model.intensities(x_start), x_start)
            start = F.zncc_per_disc(first, problem.data, problem.mask).numpy()
        images = {
            "images_end": best.numpy(),
            "experiment": problem.data_np.copy(),
            "mask": problem.mask_np.copy(),
        }
        return images, start, end


def _seed(problem: Problem, x, t_range: np.ndarray, n: int, orient):
    """Coarse scan of thickness (and orientation): the start with the best figure of merit."""
    import torch

    model = problem.model
    if n > 1 and ("thickness" in model.names or len(t_range) > 1):
        if len(t_range) > 1:
            grid = np.linspace(t_range.min(), t_range.max(), n)
        else:
            grid = np.linspace(0.75 * t_range[0], 1.25 * t_range[0], n)
    else:
        grid = np.array([float(model.get(x, "thickness", model.thickness0))])
    series = model.intensity_series(x, grid)  # (nt, T, R)
    maps = ORIENTATIONS if orient == "auto" else [tuple(orient)]
    best = (math.inf, None, None)
    with torch.no_grad():
        for o in maps:
            problem.orientation = o
            for i, inten in enumerate(series):
                v = float(problem.loss(inten, x))
                if v < best[0]:
                    best = (v, i, o)
    x = x.clone()
    if "thickness" in model.names:
        k = model.names.index("thickness")
        x[k] = float(grid[best[1]])
        p = model.parameters[k]
        p.lower = min(p.lower, 0.5 * grid.min())
        p.upper = max(p.upper, 2.0 * grid.max())
        problem.lo[k], problem.hi[k] = p.lower, p.upper
    return x, best[2]
