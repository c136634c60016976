"""
Many structures through dask
============================

Given a list of structures, :func:`hyperspy_lacbed.simulate` builds a dask graph with
one task per structure, runs it with a progress bar and returns one LACBED signal per
structure, in order. The same call runs on a ``dask.distributed`` cluster when it is
given a client.
"""

# %%
# Six crystals in one call
# ------------------------
# The shipped example crystals are reachable by name; CIF paths and diffpy
# ``Structure`` objects can be mixed in the same list. Every structure gets the same
# settings; with ``show_progressbar=True`` dask reports the tasks as they finish.
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl

names = ["Si", "Ge", "GaAs", "InP", "MgO", "Cu"]
signals = hl.simulate(
    names,
    zone_axis=(0, 0, 1),
    thickness="80 nm",
    reflections=[[0, 0, 0], [2, 2, 0]],
    pixels=32,
    strong_beams=40,
    show_progressbar=True,
)
for name, s in zip(names, signals, strict=True):
    timing = s.metadata.LACBED.timing
    print(f"{name:5s} {s}  {timing.tilts} tilts solved in {timing.total_seconds:.2f} s")

# %%
# The 000 and 220 discs side by side, on one tilt scale. Each disc spans half the
# distance to 220 of its own crystal, so the small cells (MgO, Cu) have the larger discs.
fig, axes = plt.subplots(
    2, len(names), figsize=(10, 4.1), sharex=True, sharey=True, constrained_layout=True
)
for col, (name, s) in enumerate(zip(names, signals, strict=True)):
    m = s.to_mrad()
    edge = m.axes_manager["kx"].high_value + m.axes_manager["kx"].scale / 2
    for row, hkl in enumerate([(0, 0, 0), (2, 2, 0)]):
        ax = axes[row, col]
        ax.imshow(m.get_disc(hkl).data, cmap="inferno", extent=(-edge, edge, edge, -edge))
        ax.set_facecolor("black")
        if row == 0:
            ax.set_title(name)
        if col == 0:
            ax.set_ylabel(f"{''.join(map(str, hkl))}\n$k_y$ (mrad)")
    axes[1, col].set_xlabel("$k_x$ (mrad)")
axes[0, 0].set_xlim(-10.5, 10.5)
axes[0, 0].set_ylim(10.5, -10.5)
fig.suptitle("[001], 200 kV, 80 nm")
plt.show()

# %%
# On a cluster
# ------------
# With a ``dask.distributed`` client the tasks run on its workers — a ``LocalCluster``
# here, or an HPC cluster through dask-jobqueue — and nothing else changes::
#
#     from dask.distributed import Client, LocalCluster
#
#     with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
#         signals = hl.simulate(names, thickness="80 nm", pixels=32, client=client)
#
# Lazy signals
# ------------
# Large stacks of patterns — a tilt series, a scan, a dataset loaded with
# ``hs.load(..., lazy=True)`` — are processed lazily: the methods of a ``LazyLACBED``
# build dask graphs, and nothing is computed until ``compute()``, ``save()`` or a plot,
# which show dask's progress bar.
lazy = signals[0].as_lazy()
montage = lazy.to_montage()
print(montage, type(montage.data).__name__)
montage.compute(show_progressbar=True)
print(montage, type(montage.data).__name__)
print(f"{np.isnan(montage.data).mean():.0%} of the montage lies between the discs")
