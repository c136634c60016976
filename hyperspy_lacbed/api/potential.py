"""``hyperspy_lacbed.projected_potential``: a structure in, a ProjectedPotential out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.signals.potential import ProjectedPotential

__all__ = ["projected_potential"]


def projected_potential(
    structure: Any,
    zone_axis: Sequence[int] = (0, 0, 1),
    x_direction: Sequence[int] | None = None,
    shape: tuple[int, int] = (128, 128),
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> ProjectedPotential:
    """Projected potential of one periodic cell of a crystal, in V·Å.

    Parameters
    ----------
    structure
        A CIF path, a ``diffpy.structure.Structure``, a ``Crystal`` or an example name.
    zone_axis
        Projection (beam) direction [uvw].
    x_direction
        Direct-lattice direction along the image x axis; default the shortest one
        perpendicular to the zone axis ([100] for [001]).
    shape
        Pixels (ny, nx) over the cell.
    scattering_factors
        ``"kirkland"`` or ``"lobato"``.
    debye_waller
        Smear the atoms by their Debye–Waller factors (the thermally averaged potential).

    Returns
    -------
    ProjectedPotential
        x, y axes in Å from the unit-cell origin; ``metadata.Sample`` holds the zone axis,
        x-direction, lattice parameters and cell extent.

    Examples
    --------
    >>> import hyperspy_lacbed as hl
    >>> pot = hl.projected_potential("SrTiO3", shape=(64, 64))
    >>> pot.axes_manager.signal_shape
    (64, 64)
    """
    crystal = load_structure(structure)
    image, cell = projected_potential_array(
        crystal, zone_axis, x_direction, shape, scattering_factors, debye_waller
    )
    return ProjectedPotential.from_array(
        image,
        extent=(cell.width_x, cell.width_y),
        zone_axis=cell.zone_axis,
        x_direction=cell.x_direction,
        lattice_parameters=crystal.lattice_parameters,
        settings={
            "structure": crystal.to_dict(),
            "scattering_factors": scattering_factors,
            "debye_waller": debye_waller,
            "cell_height": cell.height,
        },
    )
