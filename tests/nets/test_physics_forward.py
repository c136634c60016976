"""Forward generators with a few-beam Bloch layer inside (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperspy_lacbed.bloch.discs import compute_discs
from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS
from hyperspy_lacbed.nets.normalisation import Encoding
from hyperspy_lacbed.nets.physics_forward import PhysicsForwardGenerator

ENC = Encoding(lattice_parameter_range=(2.8, 8.1), thickness_range=(500.0, 2000.0))
D, P = 8, 64


def generator(physics: str, strong: int = 10, weak: int = 0, **kw) -> PhysicsForwardGenerator:
    torch.manual_seed(0)
    return PhysicsForwardGenerator(
        out_channels=9, in_size=P, out_size=D, reflections=[list(r) for r in DEFAULT_REFLECTIONS],
        lattice_parameter_range=ENC.lattice_parameter_range,
        thickness_range=ENC.thickness_range, potential_scale=ENC.potential_scale,
        potential_divisor=ENC.potential_divisor, h_max=6, width=16, latent=32, n_layers=2,
        physics=physics, strong_beams=strong, weak_beams=weak, **kw,
    )  # fmt: skip


def inputs(name: str, thickness: float):
    crystal = load_structure(name)
    a = crystal.lattice_parameters[0]
    v, _ = projected_potential_array(crystal, shape=(P, P))
    x = torch.as_tensor(ENC.encode_potential(v))[None, None]
    cond = torch.as_tensor(ENC.encode_conditioning(np.array([a]), np.array([thickness])))
    return crystal, a, x, cond.reshape(1, 2)


def reference(crystal, a, thickness, strong, weak):
    return compute_discs(
        crystal, thickness=[thickness], pixels=D, disc_radius=0.75 * 2 / a,
        reflections=DEFAULT_REFLECTIONS, strong_beams=strong, weak_beams=weak, beam_pool=800,
        mean_absorption=False, solver="exact", show_progressbar=False,
    ).discs[0]  # fmt: skip


@pytest.mark.parametrize(("name", "strong", "weak"), [("GaAs", 10, 0), ("SrTiO3", 10, 20)])
def test_zero_correction_is_simulate_at_the_same_beams(name, strong, weak):
    crystal, a, x, cond = inputs(name, 1000.0)
    ref = reference(crystal, a, 1000.0, strong, weak)
    for physics in ("effective", "residual"):
        g = generator(physics, strong, weak)
        y = g.physics_discs(x, cond) if physics == "residual" else g(x, cond)
        out = ((y[0].double() + 1) / 2) ** 2
        assert np.abs(out.detach().numpy() - ref).max() <= 1e-6 * ref.max(), physics


def test_invariant_to_cyclic_shifts_and_keeps_4mm():
    _, _, x, cond = inputs("GaAs", 800.0)
    for physics in ("residual", "effective"):
        g = generator(physics)
        with torch.no_grad():
            for p in g.parameters():  # a non-zero correction
                p.add_(0.05 * torch.randn_like(p))
            y = g(x, cond)
            shifted = g(torch.roll(x, (7, -13), (-2, -1)), cond)
        assert torch.equal(y, shifted), physics
        # 4mm: a mirror x → −x maps disc (h, k) to (−h, k), flipped left–right
        refl = [tuple(r) for r in DEFAULT_REFLECTIONS]
        for i, (h, k, l) in enumerate(refl):
            j = refl.index((-h, k, l))
            assert torch.allclose(y[0, i], torch.flip(y[0, j], (-1,)), atol=1e-6), physics


def test_gradients_reach_the_network_through_the_bloch_layer():
    """Effective structure factors: autograd through the eigen-solve = finite differences."""
    _, _, x, cond = inputs("GaAs", 900.0)
    g = generator("effective", 8, 4)
    w = g.correction.bias
    with torch.no_grad():
        w.add_(0.1 * torch.randn_like(w))
    weights = torch.rand(1, 9, D, D, dtype=torch.float64)
    loss = (g(x, cond).double() * weights).sum()
    (grad,) = torch.autograd.grad(loss, w)
    k = int(torch.argmax(grad.abs()))
    h = 1e-3  # the network runs in float32
    vals = []
    for sign in (1, -1):
        with torch.no_grad():
            w[k] += sign * h
            vals.append(float((g(x, cond).double() * weights).sum()))
            w[k] -= sign * h
    fd = (vals[0] - vals[1]) / (2 * h)
    assert float(grad[k]) == pytest.approx(fd, rel=1e-2)
    assert float(grad.abs().max()) > 0


def test_symmetry_folding_solves_fewer_tilts_and_changes_nothing():
    """One tilt per orbit of the potential's 4mm operations gives the full grid's discs."""
    _, _, x, cond = inputs("GaAs", 900.0)
    g = generator("residual", 10, 6)
    _, v, aa, t = g.code(x, cond)
    u = g.structure_factors(v, aa)
    folded = g.layer(u, aa, t, g.symmetriser.symmetries(v))
    full = g.bloch(u, aa, t)
    assert torch.allclose(folded, full, rtol=1e-9, atol=1e-12 * float(full.max()))
    assert g.symmetriser.symmetries(v).sum() == 8  # GaAs [001]: 4mm, an eighth solved
