"""The paper's metrics (8-bit MSE, ZMCC) and the per-family ℓMSE, with known values."""

from __future__ import annotations

import numpy as np
import pytest

from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS
from hyperspy_lacbed.train.evaluate import evaluate_forward, evaluate_inverse
from hyperspy_lacbed.train.metrics import (
    disc_families,
    family_metrics,
    lmse,
    paper_mse,
    stretch_8bit,
    zmcc,
)


def test_stretch_8bit_by_hand():
    x = np.array([[2.0, 4.0], [6.0, 10.0]])
    # (x − 2) / 8 = 0, 0.25, 0.5, 1 → 255 × … = 0, 63.75, 127.5, 255 → 0, 64, 128, 255
    np.testing.assert_array_equal(stretch_8bit(x) * 255, [[0, 64], [128, 255]])
    assert np.array_equal(stretch_8bit(np.full((3, 3), 7.0)), np.zeros((3, 3)))
    # an affine change of the image does not change the 8-bit image
    np.testing.assert_array_equal(stretch_8bit(3 * x - 5), stretch_8bit(x))


def test_paper_mse_and_zmcc_by_hand():
    ref = np.array([[0.0, 1.0], [2.0, 4.0]])  # 8-bit: 0, 64, 128, 255
    pred = np.array([[0.0, 1.0], [2.0, 3.0]])  # 8-bit: 0, 85, 170, 255
    want = ((85 - 64) ** 2 + (170 - 128) ** 2) / 4 / 255**2
    assert paper_mse(pred, ref) == pytest.approx(want, rel=1e-12)
    p, r = np.array([0, 85, 170, 255.0]), np.array([0, 64, 128, 255.0])
    rho = np.corrcoef(p, r)[0, 1]
    assert zmcc(pred, ref) == pytest.approx(0.5 + 0.5 * rho, rel=1e-12)
    # identical images: 0 and 1; an inverted image: ZMCC 0; scale does not matter
    assert paper_mse(ref, ref) == 0 and zmcc(ref, ref) == 1
    assert paper_mse(10 * ref + 3, ref) == 0
    assert zmcc(-pred, pred) == pytest.approx(0.0, abs=1e-12)  # levels 0, 85, 170, 255
    # constant images: ZMCC 1 when both are, 0.5 against a structured image
    flat = np.ones((2, 2))
    assert zmcc(flat, 2 * flat) == 1 and zmcc(flat, ref) == 0.5
    assert paper_mse(flat, ref) == pytest.approx(np.mean(stretch_8bit(ref) ** 2))


def test_families_and_their_lmse_add_up_to_the_pattern_lmse():
    fam = disc_families(DEFAULT_REFLECTIONS)
    assert fam == {"000": [0], "200": [1, 2, 3, 4], "220": [5, 6, 7, 8]}
    assert list(disc_families([(0, 0, 0), (-10, 2, 0)])) == ["000", "10,2,0"]
    rng = np.random.default_rng(1)
    ref = rng.random((3, 2, 9, 8, 8))
    pred = ref + 0.1 * rng.standard_normal(ref.shape)
    m = family_metrics(pred, ref, DEFAULT_REFLECTIONS)
    total = (m["lmse_000"] + 4 * m["lmse_200"] + 4 * m["lmse_220"]) / 9
    np.testing.assert_allclose(total, lmse(pred, ref, axes=(-3, -2, -1)), rtol=1e-12)
    assert m["paper_mse_200"].shape == (3, 2)
    # a perfect prediction of one family only
    good = pred.copy()
    good[..., fam["220"], :, :] = ref[..., fam["220"], :, :]
    g = family_metrics(good, ref, DEFAULT_REFLECTIONS)
    assert np.all(g["lmse_220"] == 0) and np.all(g["paper_mse_220"] == 0)
    assert np.all(g["zmcc_220"] == 1) and np.all(g["lmse_200"] > 0)
    with pytest.raises(ValueError, match="reflections"):
        family_metrics(pred[..., :5, :, :], ref[..., :5, :, :], DEFAULT_REFLECTIONS)


def test_evaluation_reports_carry_the_paper_metrics():
    rng = np.random.default_rng(2)
    n, nt = 4, 2
    discs = rng.random((n, nt, 9, 8, 8))
    pots = rng.random((n, 16, 16))
    res = evaluate_forward(pots, discs, [500.0, 1000.0], np.full(n, 5.0), predictions=discs)
    assert res.families == ["000", "200", "220"]
    for k in ("lmse", "paper_mse", "lmse_200", "paper_mse_220"):
        assert np.all(res.metrics[k] == 0), k
    assert np.all(res.metrics["zmcc_000"] == 1)
    rows = res.by_family()
    assert len(rows) == nt * 4 and {r["family"] for r in rows} == {"all", "000", "200", "220"}
    text = res.markdown()
    assert "disc family" in text and "paper_mse_median" in text
    assert "mean lmse_200" not in text  # family metrics stay out of the wide tables
    # inverse: a shifted, rotated prediction is perfect after alignment
    moved = np.rot90(np.roll(pots, (3, 5), axis=(-2, -1)), axes=(-2, -1))[:, None].repeat(2, 1)
    inv = evaluate_inverse(pots, discs, [500.0, 1000.0], np.full(n, 5.0), predictions=moved)
    assert np.all(inv.metrics["paper_mse"] < 1e-12) and np.allclose(inv.metrics["zmcc"], 1)
    assert np.all(inv.metrics["lmse"] > 1e-3)
    fam = inv.to_dict()["by_family"]
    assert [r["family"] for r in fam] == ["all", "all"] and fam[0]["thickness"] == 500.0
    # the inverse rows carry the origin-invariant ℓMSE: zero here, unlike the plain one
    assert fam[0]["lmse_origin_invariant_median"] < 1e-12 < fam[0]["lmse_median"]
    assert fam[1]["zmcc_mean"] == pytest.approx(1.0)
    want = np.mean(inv.metrics["lmse"][:, 1])
    assert fam[1]["lmse_mean"] == pytest.approx(want, rel=1e-12)


def test_inverse_cases_are_ranked_by_the_origin_invariant_lmse():
    rng = np.random.default_rng(3)
    pots = rng.random((3, 16, 16))
    discs = rng.random((3, 1, 9, 8, 8))
    pred = pots.copy()
    pred[0] = np.roll(pots[0], 5, axis=-1)  # shifted only: worst plain, perfect invariant
    pred[1] = pots[1] + 0.05 * rng.standard_normal((16, 16))
    pred[2] = pots[2] + 0.01 * rng.standard_normal((16, 16))
    inv = evaluate_inverse(pots, discs, [500.0], np.full(3, 5.0), predictions=pred[:, None])
    assert inv.cases(0) == {"best": 0, "median": 2, "worst": 1}
    assert inv.cases(0, metric="lmse") == {"best": 2, "median": 1, "worst": 0}
    with pytest.raises(ValueError, match="No metric"):
        inv.cases(0, metric="zmcc_000")
