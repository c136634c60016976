"""
A lazy stack of patterns
========================

A scan records one LACBED pattern per probe position, and a stack of them can be larger
than memory. A lazy signal stays lazy through
:meth:`~hyperspy_lacbed.signals.lacbed.LACBED.retrieve_potential`: the result is a
lazy :class:`~hyperspy_lacbed.signals.potential.ProjectedPotential` whose blocks are
computed, with a progress bar, only when asked for.
"""

# %%
# A 4 × 6 scan of noisy copies of one pattern, as a dask array
# ------------------------------------------------------------
# Each probe position gets its own shot noise (300 electrons per pixel in the brightest
# disc). The stack is a dask array in chunks of one pattern, so nothing of its size is
# held in memory at once; :meth:`LACBED.from_discs
# <hyperspy_lacbed.signals.lacbed.LACBED.from_discs>` makes it a calibrated ``LazyLACBED``
# with the leading axes as navigation axes.
import dask.array as da
import matplotlib.pyplot as plt

import hyperspy_lacbed as hl
from hyperspy_lacbed.nets.surrogate import load_surrogate
from hyperspy_lacbed.signals.lacbed import LACBED

domain = load_surrogate("default", "inverse").domain
crystal = hl.load_structure("Si")
a = crystal.lattice_parameters[0]
s = hl.simulate(
    crystal, **{**domain.simulation_kwargs(a), "thickness": "150 nm"}, show_progressbar=False
)
dose, scan = 300.0, (4, 6)
expected = da.broadcast_to(
    s.data / s.data.max() * dose, (*scan, *s.data.shape), chunks=(1, 1, *s.data.shape)
)
# dask's generator draws one chunk for the whole stack unless given the chunks again.
noise = da.random.default_rng(0).poisson(expected, chunks=expected.chunks)
stack = noise.astype("float32") / dose
lazy = LACBED.from_discs(
    stack,
    reflections=s.reflections,
    g_vectors=s.g_vectors,
    thickness=1500.0,
    dk=s.axes_manager["kx"].scale,
    voltage="200 kV",
    zone_axis=(0, 0, 1),
    source="experiment",
)
print(lazy, lazy.data.chunksize)

# %%
# Retrieval, lazily
# -----------------
# ``retrieve_potential`` returns at once; the work happens in ``compute()``, block by
# block, under HyperSpy's progress bar.
pot = lazy.retrieve_potential()
print(pot)
pot.compute(show_progressbar=True)

# %%
# The mean potential over the scan, and how much the noise moves it from place to place.
mean = pot.data.mean(axis=(0, 1))
spread = pot.data.std(axis=(0, 1))
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4), constrained_layout=True)
im0 = axes[0].imshow(mean, cmap="viridis")
axes[0].set_title("mean over 24 positions (V·Å)")
fig.colorbar(im0, ax=axes[0], shrink=0.8)
im1 = axes[1].imshow(spread, cmap="magma")
axes[1].set_title("standard deviation (V·Å)")
fig.colorbar(im1, ax=axes[1], shrink=0.8)
for ax in axes:
    ax.set_axis_off()
plt.show()
