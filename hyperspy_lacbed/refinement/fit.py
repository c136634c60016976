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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.analysis.compare import ORIENTATIONS, block_mean
from hyperspy_lacbed.crystal.structure import Crystal, load_structure
from hyperspy_lacbed.refinement import fom as F
from hyperspy_lacbed.refinement.model import BlochModel, Physics
from hyperspy_lacbed.refinement.parameters import resolve_parameters


class RefinementWarning(UserWarning):
    """A refinement stopped early (divergence) or an uncertainty is not determined."""


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


class _Stop(Exception):
    pass


class Problem:
    """One stage: a model, the binned data, the mask and the figure of merit."""

    def __init__(
        self,
        model: BlochModel,
        data: np.ndarray,
        mask: np.ndarray,
        fom: str,
        orientation: tuple[int, bool],
        blur: float,
        inv_sigma: np.ndarray | None,
        supersample: int = 1,
    ):
        import torch

        self.model = model
        self.fom = fom
        self.orientation = orientation
        self.blur0 = float(blur)
        self.supersample = int(supersample)
        valid = mask & np.isfinite(data)
        self.mask_np = valid
        self.data_np = np.where(valid, data, 0.0)
        self.data = torch.as_tensor(self.data_np)
        self.mask = torch.as_tensor(valid)
        self.inv_sigma = (
            None if inv_sigma is None else torch.as_tensor(np.where(valid, inv_sigma, 0.0))
        )
        lo = torch.tensor([p.lower for p in model.parameters], dtype=torch.float64)
        hi = torch.tensor([p.upper for p in model.parameters], dtype=torch.float64)
        self.lo, self.hi = lo, hi
        #: above this estimated autograd memory the gradient is taken chunk by chunk
        self.max_graph_bytes = 2**31

    # parameters <-> unconstrained variables
    def to_u(self, x):
        import torch

        f = ((x - self.lo) / (self.hi - self.lo)).clamp(1e-6, 1 - 1e-6)
        return torch.log(f / (1 - f))

    def to_x(self, u):
        import torch

        return self.lo + (self.hi - self.lo) * torch.sigmoid(u)

    def images(self, inten, x):
        """Raw intensities (T, R) → the images compared with the data (R, ny, nx)."""
        import torch

        n = self.model.pixels
        img = inten.T.reshape(-1, n, n)
        if self.supersample > 1:
            # the model's sub-pixels averaged like the binned data (block means)
            img = torch.nn.functional.avg_pool2d(img[:, None], self.supersample)[:, 0]
        img = F.orient(img, *self.orientation)
        sigma = self.model.get(x, "blur", self.blur0)
        img = F.gaussian_blur(img, sigma)
        return img + self.model.get(x, "background", 0.0)

    def loss(self, inten, x):
        return F.figure_of_merit(
            self.fom, self.images(inten, x), self.data, self.mask, self.inv_sigma
        )

    def residuals(self, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            img = self.images(self.model.intensities(x), x)
            if self.fom == "zncc":
                r = F.zncc_residuals(img, self.data, self.mask)
            else:
                r = F.lsq_residuals(img, self.data, self.mask, self.inv_sigma)
        return r.numpy()

    def value_and_grad(self, u):
        """Figure of merit and its gradient in u, with bounded memory.

        Pass 1 computes every tilt without a graph; the figure of merit's gradient with
        respect to the intensities is then pushed back through the model one chunk of
        tilts at a time (a hand-made checkpoint: the matrix exponentials' graph of one
        chunk lives at a time).
        """
        import torch

        model = self.model
        n_pix = model.pixels**2
        # eigenvectors, their inverse and the matrices of every tilt kept for the backward
        graph_bytes = 16 * 8 * n_pix * model.max_beams**2
        if n_pix <= model.chunk or graph_bytes < self.max_graph_bytes:
            x = self.to_x(u)
            loss = self.loss(model.intensities(x), x)
            (grad,) = torch.autograd.grad(loss, u)
            return loss.detach(), grad
        with torch.no_grad():
            inten = model.intensities(self.to_x(u))
        leaf = inten.clone().requires_grad_(True)
        x = self.to_x(u)
        loss = self.loss(leaf, x)
        g_u, g_i = torch.autograd.grad(loss, [u, leaf], allow_unused=True)
        grad = torch.zeros_like(u) if g_u is None else g_u.clone()
        index = np.arange(n_pix)
        for start in range(0, n_pix, model.chunk):
            sub = index[start : start + model.chunk]
            xi = self.to_x(u)
            part = model.intensities(xi, sub)
            (g,) = torch.autograd.grad(
                part, u, grad_outputs=g_i[start : start + len(sub)], allow_unused=True
            )
            if g is not None:
                grad += g
        return loss.detach(), grad

    def value(self, x) -> float:
        import torch

        with torch.no_grad():
            return float(self.loss(self.model.intensities(x), x))


def _lbfgs(problem: Problem, x0, max_iter: int, history: list, bar, tol: float):
    """L-BFGS in the unconstrained variables; returns the best x and a stop message."""
    import torch

    u = problem.to_u(x0).clone().requires_grad_(True)
    best = {"loss": math.inf, "x": x0.clone()}
    message = "converged"
    opt = torch.optim.LBFGS(
        [u],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.5) + 5,
        tolerance_grad=1e-9,
        tolerance_change=tol,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        try:
            loss, grad = problem.value_and_grad(u)
        except (torch.linalg.LinAlgError, RuntimeError) as err:
            raise _Stop(f"the forward model failed ({err})") from err
        if not torch.isfinite(loss):
            raise _Stop("the figure of merit became non-finite")
        if not torch.isfinite(grad).all():
            raise _Stop("the gradient became non-finite")
        value = float(loss)
        history.append(value)
        if value < best["loss"]:
            best["loss"] = value
            best["x"] = problem.to_x(u.detach()).clone()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(fom=f"{best['loss']:.5g}")
        u.grad = grad
        return loss

    try:
        opt.step(closure)
        state = opt.state[u]
        if state.get("n_iter", 0) >= max_iter:
            message = f"stopped after {max_iter} iterations"
    except _Stop as stop:
        message = f"diverged: {stop}; kept the best point so far"
        warnings.warn(
            f"The refinement stopped early: {stop}. The result is the best point so far "
            "(figure of merit {:.6g}); narrow the parameter bounds, start closer, or use "
            "more beams.".format(best["loss"]),
            RefinementWarning,
            stacklevel=3,
        )
    return best["x"], best["loss"], message


def covariance(problem: Problem, x) -> tuple[np.ndarray, np.ndarray, float]:
    """Gauss–Newton covariance s² (JᵀJ)⁻¹ of the parameters at ``x``.

    J is the Jacobian of the residual vector by central differences (a tenth of each
    parameter's typical step), ``s² = |r|² / (n − p)`` the residual variance.

    Returns
    -------
    cov, jacobian, s2
    """
    import torch

    r0 = problem.residuals(x)
    params = problem.model.parameters
    jac = np.empty((len(r0), len(params)))
    for k, p in enumerate(params):
        # a tenth of the typical step: the model is smooth and noise-free, and small steps
        # keep the curvature of strongly non-linear parameters (thickness) local
        h = 0.1 * p.step
        e = torch.zeros_like(x)
        e[k] = h
        jac[:, k] = (problem.residuals(x + e) - problem.residuals(x - e)) / (2 * h)
    dof = max(len(r0) - len(params), 1)
    if not (np.isfinite(jac).all() and np.isfinite(r0).all()):
        warnings.warn(
            "The residuals are not finite around the result, so its uncertainties are "
            "unknown (NaN).",
            RefinementWarning,
            stacklevel=3,
        )
        nan = np.full((len(params), len(params)), np.nan)
        return nan, jac, float("nan")
    s2 = float(r0 @ r0) / dof
    jtj = jac.T @ jac
    cond = np.linalg.cond(jtj) if len(params) else 1.0
    if not np.isfinite(cond) or cond > 1e14:
        warnings.warn(
            "The curvature matrix is singular: some parameters are not determined by the "
            "data (their uncertainties are unreliable); drop or fix them.",
            RefinementWarning,
            stacklevel=3,
        )
    cov = s2 * np.linalg.pinv(jtj)
    return cov, jac, s2


def st_needs_counts(data: np.ndarray, mask: np.ndarray) -> bool:
    """True when the data are not counts (negative values inside the mask)."""
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
        Physics settings of :class:`~hyperspy_lacbed.refinement.model.Physics` (zone_axis,
        x_direction, surface_normal, voltage, absorption, strong_beams, preset, ...).

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
    phys = Physics.from_kwargs(**physics)
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
    if poisson and st_needs_counts(data, full_mask):
        raise ValueError(
            "weights='poisson' needs non-negative counts; give weights=None or σ per pixel."
        )
    t_range = np.atleast_1d(np.asarray(thickness, float))
    t0 = float(t_range.mean())
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
            x, best, msg = _lbfgs(problem, x, st.max_iter, history, bar, tolerance)
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
        "physics": phys.to_dict(),
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
