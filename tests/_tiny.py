"""Tiny model domain and network sizes shared by the surrogate tests (seconds on a CPU)."""

from hyperspy_lacbed.nets.domain import Domain

DOMAIN = Domain(thicknesses=(500.0, 1000.0), disc_pixels=16, potential_pixels=32, strong_beams=20)
TINY_G = {
    "ngf": 8,
    "n_downsampling": 2,
    "n_blocks_global": 1,
    "n_blocks_local": 1,
    "max_channels": 32,
}
TINY_D = {"ndf": 8, "n_layers": 2}
