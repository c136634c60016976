"""Figures of merit in torch: blur, orientation, ZNCC (Felix) and weighted least squares.

Both figures of merit are written as sums of squared residuals, so that one Gauss–Newton
curvature serves the uncertainties of either:

- ZNCC: each disc (over its valid pixels) is centred and scaled to unit norm; for unit
  vectors ``|â − b̂|² = 2 − 2 â·b̂``, so ``Σ_r |â_r − b̂_r|² = 2 R (1 − mean ZNCC)``. The figure of
  merit is Felix's 1 − mean ZNCC over the discs.
- Least squares: the model is ``a (I_blurred + background)`` with the intensity scale a
  solved in closed form (profiled). For Poisson counts (the default) the objective is
  the Poisson deviance and the curvature comes from Pearson residuals (the Fisher
  information); with given σ it is the weighted sum of squares.
"""

from __future__ import annotations

import math

import numpy as np

from hyperspy_lacbed.analysis.compare import centred, zncc

FOMS = ("zncc", "lsq")


def gaussian_blur(images, sigma):
    """Gaussian blur of the last two axes, differentiable in ``sigma`` (pixels).

    Matches ``scipy.ndimage.gaussian_filter(..., mode="nearest", truncate=4)`` (the blur of
    :func:`hyperspy_lacbed.analysis.compare.gaussian_blur`): replicated edges, kernel radius
    int(4σ + 0.5), normalised.
    """
    import torch

    s = float(sigma.detach()) if hasattr(sigma, "detach") else float(sigma)
    if s <= 0:
        return images
    radius = int(4.0 * s + 0.5)
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    sig = sigma if torch.is_tensor(sigma) else torch.tensor(s, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (xs / sig) ** 2)
    kernel = kernel / kernel.sum()
    shape = images.shape
    x = images.reshape(-1, 1, shape[-2], shape[-1])
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(shape)


def orient(images, k: int, transpose: bool):
    """The square-image map of :func:`hyperspy_lacbed.analysis.square.orient`, in torch."""
    import torch

    if transpose:
        images = images.transpose(-2, -1)
    return torch.rot90(images, k, dims=(-2, -1))


def zncc_per_disc(sim, data, mask):
    """ZNCC of each disc over the pixels of ``mask`` (R, ny, nx) (bool tensors)."""
    return zncc(sim, data, mask)


def _unit(x, mask):
    c, norm = centred(x, mask)
    return c / norm.clamp(min=1e-300)


def zncc_residuals(sim, data, mask):
    """Residuals whose squared sum is 2 R (1 − mean ZNCC): the valid pixels of â − b̂."""
    return (_unit(sim, mask) - _unit(data, mask))[mask]


def _poisson_model(sim, data, mask):
    """a·sim over the mask with a = Σ data / Σ sim (the Poisson maximum-likelihood scale)."""
    import torch

    s, d = sim[mask], data[mask]
    m = d.sum() / s.sum() * s
    return torch.clamp(m, min=1e-9 * float(d.max().clamp(min=1.0))), d


def poisson_deviance(sim, data, mask):
    """Mean Poisson deviance 2 Σ [m − d + d ln(d/m)] / N of the scaled model m = a·sim.

    The maximum-likelihood objective for counts: unbiased at low counts, where a χ² with
    weights 1/data (Neyman) or a square-root transform is not.
    """
    import torch

    m, d = _poisson_model(sim, data, mask)
    dlog = torch.where(d > 0, d * torch.log(torch.clamp(d, min=1e-300) / m), torch.zeros_like(d))
    return 2 * (m - d + dlog).sum() / d.numel()


def lsq_residuals(sim, data, mask, inv_sigma):
    """Weighted residuals over the mask, the intensity scale a profiled out.

    ``inv_sigma=None`` means Poisson counts: Pearson residuals (a·sim − data)/√(a·sim),
    whose Gauss–Newton matrix is the Fisher information of the Poisson likelihood.
    Otherwise (a·sim − data)/σ with a from weighted least squares.
    """
    import torch

    if inv_sigma is None:
        m, d = _poisson_model(sim, data, mask)
        return (m - d) / torch.sqrt(m)
    s, d = sim[mask], data[mask]
    w = inv_sigma[mask] ** 2
    amp = (w * s * d).sum() / (w * s * s).sum()
    return (amp * s - d) * inv_sigma[mask]


def figure_of_merit(kind: str, sim, data, mask, inv_sigma=None):
    """The scalar figure of merit: 1 − mean ZNCC, or the weighted sum of squares / N.

    For ``"lsq"``, ``inv_sigma=None`` means Poisson counts: the mean Poisson deviance
    (:func:`poisson_deviance`), which is ≈ 1 for a model that fits to the noise.
    """
    if kind == "zncc":
        return 1.0 - zncc_per_disc(sim, data, mask).mean()
    if kind == "lsq":
        if inv_sigma is None:
            return poisson_deviance(sim, data, mask)
        r = lsq_residuals(sim, data, mask, inv_sigma)
        return (r**2).sum() / r.numel()
    raise ValueError(f"Unknown figure of merit {kind!r}; choose one of {', '.join(FOMS)}.")


def disc_mask(pixels: int, shape: str = "circle") -> np.ndarray:
    """Pixels of a 2N × 2N grid inside the disc (centres within N pixels of the centre)."""
    if shape == "square":
        return np.ones((pixels, pixels), bool)
    n = pixels / 2
    c = np.arange(pixels) - n + 0.5
    return (c[None, :] ** 2 + c[:, None] ** 2) <= n * n + 1e-9


def zscore(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each disc centred and scaled to unit standard deviation over its mask (NaN outside)."""
    out = np.full(images.shape, math.nan)
    for r in range(images.shape[0]):
        m = mask[r]
        v = images[r][m]
        sd = v.std()
        out[r][m] = (v - v.mean()) / (sd if sd > 0 else 1.0)
    return out
