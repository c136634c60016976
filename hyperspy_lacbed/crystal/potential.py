"""Projected crystal potential over one periodic cell, as a plain array.

V_proj(x, y) = c Σ_{g in ZOLZ} V_g exp(2πi g·r) in V·Å (:doc:`/user_guide/conventions`), where c is the
lattice period along the beam. The image covers the rectangle spanned by the shortest
lattice vectors along the frame's x and y directions, so it is exactly periodic; for a
cubic crystal along [001] that is one a × a face of the cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hyperspy_lacbed.crystal.structure import (
    Crystal,
    StructureError,
    lattice_period,
    zolz_reflections,
    zone_frame,
)
from hyperspy_lacbed.crystal.structure_factors import fourier_coefficients_volts

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class ProjectedCell:
    """Geometry of the projected periodic cell."""

    width_x: float  # Å, period along the frame's x
    width_y: float  # Å, period along y
    height: float  # Å, period along the beam (c in the formula)
    zone_axis: tuple[int, int, int]
    x_direction: tuple[int, int, int]


def projected_cell(
    crystal: Crystal,
    zone_axis: Sequence[int] = (0, 0, 1),
    x_direction: Sequence[int] | None = None,
) -> ProjectedCell:
    """The periodic rectangle (and beam period) of a zone-axis projection."""
    frame = zone_frame(crystal, zone_axis, x_direction)
    try:
        _, lx = lattice_period(crystal, frame.ex)
        _, ly = lattice_period(crystal, frame.ey)
        _, lz = lattice_period(crystal, frame.ez)
    except StructureError as exc:
        angles = ", ".join(f"{v:g}°" for v in crystal.lattice_parameters[3:])
        raise StructureError(
            f"The projection of this cell (angles {angles}) along {list(frame.zone_axis)} "
            f"with x along {list(frame.x_direction)} has no rectangular periodic cell, which "
            f"a projected potential image needs ({exc}). Choose a zone axis along which the "
            "projected lattice is rectangular, e.g. a cell edge at 90° to the other two."
        ) from exc
    return ProjectedCell(lx, ly, lz, frame.zone_axis, frame.x_direction)


def projected_potential_array(
    crystal: Crystal,
    zone_axis: Sequence[int] = (0, 0, 1),
    x_direction: Sequence[int] | None = None,
    shape: tuple[int, int] = (128, 128),
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> tuple[np.ndarray, ProjectedCell]:
    """Projected potential (V·Å) sampled on ``shape`` = (ny, nx) pixels of one cell.

    Pixel [iy, ix] is at r = ix·(Lx/nx) x̂ + iy·(Ly/ny) ŷ from the unit-cell origin.
    All ZOLZ Fourier components below the grid's Nyquist frequency are included, so
    the image is the exact band-limited potential, computed by one inverse FFT.

    Returns
    -------
    image, cell
        The (ny, nx) float array and the cell geometry.
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    if ny < 2 or nx < 2:
        raise ValueError(f"shape must be at least (2, 2) pixels, got {shape}.")
    frame = zone_frame(crystal, zone_axis, x_direction)
    cell = projected_cell(crystal, frame.zone_axis, frame.x_direction)
    g_max = np.hypot(nx / 2 / cell.width_x, ny / 2 / cell.width_y)
    hkl = zolz_reflections(crystal, frame.zone_axis, g_max)
    g = crystal.g_vectors(hkl)
    mx = g @ frame.ex * cell.width_x
    my = g @ frame.ey * cell.width_y
    if not (np.allclose(mx, np.round(mx), atol=1e-6) and np.allclose(my, np.round(my), atol=1e-6)):
        raise RuntimeError("The projected cell is not periodic for this zone axis.")
    mx, my = np.round(mx).astype(int), np.round(my).astype(int)
    keep = (np.abs(mx) < nx / 2) & (np.abs(my) < ny / 2)
    v = fourier_coefficients_volts(crystal, hkl[keep], scattering_factors, debye_waller)
    spectrum = np.zeros((ny, nx), complex)
    np.add.at(spectrum, (my[keep] % ny, mx[keep] % nx), v * cell.height)
    image = np.fft.ifft2(spectrum).real * (nx * ny)
    return image, cell
