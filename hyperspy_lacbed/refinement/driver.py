"""The one refinement driver: bounded L-BFGS through a differentiable Bloch model.

:class:`Problem` ties a model (:class:`~hyperspy_lacbed.refinement.model.BlochModel` or
a subclass), recorded images, their mask and a figure of merit; :func:`lbfgs` minimises
it in logistic variables that keep every parameter inside its bounds (torch L-BFGS,
strong-Wolfe line search) and returns the best point seen with a stop message;
:func:`covariance` gives the Gauss–Newton uncertainties at the optimum. Both the
crystal refinement (:func:`~hyperspy_lacbed.refinement.fit.refine_discs`) and the
potential refinement (:func:`~hyperspy_lacbed.refinement.potential.refine_potential`)
run through it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from hyperspy_lacbed.refinement import fom as F
from hyperspy_lacbed.refinement.model import BlochModel

__all__ = ["Problem", "RefinementWarning", "covariance", "lbfgs"]


class RefinementWarning(UserWarning):
    """A refinement stopped early (divergence) or an uncertainty is not determined."""


class _Stop(Exception):
    pass


class Problem:
    """One stage: a model, the binned data, the mask and the figure of merit.

    ``orientation`` maps the model's images onto the data's frame; ``blur`` is the start
    σ in data pixels; ``supersample`` model pixels per binned pixel along each axis are
    averaged like the data, which are binned by ``bin`` (the blur acts on the model's
    grid, σ · supersample / bin of its pixels); ``inv_sigma`` weighs least squares (None:
    Poisson counts, or ZNCC).
    """

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
        bin: int = 1,
    ):
        import torch

        self.model = model
        self.fom = fom
        self.orientation = orientation
        self.blur0 = float(blur)
        self.supersample = int(supersample)
        #: model pixels per data pixel: the blur (in data pixels) acts on the model's grid
        self.blur_scale = self.supersample / int(bin)
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
        #: an optional prior: a function of the parameters added to the figure of merit
        #: (a MAP fit); None for maximum likelihood
        self.penalty = None

    # parameters <-> unconstrained variables
    def to_u(self, x):
        import torch

        f = ((x - self.lo) / (self.hi - self.lo)).clamp(1e-6, 1 - 1e-6)
        return torch.log(f / (1 - f))

    def to_x(self, u):
        import torch

        return self.lo + (self.hi - self.lo) * torch.sigmoid(u)

    def images(self, inten, x):
        """Raw intensities (T, R) → the images compared with the data (R, ny, nx).

        The blur σ is in data pixels; it acts on the model's own grid (σ · supersample /
        bin of its pixels) before the sub-pixels are averaged like the binned data, so
        that a blur smaller than a binned pixel still reaches a supersampled stage.
        """
        import torch

        n = self.model.pixels
        img = inten.T.reshape(-1, n, n)
        img = F.orient(img, *self.orientation)
        sigma = self.model.get(x, "blur", self.blur0)
        img = F.gaussian_blur(img, sigma * self.blur_scale)
        if self.supersample > 1:
            # the model's sub-pixels averaged like the binned data (block means)
            img = torch.nn.functional.avg_pool2d(img[:, None], self.supersample)[:, 0]
        return img + self.model.get(x, "background", 0.0)

    def loss(self, inten, x):
        """The figure of merit of the intensities, plus the prior's penalty when there is one."""
        value = F.figure_of_merit(
            self.fom, self.images(inten, x), self.data, self.mask, self.inv_sigma
        )
        return value if self.penalty is None else value + self.penalty(x)

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
        """The objective at ``x``: the figure of merit and the prior's penalty."""
        import torch

        with torch.no_grad():
            return float(self.loss(self.model.intensities(x), x))

    def fit_value(self, x) -> float:
        """The pattern's figure of merit alone at ``x`` (no prior)."""
        import torch

        with torch.no_grad():
            inten = self.model.intensities(x)
            return float(
                F.figure_of_merit(
                    self.fom, self.images(inten, x), self.data, self.mask, self.inv_sigma
                )
            )


def lbfgs(problem: Problem, x0, max_iter: int, history: list, bar, tol: float):
    """L-BFGS in the unconstrained variables from ``x0``.

    Parameters
    ----------
    problem
        The :class:`Problem`.
    x0
        Start parameters (float64 tensor).
    max_iter
        Iterations.
    history
        Every figure-of-merit evaluation is appended to it.
    bar
        A tqdm bar ticked per evaluation, or None.
    tol
        Stop when the figure of merit changes less than this.

    Returns
    -------
    x, fom, message
        The best point evaluated, its figure of merit, and why the fit stopped
        (``"converged"``, ``"stopped after N iterations"`` or ``"diverged: ..."``).
    """
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
    """Covariance of the parameters at ``x`` from the Gauss–Newton curvature JᵀJ.

    J is the Jacobian of the residual vector by central differences (a tenth of each
    parameter's typical step), ``s² = |r|² / (n − p)`` the residual variance.

    - Least squares (``fom="lsq"``): the residuals are weighted by their σ (Pearson
      residuals for counts), so ``s² (JᵀJ)⁻¹`` is the inverse Fisher information scaled by
      the goodness of fit.
    - ZNCC: the residuals are unweighted differences of normalised discs, whose noise is
      not the same at every pixel (counts: bright pixels are noisier), so the covariance
      is the sandwich ``(JᵀJ)⁻¹ Jᵀ diag(r²) J (JᵀJ)⁻¹ · n / (n − p)`` (White's
      heteroscedasticity-consistent estimator), which needs no noise model.

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
    inv = np.linalg.pinv(jtj)
    if problem.fom == "zncc":
        meat = (jac * (r0**2)[:, None]).T @ jac * (len(r0) / dof)
        cov = inv @ meat @ inv
    else:
        cov = s2 * inv
    return cov, jac, s2
