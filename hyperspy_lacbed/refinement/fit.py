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
   and the correlation matrix.

A fit whose figure of merit or gradient becomes non-finite, or whose solver fails, stops
at the best point so far with a warning that says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.analysis.compare import ORIENTATIONS, block_mean
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import Crystal, load_structure
from hyperspy_lacbed.refinement import fom as F
from hyperspy_lacbed.refinement.driver import Problem, covariance, lbfgs
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


def has_negative_values(data: np.ndarray, mask: np.ndarray) -> bool:
    """True when the data are not counts: a negative value inside the mask."""
    return bool((np.where(mask, data, 0.0) < 0).any())


def _bin_stack(data: np.ndarray, mask: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    if factor == 1:
        return data, mask
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
    stages: Sequence[Stage] | None = None,
    thickness_scan: int = 41,
    keep_site_sums: bool = True,
    tolerance: float = 1e-10,
    progress: bool = True,
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
        Coarse-to-fine :class:`Stage` list; default one stage at full resolution.
    keep_site_sums
        Occupancy changes keep the total of mixed sites.
    tolerance
        L-BFGS stops when the figure of merit changes less than this.
    progress
        Show a tqdm progress bar (one tick per figure-of-merit evaluation).
    **physics
        Settings of :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings`, as for
        :func:`~hyperspy_lacbed.simulate` (zone_axis, x_direction, surface_normal, voltage,
        absorption, strong_beams, preset, ...). Beam counts not given are chosen once, at
        the start, by the engine's tolerance (converged like :func:`~hyperspy_lacbed.simulate`).

    Returns
    -------
    RefinementResult
    """
    import torch

    from hyperspy_lacbed.refinement.result import RefinementResult

    t_start = time.perf_counter()
    crystal = load_structure(structure) if not isinstance(structure, Crystal) else structure
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
    phys = SimulationSettings.from_user(**physics)
    pixels = data.shape[1]
    full_mask = F.disc_mask(pixels, disc_shape)[None] & np.isfinite(data)
    if mask is not None:
        mask = np.asarray(mask, bool)
        full_mask = full_mask & (mask if mask.ndim == 3 else mask[None])
    poisson = fom == "lsq" and isinstance(weights, str) and weights == "poisson"
    if fom == "lsq" and not poisson:
        if weights is None:
            inv_sigma_full = np.ones_like(data)
        elif isinstance(weights, str):
            raise ValueError(f"weights must be 'poisson', None or an array of σ, not {weights!r}.")
        else:
            inv_sigma_full = 1.0 / np.asarray(weights, float)
    else:
        inv_sigma_full = None
    if poisson and has_negative_values(data, full_mask):
        raise ValueError(
            "weights='poisson' needs non-negative counts; give weights=None or σ per pixel."
        )
    t_range = np.atleast_1d(np.asarray(thickness, float))
    t0 = float(t_range.mean())
    phys = fixed_beam_settings(crystal, phys, reflections, dk * pixels / 2, t0)
    params = resolve_parameters(
        parameters,
        crystal,
        thickness=t0,
        absorption=phys.absorption,
        absorption_fraction=phys.absorption_fraction,
        fom=fom,
        blur=blur,
        keep_site_sums=keep_site_sums,
        disc_radius=dk * pixels / 2,
    )
    if not params:
        raise ValueError(
            "No parameter to refine; give at least one, e.g. parameters=['thickness']."
        )
    start_values = {p.name: p.value for p in params}
    stages = list(stages) if stages else [Stage()]
    for st in stages:
        if st.supersample < 1:
            raise ValueError(f"Stage supersample must be ≥ 1, got {st.supersample}.")
        if pixels % st.bin or (pixels // st.bin) % 2:
            raise ValueError(
                f"Stage bin {st.bin} must divide the disc size {pixels} into an even number "
                "of pixels."
            )
    history: list[float] = []
    stage_log: list[dict[str, Any]] = []
    n_eval = sum(int(st.max_iter * 1.5) + 5 for st in stages)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_eval, desc="Refining", unit="eval")
    orient = orientation
    messages = []
    try:
        for si, st in enumerate(stages):
            d_st, m_st = _bin_stack(data, full_mask, st.bin)
            m_st = m_st & F.disc_mask(pixels // st.bin, disc_shape)[None]
            inv_st = None
            if poisson and st.bin > 1:
                d_st = d_st * st.bin**2  # block sums of counts are Poisson counts again
            if inv_sigma_full is not None:
                # the mean of f = bin² pixels has variance Σσ²/f²
                inv_st = _bin_stack(inv_sigma_full**-2, full_mask, st.bin)[0]
                inv_st = 1.0 / np.sqrt(np.maximum(inv_st / st.bin**2, 1e-300))
            ph = phys
            if st.strong_beams is not None:
                ph = replace(ph, strong_beams=st.strong_beams)
            if st.weak_beams is not None:
                ph = replace(ph, weak_beams=st.weak_beams)
            current = {p.name: p.value for p in params}
            model = BlochModel(
                crystal,
                ph,
                reflections,
                (pixels // st.bin) * st.supersample,
                dk * st.bin / st.supersample,
                params,
                thickness=current.get("thickness", t0),
            )
            blur_st = blur / st.bin
            for p in params:  # blur is in data pixels of the stage
                if p.kind == "blur":
                    blur_bounds = (p.lower, p.upper)
                    p.value, p.lower, p.upper = (
                        p.value / st.bin,
                        p.lower / st.bin,
                        p.upper / st.bin,
                    )
                    p.lower = max(p.lower, 0.05)
            problem = Problem(
                model,
                d_st,
                m_st,
                fom,
                orient if orient != "auto" else (0, False),
                blur_st,
                inv_st,
                supersample=st.supersample,
            )
            x = model.start_vector()
            scan = thickness_scan > 1 and ("thickness" in model.names or len(t_range) > 1)
            if si == 0 and (scan or orient == "auto"):
                x, orient = _seed(problem, x, t_range, thickness_scan, orient)
                problem.orientation = orient
                for p, v in zip(params, x.tolist()):
                    p.value = v
            x, best, msg = lbfgs(problem, x, st.max_iter, history, bar, tolerance)
            messages.append(msg)
            for p, v in zip(params, x.tolist()):
                p.value = float(v)
            stage_log.append(
                {
                    "bin": st.bin,
                    "pixels": pixels // st.bin,
                    "strong_beams": ph.strong_beams,
                    "weak_beams": ph.weak_beams,
                    "max_beams": model.max_beams,
                    "fom": best,
                    "evaluations": len(history),
                    "message": msg,
                }
            )
            for p in params:
                if p.kind == "blur":
                    p.value = p.value * st.bin
                    p.lower, p.upper = blur_bounds
            if msg.startswith("diverged"):
                break
    finally:
        if bar is not None:
            bar.close()
    # The last stage's problem gives the uncertainties (its blur is in its pixels).
    x_final = torch.tensor(
        [p.value / (st.bin if p.kind == "blur" else 1) for p in params], dtype=torch.float64
    )
    cov, _, s2 = covariance(problem, x_final)
    scale = np.array([st.bin if p.kind == "blur" else 1.0 for p in params])
    cov = cov * scale[:, None] * scale[None, :]
    sigma = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sigma, sigma)
    with torch.no_grad():
        inten = model.intensities(x_final)
        best_images = problem.images(inten, x_final).numpy()
        zncc_end = F.zncc_per_disc(
            torch.as_tensor(best_images), problem.data, problem.mask
        ).numpy()
        x_start = torch.tensor(
            [start_values[p.name] / (st.bin if p.kind == "blur" else 1) for p in params],
            dtype=torch.float64,
        )
        start_images = problem.images(model.intensities(x_start), x_start)
        zncc_start = F.zncc_per_disc(start_images, problem.data, problem.mask).numpy()
    refined_crystal = model.crystal_at(x_final)
    values = {p.name: float(p.value) for p in params}
    recipe = {
        "structure": crystal.to_dict(),
        "reflections": reflections.tolist(),
        "dk": float(dk),
        "parameters": list(parameters) if not isinstance(parameters, str) else [parameters],
        "thickness": t_range.tolist(),
        "orientation": [int(orient[0]), bool(orient[1])],
        "blur": float(blur),
        "fom": fom,
        "disc_shape": disc_shape,
        "weights": weights if isinstance(weights, str) or weights is None else "array",
        "stages": [
            {
                "bin": s.bin,
                "strong_beams": s.strong_beams,
                "weak_beams": s.weak_beams,
                "max_iter": s.max_iter,
                "supersample": s.supersample,
            }
            for s in stages
        ],
        "thickness_scan": thickness_scan,
        "keep_site_sums": keep_site_sums,
        "tolerance": tolerance,
        # the physics alone: the discs' own settings are the recipe's other entries, and
        # the beam counts are fixed (so the engine's tolerance and budget played no part;
        # ``tolerance`` would also collide with the optimiser's keyword)
        "physics": {
            k: v
            for k, v in phys.to_dict().items()
            if k
            not in ("thickness", "reflections", "pixels", "disc_radius", "tolerance", "max_beams")
        },
    }
    return RefinementResult(
        names=[p.name for p in params],
        values=values,
        start=start_values,
        uncertainties={p.name: float(s) for p, s in zip(params, sigma)},
        units={p.name: p.unit for p in params},
        covariance=cov,
        correlation=corr,
        residual_variance=s2,
        crystal=refined_crystal,
        thickness=values.get("thickness", t0),
        fom=fom,
        fom_value=float(problem.value(x_final)),
        history=np.array(history),
        zncc_start=zncc_start,
        zncc=zncc_end,
        simulated=best_images,
        experiment=problem.data_np.copy(),
        mask=problem.mask_np.copy(),
        reflections=reflections,
        dk=float(dk) * st.bin,
        bin=st.bin,
        message="; ".join(messages),
        stages=stage_log,
        wall_time=time.perf_counter() - t_start,
        recipe=recipe,
    )


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
