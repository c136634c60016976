"""
A thickness series
==================

One Bloch-wave eigen-solve per tilt gives the wave field at every thickness, so a
thickness series costs little more than a single pattern. Here: silicon [001] from 20
to 300 nm, the 000 and 220 discs, and the intensity at the exact zone axis.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl

thickness = np.arange(20, 301, 20)  # nm
s = hl.simulate(
    "Si",
    zone_axis=(0, 0, 1),
    thickness=[f"{t} nm" for t in thickness],
    reflections=[[0, 0, 0], [2, 2, 0]],
    pixels=32,
    strong_beams=60,
    show_progressbar=False,
)
s

# %%
# The discs at a few thicknesses
# ------------------------------
# The thickness axis is a navigation axis in Å; ``get_disc`` picks one reflection.
shown = [40, 80, 120, 160, 200, 240]
fig, axes = plt.subplots(2, len(shown), figsize=(9, 3.4), constrained_layout=True)
for row, hkl in enumerate([(0, 0, 0), (2, 2, 0)]):
    disc = s.get_disc(hkl).to_mrad()
    kx = disc.axes_manager["kx"]
    edge = kx.high_value + kx.scale / 2  # outer edge of the last pixel, mrad
    extent = (-edge, edge, edge, -edge)
    for ax, t in zip(axes[row], shown, strict=True):
        image = disc.inav[int(np.flatnonzero(thickness == t)[0])].data
        ax.imshow(image, cmap="inferno", extent=extent)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"{t} nm")
    axes[row, 0].set_ylabel("".join(map(str, hkl)), fontsize=12)
fig.suptitle(f"Si [001], discs {2 * edge:.0f} mrad across")
plt.show()

# %%
# Intensity against thickness
# ---------------------------
# The pixels nearest the zone axis (the grid has no pixel exactly on it) rock between the
# beams as the thickness grows, the dynamical *Pendellösung*, while absorption (here the
# default, proportional with κ = 0.1, mean absorption included) removes electrons from
# all of them: note the logarithmic scale. The mean over the disc varies more smoothly.
n = s.axes_manager["kx"].size
centre = s.isig[n // 2 - 1 : n // 2 + 1, n // 2 - 1 : n // 2 + 1].mean(axis=(2, 3))
mean = s.mean(axis=(2, 3))
fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
for i, label in enumerate(["000", "220"]):
    line = ax.plot(thickness, centre.data[:, i], "o-", label=f"{label}, zone axis")
    ax.plot(
        thickness, mean.data[:, i], "--", color=line[0].get_color(), label=f"{label}, disc mean"
    )
ax.set_yscale("log")
ax.set_xlabel("thickness (nm)")
ax.set_ylabel("intensity (fraction of the incident beam)")
ax.legend(frameon=False)
plt.show()
