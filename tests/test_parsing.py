"""The utility layer: one parser per kind of user input, the wavelength, the progress bar."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hyperspy_lacbed.parsing import (
    as_direction,
    as_thickness,
    as_thickness_axis,
    dataclass_kwargs,
    parse_beam_energy,
    parse_memory,
    reflection_tuples,
)
from hyperspy_lacbed.progress import ProgressBar, want_progress
from hyperspy_lacbed.units import electron_wavelength


def test_electron_wavelength_at_200_kv():
    # λ(200 kV) = 0.0250793 Å (relativistic, CODATA 2018)
    assert electron_wavelength(200e3) == pytest.approx(0.0250793, rel=1e-5)
    # non-relativistic limit at low voltage: λ ≈ 12.2643 / sqrt(V) Å
    assert electron_wavelength(10.0) == pytest.approx(12.2643 / np.sqrt(10.0), rel=1e-4)


def test_reflections_and_directions():
    assert reflection_tuples([[1, 0, 0], [2.0, -2, 0]]) == ((1, 0, 0), (2, -2, 0))
    assert reflection_tuples([1, 1, 1]) == ((1, 1, 1),)
    assert reflection_tuples(None) is None
    with pytest.raises(ValueError, match="reflection"):
        reflection_tuples([[1, 0.5, 0]])
    with pytest.raises(ValueError, match=r"\[h, k, l\]"):
        reflection_tuples([[1, 0]])
    assert as_direction([[0, 0, 1]], "The zone axis") == (0, 0, 1)
    with pytest.raises(ValueError, match="not a direction"):
        as_direction((0, 0, 0), "The zone axis")
    with pytest.raises(ValueError, match="integer"):
        as_direction((0, 0.5, 1), "The zone axis")


def test_thickness_memory_and_beam_energy():
    assert as_thickness("100 nm") == [1000.0]
    assert as_thickness(["50 nm", 1000]) == [500.0, 1000.0]
    with pytest.raises(ValueError, match="thickness must be positive"):
        as_thickness(-5)
    with pytest.raises(ValueError, match="strictly increasing"):
        as_thickness([900, 500])
    assert parse_memory("1 GiB") == 2**30
    assert parse_memory(1e6) == 1e6
    with pytest.raises(ValueError, match="max_memory"):
        parse_memory(-1)
    assert parse_beam_energy("200 kV") == parse_beam_energy("200 keV") == 200.0
    with pytest.raises(ValueError, match="neither an energy nor a voltage"):
        parse_beam_energy("3 kg")


def test_dataclass_kwargs_refuses_unknown_keys():
    @dataclasses.dataclass
    class Config:
        a: int = 1
        b: str = "x"

    assert Config(**dataclass_kwargs(Config, {"a": 2}, "test settings")) == Config(a=2)
    with pytest.raises(ValueError, match=r"Unknown test settings \['c', 'd'\]; upgrade"):
        dataclass_kwargs(Config, {"a": 2, "d": 0, "c": 1}, "test settings", "upgrade")


def test_progress_bar_follows_the_argument_and_hyperspy_preference():
    import hyperspy.api as hs

    assert want_progress(True) and not want_progress(False)
    assert want_progress(None) == bool(hs.preferences.General.show_progressbar)
    with ProgressBar(3, show=False) as bar:
        bar.update(3)
        assert not bar.active


def test_thickness_axis_only_for_sequences():
    from hyperspy_lacbed.units import ureg

    assert as_thickness_axis("100 nm") == ([1000.0], False)
    assert as_thickness_axis(500) == ([500.0], False)
    assert as_thickness_axis([500]) == ([500.0], True)  # a list of one keeps its axis
    assert as_thickness_axis(ureg().Quantity([50, 100], "nm")) == ([500.0, 1000.0], True)
    assert as_thickness_axis(ureg().Quantity(50, "nm")) == ([500.0], False)
    with pytest.raises(ValueError, match="increasing"):
        as_thickness_axis([900, 500])
