"""
Refining a recorded experiment, from the files to a CIF
=======================================================

Recorded LACBED discs of a Ge\\ :sub:`0.9`\\ Sn\\ :sub:`0.1` crystal along [1-10], one
reflection per DigitalMicrograph file (the Warwick group's data, published with
Felix-python under CC0, in ``shared/experimental/GeSn_1-10`` beside the repository). The
discs are loaded with HyperSpy, given the experiment's parameters and calibration, and
``s.refine`` fits the thickness and the Debye–Waller factor of the Ge/Sn site; the refined
crystal is written as a CIF.

To keep the build short the example takes nine of the 27 discs and every fifth pixel of
them (30 × 30 recorded pixels at their own tilts), with 40 strong beams: enough to show
the workflow, not converged for quantitative work (``benchmarks/refine_validation.py``
refines all 27 discs).
"""

# %%
# Loading and calibrating the discs
# ---------------------------------
# Each file holds one disc; its reflection is in the file name (``GeSn_+2+2-4.dm3``).
# :func:`hyperspy_lacbed.api.recorded.load_discs` stacks them along a ``reflection`` axis, reads the
# reflections from the names, and sets what the refinement needs: the beam energy, the
# beam direction and the disc radius (0.673 1/Å over 75 pixels, from the authors' input).
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import hyperspy_lacbed as hl

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
shared = Path(os.environ.get("HYPERSPY_LACBED_SHARED") or here.parent.parent / "shared")
folder = shared / "experimental" / "GeSn_1-10"

picks = ["+0+0+0", "+0+0+4", "+0+0-4", "+1+1+1", "+1+1-3", "+2+2+0", "-2-2+0", "+2+2+4", "+3+3+1"]
# one file per disc; the reflections are read from the names (GeSn_+2+2-4.dm3)
s = hl.load_discs(
    [folder / f"GeSn_{p}.dm3" for p in picks],
    disc_radius="0.673 1/Å",
    beam_energy="200 kV",
    zone_axis=[1, -1, 0],
    x_direction=[0, 0, -1],
)
print(s)

# %%
# Every fifth pixel, starting at pixel 2, leaves 30 samples per side centred on the disc
# like the full grid: each is a recorded pixel at its own tilt, which the model computes
# exactly (binning instead would average fringes finer than the binned pixels).
sampled = s.isig[2::5, 2::5]
print(sampled.axes_manager.signal_shape, sampled.axes_manager.signal_axes[0].scale)

# %%
# Refinement
# ----------
# The physics of the authors' input: beam direction [1-10], x direction [00-1], surface
# normal [1-10], Bird–King absorption. ``orientation="auto"`` finds which of the eight
# flips and rotations maps the simulation onto the recorded images, in the thickness scan
# that seeds the fit.
cif = folder / "GeSn.cif"
res = sampled.refine(
    str(cif),
    ["thickness", "B[Ge1]"],
    thickness="130 nm",
    orientation="auto",
    surface_normal=(1, -1, 0),
    absorption="bird-king",
    strong_beams=40,
    stages=[{"bin": 1, "max_iter": 15}],
    progress=False,
)
print(res.summary())
print("orientation:", res.recipe["orientation"])

# %%
# The worst-fitting discs: recorded, best fit and the difference (z-scores).
fig = res.plot(discs=5)
plt.show()

# %%
# The refined structure
# ---------------------
# ``res.to_cif`` writes the refined crystal (here the new Debye–Waller factor of the
# Ge/Sn site, as U\ :sub:`iso` = B / 8π²) with every atom of the cell in P1;
# ``hl.load_structure`` reads it back like any CIF.
out = Path(tempfile.mkdtemp()) / "GeSn_refined.cif"
res.to_cif(out)
print("\n".join(out.read_text().splitlines()[:30]))
refined = hl.load_structure(out)
print(refined.b_iso[:2], "Å² (the CIF's start: 0.644 Å²)")
