"""
Projected potentials
====================

The projected potential V_proj(x, y) of one unit cell, in V·Å, is what the surrogate
models see, and a quick way to look at a structure down a zone axis. It is periodic, so
each image below shows the cell with a margin of its neighbours, and the unit cell
outlined.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.patches import Rectangle

import hyperspy_lacbed as hl

names = ["Si", "GaAs", "SrTiO3", "CsCl", "NaCl", "CaF2"]
potentials = {name: hl.projected_potential(name, zone_axis=(0, 0, 1)) for name in names}
pot = potentials["SrTiO3"]
pot

# %%
# The x and y axes are in Å from the cell origin, over exactly one period; the metadata
# hold the zone axis, the x-direction and the lattice parameters.
print(pot.axes_manager)
print("cell", pot.cell_extent, "Å; lattice", pot.lattice_parameters)


# %%
# A small helper: tile the cell 3 × 3, show the central cell with half a cell around it,
# and outline the cell. The colour scale is a square root (``PowerNorm(0.5)``), which keeps
# the light columns (O in SrTiO3, F in CaF2) visible beside the heavy ones.
def show_cell(ax, p, title):
    wx, wy = p.cell_extent
    im = ax.imshow(
        np.tile(p.data, (3, 3)),
        extent=(-wx, 2 * wx, 2 * wy, -wy),
        cmap="viridis",
        norm=PowerNorm(0.5, vmin=0),
        interpolation="bilinear",
    )
    ax.set_xlim(-wx / 2, 1.5 * wx)
    ax.set_ylim(1.5 * wy, -wy / 2)
    ax.add_patch(Rectangle((0, 0), wx, wy, fill=False, edgecolor="white", linewidth=1.5))
    ax.set_title(title)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    return im


# %%
# Six crystals along [001]
# ------------------------
fig, axes = plt.subplots(2, 3, figsize=(9, 6.2), constrained_layout=True)
for ax, name in zip(axes.flat, names, strict=True):
    p = potentials[name]
    im = show_cell(ax, p, f"{name}, a = {p.lattice_parameters[0]:.3f} Å")
    fig.colorbar(im, ax=ax, shrink=0.8, label="V·Å")
fig.suptitle("Projected potentials along [001], one unit cell outlined")
plt.show()

# %%
# Another zone axis
# -----------------
# Along [110] the periodic cell is a × a√2 (x along [001], the shortest perpendicular
# lattice direction; y along [1̄10]), and the dumbbells of the diamond (Si) and
# zinc-blende (GaAs) structures appear: pairs of columns 1.4 Å apart.
fig, axes = plt.subplots(1, 2, figsize=(8, 4.6), constrained_layout=True)
for ax, name in zip(axes, ["Si", "GaAs"], strict=True):
    p = hl.projected_potential(name, zone_axis=(1, 1, 0), shape=(180, 128))
    xd = "".join(map(str, p.x_direction))
    im = show_cell(ax, p, f"{name} [110], x along [{xd}]")
    fig.colorbar(im, ax=ax, shrink=0.8, label="V·Å")
plt.show()
