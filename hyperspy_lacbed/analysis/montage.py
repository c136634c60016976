"""Montages: discs laid out in one image, and cut out of it again. Array kernels only.

The geometry (:func:`min_spacing`, :func:`disc_positions`, :func:`discs_overlap`),
the gather indices (:func:`montage_index`, :func:`cut_index`) and :func:`gather`
work on NumPy and dask arrays alike, so that
:meth:`~hyperspy_lacbed.signals.lacbed.LACBED.to_montage` and
:meth:`~hyperspy_lacbed.signals.lacbed.LACBED.from_montage` keep lazy signals lazy;
:func:`grid_montage` lays discs out on the (h, k) grid for figures
(:func:`hyperspy_lacbed.train.evaluate.plot_cases`). No HyperSpy here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = [
    "MONTAGE_GAP",
    "array_module",
    "cut_index",
    "disc_mask",
    "disc_positions",
    "discs_overlap",
    "gather",
    "grid_montage",
    "min_spacing",
    "montage_index",
]

#: Free pixels kept between neighbouring discs of a montage with the default spacing.
MONTAGE_GAP = 2


def array_module(data: Any) -> Any:
    """The array module (NumPy or dask) of ``data``."""
    return da if isinstance(data, da.Array) else np


def disc_mask(ny: int, nx: int, dkx: float, dky: float, radius: float, shape: str) -> np.ndarray:
    """Pixels of an ``ny × nx`` disc image that belong to the disc.

    ``shape="circle"``: pixel centres within ``radius`` (1/Å) of the image centre;
    ``shape="square"``: every pixel.
    """
    if shape == "square":
        return np.ones((ny, nx), dtype=bool)
    if shape != "circle":
        raise ValueError(f"disc must be 'circle' or 'square', not {shape!r}.")
    ky = (np.arange(ny) - (ny - 1) / 2) * dky
    kx = (np.arange(nx) - (nx - 1) / 2) * dkx
    return ky[:, None] ** 2 + kx[None, :] ** 2 <= radius**2 * (1 + 1e-9)


def gather(data: Any, index: np.ndarray, fill: float) -> Any:
    """``data[..., index]`` along the flattened last axis, ``fill`` where ``index < 0``.

    Works for NumPy and dask arrays alike (a lazy signal stays lazy).
    """
    valid = index >= 0
    out = data[..., np.where(valid, index, 0)]
    if not valid.all():
        out = array_module(out).where(valid, out, fill)
    return out


def min_spacing(
    g: np.ndarray,
    radius: float,
    dkx: float,
    dky: float,
    nx: int,
    ny: int,
    disc: str,
    gap: int = MONTAGE_GAP,
) -> float:
    """The smallest factor ≥ 1 on the g positions that keeps the discs apart."""
    n = len(g)
    if n < 2:
        return 1.0
    dg = g[:, None, :] - g[None, :, :]
    iu = np.triu_indices(n, 1)
    dx, dy = np.abs(dg[..., 0][iu]), np.abs(dg[..., 1][iu])
    if np.any(np.hypot(dx, dy) == 0):
        raise ValueError("Two reflections have the same g vector; their discs would coincide.")
    with np.errstate(divide="ignore"):
        if disc == "square":
            need = np.minimum((nx + gap) * dkx / dx, (ny + gap) * dky / dy)
        else:
            need = (2 * radius + gap * max(dkx, dky)) / np.hypot(dx, dy)
    return max(1.0, math.ceil(float(need.max()) * 1e4) / 1e4)


def disc_positions(spacing: float, g: np.ndarray, dkx: float, dky: float) -> np.ndarray:
    """Top-left (row, col) pixel of each disc in the montage: centres at spacing · g / dk."""
    shift = np.round(spacing * g / np.array([dkx, dky])).astype(int)  # (x, y)
    shift -= shift.min(axis=0)
    return np.stack([shift[:, 1], shift[:, 0]], axis=1)


def discs_overlap(pos: np.ndarray, mask: np.ndarray) -> bool:
    """Whether discs of this ``mask`` with top-left corners ``pos`` share a pixel."""
    pos = pos - pos.min(axis=0)
    height, width = pos.max(axis=0) + mask.shape
    rr, cc = np.nonzero(mask)
    count = np.zeros(int(height) * int(width), dtype=np.int64)
    for r0, c0 in pos:
        count[(r0 + rr) * width + (c0 + cc)] += 1
    return bool(np.any(count > 1))


def montage_index(pos: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """For each montage pixel the flat index into the ``(n, ny, nx)`` discs, −1 outside.

    Where discs overlap, the later disc wins.
    """
    height, width = shape
    ny, nx = mask.shape
    rr, cc = np.nonzero(mask)
    index = np.full(height * width, -1, dtype=np.int64)
    for i, (r0, c0) in enumerate(pos):
        index[(r0 + rr) * width + (c0 + cc)] = i * ny * nx + rr * nx + cc
    return index


def cut_index(pos: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """For each pixel of ``n`` discs the flat index into a montage of ``shape``, −1 outside.

    The inverse of :func:`montage_index`: disc ``i`` has its top-left pixel at
    ``pos[i]`` (row, col) and covers the pixels of ``mask``; pixels off the montage or
    outside the mask get −1.
    """
    height, width = shape
    ny, nx = mask.shape
    rr, cc = np.mgrid[0:ny, 0:nx]
    index = np.full((len(pos), ny, nx), -1, dtype=np.int64)
    for i, (r0, c0) in enumerate(pos):
        r, c = rr + r0, cc + c0
        ok = mask & (r >= 0) & (r < height) & (c >= 0) & (c < width)
        index[i][ok] = (r * width + c)[ok]
    return index.ravel()


def grid_montage(
    discs: np.ndarray, reflections: Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """Lay (R, D, D) discs out as one image: on the grid of their (h, k) when given, else a row.

    Disc (h, k) goes to the cell (row of k, column of h) among the distinct values, with a
    gap of D // 8 pixels (at least 1). The montage is meant for
    ``imshow(..., origin="lower")``: array row 0 at the bottom, so kx and ky (and h, k)
    increase to the right and upwards. Gaps are NaN (blank).
    """
    d = np.asarray(discs, float)
    r, n = d.shape[0], d.shape[-1]
    if reflections is None:
        cells = [(0, i) for i in range(r)]
    else:
        hk = np.asarray(reflections, int)[:, :2]
        hs, ks = np.unique(hk[:, 0]), np.unique(hk[:, 1])
        cells = [(int(np.searchsorted(ks, k)), int(np.searchsorted(hs, h))) for h, k in hk]
    gap = max(1, n // 8)
    pos = np.array([(i * (n + gap), j * (n + gap)) for i, j in cells], int)
    height, width = pos.max(axis=0) + n
    index = montage_index(pos, np.ones((n, n), bool), (int(height), int(width)))
    return gather(d.reshape(r * n * n), index, np.nan).reshape(int(height), int(width))
