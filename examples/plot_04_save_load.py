"""
Saving, loading and signal types
================================

A LACBED signal saves to HyperSpy's ``.hspy`` (HDF5) or ``.zspy`` (Zarr) files with its
calibration and metadata, and ``hs.load`` gives it back as a LACBED signal. Data from
elsewhere — here a TIFF stack, as a camera would write it — loads as a plain
``Signal2D`` and becomes a LACBED signal with ``set_signal_type``.
"""

# %%
import tempfile
from pathlib import Path

import hyperspy.api as hs
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl

folder = Path(tempfile.mkdtemp())
s = hl.simulate(
    "MgO",
    thickness=["60 nm", "120 nm"],
    pixels=32,
    strong_beams=50,
    show_progressbar=False,
)
s.save(folder / "mgo.hspy")

# %%
# Load it back
# ------------
# The signal type, the axes and the metadata come back as they were saved.
t = hs.load(folder / "mgo.hspy")
print(type(t).__name__, t)
print("same data:", np.array_equal(t.data, s.data))
print("reflections:", t.metadata.LACBED.reflections[:3], "...")
print("beam energy:", t.beam_energy, "keV; source:", t.metadata.LACBED.source)

# %%
# The same with Zarr, lazily: the result is a ``LazyLACBED`` whose methods build dask
# graphs until something is computed.
s.save(folder / "mgo.zspy")
lazy = hs.load(folder / "mgo.zspy", lazy=True)
print(type(lazy).__name__, type(lazy.to_montage().data))

# %%
# A file without our metadata
# ---------------------------
# Write the 120 nm discs as a TIFF stack, the way a camera or another program would,
# read it back and describe it.
hs.signals.Signal2D(s.inav[:, 1].data.astype(np.float32)).save(folder / "discs.tif")
e = hs.load(folder / "discs.tif")
e.metadata.General.title = "discs.tif"
print(type(e).__name__, e)

e.set_signal_type("LACBED")
e.set_experimental_parameters(
    beam_energy="200 kV",
    thickness="120 nm",
    zone_axis=(0, 0, 1),
    reflections=s.metadata.LACBED.reflections,
    g_vectors=s.metadata.LACBED.g_vectors,
)
e = e.calibrate(disc_radius=f"{s.convergence_angle} mrad")
print(type(e).__name__, e, "source:", e.metadata.LACBED.source)

# %%
# Now it has everything a montage needs.
fig = e.plot_montage(columns=1, panel_size=4.5)
fig.axes[0].set_title("MgO, 120 nm, from a TIFF stack")
plt.show()
