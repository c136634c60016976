"""The projected potential of one unit cell as a HyperSpy ``Signal2D``.

The signal axes ``x`` (columns) and ``y`` (rows) are in Å over one periodic unit cell:
offset 0 and scale = cell edge / number of pixels, so pixel ``j`` starts at ``j · scale``
and the cell spans ``[0, extent)``. The intensity is the projected potential in V·Å
(``metadata.Signal.quantity``). Metadata: ``Sample.zone_axis``, ``Sample.x_direction``,
``Sample.lattice_parameters`` (a, b, c in Å and α, β, γ in degrees), ``Sample.cell_extent``
(width along x and y in Å) and ``ProjectedPotential.settings`` (free form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import pint
from hyperspy.docstrings.signal import LAZYSIGNAL_DOC
from hyperspy.signals import LazySignal2D, Signal2D

from hyperspy_lacbed.parsing import as_int_vector, default_x_direction, finite_positive
from hyperspy_lacbed.signals.metadata import ANGSTROM, clean_settings
from hyperspy_lacbed.units import to_magnitude

__all__ = ["QUANTITY", "LazyProjectedPotential", "ProjectedPotential"]

#: ``metadata.Signal.quantity`` of a projected potential.
QUANTITY = "Projected potential (V·Å)"


def _extent(extent: Any) -> list[float]:
    """Cell widths [along x, along y] in Å from a number, a string, a quantity or a pair."""
    if isinstance(extent, (str, pint.Quantity)) or np.ndim(extent) == 0:
        values = np.atleast_1d(to_magnitude(extent, "angstrom", "extent"))
    else:
        values = np.asarray([to_magnitude(v, "angstrom", "extent") for v in extent], dtype=float)
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2:
        raise ValueError(
            "extent must be one length (a square cell) or two, [along x, along y], "
            f"got {extent!r}."
        )
    return [finite_positive(v, "extent (Å)") for v in values]


def _lattice_parameters(value: Sequence[Any]) -> list[float]:
    """(a, b, c, α, β, γ) with lengths in Å and angles in degrees."""
    if isinstance(value, (str, pint.Quantity)) or len(value) != 6:
        raise ValueError(
            "lattice_parameters must be six values (a, b, c, alpha, beta, gamma), lengths in Å "
            f"and angles in degrees, got {value!r}."
        )
    lengths = [
        finite_positive(to_magnitude(v, "angstrom", "lattice parameter"), n)
        for v, n in zip(value[:3], "abc", strict=True)
    ]
    angles = [float(to_magnitude(v, "degree", "lattice angle")) for v in value[3:]]
    if not all(0 < a < 180 for a in angles):
        raise ValueError(f"lattice angles must lie between 0 and 180 degrees, got {angles}.")
    return lengths + angles


class ProjectedPotential(Signal2D):
    """Projected potential V_proj(x, y) of one unit cell, in V·Å.

    Build one with :meth:`from_array`. No method changes the signal in place unless
    it is given ``inplace=True``.
    """

    _signal_type = "ProjectedPotential"
    _alias_signal_types = ("projected_potential", "potential")

    @classmethod
    def from_array(
        cls,
        data: np.ndarray | da.Array,
        extent: Any,
        zone_axis: Sequence[int],
        x_direction: Sequence[int] | None,
        lattice_parameters: Sequence[Any],
        settings: dict[str, Any] | None = None,
        lazy: bool | None = None,
    ) -> ProjectedPotential:
        """Build a calibrated projected potential from an array.

        Parameters
        ----------
        data
            Potential in V·Å, shape ``(*stack, ny, nx)``, over one periodic unit cell.
        extent
            Width of the cell along x and y in Å: one value for a square cell or
            ``[along x, along y]``; numbers in Å, strings ("4.05 Å", "0.405 nm") or
            quantities.
        zone_axis
            The projection direction [u, v, w].
        x_direction
            The crystal direction along x; ``None`` gives [1, 0, 0] for the [0, 0, 1]
            zone axis and leaves it unset otherwise.
        lattice_parameters
            (a, b, c, α, β, γ): lengths in Å, angles in degrees (numbers or quantities).
        settings
            How the potential was computed (scattering factors, grid, ...); stored in
            ``metadata.ProjectedPotential.settings`` as plain Python values.
        lazy
            ``None``: lazy if ``data`` is a dask array; ``True``/``False`` force it.

        Raises
        ------
        ValueError
            If ``data`` has fewer than two dimensions, or an input is malformed.
        """
        is_dask = isinstance(data, da.Array)
        arr = data if is_dask else np.asarray(data)
        if lazy is None:
            lazy = is_dask
        if lazy and not is_dask:
            arr = da.from_array(arr)
        elif not lazy and is_dask:
            arr = arr.compute()
        if arr.ndim < 2:
            raise ValueError(
                f"data must be an image (..., ny, nx), got {arr.ndim} dimension(s); a "
                "projected potential is two-dimensional."
            )
        wx, wy = _extent(extent)
        za = as_int_vector(zone_axis, "zone_axis", nonzero=True)
        xd = (
            default_x_direction(za)
            if x_direction is None
            else as_int_vector(x_direction, "x_direction", nonzero=True)
        )
        lp = _lattice_parameters(lattice_parameters)
        ny, nx = arr.shape[-2:]
        axes: list[dict[str, Any]] = [{"size": int(n), "navigate": True} for n in arr.shape[:-2]]
        axes.append({"name": "y", "size": ny, "scale": wy / ny, "offset": 0.0, "units": ANGSTROM})
        axes.append({"name": "x", "size": nx, "scale": wx / nx, "offset": 0.0, "units": ANGSTROM})
        for a in axes[-2:]:
            a["navigate"] = False
        sample: dict[str, Any] = {
            "zone_axis": za,
            "lattice_parameters": lp,
            "cell_extent": [wx, wy],
        }
        if xd is not None:
            sample["x_direction"] = xd
        metadata = {
            "General": {"title": "Projected potential"},
            "Signal": {"signal_type": "ProjectedPotential", "quantity": QUANTITY},
            "Sample": sample,
            "ProjectedPotential": {"settings": clean_settings(settings or {})},
        }
        klass = LazyProjectedPotential if lazy else ProjectedPotential
        return klass(arr, axes=axes, metadata=metadata)

    @property
    def cell_extent(self) -> tuple[float, float] | None:
        """Width of the cell (along x, along y) in Å (``None`` if not set)."""
        e = self.metadata.get_item("Sample.cell_extent")
        return None if e is None else (float(e[0]), float(e[1]))

    @property
    def lattice_parameters(self) -> tuple[float, ...] | None:
        """(a, b, c, α, β, γ) in Å and degrees (``None`` if not set)."""
        lp = self.metadata.get_item("Sample.lattice_parameters")
        return None if lp is None else tuple(float(v) for v in lp)

    @property
    def zone_axis(self) -> tuple[int, int, int] | None:
        """The projection direction [u, v, w] (``None`` if not set)."""
        za = self.metadata.get_item("Sample.zone_axis")
        return None if za is None else tuple(int(v) for v in za)

    @property
    def x_direction(self) -> tuple[int, int, int] | None:
        """The crystal direction along x (``None`` if not set)."""
        xd = self.metadata.get_item("Sample.x_direction")
        return None if xd is None else tuple(int(v) for v in xd)

    def _cell_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) of the cell in axis units (the image's pixel edges)."""
        ax_x, ax_y = self.axes_manager.signal_axes
        x0, y0 = ax_x.offset - ax_x.scale / 2, ax_y.offset - ax_y.scale / 2
        return x0, y0, ax_x.size * ax_x.scale, ax_y.size * ax_y.scale

    def plot(self, *args: Any, outline_cell: bool = True, **kwargs: Any) -> None:
        """HyperSpy's image plot, with the unit cell outlined.

        Parameters
        ----------
        *args, **kwargs
            Passed to :meth:`hyperspy.api.signals.Signal2D.plot`.
        outline_cell
            Draw the edges of the unit cell (a dashed white rectangle); the image covers
            exactly one cell, so the outline marks where the periodic repetition starts.
        """
        super().plot(*args, **kwargs)
        plot = getattr(getattr(self, "_plot", None), "signal_plot", None)
        ax = getattr(plot, "ax", None)
        if outline_cell and ax is not None:
            from matplotlib.patches import Rectangle

            x0, y0, w, h = self._cell_box()
            ax.add_patch(
                Rectangle((x0, y0), w, h, fill=False, ec="white", ls="--", lw=1.5, zorder=5)
            )
            ax.figure.canvas.draw_idle()

    def plot_tiled(self, cells: int | Sequence[int] = 2, ax: Any = None, **imshow: Any) -> Any:
        """The current potential repeated over several cells, each cell outlined.

        The origin of a projected potential is arbitrary (a retrieved one puts its
        strongest column at the centre); tiling shows the crystal's columns whole.

        Parameters
        ----------
        cells
            Cells along x and y (one number for both).
        ax
            A matplotlib axes to draw in (default a new figure).
        **imshow
            Passed to matplotlib's ``Axes.imshow`` (default ``cmap="viridis"``).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        nx, ny = (int(cells), int(cells)) if np.ndim(cells) == 0 else (int(c) for c in cells)
        if nx < 1 or ny < 1:
            raise ValueError(f"cells must be at least 1 along x and y, got {cells!r}.")
        image = np.asarray(self._get_current_data())
        x0, y0, w, h = self._cell_box()
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.2), layout="constrained")
        imshow.setdefault("cmap", "viridis")
        img = ax.imshow(
            np.tile(image, (ny, nx)), extent=(x0, x0 + nx * w, y0 + ny * h, y0), **imshow
        )
        for i in range(nx + 1):
            ax.axvline(x0 + i * w, color="white", ls="--", lw=1)
        for j in range(ny + 1):
            ax.axhline(y0 + j * h, color="white", ls="--", lw=1)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.figure.colorbar(img, ax=ax, label="V·Å")
        return ax.figure

    def generate_lacbed(
        self,
        thickness: Any = None,
        model: Any = "default",
        batch_size: int = 32,
        device: Any = None,
        show_progressbar: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """LACBED discs of this potential (or stack) from the forward cGAN surrogate.

        A thin wrapper of :func:`hyperspy_lacbed.signals.surrogates.potential_to_lacbed`.

        Parameters
        ----------
        thickness
            One or more thicknesses ("100 nm", numbers in Å); default the model's.
        model
            ``"default"``, a model name (``hyperspy_lacbed.list_models()``) or folder.
        batch_size
            Network passes per batch.
        device
            ``None``: CUDA when available, else CPU.
        show_progressbar
            Default HyperSpy's preference.

        Returns
        -------
        LACBED
            ``(*stack, [thickness], reflection, ky, kx)``; lazy if this signal is.
        """
        from hyperspy_lacbed.signals.surrogates import potential_to_lacbed

        return potential_to_lacbed(
            self, thickness, model, batch_size, device, show_progressbar, **kwargs
        )


class LazyProjectedPotential(LazySignal2D, ProjectedPotential):
    """Lazy projected potential (dask-backed)."""

    __doc__ += LAZYSIGNAL_DOC.replace("__BASECLASS__", "ProjectedPotential")
