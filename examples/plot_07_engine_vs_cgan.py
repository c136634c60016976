"""
Bloch-wave engine and cGAN side by side
=======================================

The forward surrogate turns the projected potential of a cubic crystal into its nine
LACBED discs in milliseconds. Here it is set against the Bloch-wave engine on a crystal
it never saw in training (rock salt, NaCl), with the difference image and the ℓMSE of
the conventions page (:doc:`/user_guide/conventions`) at each thickness.
"""

# %%
# The surrogate's discs
# ---------------------
# :func:`hyperspy_lacbed.generate` returns a LACBED signal laid out like the engine's.
# Its ``metadata.LACBED.settings`` are the keyword arguments of
# :func:`hyperspy_lacbed.simulate` that give the same discs the Bloch-wave way.
import time

import matplotlib.pyplot as plt
import numpy as np

import hyperspy_lacbed as hl

thicknesses = ["50 nm", "100 nm", "150 nm", "200 nm"]
g = hl.generate("NaCl", thickness=thicknesses)  # loads (and checks) the weights once
t0 = time.perf_counter()
g = hl.generate("NaCl", thickness=thicknesses, show_progressbar=False)
t_cgan = time.perf_counter() - t0
print(g, g.metadata.LACBED.model.name)

# %%
# The engine's discs, from the same settings
# ------------------------------------------
t0 = time.perf_counter()
s = hl.simulate(**g.metadata.LACBED.settings.as_dictionary(), show_progressbar=False)
t_bloch = time.perf_counter() - t0
print(f"cGAN {t_cgan:.3f} s, Bloch waves {t_bloch:.2f} s for four thicknesses")

# %%
# ℓMSE per thickness: both patterns divided by the maximum of the engine's pattern.
# The data are (thickness, reflection, ky, kx).
bloch, cgan = np.asarray(s.data), np.asarray(g.data)
peak = bloch.max(axis=(1, 2, 3), keepdims=True)
lmse = (((cgan - bloch) / peak) ** 2).mean(axis=(1, 2, 3))
for t, v in zip(s.thicknesses, lmse, strict=True):
    print(f"{t / 10:5.0f} nm   ℓMSE = {v:.2e}")

# %%
# Montages of the 100 nm patterns and their difference
# -----------------------------------------------------
# :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.to_montage` lays the discs out at their
# g positions; the difference uses a diverging colour map centred on zero.
# Pixels outside the discs are NaN in a montage (drawn blank), hence the nan-aware max.
m_bloch = s.inav[:, 1].to_montage().data
m_cgan = g.inav[:, 1].to_montage().data
vmax = float(np.nanmax(m_bloch))
diff = (m_cgan - m_bloch) / vmax
fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), constrained_layout=True)
axes[0].imshow(m_bloch, cmap="inferno", vmin=0, vmax=vmax)
axes[0].set_title("Bloch waves")
axes[1].imshow(m_cgan, cmap="inferno", vmin=0, vmax=vmax)
axes[1].set_title("cGAN")
lim = float(np.nanmax(np.abs(diff))) or 1.0
im = axes[2].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
axes[2].set_title(f"(cGAN − Bloch) / max, ℓMSE {lmse[1]:.1e}")
fig.colorbar(im, ax=axes[2], shrink=0.8)
for ax in axes:
    ax.set_axis_off()
fig.suptitle("NaCl [001], 200 kV, 100 nm")
plt.show()
