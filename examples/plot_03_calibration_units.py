"""
Calibration: mrad and 1/Å
=========================

The tilt axes of a LACBED disc are transverse wave vectors k in 1/Å (without 2π); a tilt
θ in mrad is θ = 1000·λ·k. This example converts a simulated pattern between the two,
then calibrates an uncalibrated image the way one would an experimental pattern.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl

s = hl.simulate(
    "GaAs",
    thickness="100 nm",
    reflections=[[0, 0, 0], [2, 0, 0], [2, 2, 0]],
    pixels=48,
    strong_beams=60,
    show_progressbar=False,
)
kx = s.axes_manager["kx"]
print(f"pixel size {kx.scale:.5f} {kx.units}, beam energy {s.beam_energy} keV")
print(f"wavelength {s.wavelength:.5f} Å, disc radius {s.convergence_angle:.2f} mrad")

# %%
# From 1/Å to mrad and back
# -------------------------
# :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.to_mrad` returns a copy whose axes are
# in mrad; :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.to_inverse_angstrom` undoes it.
m = s.to_mrad()
print(f"pixel size {m.axes_manager['kx'].scale:.4f} mrad")
print(f"1000·λ·dk = {1000 * s.wavelength * kx.scale:.4f} mrad")
back = m.to_inverse_angstrom()
print("round trip:", np.isclose(back.axes_manager["kx"].scale, kx.scale))

# %%
# The same disc on both scales:
disc = s.get_disc((2, 0, 0))
fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), constrained_layout=True)
for ax, d in zip(axes, [disc, disc.to_mrad()], strict=True):
    x, y = d.axes_manager.signal_axes
    extent = (
        x.low_value - x.scale / 2,
        x.high_value + x.scale / 2,
        y.high_value + y.scale / 2,
        y.low_value - y.scale / 2,
    )
    im = ax.imshow(d.data, cmap="inferno", extent=extent)
    ax.set_xlabel(f"$k_x$ ({x.units})")
    ax.set_ylabel(f"$k_y$ ({y.units})")
fig.colorbar(im, ax=axes, label="intensity", shrink=0.85)
fig.suptitle("GaAs [001], 200 disc, 100 nm")
plt.show()

# %%
# Calibrating an uncalibrated pattern
# -----------------------------------
# An image from a camera has axes in pixels. Turn it into a LACBED signal, give it the
# experimental parameters with units, and calibrate it from the disc radius (or from the
# size of one pixel, ``scale="0.005 1/Å"``). Here the "camera" image is the simulated
# discs without their calibration.
import hyperspy.api as hs

raw = hs.signals.Signal2D(s.data)  # (3|48, 48), no units
raw.set_signal_type("LACBED")
raw.set_experimental_parameters(
    beam_energy="200 kV",
    thickness="100 nm",
    zone_axis=(0, 0, 1),
    reflections=[[0, 0, 0], [2, 0, 0], [2, 2, 0]],
)
cal = raw.calibrate(disc_radius=f"{s.convergence_angle} mrad")
print(cal.axes_manager)
print(
    "pixel size after calibration: "
    f"{cal.axes_manager['kx'].scale:.5f} 1/Å (simulation: {kx.scale:.5f} 1/Å)"
)
