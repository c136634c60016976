"""Physics-refined retrieval: the cGAN potential refined by the Bloch engine (issue 15, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

import hyperspy_lacbed as hl
from hyperspy_lacbed.refinement.potential import (
    CoefficientBlochModel,
    coefficients_to_potential,
    potential_coefficients,
    refine_potential,
    zolz_classes,
)


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
    fast = {"max_iter": 0, "gains": (), "class_sweeps": 0, "uncertainties": False}
    r = refine_potential(true, *args, **fast, **phys)
    # relative mean squared residual; the cGAN start is ~0.02 (test below)
    assert r["fom_before"] < 1e-3
    # and a wrong potential (weaker by half) is far off: the check has power
    assert refine_potential(0.5 * true, *args, **fast, **phys)["fom_before"] > 1e-2


def _synthetic(perturb: dict[int, float]):
    """Discs made by the retrieval's own model from Si's true potential, and a start whose
    lowest classes are scaled by ``perturb`` {class index: factor}."""
    true = hl.projected_potential("Si", shape=(64, 64)).data
    a = 5.431
    coeff = potential_coefficients(true, 12)
    refl = np.array([(0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0)])
    dk = 0.75 * 2 / a / 4
    classes = [
        c for c in zolz_classes(12) if np.abs(coeff[c[:, 1] + 12, c[:, 0] + 12]).max() > 1e-3
    ]
    model = CoefficientBlochModel(
        coeff, a, classes[:3], refl, 8, dk, thickness=800.0, strong_beams=10, weak_beams=0
    )
    discs = model.discs(model.start_vector()).detach().numpy()
    start = coeff.copy()
    for ci, f in perturb.items():
        for h, k, _ in classes[ci].tolist():
            start[k + 12, h + 12] *= f
    return true, coefficients_to_potential(start, 64), discs, refl, dk, a, coeff, classes


#: the model of the synthetic pattern, fitted by maximum likelihood (no prior) at its
#: own thickness, so that the recovery is exact
FAST = {
    "n_classes": 3,
    "strong_beams": 10,
    "weak_beams": 0,
    "h_max": 12,
    "prior": None,
    "refine_thickness": False,
}


def test_perturbed_start_recovers_the_structure_factors():
    """On a pattern made by the same core, the refinement recovers U_g to 1e-4."""
    _, start, discs, refl, dk, a, coeff, classes = _synthetic({0: 1.04, 1: 0.97})
    r = refine_potential(start, a, discs, refl, dk, 800.0, max_iter=80, **FAST)
    assert r["improved"] and r["fom_after"] < 1e-3 * r["fom_before"]
    for cls in classes[:2]:
        h, k, _ = cls[0]
        got, want = r["coefficients"][k + 12, h + 12], coeff[k + 12, h + 12]
        assert abs(got - want) <= 1e-4 * abs(want), (cls[0], got, want)
    assert all(np.isfinite(v) and v >= 0 for v in r["sigma"].values())


def test_an_exact_start_stays_exact_and_the_fit_never_worsens():
    _, start, discs, refl, dk, a, _, _ = _synthetic({})
    r = refine_potential(start, a, discs, refl, dk, 800.0, max_iter=10, **FAST)
    assert r["fom_after"] <= r["fom_before"] < 1e-20
    assert np.abs(r["potential"] - start).max() <= 1e-6 * np.abs(start).max()


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


def test_the_prior_keeps_the_network_start_where_the_pattern_is_silent():
    """With the prior, a perturbed start moves less than without: a MAP fit, not ML."""
    _, start, discs, refl, dk, a, _, classes = _synthetic({0: 1.04, 1: 0.97})
    ml = refine_potential(start, a, discs, refl, dk, 800.0, max_iter=40, **FAST)
    map_ = refine_potential(
        start, a, discs, refl, dk, 800.0, max_iter=40, **{**FAST, "prior": 1e-2}
    )
    h, k, _ = classes[0][0]
    moved = lambda r: abs(r["coefficients"][k + 12, h + 12] - start_c[k + 12, h + 12])  # noqa: E731
    start_c = potential_coefficients(start, 12)
    assert moved(map_) < moved(ml)
    assert map_["fom_after"] <= map_["fom_before"]  # the pattern fit, without the penalty


def test_no_pattern_determines_the_mean_potential():
    """V₀ (U₀ on the structure matrix's diagonal) puts one phase on every Bloch wave.

    Only the refraction it adds to the wave vector reaches the discs, so a 30 % change
    of the mean potential moves them far less than a 3 % change of one low-order
    coefficient: a retrieval's V₀ is the network's (retrieval_validation.py reports the
    ℓMSE with V₀ from the truth for this reason).
    """
    true = hl.projected_potential("Si", shape=(64, 64)).data
    coeff = potential_coefficients(true, 12)
    refl = np.array([(0, 0, 0), (2, 2, 0), (-2, -2, 0), (4, 0, 0)])
    a = 5.431
    kw = {"thickness": 800.0, "strong_beams": 10, "weak_beams": 10, "absorption_fraction": 0.0}

    def discs(c):
        model = CoefficientBlochModel(c, a, zolz_classes(12)[:1], refl, 8, 0.75 * 2 / a / 4, **kw)
        return model.discs(model.start_vector()).detach().numpy()

    base = discs(coeff)
    shifted = coeff.copy()
    shifted[12, 12] *= 1.3  # the mean potential 30 % higher
    changed = coeff.copy()
    changed[12 + 2, 12 + 2] *= 1.03  # the 220 coefficient, 3 % stronger
    by_v0 = np.abs(discs(shifted) - base).max()
    by_u220 = np.abs(discs(changed) - base).max()
    assert by_u220 > 1e-3 * base.max()
    assert by_v0 < 0.05 * by_u220, (by_v0, by_u220)
