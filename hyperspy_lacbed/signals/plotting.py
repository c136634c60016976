"""Matplotlib figures of LACBED montages: discs at their g positions with hkl labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _hkl_label(hkl: Any) -> str:
    return "".join(f"\\bar{{{-h}}}" if h < 0 else str(h) for h in hkl)


def plot_montage(
    signal: Any,
    columns: int | None = None,
    cmap: str = "inferno",
    scale: str = "shared",
    units: str = "mrad",
    labels: bool = True,
    panel_size: float = 3.2,
) -> Figure:
    """One montage panel per thickness (and stack position), with reflection labels.

    Parameters
    ----------
    signal
        A LACBED stack with a reflection axis (and optionally thickness / stack axes).
    columns
        Panels per row; default up to 4.
    cmap
        Matplotlib colour map.
    scale
        ``"shared"``: one colour scale for all discs of a panel; ``"per_disc"``: each disc
        stretched to its own range (weak discs become visible).
    units
        Axis units of the panels: ``"mrad"`` or ``"1/Å"``.
    labels
        Write hkl beside each disc.
    panel_size
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib import patheffects

    if scale not in ("shared", "per_disc"):
        raise ValueError(f"scale must be 'shared' or 'per_disc', not {scale!r}.")
    if units not in ("mrad", "1/Å"):
        raise ValueError(f"units must be 'mrad' or '1/Å', not {units!r}.")
    s = signal.to_mrad() if units == "mrad" else signal.to_inverse_angstrom()
    if scale == "per_disc":
        data = np.asarray(s.data, float)
        lo = np.nanmin(data, axis=(-2, -1), keepdims=True)
        hi = np.nanmax(data, axis=(-2, -1), keepdims=True)
        s.data = (data - lo) / np.where(hi > lo, hi - lo, 1.0)  # s is already a copy
    montage = s.to_montage()
    info = montage.metadata.LACBED.montage
    stack = np.asarray(montage.data, float).reshape(-1, *montage.data.shape[-2:])
    thick = s.thicknesses
    n = len(stack)
    columns = columns or min(n, 4)
    rows = -(-n // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(panel_size * columns, panel_size * rows),
        squeeze=False,
        constrained_layout=True,
    )
    sx, sy = montage.axes_manager.signal_axes
    extent = (
        sx.axis[0] - sx.scale / 2,
        sx.axis[-1] + sx.scale / 2,
        sy.axis[-1] + sy.scale / 2,
        sy.axis[0] - sy.scale / 2,
    )
    pos = np.asarray(info.positions)
    _, dnx = info.disc_size
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(stack[i], cmap=cmap, extent=extent, interpolation="nearest")
        ax.set_facecolor("black")
        if thick is not None and len(thick) == n:
            ax.set_title(f"t = {thick[i] / 10:g} nm")
        if labels:
            # Inside each disc, just below its top edge, with a dark outline so that the
            # label reads on bright and dark discs alike.
            outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
            for (r0, c0), hkl in zip(pos, s.reflections, strict=True):
                x = sx.axis[0] + (c0 + dnx / 2) * sx.scale
                y = sy.axis[0] + (r0 + 0.12 * dnx) * sy.scale
                ax.text(
                    x,
                    y,
                    f"${_hkl_label(hkl)}$",
                    color="white",
                    ha="center",
                    va="top",
                    fontsize=8,
                    path_effects=outline,
                )
        ax.set_xlabel(f"$k_x$ ({sx.units})")
        ax.set_ylabel(f"$k_y$ ({sy.units})")
    za = s.zone_axis
    fig.suptitle(f"{s.metadata.General.title}  [{''.join(map(str, za or ()))}]")
    return fig
