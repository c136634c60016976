"""Refinement on arrays: recovery of known answers, a real experiment, divergence, result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.refinement.driver import RefinementWarning
from hyperspy_lacbed.refinement.fit import Stage, refine_discs
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.refinement.parameters import resolve_parameters

SHARED = Path(__file__).resolve().parents[3] / "shared"
GESN = SHARED / "experimental" / "GeSn_1-10"
DISCS = [(0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0), (0, 4, 0)]
PHYS = {"zone_axis": (0, 0, 1), "voltage": 200e3, "strong_beams": 12}


def synthetic(truth: dict, pixels=12, dk=0.025, counts=1e4, seed=3):
    crystal = load_structure("Si")
    params = resolve_parameters(
        list(truth),
        crystal,
        thickness=truth.get("thickness", 800.0),
        absorption="proportional",
        absorption_fraction=0.1,
        fom="lsq",
        blur=0.0,
    )
    model = BlochModel(
        crystal, SimulationSettings.from_user(**PHYS), np.array(DISCS), pixels, dk, params
    )
    x = torch.tensor([truth[p.name] for p in params], dtype=torch.float64)
    clean = model.discs(x).numpy()
    rng = np.random.default_rng(seed)
    return crystal, rng.poisson(counts * clean / clean.max()).astype(float), dk


def test_recovers_thickness_and_b_within_three_sigma():
    """Poisson noise (1e4 counts at most); perturbed start; |error| ≤ 3σ and small."""
    truth = {"thickness": 800.0, "B[Si]": 0.60}
    crystal, data, dk = synthetic(truth)
    res = refine_discs(
        crystal, data, DISCS, dk, ["thickness", "B"], thickness=780.0, fom="lsq", progress=False,
        **PHYS,
    )  # fmt: skip
    assert res.start["B[Si]"] == pytest.approx(crystal.b_iso[0])  # 0.46: 0.14 Å² off
    for name, want in truth.items():
        err = res.values[name] - want
        assert abs(err) <= 3 * res.uncertainties[name], (name, err, res.uncertainties[name])
    assert abs(res.values["thickness"] - 800.0) < 5.0
    assert abs(res.values["B[Si]"] - 0.60) < 0.02
    # noise-only residuals: the reduced χ² of Pearson residuals is about 1
    assert 0.8 < res.residual_variance < 1.25
    assert res.correlation.shape == (2, 2) and np.allclose(np.diag(res.correlation), 1.0)
    assert res.mean_zncc > res.mean_zncc_start


def test_divergence_keeps_best_point(monkeypatch):
    truth = {"thickness": 800.0}
    crystal, data, dk = synthetic(truth, pixels=8)
    calls = {"n": 0}
    original = BlochModel.intensities

    def flaky(self, x, index=None):
        calls["n"] += 1
        out = original(self, x, index)
        return out * float("nan") if 4 <= calls["n"] <= 6 else out

    monkeypatch.setattr(BlochModel, "intensities", flaky)
    with pytest.warns(RefinementWarning) as caught:
        res = refine_discs(
            crystal, data, DISCS, dk, ["thickness"], thickness=800.0, fom="lsq",
            thickness_scan=3, progress=False, **PHYS,
        )  # fmt: skip
    assert any("non-finite" in str(w.message) for w in caught)
    assert "diverged" in res.message
    assert np.isfinite(res.values["thickness"])
    assert res.fom_value == pytest.approx(min(res.history), rel=1e-9)


def test_result_cif_dict_and_plot(tmp_path):
    truth = {"thickness": 800.0, "B[Si]": 0.5}
    crystal, data, dk = synthetic(truth, pixels=8)
    res = refine_discs(
        crystal, data, DISCS, dk, ["thickness", "B"], thickness=800.0, fom="lsq",
        thickness_scan=3, progress=False,
        stages=[Stage(bin=2, max_iter=5, supersample=2), Stage(max_iter=10)],
        **PHYS,
    )  # fmt: skip
    assert [s["pixels"] for s in res.stages] == [4, 8]
    back = load_structure(res.to_cif(tmp_path / "refined.cif"))
    assert np.allclose(back.b_iso, res.values["B[Si]"], atol=1e-4)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["recipe"]["parameters"] == ["thickness", "B"]
    again = refine_discs(
        d["recipe"]["structure"] and crystal, data, d["recipe"]["reflections"], d["recipe"]["dk"],
        d["recipe"]["parameters"], thickness=d["recipe"]["thickness"], fom=d["recipe"]["fom"],
        thickness_scan=d["recipe"]["thickness_scan"], progress=False,
        stages=[Stage(**s) for s in d["recipe"]["stages"]], **d["recipe"]["physics"],
    )  # fmt: skip
    assert again.values == pytest.approx(res.values)
    fig = res.plot()
    assert len(fig.axes) >= 2
    assert res.difference.shape == data.shape


def test_bad_array_input():
    crystal = load_structure("Si")
    good = np.ones((len(DISCS), 8, 8))
    with pytest.raises(ValueError, match="one \\[h, k, l\\] per disc"):
        refine_discs(crystal, good, DISCS[:3], 0.02, progress=False, **PHYS)
    with pytest.raises(ValueError, match="square discs"):
        refine_discs(crystal, good[:, :, :6], DISCS, 0.02, progress=False, **PHYS)
    with pytest.raises(ValueError, match="not in the zero-order Laue zone"):
        refine_discs(crystal, good, [(1, 1, 1)] * len(DISCS), 0.02, progress=False, **PHYS)
    with pytest.raises(ValueError, match="non-negative counts"):
        refine_discs(crystal, -good, DISCS, 0.02, fom="lsq", progress=False, **PHYS)
    with pytest.raises(ValueError, match="No parameter to refine"):
        refine_discs(crystal, good, DISCS, 0.02, [], progress=False, **PHYS)
    with pytest.raises(ValueError, match="Unknown fom"):
        refine_discs(crystal, good, DISCS, 0.02, fom="chi", progress=False, **PHYS)


@pytest.mark.skipif(not GESN.is_dir(), reason="recorded GeSn data not available")
def test_gesn_subset_refinement_raises_zncc():
    """Five recorded GeSn [1-10] discs binned 15×: refinement beats the unrefined start."""
    import hyperspy.api as hs

    picks = ["+0+0+0", "+0+0+4", "+1+1+1", "+2+2+0", "+1+1+3"]
    discs = np.array([hs.load(GESN / f"GeSn_{p}.dm3").data for p in picks], float)
    data = discs.reshape(5, 10, 15, 10, 15).mean(axis=(2, 4))
    refl = [[int(p[i : i + 2]) for i in (0, 2, 4)] for p in picks]
    res = refine_discs(
        str(GESN / "GeSn.cif"), data, refl, 0.673 / 5, ["thickness", "blur"],
        thickness=1250.0, orientation=(1, False), blur=0.3, thickness_scan=21,
        stages=[Stage(max_iter=15)], progress=False, zone_axis=(1, -1, 0),
        x_direction=(0, 0, -1), surface_normal=(1, -1, 0), absorption="bird-king",
        strong_beams=30,
    )  # fmt: skip
    assert res.mean_zncc > res.mean_zncc_start + 0.01
    # 30 beams are far from converged (bench_gesn: ≥ 120 + 120 Bethe), hence the loose range
    assert 1000 < res.thickness < 1500


def test_supersampled_stage_is_the_block_mean_of_full_resolution():
    """Stage(bin=2, supersample=2) computes the full grid and averages it like the data."""
    from hyperspy_lacbed.analysis.compare import block_mean
    from hyperspy_lacbed.refinement import fom as F
    from hyperspy_lacbed.refinement.driver import Problem

    crystal = load_structure("Si")
    phys = SimulationSettings.from_user(**PHYS)
    fine = BlochModel(crystal, phys, np.array(DISCS), 8, 0.025, thickness=700.0)
    coarse = BlochModel(crystal, phys, np.array(DISCS), 8, 0.025, thickness=700.0)
    x = fine.start_vector()
    want = block_mean(fine.discs(x).numpy(), 2)
    data = np.ones((len(DISCS), 4, 4))
    problem = Problem(coarse, data, data > 0, "zncc", (0, False), 0.0, None, supersample=2)
    got = problem.images(coarse.intensities(x), x).numpy()
    assert np.allclose(got, want, rtol=1e-12, atol=1e-15)
    point = BlochModel(crystal, phys, np.array(DISCS), 4, 0.05, thickness=700.0)
    sampled = point.discs(x).numpy()
    assert np.abs(sampled - want).max() > 1e-3 * want.max()  # point sampling differs
    assert F.disc_mask(4).sum() == 12
