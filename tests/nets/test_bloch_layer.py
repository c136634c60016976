"""The surrogates' few-beam Bloch layer is the engine at equal beams, and differentiable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperspy_lacbed.bloch.discs import compute_discs
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.crystal.structure_factors import structure_factors
from hyperspy_lacbed.nets.bloch_layer import FewBeamBloch

REFLECTIONS = [(0, 0, 0), (2, 0, 0), (0, 2, 0), (2, 2, 0), (-2, 2, 0)]


def u_table(crystal, h_max: int) -> torch.Tensor:
    """U_g (Å⁻²) of (h, k, 0) as the layer's table [k + H, h + H], from the atoms."""
    r = np.arange(-h_max, h_max + 1)
    kk, hh = np.meshgrid(r, r, indexing="ij")
    hkl = np.stack([hh.ravel(), kk.ravel(), np.zeros(hh.size, int)], 1)
    u = structure_factors(crystal, hkl, 200e3)
    return torch.as_tensor(u.reshape(len(r), len(r)))


@pytest.mark.parametrize(
    ("name", "strong", "weak"), [("GaAs", 12, 0), ("SrTiO3", 10, 20), ("Si", 8, 8)]
)
def test_layer_reproduces_simulate_at_equal_beams(name, strong, weak):
    crystal = load_structure(name)
    a = crystal.lattice_parameters[0]
    layer = FewBeamBloch(REFLECTIONS, 8, 0.75, 200e3, strong, weak)
    table = u_table(crystal, layer.table_h_max)[None]
    out = layer(table, torch.tensor([a]), torch.tensor([900.0]))[0].numpy()
    ref = compute_discs(
        crystal, thickness=[900.0], pixels=8, disc_radius=0.75 * 2 / a,
        reflections=REFLECTIONS, strong_beams=strong, weak_beams=weak, beam_pool=800,
        mean_absorption=False, symmetry=False, solver="exact", show_progressbar=False,
    ).discs[0]  # fmt: skip
    assert np.abs(out - ref).max() <= 1e-6 * ref.max()


def test_batch_of_crystals_equals_each_alone():
    crystals = [load_structure(n) for n in ("GaAs", "MgO", "Cu")]
    layer = FewBeamBloch(REFLECTIONS, 6, 0.75, 200e3, 10, 10)
    tables = torch.stack([u_table(c, layer.table_h_max) for c in crystals])
    a = torch.tensor([c.lattice_parameters[0] for c in crystals])
    t = torch.tensor([500.0, 1200.0, 2000.0])
    together = layer(tables, a, t)
    for i in range(3):
        alone = layer(tables[i : i + 1], a[i : i + 1], t[i : i + 1])
        assert torch.allclose(together[i], alone[0], rtol=1e-10, atol=1e-12)


def test_gradient_reaches_the_structure_factors():
    """Finite differences of the intensities in a correction of U_220 match autograd."""
    crystal = load_structure("GaAs")
    layer = FewBeamBloch(REFLECTIONS, 4, 0.75, 200e3, 8, 6)
    table = u_table(crystal, layer.table_h_max)[None]
    a, t = torch.tensor([crystal.lattice_parameters[0]]), torch.tensor([800.0])
    beams = layer.choose_beams(table, a)
    c = table.shape[-1] // 2
    mask = torch.zeros_like(table, dtype=torch.float64)
    for h, k in ((2, 2), (-2, -2), (2, -2), (-2, 2)):
        mask[0, k + c, h + c] = 1.0
    weights = torch.linspace(0.5, 1.5, len(REFLECTIONS) * 16, dtype=torch.float64)

    def f(x):
        return (layer(table * (1 + x * mask), a, t, beams=beams).flatten() * weights).sum()

    x = torch.tensor(0.02, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(x), x)
    h = 1e-5
    x64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    fd = (f(x64(0.02 + h)) - f(x64(0.02 - h))) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-5)
    assert abs(float(grad)) > 0


def test_diagonal_correction_enters_as_a_potential():
    """A constant diagonal shift is a common phase: the intensities do not change."""
    crystal = load_structure("MgO")
    layer = FewBeamBloch(REFLECTIONS, 4, 0.75, 200e3, 8)
    table = u_table(crystal, layer.table_h_max)[None]
    a, t = torch.tensor([crystal.lattice_parameters[0]]), torch.tensor([700.0])
    plain = layer(table, a, t)
    n = 2 * layer.pool_h_max + 1
    shift = torch.full((1, n, n), 3e-3 + 0j, dtype=torch.complex128)
    assert torch.allclose(layer(table, a, t, shift), plain, rtol=1e-9, atol=1e-12)
    bump = torch.zeros_like(shift)
    bump[0, n // 2, n // 2 + 2] = 3e-3  # only the 200 beam
    assert not torch.allclose(layer(table, a, t, bump), plain, rtol=1e-6)


def test_a_thickness_series_shares_one_solve_and_changes_nothing():
    """Entries that differ only in thickness are solved once (no gradient): same discs."""
    crystal = load_structure("GaAs")
    layer = FewBeamBloch(REFLECTIONS, 6, 0.75, 200e3, 10, 10)
    table = u_table(crystal, layer.table_h_max)
    a = crystal.lattice_parameters[0]
    t = torch.tensor([500.0, 1000.0, 1500.0, 2000.0, 700.0])
    tables = torch.stack([table] * 4 + [0.9 * table])
    shared = layer(tables, torch.full((5,), a), t)
    for i in range(5):
        alone = layer(tables[i : i + 1], torch.tensor([a]), t[i : i + 1])
        assert torch.allclose(shared[i], alone[0], rtol=1e-9, atol=1e-12)
