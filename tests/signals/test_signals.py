"""Tests of the LACBED and ProjectedPotential signal classes."""

from __future__ import annotations

import dask.array as da
import hyperspy.api as hs
import numpy as np
import pint
import pytest
from conftest import REFLECTIONS, g_vectors
from hyperspy.axes import DataAxis, UniformDataAxis

from hyperspy_lacbed.signals.lacbed import LACBED, MONTAGE_GAP, LazyLACBED
from hyperspy_lacbed.signals.potential import LazyProjectedPotential, ProjectedPotential
from hyperspy_lacbed.units import electron_wavelength

LAMBDA_200KV = 0.02508  # Å


def _zspy_works() -> bool:
    """rosettasciio's zspy writer needs zarr < 3 (NestedDirectoryStore)."""
    zarr = pytest.importorskip("zarr")
    return hasattr(zarr.storage, "NestedDirectoryStore")


def _assert_same_signal(a, b):
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    assert type(a).__name__.replace("Lazy", "") == type(b).__name__.replace("Lazy", "")
    for ax_a, ax_b in zip(a.axes_manager._axes, b.axes_manager._axes, strict=True):
        assert ax_a.name == ax_b.name
        assert ax_a.units == ax_b.units
        np.testing.assert_allclose(ax_a.axis, ax_b.axis)
    for key in (
        "Acquisition_instrument.TEM.beam_energy",
        "Acquisition_instrument.TEM.convergence_angle",
        "Sample.thickness",
        "Sample.zone_axis",
        "Sample.x_direction",
        "LACBED.reflections",
        "LACBED.g_vectors",
    ):
        va, vb = a.metadata.get_item(key), b.metadata.get_item(key)
        assert va is not None, key
        np.testing.assert_allclose(np.asarray(va, float), np.asarray(vb, float), err_msg=key)
    assert a.metadata.LACBED.source == b.metadata.LACBED.source


# --------------------------------------------------------------------------- registration
def test_known_signal_types_lists_both(capsys):
    hs.print_known_signal_types()
    out = capsys.readouterr().out
    assert "LACBED" in out
    assert "ProjectedPotential" in out
    assert "hyperspy_lacbed" in out


@pytest.mark.parametrize(
    ("signal_type", "klass", "lazy_klass"),
    [
        ("LACBED", LACBED, LazyLACBED),
        ("lacbed", LACBED, LazyLACBED),
        ("ProjectedPotential", ProjectedPotential, LazyProjectedPotential),
        ("potential", ProjectedPotential, LazyProjectedPotential),
    ],
)
def test_set_signal_type(signal_type, klass, lazy_klass):
    s = hs.signals.Signal2D(np.zeros((3, 8, 8)))
    s.set_signal_type(signal_type)
    assert type(s) is klass
    assert s.metadata.Signal.signal_type == klass._signal_type  # aliases map to the type
    lz = hs.signals.Signal2D(np.zeros((3, 8, 8))).as_lazy()
    lz.set_signal_type(signal_type)
    assert type(lz) is lazy_klass
    assert isinstance(lz.data, da.Array)
    lz.compute()
    assert type(lz) is klass


# --------------------------------------------------------------------------- from_discs
def test_from_discs_layout_and_metadata(lacbed, disc_stack):
    s = lacbed
    assert s.data.shape == (2, 3, 6, 16, 16)
    am = s.axes_manager
    assert [a.name for a in am.navigation_axes][:2] == ["reflection", "thickness"]
    kx, ky = am.signal_axes
    assert (kx.name, ky.name) == ("kx", "ky")
    assert kx.units == ky.units == "1/Å"
    dk = disc_stack["dk"]
    n = 8
    np.testing.assert_allclose(kx.axis, (np.arange(2 * n) - n + 0.5) * dk)
    np.testing.assert_allclose(ky.axis, kx.axis)
    assert np.min(np.abs(kx.axis)) == pytest.approx(dk / 2)  # no pixel at k = 0
    # unevenly spaced thicknesses give a non-uniform axis
    t_ax = am["thickness"]
    assert isinstance(t_ax, DataAxis) and not t_ax.is_uniform
    assert t_ax.units == "Å"
    np.testing.assert_allclose(t_ax.axis, [500, 1000, 2000])
    np.testing.assert_allclose(s.thicknesses, [500, 1000, 2000])
    assert am["reflection"].size == 6
    # metadata
    md = s.metadata
    assert md.Acquisition_instrument.TEM.beam_energy == pytest.approx(200.0)
    radius_mrad = 1000 * electron_wavelength(200e3) * n * dk
    assert md.Acquisition_instrument.TEM.convergence_angle == pytest.approx(radius_mrad)
    assert md.Sample.zone_axis == [0, 0, 1]
    assert md.Sample.x_direction == [1, 0, 0]
    assert s.reflections == [tuple(r) for r in REFLECTIONS]
    np.testing.assert_allclose(s.g_vectors, g_vectors())
    assert md.LACBED.source == "bloch"
    assert md.LACBED.settings.n_beams == 31
    assert md.LACBED.settings.tilts == [0, 1, 2]
    assert s.beam_energy == pytest.approx(200.0)
    assert s.wavelength == pytest.approx(LAMBDA_200KV, rel=1e-4)


def test_from_discs_even_thickness_scalar_and_lazy(disc_stack):
    args = dict(disc_stack, thickness=[500.0, 1000.0, 1500.0])
    s = LACBED.from_discs(**args)
    assert isinstance(s.axes_manager["thickness"], UniformDataAxis)
    assert s.axes_manager["thickness"].scale == pytest.approx(500.0)
    one = LACBED.from_discs(**dict(disc_stack, discs=disc_stack["discs"][0, 0], thickness=700))
    assert one.data.shape == (6, 16, 16)
    assert [a.name for a in one.axes_manager.navigation_axes] == ["reflection"]
    assert one.metadata.Sample.thickness == [700.0]
    # a one-element list: a thickness axis of size 1 only where the data have one
    squeezed = LACBED.from_discs(**dict(disc_stack, discs=one.data, thickness=[700.0]))
    assert squeezed.axes_manager.navigation_shape == (6,)
    kept = LACBED.from_discs(**dict(disc_stack, discs=one.data[None], thickness=[700.0]))
    assert kept.axes_manager["thickness"].axis.tolist() == [700.0]
    lz = LACBED.from_discs(**dict(disc_stack, discs=da.from_array(disc_stack["discs"])))
    assert type(lz) is LazyLACBED
    np.testing.assert_array_equal(lz.data.compute(), disc_stack["discs"])
    same = LACBED.from_discs(**dict(disc_stack, voltage="200 kV", dk=f"{disc_stack['dk']} 1/Å"))
    _assert_same_signal(same, LACBED.from_discs(**disc_stack))
    eager = LACBED.from_discs(**dict(disc_stack, lazy=False, discs=da.asarray(args["discs"])))
    assert type(eager) is LACBED


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"reflections": REFLECTIONS[:5]}, "5 reflections given for 6 discs"),
        ({"g_vectors": g_vectors()[:4]}, "4 g_vectors given for 6 discs"),
        ({"thickness": [500.0, 1000.0]}, "2 thicknesses given for a thickness axis"),
        ({"thickness": [1000.0, 500.0, 2000.0]}, "strictly increasing"),
        ({"dk": float("nan")}, "dk"),
        ({"zone_axis": [0, 0]}, "zone_axis must be 3 integers"),
        ({"source": "magic"}, "source must be one of"),
        ({"discs": np.zeros((16, 16)), "thickness": 100.0}, "expected at least 3"),
    ],
)
def test_from_discs_rejects_bad_input(disc_stack, change, match):
    with pytest.raises(ValueError, match=match):
        LACBED.from_discs(**dict(disc_stack, **change))


# --------------------------------------------------------------------------- save / load
def test_hspy_round_trip(lacbed, lacbed_file):
    loaded = hs.load(lacbed_file)
    assert type(loaded) is LACBED
    _assert_same_signal(lacbed, loaded)
    assert not loaded.axes_manager["thickness"].is_uniform
    assert loaded.reflections == lacbed.reflections
    assert loaded.metadata.LACBED.settings.engine == "test"
    lazy = hs.load(lacbed_file, lazy=True)
    assert type(lazy) is LazyLACBED
    np.testing.assert_allclose(lazy.thicknesses, [500, 1000, 2000])


def test_zspy_round_trip(lacbed, tmp_path):
    if not _zspy_works():
        pytest.skip("rosettasciio's zspy writer needs zarr<3 (rosettasciio[zspy])")
    path = tmp_path / "lacbed.zspy"
    lacbed.save(path)
    loaded = hs.load(path)
    assert type(loaded) is LACBED
    _assert_same_signal(lacbed, loaded)


def test_tif_stack_then_set_signal_type(lacbed, tmp_path):
    pytest.importorskip("tifffile")
    plain = hs.signals.Signal2D(lacbed.data[0, 0])
    plain.save(tmp_path / "discs.tif")
    s = hs.load(tmp_path / "discs.tif")
    s.set_signal_type("LACBED")
    assert type(s) is LACBED
    s.set_experimental_parameters(
        beam_energy="200 kV", reflections=REFLECTIONS, g_vectors=g_vectors(), thickness="50 nm"
    )
    assert s.axes_manager.navigation_axes[0].name == "reflection"
    s = s.calibrate(scale=lacbed.axes_manager["kx"].scale)
    np.testing.assert_array_equal(s.get_disc((2, 2, 0)).data, lacbed.data[0, 0, 5])


@pytest.mark.filterwarnings("ignore:ImageIO's vendored tifffile:DeprecationWarning")
def test_image_tif_montage_then_set_signal_type(lacbed, tmp_path):
    """An experimental montage read from a .tif (Pillow), cut into discs at its g vectors."""
    pil = pytest.importorskip("PIL.Image")
    small = lacbed.get_disc((0, 0, 0)).inav[0, 0]  # a single 16 × 16 disc
    # discs of radius 0.75 |g200| overlap at spacing 1, so use g vectors 2× longer
    g = 2 * g_vectors()
    stack = LACBED.from_discs(
        np.stack([small.data * (i + 1) for i in range(6)]),
        REFLECTIONS,
        g,
        thickness=500.0,
        dk=lacbed.axes_manager["kx"].scale,
        voltage=200e3,
        zone_axis=[0, 0, 1],
    )
    montage = stack.to_montage()
    assert montage.metadata.LACBED.montage.spacing == 1.0
    pil.fromarray(np.nan_to_num(montage.data).astype("float32")).save(tmp_path / "m.tif")

    exp = hs.load(tmp_path / "m.tif", file_format="image")
    exp.set_signal_type("LACBED")
    assert type(exp) is LACBED
    exp.set_experimental_parameters(
        beam_energy=pint.get_application_registry().Quantity(200, "kV"),
        convergence_angle=stack.convergence_angle,
        reflections=REFLECTIONS,
        g_vectors=g,
    )
    exp = exp.calibrate(scale=f"{10 * lacbed.axes_manager['kx'].scale} 1/nm")
    discs = LACBED.from_montage(exp)
    assert discs.data.shape == stack.data.shape
    inside = ~np.isnan(discs.data)
    assert inside.mean() > 0.75  # the inscribed circles
    np.testing.assert_allclose(discs.data[inside], stack.data[inside], rtol=1e-6)


# --------------------------------------------------------------------------- montage
@pytest.mark.parametrize("disc", ["circle", "square"])
def test_montage_round_trip(lacbed, disc):
    montage = lacbed.to_montage(disc=disc)
    assert type(montage) is LACBED
    # the reflection axis is gone, the thickness and stack axes are kept
    assert montage.data.shape[:2] == (2, 3)
    assert montage.axes_manager["thickness"].axis.tolist() == [500, 1000, 2000]
    mm = montage.metadata.LACBED.montage
    assert mm.spacing > 1  # radius 0.75 |g200| > |g200| / 2: the discs must be spread
    assert mm.disc_shape == disc
    assert len(mm.positions) == 6
    # disc 000 keeps its own calibration: its first pixel sits at the first k of the disc
    kx = montage.axes_manager["kx"]
    r0, c0 = mm.positions[0]
    assert kx.axis[c0] == pytest.approx(lacbed.axes_manager["kx"].axis[0])
    # pixels outside every disc are NaN, the discs are the data
    data = montage.data
    assert np.isnan(data).any()
    np.testing.assert_array_equal(
        data[..., r0 : r0 + 16, c0 : c0 + 16][..., 8, :], lacbed.data[..., 0, 8, :]
    )
    back = LACBED.from_montage(montage)
    assert back.data.shape == lacbed.data.shape
    assert back.metadata.get_item("LACBED.montage") is None
    assert back.metadata.General.title == lacbed.metadata.General.title
    _assert_same_signal_inside(lacbed, back, square=disc == "square")


def _assert_same_signal_inside(original, back, square):
    inside = ~np.isnan(back.data)
    if square:
        assert inside.all()
        _assert_same_signal(original, back)
    else:
        yy, xx = np.mgrid[0:16, 0:16] - 7.5
        circle = np.broadcast_to(yy**2 + xx**2 <= 64, back.data.shape)
        np.testing.assert_array_equal(inside, circle)
        np.testing.assert_array_equal(back.data[inside], original.data[inside])
        masked = original.deepcopy()
        masked.data[~circle] = np.nan
        np.testing.assert_array_equal(masked.data, back.data)
        for a, b in zip(original.axes_manager._axes, back.axes_manager._axes, strict=True):
            assert (a.name, a.units) == (b.name, b.units)
            np.testing.assert_allclose(a.axis, b.axis)


def test_montage_spacing_is_the_smallest_without_overlap(lacbed):
    m = lacbed.to_montage(disc="circle")
    mm = m.metadata.LACBED.montage
    yy, xx = np.mgrid[0:16, 0:16] - 7.5
    n_disc = np.count_nonzero(yy**2 + xx**2 <= 64)
    # every pixel of every disc is drawn, none hidden by another disc
    assert np.count_nonzero(~np.isnan(m.data[0, 0])) == len(REFLECTIONS) * n_disc
    # nearest discs (|Δg| = |g200|) are one diameter plus a small gap apart, no more
    pos = np.asarray(mm.positions)
    assert pos[1][1] - pos[0][1] == pos[0][1] - pos[2][1]  # 200 and -200 symmetric
    distance = pos[1][1] - pos[0][1]
    assert 16 + MONTAGE_GAP <= distance <= 16 + MONTAGE_GAP + 2
    assert mm.spacing == pytest.approx(distance * lacbed.axes_manager["kx"].scale / 0.5, 0.02)
    # a smaller spacing makes discs overlap, which is reported
    with pytest.warns(UserWarning, match="overlap"):
        lacbed.to_montage(spacing=0.8 * mm.spacing)
    with pytest.warns(UserWarning, match="overlap"):
        lacbed.to_montage(spacing=1.0)


def test_montage_after_save_and_lazy(lacbed, tmp_path):
    m = lacbed.to_montage()
    m.save(tmp_path / "montage.hspy")
    loaded = hs.load(tmp_path / "montage.hspy", lazy=True)
    assert type(loaded) is LazyLACBED
    back = LACBED.from_montage(loaded)
    assert type(back) is LazyLACBED
    eager = LACBED.from_montage(m)
    np.testing.assert_array_equal(back.data.compute(), eager.data)
    lazy_m = lacbed.as_lazy().to_montage()
    assert isinstance(lazy_m.data, da.Array)
    np.testing.assert_array_equal(lazy_m.data.compute(), m.data)


def test_montage_needs_reflection_axis_and_g(lacbed):
    with pytest.raises(ValueError, match="reflection"):
        lacbed.to_montage().to_montage()
    s = lacbed.deepcopy()
    del s.metadata.LACBED.g_vectors
    with pytest.raises(ValueError, match="g_vectors is not set"):
        s.to_montage()
    with pytest.raises(ValueError, match="already has a reflection axis"):
        LACBED.from_montage(lacbed)


# --------------------------------------------------------------------------- units
def test_mrad_round_trip_at_200kv(lacbed):
    dk = lacbed.axes_manager["kx"].scale
    off = lacbed.axes_manager["kx"].offset
    mrad = lacbed.to_mrad()
    kx = mrad.axes_manager["kx"]
    assert kx.units == "mrad"
    assert kx.scale == pytest.approx(1000 * LAMBDA_200KV * dk, rel=2e-4)
    assert kx.offset == pytest.approx(1000 * LAMBDA_200KV * off, rel=2e-4)
    assert lacbed.axes_manager["kx"].units == "1/Å"  # original untouched
    back = mrad.to_inverse_angstrom()
    assert back.axes_manager["kx"].units == "1/Å"
    assert back.axes_manager["ky"].scale == pytest.approx(dk, rel=1e-12)
    # a montage of the mrad signal is the same picture
    np.testing.assert_array_equal(mrad.to_montage().data, lacbed.to_montage().data)


def test_mrad_needs_beam_energy(lacbed):
    s = lacbed.deepcopy()
    del s.metadata.Acquisition_instrument.TEM.beam_energy
    with pytest.raises(ValueError, match="beam energy"):
        s.to_mrad()
    k = s.to_mrad(beam_energy="200 kV").axes_manager["kx"]
    assert k.scale == pytest.approx(1000 * LAMBDA_200KV * lacbed.axes_manager["kx"].scale, 2e-4)


def test_hyperspy_unit_conversion_understands_the_axes(lacbed):
    s = lacbed.deepcopy()
    s.axes_manager.convert_units(axes="signal", units="1/nm")
    assert s.axes_manager["kx"].scale == pytest.approx(10 * lacbed.axes_manager["kx"].scale)
    # our conversions read HyperSpy's "1 / nm" as well
    assert s.to_inverse_angstrom().axes_manager["kx"].scale == pytest.approx(
        lacbed.axes_manager["kx"].scale
    )


# --------------------------------------------------------------------------- calibrate
UREG = pint.get_application_registry()


@pytest.mark.parametrize(
    ("kwargs", "dk"),
    [
        ({"scale": "0.0045 1/Å"}, 0.0045),
        ({"scale": "0.045 1/nm"}, 0.0045),
        ({"scale": UREG.Quantity(0.0045, "1/angstrom")}, 0.0045),
        ({"scale": 0.0045}, 0.0045),
        ({"scale": "0.11 mrad"}, 0.11 / (1000 * LAMBDA_200KV)),
        ({"disc_radius": "0.3 1/Å"}, 0.3 / 8),
        ({"disc_radius": UREG.Quantity(12, "mrad")}, 12 / (1000 * LAMBDA_200KV) / 8),
    ],
)
def test_calibrate(lacbed, kwargs, dk):
    s = lacbed.deepcopy()
    s.axes_manager["kx"].scale = 1.0
    out = s.calibrate(**kwargs)
    for name in ("kx", "ky"):
        ax = out.axes_manager[name]
        assert ax.units == "1/Å"
        assert ax.scale == pytest.approx(dk, rel=2e-4)
        np.testing.assert_allclose(ax.axis, (np.arange(16) - 7.5) * ax.scale)
    assert s.axes_manager["kx"].scale == 1.0  # inplace=False left it alone
    if "disc_radius" in kwargs and "mrad" in str(kwargs["disc_radius"]):
        assert out.convergence_angle == pytest.approx(12.0)


def test_calibrate_angle_without_beam_energy(tmp_path):
    s = hs.signals.Signal2D(np.ones((4, 16, 16)))
    s.set_signal_type("LACBED")
    with pytest.raises(ValueError, match="beam_energy='200 kV'"):
        s.calibrate(disc_radius="12 mrad")
    out = s.calibrate(disc_radius="12 mrad", beam_energy="200 kV")
    assert out.beam_energy == 200.0
    assert out.convergence_angle == pytest.approx(12.0)
    assert s.beam_energy is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"scale": 0.01, "disc_radius": 0.3}, "exactly one"),
        ({"scale": float("nan")}, "finite positive"),
        ({"scale": -0.01}, "finite positive"),
        ({"scale": "0.1 nm"}, "cannot be converted to 1/angstrom"),
        ({"scale": "zero point one"}, "Cannot read scale"),
    ],
)
def test_calibrate_rejects_bad_input(lacbed, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lacbed.calibrate(**kwargs)


def test_nan_calibration_is_refused(lacbed):
    s = lacbed.deepcopy()
    s.axes_manager["kx"].scale = np.nan
    with pytest.raises(ValueError, match="no calibration"):
        s.to_mrad()
    s = lacbed.deepcopy()
    s.axes_manager["kx"].units = "nm"
    with pytest.raises(ValueError, match="neither a reciprocal length nor an angle"):
        s.to_montage()


def test_calibrate_inplace(lacbed):
    s = lacbed.deepcopy()
    assert s.calibrate(scale="0.01 1/Å", inplace=True) is None
    assert s.axes_manager["kx"].scale == pytest.approx(0.01)


# --------------------------------------------------------------------------- parameters
def test_set_experimental_parameters_units(lacbed):
    s = lacbed.deepcopy()
    s.set_experimental_parameters(
        beam_energy="300 kV",
        convergence_angle="0.4 1/Å",
        thickness=["40 nm", "80 nm", "120 nm"],
        zone_axis=[1, 1, 0],
        x_direction=(0, 0, 1),
    )
    assert s.beam_energy == pytest.approx(300.0)
    lam300 = electron_wavelength(300e3)
    assert s.convergence_angle == pytest.approx(1000 * lam300 * 0.4)
    np.testing.assert_allclose(s.thicknesses, [400, 800, 1200])
    assert s.axes_manager["thickness"].is_uniform  # evenly spaced now
    assert s.metadata.Sample.zone_axis == [1, 1, 0]
    assert s.metadata.Sample.x_direction == [0, 0, 1]
    s.set_experimental_parameters(beam_energy=UREG.Quantity(120, "keV"), convergence_angle=5)
    assert (s.beam_energy, s.convergence_angle) == (120.0, 5.0)


def test_set_experimental_parameters_not_inplace(lacbed):
    out = lacbed.set_experimental_parameters(beam_energy=80, inplace=False)
    assert out.beam_energy == 80.0
    assert lacbed.beam_energy == 200.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beam_energy": "3 kg"}, "beam_energy is given in kg"),
        ({"beam_energy": float("nan")}, "beam_energy"),
        ({"convergence_angle": "2 nm"}, "convergence_angle"),
        ({"thickness": "3 kV"}, "thickness"),
        ({"thickness": [100.0, 200.0]}, "thickness axis has 3"),
        ({"reflections": REFLECTIONS[:4]}, "reflection axis has 6"),
        ({"g_vectors": [[0.0, 0.0]]}, "reflection axis has 6"),
        ({"reflections": [[1, 2]]}, r"\[h, k, l\]"),
        ({"reflections": REFLECTIONS, "g_vectors": g_vectors()[:2]}, "6 reflections but 2"),
        ({"g_vectors": np.full((6, 2), np.nan)}, "NaN"),
        ({"zone_axis": [0.5, 0, 1]}, "integers"),
    ],
)
def test_set_experimental_parameters_rejects(lacbed, kwargs, match):
    before = lacbed.metadata.as_dictionary()
    with pytest.raises(ValueError, match=match):
        lacbed.set_experimental_parameters(**kwargs)
    assert str(lacbed.metadata.as_dictionary()) == str(before)  # nothing half-set


@pytest.mark.parametrize("names", [None, ["depth", "image series", "height", "width"]])
def test_set_parameters_names_axes_of_plain_data(lacbed, names):
    # (3, 6, 16, 16) without names, or with the names rosettasciio's tiff reader gives
    kwargs = {}
    if names is not None:
        sizes = (3, 6, 16, 16)
        kwargs["axes"] = [{"name": n, "size": k} for n, k in zip(names, sizes, strict=True)]
    s = hs.signals.Signal2D(lacbed.data[0], **kwargs)
    s.set_signal_type("LACBED")
    s.set_experimental_parameters(reflections=REFLECTIONS, thickness=[100.0, 300.0, 400.0])
    assert s.axes_manager.navigation_axes[0].name == "reflection"
    t_ax = s.axes_manager["thickness"]
    np.testing.assert_allclose(t_ax.axis, [100, 300, 400])
    assert s.metadata.LACBED.source == "experiment"
    s.set_experimental_parameters(g_vectors=g_vectors(), beam_energy=200)
    s = s.calibrate(scale=lacbed.axes_manager["kx"].scale)
    np.testing.assert_array_equal(s.get_disc((0, 2, 0)).data, lacbed.data[0, :, 3])
    np.testing.assert_array_equal(
        LACBED.from_montage(s.to_montage(disc="square")).data, lacbed.data[0]
    )
    with pytest.raises(ValueError, match="no thickness axis of that size"):
        s2 = hs.signals.Signal2D(lacbed.data[0, 0])
        s2.set_signal_type("LACBED")
        s2.set_experimental_parameters(thickness=[100.0, 200.0])


# --------------------------------------------------------------------------- discs
def test_get_disc(lacbed):
    d = lacbed.get_disc((-2, 0, 0))
    np.testing.assert_array_equal(d.data, lacbed.data[:, :, 2])
    assert d.reflections == [(-2, 0, 0)]
    np.testing.assert_allclose(d.g_vectors, [[-0.5, 0.0]])
    d.data[:] = -1  # a copy
    assert lacbed.data.min() >= 0
    with pytest.raises(ValueError, match=r"Reflection \[1, 1, 1\] is not among"):
        lacbed.get_disc([1, 1, 1])


def test_reflections_mismatch_is_reported(lacbed):
    s = lacbed.deepcopy()
    s.metadata.LACBED.reflections = REFLECTIONS[:3]
    with pytest.raises(ValueError, match="has 3 entries but the reflection axis has 6"):
        s.get_disc((0, 0, 0))


# --------------------------------------------------------------------------- potential
def test_projected_potential_from_array(tmp_path, rng):
    data = rng.random((2, 32, 24))
    p = ProjectedPotential.from_array(
        data,
        extent=["4.05 Å", "0.6 nm"],
        zone_axis=[0, 0, 1],
        x_direction=None,
        lattice_parameters=(4.05, 4.05, 6.0, 90, 90, 90),
        settings={"n": 32, "grid": np.arange(2)},
    )
    x, y = p.axes_manager.signal_axes
    assert (x.name, y.name, x.units, y.units) == ("x", "y", "Å", "Å")
    assert (x.offset, y.offset) == (0.0, 0.0)
    assert x.scale == pytest.approx(4.05 / 24)
    assert y.scale == pytest.approx(6.0 / 32)
    assert p.metadata.Signal.quantity == "Projected potential (V·Å)"
    assert p.cell_extent == pytest.approx((4.05, 6.0))
    assert p.x_direction == (1, 0, 0)
    p.save(tmp_path / "p.hspy")
    loaded = hs.load(tmp_path / "p.hspy")
    assert type(loaded) is ProjectedPotential
    np.testing.assert_array_equal(loaded.data, data)
    assert loaded.lattice_parameters == (4.05, 4.05, 6.0, 90.0, 90.0, 90.0)
    assert loaded.metadata.ProjectedPotential.settings.grid == [0, 1]
    assert loaded.metadata.Signal.quantity == "Projected potential (V·Å)"
    lz = ProjectedPotential.from_array(
        da.from_array(data), 4.05, [0, 0, 1], [1, 0, 0], (4.05,) * 3 + (90,) * 3
    )
    assert type(lz) is LazyProjectedPotential


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"data": np.zeros(8)}, "image"),
        ({"extent": "4 kV"}, "extent"),
        ({"extent": [1.0, 2.0, 3.0]}, "one length"),
        ({"lattice_parameters": (4, 4, 4)}, "six values"),
        ({"lattice_parameters": (4, 4, 4, 90, 190, 90)}, "between 0 and 180"),
        ({"zone_axis": [0, 0, 0]}, r"cannot be \[0, 0, 0\]"),
    ],
)
def test_projected_potential_rejects(change, match):
    args = {
        "data": np.zeros((8, 8)),
        "extent": 4.0,
        "zone_axis": [0, 0, 1],
        "x_direction": None,
        "lattice_parameters": (4, 4, 4, 90, 90, 90),
    }
    with pytest.raises(ValueError, match=match):
        ProjectedPotential.from_array(**dict(args, **change))


def test_potential_plot_outlines_the_cell_and_tiles():
    import matplotlib.pyplot as plt

    import hyperspy_lacbed as hl

    pot = hl.projected_potential("NaCl", shape=(32, 32))
    pot.plot()
    (rect,) = pot._plot.signal_plot.ax.patches
    ax_x = pot.axes_manager.signal_axes[0]
    # The outline is the cell: from the first pixel's edge, one lattice parameter wide.
    assert rect.get_x() == pytest.approx(ax_x.offset - ax_x.scale / 2)
    assert rect.get_width() == pytest.approx(pot.cell_extent[0])
    pot._plot.close()
    fig = pot.plot_tiled((3, 2))
    (image,) = fig.axes[0].images
    assert image.get_array().shape == (64, 96)  # 2 cells down, 3 across
    np.testing.assert_allclose(image.get_array()[:32, 32:64], pot.data)
    plt.close(fig)
    with pytest.raises(ValueError, match="at least 1"):
        pot.plot_tiled(0)
