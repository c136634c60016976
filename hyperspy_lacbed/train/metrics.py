"""Metrics of the cGAN surrogates (the conventions page, :doc:`/user_guide/conventions`).

ℓMSE
    Mean over the pixels of an image of (prediction − reference)², both divided by the
    reference image's maximum (so the reference lies in [0, 1]). For discs the "image" is
    by default the whole pattern of one thickness (all R discs, one maximum), as the
    evaluation and the training log's validation score it; :func:`lmse` takes other axes
    for per-disc values.
Origin-invariant ℓMSE (potentials)
    The minimum of the ℓMSE over every cyclic translation of the predicted cell
    (all at once by an FFT cross-correlation) and over the operations of the zone axis
    that map the square grid onto itself (the 8 operations of 4mm for cubic [001]): a
    projected potential has no preferred origin, and the rotated or mirrored crystal
    gives the same pattern up to the same operation.
The method paper's metrics (like for like, ``../shared/reference/seed_method.md``)
    Each image is min–max stretched to [0, 1] on its own and quantised to 8 bits
    (:func:`stretch_8bit`, rounding to the nearest level); the paper's MSE
    (:func:`paper_mse`) is the mean squared difference of the two 8-bit images (in units
    of [0, 1]), and ZMCC = 0.5 + 0.5 r (:func:`zmcc`) with r the Pearson correlation of
    the two 8-bit images.
Disc families (:func:`disc_families`, :func:`family_metrics`)
    The reflections of a pattern grouped by their form ({000}, {200}, {220} for the
    default domain). Per family: our ℓMSE of the family's discs, each divided by the
    maximum of the *whole pattern* (so that the pattern ℓMSE is the disc-count-weighted
    mean of the family values), and the mean over the family's discs of the paper's MSE
    and ZMCC of each disc (the paper scored the 000 disc only).

Plain NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hyperspy_lacbed.analysis.compare import zero_normalised_cross_correlation
from hyperspy_lacbed.analysis.square import square_grid_operations, transform_potential

__all__ = [
    "align_potential",
    "disc_families",
    "family_metrics",
    "lmse",
    "origin_invariant_lmse",
    "paper_mse",
    "stretch_8bit",
    "zmcc",
]


def _peak(reference: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    m = np.max(reference, axis=axes, keepdims=True)
    alt = np.max(np.abs(reference), axis=axes, keepdims=True)
    m = np.where(m > 0, m, alt)  # an all-negative or zero reference: its largest |value|
    return np.where(m > 0, m, 1.0)


def lmse(
    prediction: np.ndarray, reference: np.ndarray, axes: Sequence[int] = (-2, -1)
) -> np.ndarray:
    """ℓMSE of each image: mean over ``axes`` of ((pred − ref) / max(ref))².

    Parameters
    ----------
    prediction, reference
        Arrays of the same shape; ``axes`` are the pixels of one image.
    axes
        Axes of an image: ``(-2, -1)`` for single images, ``(-3, -2, -1)`` for a pattern
        of R discs.

    Returns
    -------
    numpy.ndarray
        One value per image (the other axes), float64.
    """
    pred = np.asarray(prediction, np.float64)
    ref = np.asarray(reference, np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape.")
    axes = tuple(int(a) for a in axes)
    m = _peak(ref, axes)
    return np.mean(((pred - ref) / m) ** 2, axis=axes)


def _operations(operations: Any, shape: tuple[int, int]) -> list[np.ndarray]:
    if operations is None:
        ops = square_grid_operations()
        if shape[0] != shape[1]:
            ops = [m for m in ops if not (m[0, 1] or m[1, 0])]
        return ops
    if isinstance(operations, str):
        if operations in ("none", "1"):
            return [np.eye(2, dtype=int)]
        raise ValueError(f"Unknown operations {operations!r}; give None, 'none' or matrices.")
    return [np.asarray(m, int).reshape(2, 2) for m in operations]


def _best_alignment(
    prediction: np.ndarray, reference: np.ndarray, operations: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, op index, shift (sy, sx)) of the best aligned ℓMSE, per image."""
    pred = np.asarray(prediction, np.float64)
    ref = np.asarray(reference, np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape.")
    ny, nx = ref.shape[-2:]
    m = _peak(ref, (-2, -1))
    r = ref / m
    fr = np.fft.fft2(r)
    rr = np.mean(r * r, axis=(-2, -1))
    lead = ref.shape[:-2]
    best = np.full(lead, np.inf)
    best_op = np.zeros(lead, int)
    best_shift = np.zeros((*lead, 2), int)
    for k, mat in enumerate(_operations(operations, (ny, nx))):
        p = transform_potential(pred, mat) / m
        # corr[s] = Σ_x p(x − s) r(x): the overlap of the prediction shifted by s.
        corr = np.fft.ifft2(np.conj(np.fft.fft2(p)) * fr).real / (nx * ny)
        flat = corr.reshape(*lead, -1)
        idx = np.argmax(flat, axis=-1)
        cmax = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
        val = np.maximum(np.mean(p * p, axis=(-2, -1)) + rr - 2 * cmax, 0.0)
        better = val < best
        best = np.where(better, val, best)
        best_op = np.where(better, k, best_op)
        shift = np.stack(np.unravel_index(idx, (ny, nx)), axis=-1)
        best_shift = np.where(better[..., None], shift, best_shift)
    return best, best_op, best_shift


def origin_invariant_lmse(
    prediction: np.ndarray, reference: np.ndarray, operations: Any = None
) -> np.ndarray:
    """ℓMSE minimised over cyclic translations and grid symmetry operations.

    Parameters
    ----------
    prediction, reference
        Periodic images (..., P, P) of one cell each.
    operations
        2 × 2 integer matrices acting on (x, y) about the origin; default the 8
        operations of 4mm (the cubic [001] zone; only the 4 diagonal ones on a
        rectangular grid). ``"none"``: translations only.

    Returns
    -------
    numpy.ndarray
        One value per image, ≤ :func:`lmse` of the same pair.
    """
    return _best_alignment(prediction, reference, operations)[0]


def align_potential(
    prediction: np.ndarray, reference: np.ndarray, operations: Any = None
) -> np.ndarray:
    """The prediction moved by the operation and cyclic shift that fit the reference best."""
    pred = np.asarray(prediction)
    _, op, shift = _best_alignment(pred, reference, operations)
    ops = _operations(operations, pred.shape[-2:])
    flat_pred = pred.reshape(-1, *pred.shape[-2:])
    out = np.empty_like(flat_pred)
    for i, (o, s) in enumerate(zip(op.ravel(), shift.reshape(-1, 2))):
        moved = transform_potential(flat_pred[i], ops[int(o)])
        out[i] = np.roll(moved, (int(s[0]), int(s[1])), axis=(-2, -1))
    return out.reshape(pred.shape)


# ----------------------------------------------------------------------------- the paper's
def stretch_8bit(image: np.ndarray, axes: Sequence[int] = (-2, -1)) -> np.ndarray:
    """Each image min–max stretched to [0, 1] and quantised to 8 bits (k / 255).

    Parameters
    ----------
    image
        Array; ``axes`` are the pixels of one image.
    axes
        Axes of one image.

    Returns
    -------
    numpy.ndarray
        Values ``round(255 (x − min) / (max − min)) / 255`` (float64); a constant image
        (max = min) gives zeros. NaN counts as the image's minimum.
    """
    x = np.asarray(image, np.float64)
    axes = tuple(int(a) for a in axes)
    finite = np.isfinite(x)
    lo = np.min(np.where(finite, x, np.inf), axis=axes, keepdims=True)
    hi = np.max(np.where(finite, x, -np.inf), axis=axes, keepdims=True)
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    u = np.where(ok, (np.where(finite, x, lo) - lo) / np.where(ok, span, 1.0), 0.0)
    return np.round(255.0 * np.clip(u, 0.0, 1.0)) / 255.0


def paper_mse(
    prediction: np.ndarray, reference: np.ndarray, axes: Sequence[int] = (-2, -1)
) -> np.ndarray:
    """The method paper's MSE: both images stretched and quantised (:func:`stretch_8bit`).

    Returns one value per image (the axes not in ``axes``), in [0, 1].
    """
    pred, ref = _same_shape(prediction, reference)
    axes = tuple(int(a) for a in axes)
    return np.mean((stretch_8bit(pred, axes) - stretch_8bit(ref, axes)) ** 2, axis=axes)


def zmcc(
    prediction: np.ndarray, reference: np.ndarray, axes: Sequence[int] = (-2, -1)
) -> np.ndarray:
    """ZMCC = 0.5 + 0.5 r of the two 8-bit images (r: Pearson correlation), in [0, 1].

    When an image is constant r is undefined; it is then taken as 1 if the two 8-bit
    images are equal and 0 otherwise (ZMCC 1 or 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> from hyperspy_lacbed.train.metrics import paper_mse, zmcc
    >>> ref = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> float(zmcc(2 * ref + 1, ref)), float(zmcc(-ref, ref))  # stretch-invariant; inverted
    (1.0, 0.0)
    >>> float(paper_mse(ref ** 2, ref))  # 8-bit levels 0, 28, 113, 255 against 0, 85, 170
    0.0249...
    """
    pred, ref = _same_shape(prediction, reference)
    axes = tuple(int(a) % pred.ndim for a in axes)
    p, r = stretch_8bit(pred, axes), stretch_8bit(ref, axes)
    # the pixels of an image as one column, for the package's one ZNCC
    dest = tuple(range(pred.ndim - len(axes), pred.ndim))
    p = np.moveaxis(p, axes, dest).reshape(*p.shape[: pred.ndim - len(axes)], -1, 1)
    r = np.moveaxis(r, axes, dest).reshape(p.shape)
    corr = np.asarray(zero_normalised_cross_correlation(p, r))
    equal = np.all(p == r, axis=(-2, -1))
    corr = np.where(np.isfinite(corr), corr, np.where(equal, 1.0, 0.0))
    return 0.5 + 0.5 * np.clip(corr, -1.0, 1.0)


def _same_shape(prediction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(prediction, np.float64)
    ref = np.asarray(reference, np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape.")
    return pred, ref


def disc_families(reflections: Sequence[Sequence[int]]) -> dict[str, list[int]]:
    """Channels of each family of reflections, e.g. ``{"000": [0], "200": [1, 2, 3, 4], ...}``.

    A family is named by the sorted absolute indices, largest first (``(-2, 2, 0)`` →
    ``"220"``), and families are ordered by ``|g|²`` then name. Indices above 9 are written
    with commas (``"10,2,0"``).
    """
    out: dict[str, list[int]] = {}
    keys: dict[str, int] = {}
    for i, hkl in enumerate(reflections):
        v = sorted((abs(int(x)) for x in hkl), reverse=True)
        sep = "," if max(v) > 9 else ""
        name = sep.join(str(x) for x in v)
        out.setdefault(name, []).append(i)
        keys[name] = sum(x * x for x in v)
    return {k: out[k] for k in sorted(out, key=lambda n: (keys[n], n))}


def family_metrics(
    prediction: np.ndarray, reference: np.ndarray, reflections: Sequence[Sequence[int]]
) -> dict[str, np.ndarray]:
    """ℓMSE, the paper's MSE and ZMCC per disc family of patterns (..., R, D, D).

    Returns
    -------
    dict
        ``lmse_<family>`` (discs divided by the whole pattern's maximum),
        ``paper_mse_<family>`` and ``zmcc_<family>`` (means over the family's discs of
        each disc's value), each of shape ``(...)``.
    """
    pred, ref = _same_shape(prediction, reference)
    if pred.ndim < 3 or pred.shape[-3] != len(reflections):
        raise ValueError(
            f"Expected patterns (..., {len(reflections)}, D, D) for {len(reflections)} "
            f"reflections, got {pred.shape}."
        )
    m = _peak(ref, (-3, -2, -1))
    per_disc_lmse = np.mean(((pred - ref) / m) ** 2, axis=(-2, -1))
    per_disc_mse = paper_mse(pred, ref)
    per_disc_zmcc = zmcc(pred, ref)
    out: dict[str, np.ndarray] = {}
    for name, idx in disc_families(reflections).items():
        out[f"lmse_{name}"] = per_disc_lmse[..., idx].mean(axis=-1)
        out[f"paper_mse_{name}"] = per_disc_mse[..., idx].mean(axis=-1)
        out[f"zmcc_{name}"] = per_disc_zmcc[..., idx].mean(axis=-1)
    return out
