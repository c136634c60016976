"""The engine against a real experiment: recorded GeSn [1-10] LACBED discs.

A reduced version of ``benchmarks/bench_gesn.py`` (150 × 150 px, 120 strong + 120 Bethe
beams, converged: 132.3 nm, mean NCC 0.8955 with σ = 1 px, Felix 0.895) that runs in CI
time: the same 27 discs binned 3 × 3 to 50 × 50 px against ``pixels=50`` with 60 strong + 60
Bethe beams (about 3 s of solve; measured 131.8 nm, mean NCC 0.871). The comparison utilities of
:mod:`hyperspy_lacbed.analysis.compare` are tested on synthetic images first (no data needed).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import EXPERIMENTAL

from hyperspy_lacbed.analysis import compare

DATA = EXPERIMENTAL / "GeSn_1-10"
needs_data = pytest.mark.skipif(
    not (DATA / "GeSn.cif").is_file(),
    reason=f"the recorded GeSn discs are not beside the checkout ({DATA})",
)

#: Best thickness of the full comparison (benchmarks/bench_gesn.py, σ = 1 px), in Å.
FULL_THICKNESS = 1323.0
BIN = 3  # 150 → 50 pixels (150 / 2N must be an integer with N whole)
THICKNESS = np.arange(1200.0, 1460.0, 10.0)
WRONG = 0.7 * FULL_THICKNESS  # a 30 % wrong thickness, solved in the same run
SETTINGS = dict(
    zone_axis=(1, -1, 0),
    surface_normal=(1, -1, 0),
    voltage="200 kV",
    absorption="bird-king",
    scattering_factors="kirkland",
    disc_radius="0.673 1/Å",
    pixels=150 // BIN,
    strong_beams=60,
    weak_beams=60,
    solver="fast",
    device="cpu",
    show_progressbar=False,
)


# ---------------------------------------------------------------- the utilities, no data
def test_ncc_is_pearson_and_ignores_scale_offset_and_nan(rng):
    a = rng.random((3, 12, 12))
    b = rng.random((3, 12, 12))
    r = compare.zero_normalised_cross_correlation(a, b)
    want = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(r, want, rtol=1e-12)
    np.testing.assert_allclose(compare.zero_normalised_cross_correlation(a, 7 * a + 3), 1.0)
    np.testing.assert_allclose(compare.zero_normalised_cross_correlation(a, -a), -1.0)
    # NaN pixels are left out of both images
    holed = a[0].copy()
    holed[2:5, 3] = np.nan
    keep = np.isfinite(holed)
    r_nan = compare.zero_normalised_cross_correlation(holed, b[0])
    assert r_nan == pytest.approx(np.corrcoef(a[0][keep], b[0][keep])[0, 1], rel=1e-12)
    # a mask restricts the pixels; a constant image has no correlation
    mask = np.zeros((12, 12), bool)
    mask[:6] = True
    assert compare.zero_normalised_cross_correlation(a[0], b[0], mask) == pytest.approx(
        np.corrcoef(a[0][:6].ravel(), b[0][:6].ravel())[0, 1]
    )
    assert np.isnan(compare.zero_normalised_cross_correlation(np.ones((4, 4)), a[0, :4, :4]))
    with pytest.raises(ValueError, match="image shape"):
        compare.zero_normalised_cross_correlation(a, b[..., :5])


def test_blur_and_block_mean_act_on_the_image_axes_only(rng):
    img = rng.random((2, 3, 16, 16))
    blurred = compare.gaussian_blur(img, 1.5)
    assert blurred.shape == img.shape
    np.testing.assert_allclose(compare.gaussian_blur(img, 0), img)
    # no mixing between discs, and a smoother image
    np.testing.assert_allclose(blurred[1, 2], compare.gaussian_blur(img[1, 2], 1.5))
    assert blurred.std() < img.std()
    # 'nearest' edges keep a constant image constant
    np.testing.assert_allclose(compare.gaussian_blur(np.full((9, 9), 4.0), 2.0), 4.0)
    with pytest.raises(ValueError, match="sigma_px"):
        compare.gaussian_blur(img, -1)
    small = compare.block_mean(img, 4)
    assert small.shape == (2, 3, 4, 4)
    assert small[0, 0, 1, 2] == pytest.approx(img[0, 0, 4:8, 8:12].mean())
    with pytest.raises(ValueError, match="divide"):
        compare.block_mean(img, 5)


def test_best_orientation_finds_the_map(rng):
    sim = compare.gaussian_blur(rng.random((4, 20, 20)), 1.0)
    for k, t in compare.ORIENTATIONS:
        fit = compare.best_orientation(sim, compare.orient(sim, k, t))
        assert (fit.k, fit.transpose) == (k, t)
        assert fit.mean_ncc == pytest.approx(1.0)
        assert sorted(fit.scores.values())[-2] < 0.9  # the others are clearly worse


def test_fit_thickness_refines_between_grid_points(rng):
    t = np.arange(0.0, 11.0)
    base = rng.random((2, 10, 10))
    other = rng.random((2, 10, 10))
    # image at thickness t: a mix whose similarity to the measurement peaks at t = 4.3
    w = np.exp(-(((t - 4.3) / 3.0) ** 2))[:, None, None, None]
    stack = w * base + (1 - w) * other
    fit = compare.fit_thickness(stack, base, t, blur_sigma=0)
    assert fit.index == 4
    assert abs(fit.thickness - 4.3) < 0.15
    assert fit.mean_ncc == pytest.approx(fit.mean_curve[4])
    assert fit.mean_ncc_refined >= fit.mean_ncc
    assert fit.per_disc.shape == (2,) and fit.curve.shape == (11, 2)
    with pytest.raises(ValueError, match="Expected"):
        compare.fit_thickness(stack[0], base, t)


# ---------------------------------------------------------------- the experiment
@pytest.fixture(scope="module")
def recorded():
    """The 27 recorded discs, loaded and calibrated as a user would, binned 3 × 3."""
    import hyperspy.api as hs

    from hyperspy_lacbed.api.recorded import reflection_from_filename

    files = sorted(DATA.glob("GeSn_*.dm3"))
    s = hs.load(files, stack=True, new_axis_name="reflection")
    s.set_signal_type("LACBED")
    # dm3 columns run along [110], rows along [001]: the engine's frame for x = [110]
    s.set_experimental_parameters(
        beam_energy="200 kV",
        zone_axis=[1, -1, 0],
        x_direction=[1, 1, 0],
        reflections=[reflection_from_filename(f) for f in files],
    )
    s = s.calibrate(disc_radius="0.673 1/Å")  # 75 px = 0.673 1/Å
    return s.rebin(scale=(1, BIN, BIN))


@pytest.fixture(scope="module")
def simulated(recorded):
    """The engine in the README's frame (x = [00-1]) over a thickness series plus 0.7 t."""
    import hyperspy_lacbed as hl

    return hl.simulate(
        str(DATA / "GeSn.cif"),
        x_direction=(0, 0, -1),
        thickness=np.sort(np.append(THICKNESS, WRONG)),
        reflections=recorded.reflections,
        **SETTINGS,
    )


@needs_data
def test_binned_recording_has_the_engine_pixel_grid(recorded, simulated):
    assert recorded.data.shape == (27, 50, 50)
    assert (0, 0, 0) in recorded.reflections and (3, 3, -5) in recorded.reflections
    assert simulated.reflections == recorded.reflections
    for rec, sim in zip(recorded.axes_manager.signal_axes, simulated.axes_manager.signal_axes):
        # pixel centres at ±0.5 px about the zone axis in both
        np.testing.assert_allclose(rec.axis, sim.axis, rtol=1e-9, atol=1e-12)


@needs_data
def test_engine_matches_recorded_discs(recorded, simulated):
    measured = recorded.data.astype(float)
    thick = simulated.thicknesses
    series = np.isin(thick, THICKNESS)
    discs = compare.orient(simulated.data, 1)  # README: recorded = np.rot90(sim, 1)
    fit = compare.fit_thickness(discs[series], measured, thick[series], blur_sigma=1 / BIN)
    # measured: 131.8 nm, mean 0.871, worst disc 0.62 (00-6, also the worst at 150 px)
    assert abs(fit.thickness - FULL_THICKNESS) < 20.0, fit.thickness
    assert fit.mean_ncc > 0.82, fit.per_disc
    assert fit.per_disc.min() > 0.5, fit.per_disc

    # Negative controls: the same discs with a wrong orientation or a 30 % wrong thickness.
    best = discs[series][fit.index]
    for k, t in compare.ORIENTATIONS:
        if (k, t) == (0, False):
            continue
        r = compare.zero_normalised_cross_correlation(compare.orient(best, k, t), measured)
        assert np.mean(r) < fit.mean_ncc - 0.3, (k, t, np.mean(r))
    wrong = discs[np.flatnonzero(thick == WRONG)[0]]
    r_wrong = compare.zero_normalised_cross_correlation(
        compare.gaussian_blur(wrong, 1 / BIN), measured
    )
    assert np.mean(r_wrong) < fit.mean_ncc - 0.2, np.mean(r_wrong)


@needs_data
def test_orientation_map_is_the_x110_frame():
    """README's rot90 map = simulating with x along [110] (y = z × x = [001])."""
    import hyperspy_lacbed as hl

    kw = {**SETTINGS, "pixels": 10, "solver": "exact", "strong_beams": 30}
    args = dict(thickness=[FULL_THICKNESS], reflections=[(0, 0, 0), (0, 0, 4), (1, 1, 1)], **kw)
    a = hl.simulate(str(DATA / "GeSn.cif"), x_direction=(0, 0, -1), **args).data
    b = hl.simulate(str(DATA / "GeSn.cif"), x_direction=(1, 1, 0), **args).data
    np.testing.assert_allclose(compare.orient(a, 1), b, rtol=1e-6, atol=1e-9 * a.max())
    assert not np.allclose(a, b, rtol=1e-3)  # the map is not trivial


def test_reflection_from_filename_reads_signed_indices_and_names_the_fix():
    from hyperspy_lacbed.api.recorded import reflection_from_filename

    assert reflection_from_filename("data/GeSn_+2+2-4.dm3") == [2, 2, -4]
    assert reflection_from_filename("LiNbO3_-1-1+12.dm3") == [-1, -1, 12]
    with pytest.raises(ValueError, match="reflections="):
        reflection_from_filename("GeSn_220.dm3")
