"""hl.refine and LACBED.refine: a LACBED experiment in, a result with a best-fit signal out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperspy_lacbed as hl
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.refinement.parameters import ParameterError
from hyperspy_lacbed.signals.lacbed import LACBED

DISCS = [(0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0), (0, 4, 0)]
DK = 0.025
PIXELS = 8


def experiment(thickness=800.0, seed=0) -> LACBED:
    """Si [001] discs with Poisson noise as a calibrated experiment."""
    crystal = load_structure("Si")
    model = BlochModel(
        crystal,
        SimulationSettings.from_user(strong_beams=12),
        np.array(DISCS),
        PIXELS,
        DK,
        thickness=thickness,
    )
    clean = model.discs(torch.zeros(0, dtype=torch.float64)).numpy()
    data = np.random.default_rng(seed).poisson(1e4 * clean / clean.max()).astype(float)
    g = np.array(DISCS, float)[:, :2] / 5.431
    return LACBED.from_discs(
        data, DISCS, g, thickness=thickness, dk=DK, voltage=200e3, zone_axis=[0, 0, 1],
        source="experiment",
    )  # fmt: skip


def test_hl_refine_returns_best_fit_signal_and_leaves_experiment_alone():
    exp = experiment()
    before = exp.data.copy()
    meta = exp.metadata.as_dictionary()
    res = hl.refine(
        exp, "Si", ["thickness", "B"], thickness="78 nm", fom="lsq", strong_beams=12,
        progress=False, thickness_scan=3,
    )  # fmt: skip
    assert np.array_equal(exp.data, before) and exp.metadata.as_dictionary() == meta
    assert abs(res.thickness - 800.0) <= 3 * res.uncertainties["thickness"] + 1.0
    assert isinstance(res.signal, LACBED)
    assert res.signal.data.shape == exp.data.shape
    rec = res.signal.metadata.LACBED.refinement.as_dictionary()
    assert rec["recipe"]["parameters"] == ["thickness", "B"]
    assert rec["values"]["thickness"] == pytest.approx(res.thickness)
    assert res.signal.reflections == exp.reflections
    assert res.difference_signal.data.shape == exp.data.shape


def test_lacbed_refine_method_matches_function():
    exp = experiment()
    kw = dict(fom="lsq", strong_beams=12, progress=False, thickness=800.0, thickness_scan=0)
    a = exp.refine("Si", ["thickness"], **kw)
    b = hl.refine(exp, "Si", ["thickness"], **kw)
    assert a.values == pytest.approx(b.values)


def test_bad_experiments_are_named():
    exp = experiment()
    with pytest.raises(TypeError, match="LACBED signal"):
        hl.refine(exp.data, "Si")
    nan = exp.deepcopy()
    nan.data[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*mask="):
        hl.refine(nan, "Si", progress=False)
    neg = exp.deepcopy()
    neg.data[1] -= 1e6
    with pytest.raises(ValueError, match="negative"):
        hl.refine(neg, "Si", progress=False)
    uncal = exp.deepcopy()
    uncal.axes_manager.signal_axes[0].units = "<undefined>"
    with pytest.raises(ValueError, match="not calibrated"):
        hl.refine(uncal, "Si", progress=False)
    skew = exp.deepcopy()
    skew.axes_manager.signal_axes[0].scale *= 1.1
    with pytest.raises(ValueError, match="pixel sizes"):
        hl.refine(skew, "Si", progress=False)
    odd = exp.isig[1:, 1:]
    with pytest.raises(ValueError, match="square discs with an even side"):
        hl.refine(odd, "Si", progress=False)
    zone = exp.deepcopy()
    zone.metadata.LACBED.reflections = [[1, 1, 1]] * len(DISCS)
    with pytest.raises(ValueError, match="Laue zone"):
        hl.refine(zone, "Si", progress=False, strong_beams=12)
    with pytest.raises(ParameterError, match="neither an element"):
        hl.refine(exp, "Si", ["B[Sn]"], progress=False, strong_beams=12)
    # a dead pixel is fine when masked
    mask = np.ones(exp.data.shape[1:], bool)
    mask[3, 3] = False
    res = hl.refine(
        nan, "Si", ["thickness"], mask=mask, fom="lsq", strong_beams=12, progress=False,
        thickness=800.0, thickness_scan=0,
    )  # fmt: skip
    assert not res.mask[:, 3, 3].any()


def test_refine_checks_at_full_resolution_and_accepts_any_bin():
    """The default result is compared with the start at full resolution; a bin of 3 on
    8-px discs (an odd number of binned pixels) is accepted; check=False keeps the last
    stage's grid."""
    exp = experiment()
    kw = dict(fom="lsq", strong_beams=12, progress=False, thickness=790.0, thickness_scan=0)
    res = hl.refine(exp, "Si", ["thickness"], stages=[{"bin": 3, "supersample": 3}], **kw)
    assert res.stages[0]["pixels"] == 4 and res.stages[0]["model_pixels"] == 12
    assert res.check["pixels"] == 8 and res.check["fom_end"] < res.check["fom_start"]
    assert res.signal.data.shape == exp.data.shape
    assert "checked at full resolution" in res.summary()
    quick = hl.refine(exp, "Si", ["thickness"], stages=[{"bin": 2}], check=False, **kw)
    assert quick.check is None and quick.simulated.shape[1:] == (4, 4)
