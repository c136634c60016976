"""Physics-informed generators: shift invariance, geometry channels, symmetry, bounded decodes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import DOMAIN  # noqa: E402

from hyperspy_lacbed.analysis.square import transform_discs  # noqa: E402
from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors  # noqa: E402
from hyperspy_lacbed.nets.architectures import (  # noqa: E402
    build_generator,
    count_parameters,
    generator_kwargs,
)
from hyperspy_lacbed.nets.domain import Domain  # noqa: E402
from hyperspy_lacbed.nets.normalisation import Encoding  # noqa: E402
from hyperspy_lacbed.nets.physics_informed import excitation_geometry  # noqa: E402
from hyperspy_lacbed.train.augment import zone_axis_operations  # noqa: E402
from hyperspy_lacbed.units import electron_wavelength  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL_F = {"width": 16, "latent": 32, "n_layers": 2}
SMALL_I = {"ngf": 8, "hidden": 64, "n_downsampling": 2}


def _columns(p: int, atoms) -> np.ndarray:
    """A periodic P × P image of Gaussian columns at fractional (x, y) with heights."""
    iy, ix = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    v = np.full((p, p), 5.0)
    for x, y, h in atoms:
        dx = (ix / p - x + 0.5) % 1 - 0.5
        dy = (iy / p - y + 0.5) % 1 - 0.5
        v += h * np.exp(-(dx**2 + dy**2) / (2 * 0.04**2))
    return v


#: p4mm: heavy column at the origin, medium at the centre, light at the edge centres.
P4MM = [(0, 0, 400.0), (0.5, 0.5, 150.0), (0.5, 0, 60.0), (0, 0.5, 60.0)]
#: no in-plane symmetry (apart from translations).
P1 = [(0, 0, 400.0), (0.31, 0.12, 150.0), (0.62, 0.7, 80.0)]


def _generator(direction, **kw):
    arch = f"fourier-{direction}"
    torch.manual_seed(0)
    g = build_generator(arch, generator_kwargs(direction, DOMAIN, kw, arch)).eval()
    # random, non-zero FiLM weights so that the code z matters in these tests
    with torch.no_grad():
        for name, p in g.named_parameters():
            if "film" in name:
                p.normal_(0, 0.3)
    return g


def _forward(g, potentials, a=5.0, t=1000.0):
    enc = Encoding.for_domain(DOMAIN)
    # encode without the canonical shift: the generator must be shift-invariant itself
    x = torch.from_numpy(enc.encode_potential(np.asarray(potentials), canonical=False))[:, None]
    c = torch.from_numpy(enc.encode_conditioning(np.full(len(x), a), np.full(len(x), t)))
    with torch.no_grad():
        return g(x, c).numpy()


def test_geometry_channel_of_200_is_zero_on_its_bragg_line():
    hk, sigma = excitation_geometry(16, 0.75)
    i200 = [tuple(r) for r in hk.tolist()].index((2, 0))
    s = sigma[i200]
    assert np.allclose(s, s[:1])  # depends on k_x only: the Bragg line of 200 is vertical
    row = s[0]
    # tilt u_x = (j − N + ½)·0.75/N; Bragg condition of 200 (σ = 0) at u_x = −½ → j = 2.1667
    j = np.flatnonzero(np.sign(row[:-1]) != np.sign(row[1:]))
    assert j.tolist() == [2]
    zero = j[0] + row[j[0]] / (row[j[0]] - row[j[0] + 1])
    assert zero == pytest.approx(8 - 0.5 - 0.5 * 8 / 0.75, abs=1e-9)
    # 220: the diagonal line u_x + u_y = −1
    i220 = [tuple(r) for r in hk.tolist()].index((2, 2))
    assert np.allclose(sigma[i220], sigma[i220].T)


@pytest.mark.parametrize("a", [3.0, 12.0])
def test_geometry_matches_the_engines_excitation_errors(a):
    """s_g ≈ −σ_g |g_200|² / 2K against the engine's exact (Ewald-sphere) s_g."""
    d, radius = 16, 0.75
    hk, sigma = excitation_geometry(d, radius)
    k0 = 1.0 / electron_wavelength(200e3)
    g200 = 2.0 / a
    ax = (np.arange(d) - d / 2 + 0.5) * radius * g200 / (d / 2)
    ky, kx = np.meshgrid(ax, ax, indexing="ij")
    k = incident_vectors(kx.ravel(), ky.ravel(), k0)
    g = np.c_[hk / a, np.zeros(len(hk))]
    exact = excitation_errors(k, g, k0).T.reshape(len(hk), d, d)
    approx = -sigma * g200**2 / (2 * k0)
    err = np.abs(exact - approx).max() / np.abs(exact).max()
    assert err < 2e-2, err
    # the zero of every channel (the Bragg line) is where the engine puts it: same sign
    # wherever |s| is not tiny
    big = np.abs(exact) > 0.05 * np.abs(exact).max()
    assert np.all(np.sign(exact[big]) == np.sign(approx[big]))


def test_forward_is_invariant_to_cyclic_shifts_exactly():
    g = _generator("forward", **SMALL_F)
    v = _columns(32, P1)
    shifted = [np.roll(v, (dy, dx), axis=(0, 1)) for dy, dx in [(0, 0), (3, 17), (31, 1)]]
    out = _forward(g, shifted)
    assert np.abs(out).max() > 0
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    # and the output does depend on the potential (not a constant network)
    other = _forward(g, [_columns(32, P4MM)])
    assert np.abs(other[0] - out[0]).max() > 1e-4


@pytest.mark.parametrize("output", ["tanh", "scale_free"])
def test_forward_output_has_the_symmetry_of_the_input(output):
    g = _generator("forward", output=output, **SMALL_F)
    v = np.roll(_columns(32, P4MM), (5, 11), axis=(0, 1))  # the origin must not matter
    out = _forward(g, [v])
    assert out.min() >= -1 and out.max() <= 1
    ops = zone_axis_operations(DOMAIN)
    assert len(ops) == 8
    mask = g.symmetriser.symmetries(torch.from_numpy(v[None]))
    assert mask.all()
    for op in ops:
        moved = transform_discs(out, op.matrix, op.source)
        np.testing.assert_allclose(moved, out, atol=1e-6, err_msg=op.name)
    # without symmetrisation a random network breaks it; with a P1 input it is not imposed
    plain = _generator("forward", output=output, symmetrise=False, **SMALL_F)
    raw = _forward(plain, [v])
    assert max(np.abs(transform_discs(raw, o.matrix, o.source) - raw).max() for o in ops) > 1e-4
    mask1 = g.symmetriser.symmetries(torch.from_numpy(_columns(32, P1)[None]))
    assert mask1[0].tolist() == [True] + [False] * 7


def test_scale_free_output_peak():
    g = _generator("forward", output="scale_free", symmetrise=False, **SMALL_F)
    enc = Encoding.for_domain(DOMAIN)
    v = [_columns(32, P1), _columns(32, P4MM)]
    out = _forward(g, v)
    amp = (out + 1) / 2  # sqrt(I) in the square-root encoding
    x = torch.from_numpy(enc.encode_potential(np.asarray(v)))[:, None]
    c = torch.from_numpy(enc.encode_conditioning([5.0, 5.0], [1000.0, 1000.0]))
    with torch.no_grad():
        peak = torch.sigmoid(g.peak(g.code(x, c)[0]))[:, 0].numpy()
    # the pattern's largest amplitude is the predicted peak, in (0, 1)
    np.testing.assert_allclose(amp.max(axis=(1, 2, 3)), peak, rtol=1e-5)
    assert amp.min() >= 0 and np.all(peak < 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: torch.full(s, 1e30),
        lambda s: torch.full(s, -1e30),
        lambda s: torch.randn(s) * 1e8,
        lambda s: torch.full(s, 0.3),
        lambda s: torch.where(torch.rand(s) < 0.5, torch.nan, torch.inf),
    ],
    ids=["huge", "huge-negative", "random-1e8", "constant", "nan-inf"],
)
def test_inverse_outputs_are_bounded(make):
    g = _generator("inverse", **SMALL_I)
    enc = Encoding.for_domain(DOMAIN)
    x = make((3, 9, 16, 16))
    c = make((3, 2))
    with torch.no_grad():
        y = g(x, c)
    assert y.shape == (3, 1, 32, 32) and torch.isfinite(y).all()
    v = enc.decode_potential(y.numpy())
    assert np.isfinite(v).all() and np.abs(v).max() <= g.bound() * (1 + 1e-5)
    # the weights themselves huge: still finite and bounded
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(1e6)
        y = g(torch.rand(2, 9, 16, 16), torch.zeros(2, 2))
    assert torch.isfinite(y).all()
    assert np.abs(enc.decode_potential(y.numpy())).max() <= g.bound() * (1 + 1e-5)


def test_inverse_output_is_a_positive_band_limited_potential_at_the_canonical_origin():
    g = _generator("inverse", **SMALL_I)
    enc = Encoding.for_domain(DOMAIN)
    with torch.no_grad():
        vg, _ = g.coefficients(torch.rand(2, 9, 16, 16), torch.zeros(2, 2))
        y = g(torch.rand(2, 9, 16, 16), torch.zeros(2, 2))
    h = g.h_max
    v0 = vg[:, h, h]
    assert torch.all(v0.imag == 0) and torch.all(v0.real > 0)
    assert torch.all(vg.abs() <= v0.real[:, None, None] * (1 + 1e-6))  # |V_g| ≤ V_0
    assert torch.equal(vg, torch.flip(vg, dims=(-2, -1)).conj())  # V_−g = V_g*: real image
    assert torch.all(vg.abs() > 0)  # every coefficient of the band is predicted
    v = enc.decode_potential(y.numpy()[:, 0])
    for img in v:
        iy, ix = np.unravel_index(np.argmax(img), img.shape)
        assert (iy, ix) == (16, 16)  # maximum on the centre pixel, like the targets


def test_default_sizes_fit_in_20_MB():
    dom = Domain()
    for direction in ("forward", "inverse"):
        arch = f"fourier-{direction}"
        g = build_generator(arch, generator_kwargs(direction, dom, None, arch))
        assert count_parameters(g) * 4 <= 20e6
        assert g.out_size == (dom.disc_pixels if direction == "forward" else 128)


def test_architecture_must_match_direction():
    with pytest.raises(ValueError, match="forward generator"):
        generator_kwargs("inverse", DOMAIN, None, "fourier-forward")
    with pytest.raises(ValueError, match="Unknown architecture"):
        generator_kwargs("forward", DOMAIN, None, "unet")
    tilted = Domain(zone_axis=(1, 1, 0), x_direction=(0, 0, 1))
    with pytest.raises(ValueError, match=r"\[001\] zone"):
        generator_kwargs("forward", tilted, None, "fourier-forward")
    assert generator_kwargs("forward", tilted)["in_channels"] == 1  # pix2pixhd is generic


@pytest.mark.parametrize("name, n_ops", [("Si", 8), ("pyrite", 4), ("B20", 4)])
def test_detected_symmetry_is_that_of_the_bloch_wave_discs(name, n_ops):
    """The operations found in the potential are exactly those the engine's discs obey."""
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.crystal.potential import projected_potential_array
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.train.prototypes import build_prototype

    crystal = load_structure(name) if name == "Si" else build_prototype(name)
    a = float(crystal.lattice_parameters[0])
    p = DOMAIN.potential_pixels
    pot, _ = projected_potential_array(
        crystal, DOMAIN.zone_axis, DOMAIN.x_direction, (p, p), DOMAIN.scattering_factors, True
    )
    g = _generator("forward", **SMALL_F)
    found = g.symmetriser.symmetries(torch.from_numpy(np.roll(pot, (7, 3), axis=(0, 1)))[None])[0]
    assert int(found.sum()) == n_ops
    discs = compute_discs(crystal, DOMAIN.simulation_settings(a), device="cpu").discs[0]
    ops = zone_axis_operations(DOMAIN)
    for k, op in enumerate(ops):
        assert np.array_equal(op.matrix, g.symmetriser.matrices[k])
        gap = np.abs(transform_discs(discs, op.matrix, op.source) - discs).max() / discs.max()
        assert (gap < 1e-4) == bool(found[k]), (op.name, gap)


def test_phase_channels_are_the_pendelloesung_phase():
    """sin/cos channels = sin/cos(π s_g t) with the engine's s_g, for each sample's a and t."""
    g = _generator("forward", **SMALL_F)
    a, t = torch.tensor([4.0, 11.0]), torch.tensor([500.0, 2000.0])
    with torch.no_grad():
        feats = g.pixel_features(2, a, t).numpy()
    n_g = len(g.geometry_hk)
    assert feats.shape == (2, 2 + 3 * n_g, 16, 16)
    sines = feats[:, 2 + n_g : 2 + 2 * n_g]
    k0 = 1.0 / electron_wavelength(200e3)
    i200 = [tuple(r) for r in g.geometry_hk.tolist()].index((2, 0))
    for b in range(2):
        g200 = 2.0 / float(a[b])
        ax = (np.arange(16) - 8 + 0.5) * 0.75 * g200 / 8
        k = incident_vectors(ax, np.zeros(16), k0)
        s = excitation_errors(k, np.array([[g200, 0.0, 0.0]]), k0)[:, 0]
        want = np.sin(np.pi * s * float(t[b]))
        np.testing.assert_allclose(sines[b, i200, 8], want, atol=0.05)


def test_inverse_starts_from_a_plausible_potential():
    """At initialisation V_0 ≈ 0.4 V_max and small fluctuations: no collapse to V = 0."""
    g = _generator("inverse", **SMALL_I)
    enc = Encoding.for_domain(DOMAIN)
    a = np.array([4.0, 9.0])
    c = torch.from_numpy(enc.encode_conditioning(a, [500.0, 1000.0]))
    with torch.no_grad():
        y = g(torch.rand(2, 9, 16, 16) * 2 - 1, c)
    v = enc.decode_potential(y.numpy()[:, 0])
    v0 = v.mean(axis=(-2, -1)) / a  # volts
    np.testing.assert_allclose(v0, 0.4 * g.max_potential, rtol=0.05)
    assert np.all(v.std(axis=(-2, -1)) < 0.5 * v.mean(axis=(-2, -1)))
    assert np.all(v.std(axis=(-2, -1)) > 0)
