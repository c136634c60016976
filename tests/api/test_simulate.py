"""The public ``simulate`` front end and the command line."""

from __future__ import annotations

import numpy as np
import pytest

import hyperspy_lacbed as hl
from hyperspy_lacbed.cli import main


@pytest.fixture(scope="module")
def small_si():
    return hl.simulate("Si", thickness=["40 nm", "90 nm"], pixels=16, strong_beams=30)


def test_simulate_returns_calibrated_signal(small_si):
    s = small_si
    assert type(s).__name__ == "LACBED"
    assert s.data.shape == (2, 9, 16, 16)
    assert s.metadata.LACBED.source == "bloch"
    np.testing.assert_allclose(s.thicknesses, [400.0, 900.0])
    assert s.reflections[0] == (0, 0, 0)
    kx = s.axes_manager["kx"]
    assert kx.units == "1/Å"
    # Pixel centres at (j - N + 0.5) dk: symmetric about 0 with no pixel at k = 0.
    np.testing.assert_allclose(kx.axis, -kx.axis[::-1], atol=1e-12)
    assert np.all(np.abs(kx.axis) > 0)
    assert s.metadata.Acquisition_instrument.TEM.beam_energy == pytest.approx(200.0)
    assert np.all(np.isfinite(s.data)) and np.all(s.data >= 0)


def test_signal_can_be_resimulated_from_its_metadata(small_si, tmp_path):
    import hyperspy.api as hs

    small_si.save(tmp_path / "si.hspy")
    loaded = hs.load(tmp_path / "si.hspy")
    settings = loaded.metadata.LACBED.settings.as_dictionary()
    again = hl.simulate(**settings)
    np.testing.assert_allclose(again.data, small_si.data, atol=1e-12)
    assert loaded.metadata.LACBED.timing.tilts > 0


def test_diffpy_structure_is_one_structure():
    from diffpy.structure import loadStructure

    from hyperspy_lacbed.data import example_path

    s = hl.simulate(loadStructure(str(example_path("Cu"))), pixels=4, strong_beams=10)
    assert type(s).__name__ == "LACBED"


def test_string_and_number_units_agree():
    a = hl.simulate(
        "GaAs",
        thickness="60 nm",
        voltage="200 kV",
        pixels=8,
        strong_beams=20,
        disc_radius="0.2 1/Å",
    )
    b = hl.simulate(
        "GaAs", thickness=600.0, voltage=200e3, pixels=8, strong_beams=20, disc_radius=0.2
    )
    np.testing.assert_allclose(a.data, b.data, atol=1e-12)
    radius_mrad = 1000 * 0.2 * 0.0250793
    c = hl.simulate(
        "GaAs", thickness=600.0, pixels=8, strong_beams=20, disc_radius=f"{radius_mrad} mrad"
    )
    np.testing.assert_allclose(c.data, a.data, atol=1e-4)


def test_demo_command_writes_files(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--pixels", "8", "--quiet"]) == 0
    png = tmp_path / "si001_montage.png"
    assert (tmp_path / "si001.hspy").stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import hyperspy.api as hs

    back = hs.load(tmp_path / "si001.hspy")
    assert type(back).__name__ == "LACBED"
    assert "wrote" in capsys.readouterr().out


def test_cli_bad_argument_exits_nonzero(tmp_path, capsys):
    code = main(
        [
            "simulate",
            "Si",
            "--thickness",
            "3 kg",
            "--pixels",
            "8",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code != 0
    assert "thickness" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
