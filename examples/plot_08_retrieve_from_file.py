"""
Projected potential from a pattern on disk
==========================================

The inverse surrogate turns nine LACBED discs into the projected potential of the
crystal. A user starts from a file: here a simulated gallium arsenide pattern, with the
shot noise of a recording of a few hundred electrons per pixel, is saved to ``.hspy``,
loaded back with :func:`hyperspy.api.load` and given to
:meth:`~hyperspy_lacbed.signals.lacbed.LACBED.retrieve_potential`.
"""

# %%
# A noisy pattern, saved and loaded
# ---------------------------------
import tempfile
from pathlib import Path

import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl
from hyperspy_lacbed.nets.surrogate import load_surrogate
from hyperspy_lacbed.train.metrics import align_potential, lmse, origin_invariant_lmse

domain = load_surrogate("default", "inverse").domain  # what the shipped model covers
crystal = hl.load_structure("GaAs")
a = crystal.lattice_parameters[0]
settings = {**domain.simulation_kwargs(a), "thickness": "100 nm"}
s = hl.simulate(crystal, **settings, show_progressbar=False)

rng = np.random.default_rng(0)
dose = 400.0  # electrons per pixel in the brightest disc
noisy = s.deepcopy()
noisy.data = rng.poisson(s.data / s.data.max() * dose).astype("float32") / dose

folder = Path(tempfile.mkdtemp())
noisy.save(folder / "gaas_100nm.hspy")
e = hs.load(folder / "gaas_100nm.hspy")
print(e, e.metadata.Sample.thickness, e.metadata.LACBED.reflections[:3])

# %%
# Retrieval
# ---------
# The thickness and the lattice parameter come from the file's metadata; for a
# recorded pattern pass them as ``thickness="100 nm"`` and ``lattice_parameter=...``.
pot = e.retrieve_potential()
truth = hl.projected_potential(crystal, shape=(domain.potential_pixels,) * 2)
print(pot)

# %%
# A projected potential has no preferred origin: compare after the best cyclic shift
# and symmetry operation of the cell (the origin-invariant ℓMSE).
aligned = align_potential(pot.data, truth.data)
print(f"ℓMSE {float(lmse(pot.data, truth.data)):.2e}")
print(f"origin-invariant ℓMSE {float(origin_invariant_lmse(pot.data, truth.data)):.2e}")

fig, axes = plt.subplots(1, 4, figsize=(12, 3.3), constrained_layout=True)
axes[0].imshow(e.to_montage().data, cmap="inferno")
axes[0].set_title(f"noisy discs ({dose:.0f} e⁻/px)")
vmax = truth.data.max()
axes[1].imshow(truth.data, cmap="viridis", vmin=0, vmax=vmax)
axes[1].set_title("true projected potential")
axes[2].imshow(aligned, cmap="viridis", vmin=0, vmax=vmax)
axes[2].set_title("retrieved (aligned)")
im = axes[3].imshow((aligned - truth.data) / vmax, cmap="RdBu_r", vmin=-0.3, vmax=0.3)
axes[3].set_title("difference / max")
fig.colorbar(im, ax=axes[3], shrink=0.8)
for ax in axes:
    ax.set_axis_off()
plt.show()

# %%
# :meth:`ProjectedPotential.plot
# <hyperspy_lacbed.signals.potential.ProjectedPotential.plot>` is HyperSpy's own plot
# with the unit cell outlined; :meth:`~hyperspy_lacbed.signals.potential.ProjectedPotential.plot_tiled`
# repeats the cell, so that the columns that the retrieval put at the cell's centre and
# edges show whole.
pot.plot()
fig = pot.plot_tiled(2)
fig.axes[0].set_title("retrieved, 2 × 2 cells")
plt.show()
