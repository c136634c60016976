"""Higher-order Laue zones: the pool, HOLZ off = zero-order results, and the lines' geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hyperspy_lacbed as hl
from hyperspy_lacbed.bloch.discs import beam_intensities
from hyperspy_lacbed.bloch.holz import (
    HolzReach,
    holz_reflections,
    laue_zone_spacing,
    line_crossing,
    line_excitation_errors,
)
from hyperspy_lacbed.bloch.holz_lines import line_branches
from hyperspy_lacbed.bloch.pool import normal_in_frame, prepare_pool
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.bloch.solver import build_pool, pool_reflections
from hyperspy_lacbed.crystal.structure import Crystal, load_structure, zone_frame
from hyperspy_lacbed.crystal.structure_factors import structure_factors

SI111 = dict(zone_axis=(1, 1, 1), reflections=[(0, 0, 0)], disc_radius=0.26)


def _scaled(crystal: Crystal, factor: float) -> Crystal:
    a, b, c, al, be, ga = crystal.lattice_parameters
    lp = [a * factor, b * factor, c * factor, al, be, ga]
    return Crystal.from_dict({**crystal.to_dict(), "lattice_parameters": lp})


def _pool(crystal, **kwargs):
    settings = SimulationSettings.from_user(**kwargs)
    frame = zone_frame(crystal, settings.zone_axis)
    normal = normal_in_frame(crystal, frame, None)
    return prepare_pool(crystal, frame, settings, normal, np.zeros((1, 3), int))[0], frame


def test_holz_pool_is_the_zero_order_pool_plus_upper_zones_near_the_sphere():
    si = load_structure("Si")
    kw = dict(**SI111, thickness=1500.0, strong_beams=60, weak_beams=60)
    zolz, _ = _pool(si, **kw)
    holz, _ = _pool(si, holz=True, **kw)
    n = len(zolz.hkl)
    # the zero-order part (and its coefficients) is unchanged and comes first
    np.testing.assert_array_equal(holz.hkl[:n], zolz.hkl)
    np.testing.assert_array_equal(holz.potential[:n, :n], zolz.potential)
    extra = holz.hkl[n:]
    zones = extra @ np.array([1, 1, 1])
    assert len(extra) and (zones != 0).all()
    # Si [111]: the first-order zone below the beam (n = −1) holds the FOLZ ring; zone −2
    # is forbidden by the diamond glide (h + k + l = 4m + 2 with h, k, l even)
    assert (zones == -1).sum() > 0 and not (zones == -2).any()
    # every one can reach the Ewald sphere's neighbourhood somewhere in the disc and has a
    # kinematic line deeper than a tenth of the tolerance
    u = np.abs(structure_factors(si, extra, 200e3))
    depth = (math.pi * 1500.0 * u / holz.k0) ** 2
    assert depth.min() >= 0.1 * 0.01 * (1 - 1e-9)
    # the pool keeps the zone-axis symmetry: the threefold axis permutes h, k, l
    keys = {tuple(h) for h in extra}
    assert all((h[1], h[2], h[0]) in keys for h in extra)


def test_the_ewald_sphere_meets_the_zones_below_the_beam():
    """The beam travels along +[uvw]: zone n < 0 has a ring where s_g = 0, n > 0 none."""
    si = load_structure("Si")
    frame = zone_frame(si, (1, 1, 1))
    k0 = 39.875
    h_step = laue_zone_spacing(si, (1, 1, 1))
    assert h_step == pytest.approx(1 / (5.4307 * math.sqrt(3)), rel=1e-4)
    below, above = np.array([[11, -3, -9]]), np.array([[-11, 3, 9]])
    for hkl, sign in ((below, -1), (above, 1)):
        assert int((hkl @ [1, 1, 1])[0]) == sign
    s_below = line_excitation_errors(si, frame, below, np.zeros(1), np.zeros(1), k0)[0, 0]
    s_above = line_excitation_errors(si, frame, above, np.zeros(1), np.zeros(1), k0)[0, 0]
    # s ≈ −g_z − g²/2K: the zone-(−1) reflection near the ring sits close to the sphere
    g = np.linalg.norm(si.g_vectors(below))
    assert s_below == pytest.approx(h_step - g**2 / (2 * k0), abs=2e-4)
    assert abs(s_below) < 0.02 < h_step <= abs(s_above)


def test_holz_off_is_the_zero_order_calculation_exactly():
    si = load_structure("Si")
    kw = dict(**SI111, thickness="80 nm", pixels=8, strong_beams=40, weak_beams=40)
    plain = hl.simulate(si, show_progressbar=False, **kw)
    off = hl.simulate(si, holz=False, show_progressbar=False, **kw)
    np.testing.assert_array_equal(off.data, plain.data)
    # HOLZ on, but a crystal so thin that no HOLZ line can reach a tenth of the tolerance:
    # the pool gains nothing and the discs are bit for bit those of HOLZ off
    thin = dict(kw, thickness="0.5 nm")
    none, _ = _pool(si, holz=True, **{k: v for k, v in thin.items() if k != "pixels"})
    ref, _ = _pool(si, **{k: v for k, v in thin.items() if k != "pixels"})
    assert len(none.hkl) == len(ref.hkl)
    np.testing.assert_array_equal(
        hl.simulate(si, holz=True, show_progressbar=False, **thin).data,
        hl.simulate(si, show_progressbar=False, **thin).data,
    )


def test_holz_settings_are_validated_and_recorded():
    with pytest.raises(ValueError, match="leave laue_zones"):
        SimulationSettings.from_user(holz=True, laue_zones=(0, 1))
    with pytest.raises(ValueError, match="holz must be True or False"):
        SimulationSettings.from_user(holz="yes")
    s = hl.simulate(
        "Si", **SI111, thickness="50 nm", pixels=4, strong_beams=30, holz=True,
        show_progressbar=False,
    )  # fmt: skip
    assert s.metadata.LACBED.settings.holz is True
    # a HOLZ disc may be requested once HOLZ is on (and is refused without it)
    with pytest.raises(ValueError, match="holz=True"):
        hl.simulate("Si", zone_axis=(1, 1, 1), reflections=[(11, -3, -9)], pixels=4,
                    strong_beams=30, disc_radius=0.1, show_progressbar=False)  # fmt: skip


LINE = (1, 11, -13)  # a first-order Laue zone line of Si [111] that crosses the disc
BEAMS = dict(strong_beams=50, weak_beams=100)


def _profile(crystal, point, normal, dk, thickness):
    """Along the path: offsets (pixels), tilts, I_000 and I_g (HOLZ on), 0.05-pixel steps."""
    u = np.arange(-4.0, 4.0 + 1e-9, 0.05)
    tilts = point[None, :] + (u * dk)[:, None] * normal[None, :]
    kw = dict(zone_axis=(1, 1, 1), disc_radius=0.26, **BEAMS)
    out = beam_intensities(crystal, tilts, [thickness], [(0, 0, 0), LINE], holz=True, **kw)
    return u, tilts, out[:, 0, 0], out[:, 0, 1]


def _peaks(u, y):
    i = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    return u[i][y[i] > 0.2 * y.max()]


def _roots(u, f):
    c = np.flatnonzero(np.sign(f[:-1]) != np.sign(f[1:]))
    return u[c] - f[c] * (u[c + 1] - u[c]) / (f[c + 1] - f[c])


def test_holz_line_lies_on_its_bragg_geometry_and_moves_with_the_lattice_parameter():
    """Si [111], 150 nm: the FOLZ line of (1 11 −13) splits in two branches, one per excited
    zero-order Bloch state, at s_g K/(k·n d_g) = γ_j, on either side of the kinematic
    s_g = 0; the engine's HOLZ beam peaks there (within 0.5 pixel of a 64-pixel disc), the
    000 disc has its deficiency there, and a 1 % larger cell moves the line by the
    kinematic amount."""
    si = load_structure("Si")
    thickness, dk = 1500.0, 0.26 / 32
    settings = SimulationSettings.from_user(**SI111, thickness=thickness, holz=True, **BEAMS)
    pool, frame = _pool(si, **SI111, thickness=thickness, **BEAMS)
    g = (si.g_vectors(np.array([LINE])) @ frame.rotation.T)[0]
    normal = g[:2] / np.linalg.norm(g[:2])
    point = line_crossing(si, frame, LINE, pool.k0, np.zeros(2), normal, 0.26) * normal
    u, tilts, i000, ig = _profile(si, point, normal, dk, thickness)
    branches = line_branches(si, frame, settings, LINE, tilts)
    predicted = np.sort(np.concatenate([_roots(u, branches[:, j]) for j in range(2)]))
    assert len(predicted) == 2 and predicted[0] < 0 < predicted[1]  # kinematic line between
    peaks = _peaks(u, ig)
    assert len(peaks) == 2
    np.testing.assert_allclose(np.sort(peaks), predicted, atol=0.5)
    # the 000 disc loses what the HOLZ beam gains: its deficit peaks with the beam
    strongest = peaks[np.argmax(np.interp(peaks, u, ig))]
    i000_off = beam_intensities(
        si, tilts, [thickness], [(0, 0, 0)], zone_axis=(1, 1, 1), disc_radius=0.26, **BEAMS
    )[:, 0, 0]
    assert abs(u[np.argmax(i000_off - i000)] - strongest) <= 0.5

    big = _scaled(si, 1.01)
    pool_b, frame_b = _pool(big, **SI111, thickness=thickness, **BEAMS)
    shift = line_crossing(big, frame_b, LINE, pool_b.k0, point, normal * dk, 20.0)
    assert abs(shift) > 1.0  # the strain moves the line by pixels
    u_b, _, _, ig_b = _profile(big, point, normal, dk, thickness)
    moved = _peaks(u_b, ig_b)
    near = moved[np.argmin(np.abs(moved - (strongest + shift)))]
    assert near - strongest == pytest.approx(shift, abs=0.25)


def test_holz_reflections_grow_with_thickness_and_stop_at_the_tolerance():
    si = load_structure("Si")
    frame = zone_frame(si, (1, 1, 1))
    zero = pool_reflections(si, (1, 1, 1), 200)
    k0 = 39.875

    def count(t, tol=0.01):
        reach = HolzReach(thickness=t, tolerance=tol, tilt_radius=0.26, beams=150)
        return len(holz_reflections(si, frame, k0, 200e3, reach, zero))

    assert count(20.0) < count(500.0) <= count(3000.0)
    assert count(3000.0, tol=0.05) <= count(3000.0, tol=0.01)


def test_build_pool_without_holz_is_unchanged_by_the_new_argument():
    si = load_structure("Si")
    frame = zone_frame(si, (1, 1, 1))
    a = build_pool(si, frame, 39.875, 200e3, 100)
    b = build_pool(si, frame, 39.875, 200e3, 100, holz=None)
    np.testing.assert_array_equal(a.hkl, b.hkl)
    np.testing.assert_array_equal(a.potential, b.potential)
