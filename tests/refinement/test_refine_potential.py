"""Physics-refined retrieval: the cGAN potential refined by the Bloch engine (issue 15, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

import hyperspy_lacbed as hl
from hyperspy_lacbed.refinement.potential import (
    coefficients_to_potential,
    potential_coefficients,
    refine_potential,
    zolz_classes,
)
from hyperspy_lacbed.train.metrics import origin_invariant_lmse


@pytest.fixture(scope="module")
def si_pattern():
    kw = hl.model_settings("Si")
    # few explicit beams, so that the 20-beam refinement model can match the pattern
    kw = {k: v for k, v in kw.items() if k not in ("tolerance", "max_beams")}
    kw.update(thickness=1000.0, strong_beams=60, weak_beams=0, pixels=64)
    return hl.simulate("Si", **kw), kw


def test_zolz_classes_are_4mm_orbits_by_order():
    classes = zolz_classes(3)
    assert [len(c) for c in classes[:3]] == [4, 4, 4]  # {100}, {110}, {200}
    assert {tuple(h) for h in classes[0].tolist()} == {
        (1, 0, 0),
        (-1, 0, 0),
        (0, 1, 0),
        (0, -1, 0),
    }
    # every (h, k) with 0 < max(|h|, |k|) <= 3 in exactly one class, Friedel mates together
    flat = [tuple(h) for c in classes for h in c.tolist()]
    assert len(flat) == len(set(flat)) == 7 * 7 - 1
    assert all(
        {(-h, -k, 0) for h, k, _ in c.tolist()} == {tuple(h) for h in c.tolist()} for c in classes
    )
    g2 = [min(h * h + k * k for h, k, _ in c.tolist()) for c in classes]
    assert g2 == sorted(g2)


def test_coefficients_round_trip():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16))
    c = potential_coefficients(img, 7)
    back = coefficients_to_potential(c, 16)
    assert np.allclose(potential_coefficients(back, 7), c)


def test_true_potential_reproduces_the_engine(si_pattern):
    """U_g from the true projected potential reproduce the engine's discs (binned, few beams)."""
    s, kw = si_pattern
    true = hl.projected_potential("Si").data
    a = float(s.metadata.LACBED.settings.structure.lattice_parameters[0])
    dk = s.axes_manager.signal_axes[0].scale
    args = (a, s.data, kw["reflections"], dk, 1000.0)
    phys = {"voltage": kw["voltage"], "x_direction": (1, 0, 0), "strong_beams": 20}
    r = refine_potential(true, *args, max_iter=0, gains=(), **phys)
    # relative mean squared residual; the cGAN start is ~0.02 (test below)
    assert r["fom_before"] < 1e-3
    # and a wrong potential (weaker by half) is far off: the check has power
    assert refine_potential(0.5 * true, *args, max_iter=0, gains=(), **phys)["fom_before"] > 1e-2


@pytest.mark.xfail(
    strict=True,
    reason="known: the v1 inverse already retrieves Si to an origin-invariant ℓMSE of 6e-4; a "
    "6-class U_g refinement lowers the figure of merit but leaves 9.5e-4 (60 beams) to 2.4e-3 "
    "(20 beams). Refining phases and more classes is the open work (issue 15's note).",
)
def test_refined_retrieval_lowers_fom_and_lmse(si_pattern):
    s, _ = si_pattern
    opts = {"n_classes": 6, "max_iter": 40, "strong_beams": 20}
    p0 = s.retrieve_potential(show_progressbar=False)
    p1 = s.retrieve_potential(show_progressbar=False, refine=True, refine_options=opts)
    rec = p1.metadata.ProjectedPotential.settings.refinement
    rec = rec[0] if isinstance(rec, list) else rec
    assert rec["fom_after"] < 0.7 * rec["fom_before"]
    true = hl.projected_potential("Si").data
    before = float(origin_invariant_lmse(p0.data, true))
    after = float(origin_invariant_lmse(p1.data, true))
    assert after <= before
    assert p1.data.shape == p0.data.shape
    assert "Bloch-refined" in p1.metadata.General.title
    assert p0.metadata.get_item("ProjectedPotential.settings.refinement") is None


def test_refine_refuses_a_lazy_pattern(si_pattern):
    s, _ = si_pattern
    with pytest.raises(ValueError, match="in memory"):
        s.as_lazy().retrieve_potential(show_progressbar=False, refine=True)


def test_refine_potential_bad_input():
    img = np.ones((32, 32))
    discs = np.ones((9, 64, 64))
    refl = hl.model_settings("Si")["reflections"]
    with pytest.raises(ValueError, match="NaN"):
        bad = discs.copy()
        bad[0, 0, 0] = np.nan
        refine_potential(img, 5.4, bad, refl, 0.01, 1000.0)
    with pytest.raises(ValueError, match="binning"):
        refine_potential(img, 5.4, discs, refl, 0.01, 1000.0, binning=5)
    with pytest.raises(ValueError, match=r"\(R, D, D\)"):
        refine_potential(img, 5.4, discs[0], refl, 0.01, 1000.0)
