"""Data augmentation: the zone-axis operations that map a training sample to another.

A :class:`GridOperation` is a 4mm operation (:mod:`hyperspy_lacbed.analysis.square`)
that keeps the domain's geometry; applied to a sample (potential and discs together)
it gives the sample of the rotated or mirrored crystal.
:func:`zone_axis_operations` lists those of a :class:`~hyperspy_lacbed.nets.domain.Domain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperspy_lacbed.analysis.square import (
    SQUARE_OPERATIONS,
    transform_discs,
    transform_potential,
)
from hyperspy_lacbed.crystal.potential import projected_cell
from hyperspy_lacbed.crystal.structure import Crystal, zone_frame
from hyperspy_lacbed.nets.domain import Domain

__all__ = ["GridOperation", "zone_axis_operations"]


@dataclass(frozen=True)
class GridOperation:
    """A point operation of the zone axis that maps the potential and disc grids to themselves.

    Attributes
    ----------
    name
        Hermann–Mauguin-like label (``"1"``, ``"4+"``, ``"m_x"``, ...).
    matrix
        2 × 2 integer matrix acting on in-plane frame coordinates (x, y).
    source
        For each reflection channel c of the domain, the channel of R⁻¹g_c.
    """

    name: str
    matrix: np.ndarray
    source: np.ndarray

    def potential(self, potential: np.ndarray) -> np.ndarray:
        """The transformed projected potential(s) (..., P, P)."""
        return transform_potential(potential, self.matrix)

    def discs(self, discs: np.ndarray) -> np.ndarray:
        """The transformed discs (..., R, D, D): images resampled, channels permuted."""
        return transform_discs(discs, self.matrix, self.source)

    def crystal_rotation(self, domain: Domain) -> np.ndarray:
        """The 3 × 3 operation on fractional coordinates of a cubic crystal of the domain."""
        return _frame_to_fractional(domain, self.matrix)


def _reference_frame(domain: Domain) -> tuple[np.ndarray, float, float]:
    """Rows ex, ey, ez of the zone frame and the cell widths (units of a) of a cubic lattice."""
    ref = Crystal(
        (1.0, 1.0, 1.0, 90.0, 90.0, 90.0),
        ("Si",),
        np.zeros((1, 3)),
        np.ones(1),
        np.full(1, 0.5),
        name="reference cubic lattice",
    )
    frame = zone_frame(ref, domain.zone_axis, domain.x_direction)
    cell = projected_cell(ref, frame.zone_axis, frame.x_direction)
    return frame.rotation, cell.width_x, cell.width_y


def _frame_to_fractional(domain: Domain, matrix: np.ndarray) -> np.ndarray:
    f, _, _ = _reference_frame(domain)
    r = np.eye(3)
    r[:2, :2] = matrix
    return f.T @ r @ f  # cubic: Cartesian / a = fractional


def zone_axis_operations(domain: Domain | None = None) -> list[GridOperation]:
    """The operations used for augmentation: 4mm ops that keep the domain's geometry.

    An operation is kept when (i) with the beam direction fixed it is a symmetry of the
    cubic lattice (so the transformed crystal is again a cubic crystal of the domain with
    the same a), (ii) it maps the projected-potential grid onto itself and (iii) the
    domain's reflection list onto itself. For [001] with x = [100] all 8 operations of
    4mm are kept. They are operations of the lattice, not of each crystal: applied to a
    sample they give the sample of the rotated or mirrored crystal.
    """
    domain = domain or Domain()
    _, wx, wy = _reference_frame(domain)
    refl = np.asarray(domain.reflections, int)
    lookup = {tuple(h): i for i, h in enumerate(refl.tolist())}
    ops = []
    for name, m in SQUARE_OPERATIONS:
        m = np.array(m, int)
        w = _frame_to_fractional(domain, m)
        if not np.allclose(w, np.round(w), atol=1e-9):
            continue  # not a lattice operation
        scaled = np.diag([1 / wx, 1 / wy]) @ m @ np.diag([wx, wy])
        if not np.allclose(scaled, np.round(scaled), atol=1e-9):
            continue  # does not map the potential grid onto itself
        w = np.round(w).astype(int)
        # Reciprocal vectors of a cubic lattice transform like direct ones (W orthogonal).
        pre = np.round(refl @ np.linalg.inv(w).T).astype(int)  # R⁻¹ g for each g
        try:
            source = np.array([lookup[tuple(h)] for h in pre.tolist()])
        except KeyError:
            continue  # the reflection list is not closed under this operation
        ops.append(GridOperation(name, m, source))
    return ops
