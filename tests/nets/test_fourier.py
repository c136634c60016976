"""The fixed Fourier layers: engine U_g, origin invariance, inverse."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.crystal.structure_factors import structure_factors
from hyperspy_lacbed.nets import fourier
from hyperspy_lacbed.nets.fourier import (
    FourierCoefficients,
    InverseFourier,
    channels_to_coefficients,
    coefficients_to_channels,
    zolz_indices,
)
from hyperspy_lacbed.nets.normalisation import canonical_origin

H_MAX = 8
P = 128
VOLTAGE = 200e3
#: Agreement with the engine, relative to |U_000|. Both sides are exact sums of the same
#: Fourier series, so only float64 round-off (FFT of a 128² image) separates them.
TOLERANCE = 1e-9


@pytest.fixture(scope="module", params=["SrTiO3", "GaAs"])
def crystal_and_image(request):
    crystal = load_structure(request.param)
    image, cell = projected_potential_array(crystal, (0, 0, 1), (1, 0, 0), (P, P))
    assert cell.height == pytest.approx(crystal.lattice_parameters[0])  # c = a along [001]
    return crystal, torch.from_numpy(image)


def _engine(crystal, hkl):
    return structure_factors(crystal, hkl, voltage=VOLTAGE)


def test_coefficients_reproduce_the_engine_structure_factors(crystal_and_image):
    crystal, image = crystal_and_image
    a = crystal.lattice_parameters[0]
    layer = FourierCoefficients(H_MAX, P, origin="none", units="structure_factor", voltage=VOLTAGE)
    u = layer(image[None], lattice_parameter=[a])[0].numpy()
    ref = _engine(crystal, zolz_indices(H_MAX))
    scale = abs(ref[H_MAX, H_MAX])
    assert np.max(np.abs(u - ref)) < TOLERANCE * scale
    # Network inputs are float32: still within 1e-6 of |U_000| (measured 6e-8).
    u32 = layer(image[None].float(), lattice_parameter=[a])[0].numpy()
    assert np.max(np.abs(u32 - ref)) < 1e-6 * scale
    # A forbidden reflection of the face-centred lattice (100) is zero; 200 is not.
    assert abs(u[H_MAX, H_MAX + 2]) > 1e-3 * scale
    if crystal.name == "GaAs":
        assert abs(u[H_MAX, H_MAX + 1]) < TOLERANCE * scale


def test_units_are_consistent(crystal_and_image):
    crystal, image = crystal_and_image
    a = crystal.lattice_parameters[0]
    proj = FourierCoefficients(H_MAX, P, origin="none")(image)
    volts = FourierCoefficients(H_MAX, P, origin="none", units="volts")(image, a)
    torch.testing.assert_close(proj / a, volts)
    # The mean inner potential V_0 of SrTiO3 / GaAs lies between 10 and 25 V.
    assert 10 < volts[H_MAX, H_MAX].real < 25
    with pytest.raises(ValueError, match="lattice parameter"):
        FourierCoefficients(H_MAX, P, units="volts")(image)
    # A batch with a channel axis, one a per image.
    batch = torch.stack([image, 2 * image])[:, None]  # (2, 1, P, P)
    layer = FourierCoefficients(H_MAX, P, origin="none", units="volts")
    out = layer(batch, torch.tensor([a, 2 * a]))
    assert out.shape == (2, 1, 2 * H_MAX + 1, 2 * H_MAX + 1)
    torch.testing.assert_close(out[0, 0], volts)
    torch.testing.assert_close(out[1, 0], volts)  # twice the image, twice the a
    with pytest.raises(ValueError, match="one value per image"):
        layer(image, torch.ones(3))


def test_amplitudes_invariant_to_cyclic_shifts(crystal_and_image):
    _, image = crystal_and_image
    layer = FourierCoefficients(H_MAX, P, origin="none")
    c0 = layer(image)
    rng = np.random.default_rng(1)
    for _ in range(3):
        s = tuple(int(x) for x in rng.integers(0, P, 2))
        c = layer(torch.roll(image, s, dims=(-2, -1)))
        torch.testing.assert_close(c.abs(), c0.abs(), rtol=1e-10, atol=1e-10)
        assert not torch.allclose(c, c0)  # the phases do move


@pytest.mark.parametrize("origin", ["max_at_centre", "max_at_origin"])
def test_canonical_coefficients_invariant_to_cyclic_shifts(crystal_and_image, origin):
    _, image = crystal_and_image
    layer = FourierCoefficients(H_MAX, P, origin=origin)
    rolled = torch.stack([torch.roll(image, (dy, dx), dims=(-2, -1))
                          for dy, dx in [(0, 0), (5, 77), (64, 3), (127, 127)]])  # fmt: skip
    c = layer(rolled)
    for k in range(1, len(c)):
        torch.testing.assert_close(c[k], c[0], rtol=1e-10, atol=1e-10)


def test_canonical_coefficients_are_those_of_the_translated_crystal(crystal_and_image):
    """The canonical origin is a pixel shift t of the crystal: the coefficients are the
    engine's U_g of the crystal moved by t."""
    crystal, image = crystal_and_image
    a = crystal.lattice_parameters[0]
    image = torch.roll(image, (9, 40), dims=(-2, -1))  # an arbitrary starting origin
    layer = FourierCoefficients(H_MAX, P, origin="max_at_centre", units="structure_factor")
    u = layer(image, a).numpy()
    _, (dy, dx) = canonical_origin(image.numpy())
    moved = crystal.with_positions(crystal.positions + [(40 + dx) / P, (9 + dy) / P, 0.0])
    ref = _engine(moved, zolz_indices(H_MAX))
    assert np.max(np.abs(u - ref)) < TOLERANCE * abs(ref[H_MAX, H_MAX])
    # With the maximum at the origin, a centrosymmetric projection has real coefficients.
    real = FourierCoefficients(H_MAX, P, origin="max_at_origin")(image).numpy()
    assert np.max(np.abs(real.imag)) < 1e-9 * np.max(np.abs(real))


def test_inverse_reproduces_the_band_limited_potential(crystal_and_image):
    crystal, image = crystal_and_image
    a = crystal.lattice_parameters[0]
    layer = FourierCoefficients(P // 2 - 1, P, origin="none")
    back = InverseFourier(P // 2 - 1, P)(layer(image))
    torch.testing.assert_close(back, image, rtol=0, atol=1e-9 * float(image.abs().max()))
    # From the engine's U_g (|h|, |k| ≤ 8) to the image: the Fourier sum of those beams.
    hkl = zolz_indices(H_MAX)
    u = torch.from_numpy(_engine(crystal, hkl))
    img = InverseFourier(H_MAX, P, units="structure_factor", voltage=VOLTAGE)(u, a)
    low = InverseFourier(H_MAX, P)(FourierCoefficients(H_MAX, P, origin="none")(image))
    torch.testing.assert_close(img, low, rtol=0, atol=1e-8 * float(image.abs().max()))
    assert img.dtype == torch.float64 and img.shape == (P, P)


def test_inverse_is_real_differentiable_and_checks_shapes():
    c = torch.randn(2, 2, 9, 9, dtype=torch.float64, requires_grad=True)
    inv = InverseFourier(4, 32)
    img = inv(channels_to_coefficients(c))
    assert img.shape == (2, 32, 32) and not img.is_complex()
    img.square().sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()
    z = channels_to_coefficients(c.detach())
    torch.testing.assert_close(coefficients_to_channels(z), c.detach())
    with pytest.raises(ValueError, match="h_max"):
        InverseFourier(16, 32)
    with pytest.raises(ValueError, match="coefficients"):
        inv(torch.zeros(2, 7, 7, dtype=torch.complex64))
    with pytest.raises(ValueError, match="potentials"):
        FourierCoefficients(4, 32)(torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="origin"):
        FourierCoefficients(4, 32, origin="centre")


def test_docstring_examples():
    result = doctest.testmod(fourier, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_layers_run_on_the_gpu(crystal_and_image):
    _, image = crystal_and_image
    fwd = FourierCoefficients(H_MAX, P).cuda()
    inv = InverseFourier(H_MAX, P).cuda()
    c = fwd(image.cuda()[None].float())
    assert c.device.type == "cuda"
    cpu = FourierCoefficients(H_MAX, P)(image[None].float())
    torch.testing.assert_close(c.cpu(), cpu, rtol=1e-5, atol=1e-5 * float(cpu.abs().max()))
    assert inv(c).device.type == "cuda"
