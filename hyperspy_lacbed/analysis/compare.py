"""Compare simulated LACBED discs with recorded ones: correlation, blur, orientation, thickness.

Plain NumPy/SciPy (and torch for the differentiable correlation) on arrays whose last two
axes are the disc image (rows, columns); no HyperSpy import, so the functions serve the
signal classes, refinement, training metrics and scripts alike.

The figure of merit is the zero-normalised cross-correlation (Pearson's r over the pixels
of a disc), the one Felix uses: it ignores the scale and offset of the intensities, so raw
detector counts can be compared with ``|ψ_g|²`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from hyperspy_lacbed.analysis.square import ORIENTATIONS, orient

__all__ = [
    "ORIENTATIONS",
    "OrientationFit",
    "ThicknessFit",
    "best_orientation",
    "block_mean",
    "centred",
    "fit_thickness",
    "gaussian_blur",
    "orient",
    "zero_normalised_cross_correlation",
    "zncc",
]


def centred(x: Any, mask: Any) -> tuple[Any, Any]:
    """Images centred on their mean over ``mask``, and their norms: the core of every ZNCC.

    Parameters
    ----------
    x
        Real torch tensor (..., ny, nx).
    mask
        Bool tensor broadcasting to ``x``: the pixels that count (others become 0).

    Returns
    -------
    centred, norm
        ``x − mean`` inside the mask (0 outside), and its Euclidean norm per image
        (..., 1, 1). Differentiable; the one implementation behind
        :func:`zero_normalised_cross_correlation`, the refinement's figure of merit and
        the surrogates' ZMCC.
    """
    import torch

    w = mask.to(x.dtype)
    n = w.sum((-2, -1), keepdim=True)
    xm = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
    c = (xm - xm.sum((-2, -1), keepdim=True) / n) * w
    return c, torch.sqrt((c**2).sum((-2, -1), keepdim=True))


def zncc(a: Any, b: Any, mask: Any) -> Any:
    """ZNCC (Pearson's r) of torch images over ``mask``, per image; 0 where one is constant.

    Differentiable (the refinement's figure of merit); see :func:`centred`.
    """
    import torch

    ca, cb = centred(a, mask)[0], centred(b, mask)[0]
    # sqrt of the product (not the product of norms): exactly 1 for identical images
    den = torch.sqrt((ca * ca).sum((-2, -1)) * (cb * cb).sum((-2, -1)))
    return (ca * cb).sum((-2, -1)) / torch.clamp(den, min=1e-300)


def zero_normalised_cross_correlation(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray | float:
    """Zero-normalised cross-correlation (Pearson's r) over the last two axes.

    Parameters
    ----------
    a, b
        Images of shape ``(..., ny, nx)``; the leading axes broadcast against each other.
    mask
        Optional boolean ``(ny, nx)`` array of the pixels to use (e.g. a circular disc).
        Pixels that are NaN in either image are left out as well.

    Returns
    -------
    float or numpy.ndarray
        r in [−1, 1] for each image pair (a float for 2-D input); NaN where an image has
        fewer than two valid pixels or is constant over them.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> float(zero_normalised_cross_correlation(x, 3 * x + 1))
    1.0
    """
    import torch

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"Both arrays need the same image shape in their last two axes, got {a.shape} and "
            f"{b.shape}."
        )
    a, b = np.broadcast_arrays(a, b)
    valid = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape[-2:]:
            raise ValueError(f"mask has shape {mask.shape}, the images {a.shape[-2:]}.")
        valid &= mask
    n = valid.sum(axis=(-2, -1))
    v = torch.as_tensor(valid)
    ta = torch.as_tensor(np.where(valid, a, 0.0))
    tb = torch.as_tensor(np.where(valid, b, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = zncc(ta, tb, v).numpy()
        constant = (centred(ta, v)[1] * centred(tb, v)[1])[..., 0, 0].numpy() == 0
    r = np.where((n >= 2) & ~constant, np.clip(r, -1.0, 1.0), np.nan)
    return float(r) if r.ndim == 0 else r


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of the last two axes (``scipy.ndimage.gaussian_filter``, mode 'nearest').

    Parameters
    ----------
    image
        Array of shape ``(..., ny, nx)``; the leading axes are not blurred.
    sigma_px
        Standard deviation in pixels; 0 returns a float copy.

    Returns
    -------
    numpy.ndarray
        The blurred images (float), same shape.
    """
    image = np.asarray(image, dtype=float)
    if not (np.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number ≥ 0, got {sigma_px}.")
    if sigma_px == 0:
        return image.copy()
    sigma = (0.0,) * (image.ndim - 2) + (float(sigma_px),) * 2
    return ndimage.gaussian_filter(image, sigma, mode="nearest")


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Downsample the last two axes by averaging ``factor × factor`` blocks.

    A ``2N × 2N`` disc with pixel centres at ``(j − N + 0.5)·dk`` becomes a
    ``(2N/f) × (2N/f)`` disc with centres at ``(j − N/f + 0.5)·f·dk``: the same
    convention, so it matches a simulation with ``pixels = 2N / f`` and the same radius.

    Parameters
    ----------
    image
        Array ``(..., ny, nx)`` with ``ny`` and ``nx`` multiples of ``factor``.
    factor
        Block size in pixels (≥ 1).

    Returns
    -------
    numpy.ndarray
        Shape ``(..., ny // factor, nx // factor)``.
    """
    image = np.asarray(image, dtype=float)
    factor = int(factor)
    ny, nx = image.shape[-2:]
    if factor < 1 or ny % factor or nx % factor:
        raise ValueError(f"factor {factor} must be ≥ 1 and divide the image shape {(ny, nx)}.")
    lead = image.shape[:-2]
    blocks = image.reshape(*lead, ny // factor, factor, nx // factor, factor)
    return blocks.mean(axis=(-3, -1))


@dataclass(frozen=True)
class OrientationFit:
    """Result of :func:`best_orientation`."""

    k: int
    transpose: bool
    mean_ncc: float
    scores: dict[tuple[int, bool], float]


def best_orientation(
    simulated: np.ndarray,
    measured: np.ndarray,
    blur_sigma: float = 0.0,
    mask: np.ndarray | None = None,
) -> OrientationFit:
    """Which of the eight square-image maps of ``simulated`` best matches ``measured``.

    Parameters
    ----------
    simulated
        Simulated discs ``(R, ny, nx)`` (or ``(n_t, R, ny, nx)``: the best thickness is
        taken for each map).
    measured
        Recorded discs ``(R, ny, nx)``, same reflection order.
    blur_sigma
        Gaussian blur (pixels) applied to the simulation first.
    mask
        Optional pixel mask, see :func:`zero_normalised_cross_correlation`.

    Returns
    -------
    OrientationFit
        The map ``measured ≈ orient(simulated, k, transpose)``, its mean NCC over the
        discs, and the score of every map.
    """
    sim = gaussian_blur(simulated, blur_sigma)
    if sim.ndim == 3:
        sim = sim[None]
    scores = {}
    for k, t in ORIENTATIONS:
        r = zero_normalised_cross_correlation(orient(sim, k, t), measured, mask)
        scores[(k, t)] = float(np.nanmax(np.nanmean(r, axis=-1)))
    k, t = max(scores, key=scores.__getitem__)
    return OrientationFit(k, t, scores[(k, t)], scores)


@dataclass(frozen=True)
class ThicknessFit:
    """Result of :func:`fit_thickness`.

    Attributes
    ----------
    thickness
        Best thickness (units of ``thicknesses``), refined by a parabola through the
        maximum of the mean-NCC curve and its two neighbours.
    index
        Index of the best thickness of the grid.
    mean_ncc
        Mean NCC over the discs at that grid thickness (a computed value, not the
        parabola's).
    mean_ncc_refined
        The parabola's maximum (equal to ``mean_ncc`` at the ends of the grid).
    per_disc
        NCC of each disc at the best grid thickness, ``(R,)``.
    curve
        NCC of every disc at every thickness, ``(n_t, R)``.
    thicknesses
        The thickness grid.
    """

    thickness: float
    index: int
    mean_ncc: float
    mean_ncc_refined: float
    per_disc: np.ndarray
    curve: np.ndarray
    thicknesses: np.ndarray

    @property
    def mean_curve(self) -> np.ndarray:
        """Mean NCC over the discs at each thickness, ``(n_t,)``."""
        return np.nanmean(self.curve, axis=1)


def _parabola_peak(x: np.ndarray, y: np.ndarray, i: int) -> tuple[float, float]:
    """Vertex of the parabola through points i−1, i, i+1 (or the point itself at an end)."""
    if i == 0 or i == len(x) - 1 or not np.all(np.isfinite(y[i - 1 : i + 2])):
        return float(x[i]), float(y[i])
    coef = np.polyfit(x[i - 1 : i + 2] - x[i], y[i - 1 : i + 2], 2)
    if coef[0] >= 0:  # not a maximum (flat or convex): keep the grid point
        return float(x[i]), float(y[i])
    dx = -coef[1] / (2 * coef[0])
    dx = float(np.clip(dx, x[i - 1] - x[i], x[i + 1] - x[i]))
    return float(x[i] + dx), float(np.polyval(coef, dx))


def fit_thickness(
    simulated_stack: np.ndarray,
    measured: np.ndarray,
    thicknesses: np.ndarray,
    blur_sigma: float = 1.0,
    mask: np.ndarray | None = None,
) -> ThicknessFit:
    """Best-matching thickness of a simulated thickness series against recorded discs.

    Parameters
    ----------
    simulated_stack
        Simulated discs ``(n_t, R, ny, nx)`` (e.g. ``DiscResult.discs``) in the same
        orientation and reflection order as ``measured``.
    measured
        Recorded discs ``(R, ny, nx)``.
    thicknesses
        The ``n_t`` thicknesses of the stack, increasing.
    blur_sigma
        Gaussian blur (pixels) applied to the simulation before comparing, standing for
        the instrument's point spread and the finite energy and angular resolution.
    mask
        Optional pixel mask, see :func:`zero_normalised_cross_correlation`.

    Returns
    -------
    ThicknessFit
        Best thickness (parabolic refinement on the mean-NCC curve), mean NCC and per-disc
        NCC there, and the whole NCC curve.
    """
    sim = np.asarray(simulated_stack)
    exp = np.asarray(measured, dtype=float)
    t = np.asarray(thicknesses, dtype=float).ravel()
    if sim.ndim != 4 or exp.ndim != 3 or sim.shape[1:] != exp.shape or len(t) != sim.shape[0]:
        raise ValueError(
            f"Expected simulated (n_t, R, ny, nx), measured (R, ny, nx) and n_t thicknesses; "
            f"got {sim.shape}, {exp.shape} and {len(t)}."
        )
    # one thickness at a time: the working memory stays that of one set of discs
    curve = np.array(
        [
            np.atleast_1d(
                zero_normalised_cross_correlation(gaussian_blur(s, blur_sigma), exp, mask)
            )
            for s in sim
        ]
    )
    mean = np.nanmean(curve, axis=1)
    if not np.isfinite(mean).any():
        raise ValueError("No finite correlation: the images are constant or all NaN.")
    i = int(np.nanargmax(mean))
    thickness, peak = _parabola_peak(t, mean, i)
    return ThicknessFit(thickness, i, float(mean[i]), peak, curve[i].copy(), curve, t)
