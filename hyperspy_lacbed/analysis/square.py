"""The eight operations of 4mm on square grids: one home for every use.

The point group 4mm of a square lattice (the cubic [001] zone axis) acts on

* periodic images of one cell (projected potentials): :func:`transform_potential`;
* LACBED discs on a tilt grid centred on the zone axis: :func:`transform_discs`;
* displayed images (row 0 on top): :func:`orient` with :data:`ORIENTATIONS`.

:data:`SQUARE_OPERATIONS` names the operations as 2 × 2 integer matrices on (x, y);
:func:`square_grid_operations` lists them. Used by
:mod:`hyperspy_lacbed.analysis.compare` (orientation fits), the training augmentation
(:mod:`hyperspy_lacbed.train.augment`) and the origin-invariant metrics
(:mod:`hyperspy_lacbed.train.metrics`). Plain NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ORIENTATIONS",
    "SQUARE_OPERATIONS",
    "orient",
    "square_grid_operations",
    "transform_discs",
    "transform_potential",
]

#: The 8 operations of 4mm: (name, 2 × 2 integer matrix acting on (x, y) column vectors).
SQUARE_OPERATIONS: tuple[tuple[str, tuple[tuple[int, int], tuple[int, int]]], ...] = (
    ("1", ((1, 0), (0, 1))),
    ("4+", ((0, -1), (1, 0))),
    ("2", ((-1, 0), (0, -1))),
    ("4-", ((0, 1), (-1, 0))),
    ("m_x", ((-1, 0), (0, 1))),  # x → −x
    ("m_y", ((1, 0), (0, -1))),  # y → −y
    ("m_xy", ((0, 1), (1, 0))),  # x ↔ y
    ("m_-xy", ((0, -1), (-1, 0))),  # x ↔ −y
)


def square_grid_operations() -> list[np.ndarray]:
    """The 8 operations of 4mm as integer 2 × 2 matrices acting on (x, y) column vectors."""
    return [np.array(m, int) for _, m in SQUARE_OPERATIONS]


def transform_potential(potential: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a point operation M about the cell origin to periodic images (..., P, P).

    ``out(r) = in(M⁻¹ r)`` with pixel [iy, ix] at r = (ix, iy) in pixel units, indices
    taken modulo P, so the result is again sampled on the same grid.
    """
    v = np.asarray(potential)
    ny, nx = v.shape[-2:]
    m = np.asarray(matrix, int)
    if ny != nx and (m[0, 1] or m[1, 0]):
        raise ValueError("A rotation by 90° needs a square grid.")
    inv = np.round(np.linalg.inv(m)).astype(int)
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    sx = (inv[0, 0] * ix + inv[0, 1] * iy) % nx
    sy = (inv[1, 0] * ix + inv[1, 1] * iy) % ny
    return v[..., sy, sx]


def transform_discs(
    discs: np.ndarray, matrix: np.ndarray, source: np.ndarray | None = None
) -> np.ndarray:
    """Apply an in-plane operation R to LACBED discs (..., R, 2N, 2N).

    For the crystal rotated by R, I'_g(k) = I_{R⁻¹g}(R⁻¹k): each disc image is resampled
    at R⁻¹k (the tilt grid is centred on the zone axis, so it maps onto itself) and
    output channel c takes input channel ``source[c]``, the index of R⁻¹g_c.
    """
    d = np.asarray(discs)
    n = d.shape[-1]
    m = np.asarray(matrix, int)
    inv = np.round(np.linalg.inv(m)).astype(int)
    # Doubled pixel-centre coordinates u = 2j − n + 1 are odd integers, symmetric about 0.
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    u, v = 2 * j - n + 1, 2 * i - n + 1
    u0 = inv[0, 0] * u + inv[0, 1] * v
    v0 = inv[1, 0] * u + inv[1, 1] * v
    j0, i0 = (u0 + n - 1) // 2, (v0 + n - 1) // 2
    if source is not None:
        d = d[..., np.asarray(source, int), :, :]
    return d[..., i0, j0]


#: The eight maps of a square image onto itself, as (quarter turns, transpose first):
#: ``orient(image, k, transpose)`` is ``np.rot90(image.T if transpose else image, k)``.
ORIENTATIONS: tuple[tuple[int, bool], ...] = tuple((k, t) for t in (False, True) for k in range(4))


def orient(image: np.ndarray, k: int, transpose: bool = False) -> np.ndarray:
    """Apply one of the eight square-image maps to the last two axes.

    ``np.rot90(image, k)`` (counter-clockwise quarter turns, as displayed with row 0 on
    top), after swapping rows and columns when ``transpose`` is true.
    """
    image = np.asarray(image)
    if transpose:
        image = np.swapaxes(image, -2, -1)
    return np.rot90(image, k, axes=(-2, -1))
