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
    # thickness and B trade off (r ≈ +0.86 over noise seeds: benchmarks/refine_uncertainty.py)
    assert res.correlated_pairs(0.5) == [("thickness", "B[Si]", res.correlation[0, 1])]
    assert ("thickness/B[Si]" in res.summary()) == (abs(res.correlation[0, 1]) > 0.8)
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


@pytest.mark.skipif(not GESN.is_dir(), reason="recorded GeSn data not available")
def test_gesn_default_stages_raise_full_resolution_zncc():
    """Five GeSn discs cropped to 144 px and binned 8×: the stages chosen by default are
    coarse (binned, supersampled) then fine, and the ZNCC measured at the subset's full
    resolution rises, with no warning."""
    import warnings

    import hyperspy.api as hs

    picks = ["+0+0+0", "+0+0+4", "+1+1+1", "+2+2+0", "+1+1+3"]
    discs = np.array([hs.load(GESN / f"GeSn_{p}.dm3").data for p in picks], float)
    data = discs[:, 3:-3, 3:-3].reshape(5, 18, 8, 18, 8).mean(axis=(2, 4))
    refl = [[int(p[i : i + 2]) for i in (0, 2, 4)] for p in picks]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefinementWarning)
        res = refine_discs(
            str(GESN / "GeSn.cif"), data, refl, 8 * 0.673 / 75, ["thickness"], thickness=1250.0,
            orientation=(1, False), blur=0.5, thickness_scan=21, progress=False,
            zone_axis=(1, -1, 0), x_direction=(0, 0, -1), surface_normal=(1, -1, 0),
            absorption="bird-king", strong_beams=20,
        )  # fmt: skip
    assert [(s["bin"], s["supersample"]) for s in res.stages] == [(2, 2), (1, 1)]
    assert res.check["pixels"] == 18 and res.simulated.shape == data.shape
    assert res.check["fom_end"] < res.check["fom_start"]
    assert res.mean_zncc > res.mean_zncc_start + 0.01
    assert 1200 < res.thickness < 1450


def test_default_stages_follow_the_budget():
    """The fine stage stays within 32 × 32 tilts at 60 beams and fewer with more beams; a
    coarse stage is always supersampled and at least twice as coarse; small discs get one
    full-resolution stage."""
    from hyperspy_lacbed.refinement.fit import default_stages, padded_size

    def side(st):
        return padded_size(pixels, st.bin) // st.bin * st.supersample

    for pixels in (16, 30, 50, 100, 150, 168):
        for beams in (20, 60, 120):
            stages = default_stages(pixels, 3.0, beams)
            fine = stages[-1]
            assert fine.supersample == 1 and side(fine) <= (32 if beams <= 60 else 13)
            if beams == 120:
                assert side(fine) <= side(default_stages(pixels, 3.0, 60)[-1])
            for coarse in stages[:-1]:
                assert coarse.supersample == 2 and coarse.bin >= 2 * fine.bin
                assert padded_size(pixels, coarse.bin) // coarse.bin >= 8
    assert [(s.bin, s.supersample) for s in default_stages(12, 3.0, 12)] == [(1, 1)]
    # a long fringe period needs fewer tilts: the fine stage bins more
    assert default_stages(100, 20.0, 60)[-1].bin > default_stages(100, 3.0, 60)[-1].bin


def test_never_worse_than_the_start_without_a_warning():
    """Noise-free data and the truth as the start: a point-sampled 4 × 4 stage moves away,
    the full-resolution check sees it and warns with both figures."""
    crystal, data, dk = synthetic({"thickness": 800.0}, pixels=16, counts=1e12)
    with pytest.warns(RefinementWarning, match="fit worse than the start") as caught:
        res = refine_discs(
            crystal, data, DISCS, dk, ["thickness"], thickness=800.0, thickness_scan=0,
            stages=[Stage(bin=4, max_iter=10)], progress=False, **PHYS,
        )  # fmt: skip
    assert res.check["fom_end"] > res.check["fom_start"]
    assert f"{res.check['fom_start']:.6g}" in str(caught[0].message)
    assert res.values["thickness"] != 800.0


def test_any_bin_pads_the_odd_pixel():
    """A bin that leaves an odd number of pixels (12 / 5, 12 / 3) is accepted: the discs are
    padded with invalid pixels to a whole even grid, centred."""
    from hyperspy_lacbed.refinement.fit import _bin_stack, padded_size

    assert padded_size(100, 4) == 104 and padded_size(12, 5) == 20 and padded_size(12, 3) == 12
    img = np.arange(2 * 12 * 12, dtype=float).reshape(2, 12, 12)
    binned, ok = _bin_stack(img, np.ones(img.shape, bool), 5)
    assert binned.shape == (2, 4, 4)
    # pad of 4 on each side: block (1, 1) holds pixels 1..5 of the original, all valid
    assert ok[0, 1, 1] and binned[0, 1, 1] == pytest.approx(img[0, 1:6, 1:6].mean())
    assert not ok[0, 0, 0] and np.isnan(binned[0, 0, 0])
    crystal, data, dk = synthetic({"thickness": 800.0}, pixels=12)
    res = refine_discs(
        crystal, data, DISCS, dk, ["thickness"], thickness=780.0, fom="lsq", thickness_scan=0,
        stages=[Stage(bin=5, supersample=5, max_iter=10), Stage(bin=3, supersample=3, max_iter=10)],
        disc_shape="square", progress=False, **PHYS,
    )  # fmt: skip
    assert [s["pixels"] for s in res.stages] == [4, 4]
    assert [s["model_pixels"] for s in res.stages] == [20, 12]
    assert abs(res.values["thickness"] - 800.0) < 10.0
    with pytest.raises(ValueError, match="from 1 to 6"):
        refine_discs(crystal, data, DISCS, dk, stages=[Stage(bin=7)], progress=False, **PHYS)
    # inside the circle no 5 × 5 block is whole: said, with the fix
    with pytest.raises(ValueError, match="no binned pixel.*smaller bin"):
        refine_discs(crystal, data, DISCS, dk, stages=[Stage(bin=5)], progress=False, **PHYS)


def test_blur_reaches_a_supersampled_binned_stage():
    """The blur acts on the model's sub-pixels before they are averaged: a σ of one data
    pixel changes a bin-5 stage supersampled 5×, as it changes full resolution."""
    from hyperspy_lacbed.refinement.driver import Problem

    crystal = load_structure("Si")
    model = BlochModel(
        crystal, SimulationSettings.from_user(**PHYS), np.array(DISCS), 20, 0.025, thickness=700.0
    )
    x = model.start_vector()
    inten = model.intensities(x)
    data = np.ones((len(DISCS), 4, 4))
    images = [
        Problem(
            model, data, data > 0, "zncc", (0, False), blur, None, supersample=5, bin=5
        ).images(inten, x).numpy()
        for blur in (0.0, 1.0)
    ]  # fmt: skip
    assert np.abs(images[0] - images[1]).max() > 1e-3 * images[0].max()


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
