"""
Silicon [001]: a LACBED montage
===============================

Simulate the LACBED discs of silicon along [001] at 200 kV and four thicknesses, and
show them at their g positions with their reflection labels.
"""

# %%
# Simulate
# --------
# :func:`hyperspy_lacbed.simulate` takes a crystal (a CIF path, a diffpy ``Structure`` or
# the name of a shipped example), the zone axis, the voltage and one or more thicknesses,
# with units. Without ``reflections`` it returns 000 and the first two shells of
# reflections with a non-zero structure factor: for silicon [001], 220 and 400 (200 is
# forbidden in the diamond structure).
import matplotlib.pyplot as plt

import hyperspy_lacbed as hl

s = hl.simulate(
    "Si",
    zone_axis=(0, 0, 1),
    voltage="200 kV",
    thickness=["50 nm", "100 nm", "150 nm", "200 nm"],
    pixels=48,  # each disc is 48 × 48 tilts
    strong_beams=60,  # a quick look; leave it out to get beams converged to 1 %
    show_progressbar=False,
)
s

# %%
# The navigation axes are the reflection and the thickness; the signal axes are the
# incident tilts kx, ky in 1/Å. The reflections and every setting are in the metadata.
print(s.metadata.LACBED.reflections)
print(s.axes_manager)

# %%
# The montage
# -----------
# :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.plot_montage` draws the discs at their g
# positions, spread just enough not to overlap, one panel per thickness. With
# ``scale="per_disc"`` each disc is stretched to its own range, so that the weak 400
# discs show their Bragg lines as clearly as the bright 000 disc.
fig = s.plot_montage(scale="per_disc", columns=2)
plt.show()

# %%
# With one colour scale for all discs (``scale="shared"``, the default) the intensities
# compare directly: at 100 nm most electrons are still in the 000 disc.
fig = s.inav[:, 1].plot_montage(columns=1, panel_size=4.5)
fig.axes[0].set_title("t = 100 nm, shared colour scale")
plt.show()
