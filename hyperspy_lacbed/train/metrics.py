"""Metrics of the cGAN surrogates (the conventions page, :doc:`/user_guide/conventions`).

ℓMSE
    Mean over the pixels of an image of (prediction − reference)², both divided by the
    reference image's maximum (so the reference lies in [0, 1]). For discs the "image" is
    by default the whole pattern of one thickness (all R discs, one maximum), as the
    training loop's validation; :func:`lmse` takes other axes for per-disc values.
Origin-invariant ℓMSE (potentials)
    The minimum of the ℓMSE over every cyclic translation of the predicted cell
    (all at once by an FFT cross-correlation) and over the operations of the zone axis
    that map the square grid onto itself (the 8 operations of 4mm for cubic [001]): a
    projected potential has no preferred origin, and the rotated or mirrored crystal
    gives the same pattern up to the same operation.

Plain NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hyperspy_lacbed.analysis.square import square_grid_operations, transform_potential

__all__ = ["align_potential", "lmse", "origin_invariant_lmse"]


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
