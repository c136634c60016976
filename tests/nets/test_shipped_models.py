"""The shipped default surrogates: complete cards, verified weights, reproducible numbers.

The cards hold what was measured when the models were exported
(``tools/finalise_models.py``). These tests recompute a part of it from nothing but the
package and ``../shared``: the first samples of the held-out test split (regenerated
from the card's recipe, which is deterministic) and a real crystal never trained on.
"""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import ROOT, SHARED, needs_shared  # noqa: E402

import hyperspy_lacbed as hl  # noqa: E402
from hyperspy_lacbed.nets import registry  # noqa: E402
from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS, Domain  # noqa: E402

#: Relative agreement of recomputed and recorded ℓMSE (another CPU or BLAS build changes
#: the last bits of the network's arithmetic, not the metric's first digits).
RTOL = 0.05


def _card(direction: str) -> dict:
    return registry.read_card(registry.resolve_model("default", direction))


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


#: The recipe of the shipped v1 models.
V1 = ROOT / "configs" / "v1.toml"


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_card_is_complete_and_weights_verified(direction):
    card = _card(direction)
    folder = registry.resolve_model("default", direction)
    weights = folder / registry.MODEL_FILE
    assert card["default"] is True and card["direction"] == direction
    assert registry.sha256_file(weights) == card["sha256"]
    assert weights.stat().st_size < 20 * 2**20, "issue 13: at most 20 MB of weights"
    # The domain of configs/v1.toml, which the card's recipe reproduces.
    recipe = tomllib.loads(V1.read_text())["dataset"]
    dom = Domain.from_dict(card["domain"])
    assert dom == Domain.from_dict({**Domain().to_dict(), **recipe["domain"]})
    assert dom.crystal_system == "cubic" and dom.zone_axis == (0, 0, 1)
    assert dom.voltage == 200e3 and dom.thicknesses == (500.0, 1000.0, 1500.0, 2000.0)
    assert dom.reflections == DEFAULT_REFLECTIONS
    assert card["dataset"]["seed"] == recipe["seed"] and card["dataset"]["n_train"] > 0
    # What the card must say about its making.
    training = card["training"]
    for key in ("steps_done", "wall_time_s", "hardware", "batch_size", "seed", "lr"):
        assert key in training, key
    assert training["steps_done"] > 0 and training["wall_time_s"] > 0
    # Issue 13's four evaluation sets, the data's own convergence and the targets.
    for split in ("test", "heldout", "random"):
        entry = card["metrics"][split]
        assert entry["n"] == len(entry["per_sample"]["indices"]) > 0, split
        families = {row["family"] for row in entry["by_family"]}
        assert families >= ({"000", "200", "220"} if direction == "forward" else {"all"})
    names = {r["name"] for r in card["metrics"]["real_crystals"]}
    assert {"Si", "GaAs", "NaCl", "Fe_bcc"} <= names
    assert 0 <= card["data_convergence"]["median"] <= card["data_convergence"]["max"]
    assert card["targets"] and all(isinstance(t["met"], bool) for t in card["targets"])


def test_generate_si_with_shipped_weights():
    s = hl.generate("Si", thickness="100 nm", show_progressbar=False)
    d = Domain.from_dict(_card("forward")["domain"]).disc_pixels
    assert s.metadata.LACBED.source == "cgan"
    assert s.metadata.LACBED.model.name == "default-forward"
    assert s.data.shape == (9, d, d)
    assert np.all(np.isfinite(s.data)) and s.data.min() >= 0
    # A pattern with Si's 4mm symmetry: the four 220 discs carry the same intensity.
    i220 = s.data[5:9].sum(axis=(1, 2))
    np.testing.assert_allclose(i220, i220.mean(), rtol=1e-3)


@needs_shared
def test_real_crystal_reproduces_card():
    """Si (never trained on): forward and inverse ℓMSE as recorded in both cards."""
    from hyperspy_lacbed.train.evaluate import evaluate_structures

    (row,) = evaluate_structures([SHARED / "structures" / "Si.cif"])
    fwd = {r["name"]: r for r in _card("forward")["metrics"]["real_crystals"]}["Si"]
    inv = {r["name"]: r for r in _card("inverse")["metrics"]["real_crystals"]}["Si"]
    np.testing.assert_allclose(row["forward"], fwd["forward"], rtol=RTOL)
    np.testing.assert_allclose(row["inverse"], inv["inverse"], rtol=RTOL)
    np.testing.assert_allclose(
        row["inverse_origin_invariant"], inv["inverse_origin_invariant"], rtol=RTOL
    )
    # the paper's metrics come with it: in range, and a perfect 8-bit match would be 0 / 1
    for key in ("forward_paper_mse", "inverse_paper_mse"):
        assert all(0 <= v <= 1 for v in row[key]), key
    for key in ("forward_zmcc", "inverse_zmcc"):
        assert all(0 <= v <= 1 for v in row[key]), key
    assert set(row["forward_families"]) >= {"lmse_000", "paper_mse_200", "zmcc_220"}
    # the reference's own convergence estimate: a fraction of the image maximum
    assert 0 < row["reference_convergence"] < 1


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_test_split_reproduces_card(direction):
    """The two cheapest test structures, regenerated from the card's recipe, score as recorded."""
    from hyperspy_lacbed.nets.surrogate import load_surrogate
    from hyperspy_lacbed.train.dataset import DatasetRecipe, compute_sample
    from hyperspy_lacbed.train.evaluate import (
        evaluate_forward,
        evaluate_inverse,
        surrogate_predictor,
    )

    card = _card(direction)
    test = card["metrics"]["test"]
    recipe = DatasetRecipe.from_dict({**test["recipe"], "domain": card["domain"]})
    per = test["per_sample"]
    rows = np.argsort(per["seconds"])[:2]
    samples = [compute_sample(recipe, int(per["indices"][r])) for r in rows]
    dom = Domain.from_dict(card["domain"])
    evaluate = evaluate_forward if direction == "forward" else evaluate_inverse
    result = evaluate(
        np.stack([s["potential"] for s in samples]),
        np.stack([s["discs"] for s in samples]),
        dom.thicknesses,
        [s["structure"].lattice_parameter for s in samples],
        predict=surrogate_predictor(load_surrogate("default", direction)),
    )
    recorded = np.asarray(per["lmse"])[rows]
    np.testing.assert_allclose(result.lmse, recorded, rtol=RTOL)
    json.dumps(result.to_dict())  # what the CLI writes with --json


def test_cli_generate_then_retrieve_with_shipped_weights(tmp_path):
    """The console commands with no --model: files that HyperSpy reads back."""
    import hyperspy.api as hs

    from hyperspy_lacbed.cli import main

    assert (
        main(["generate", "NaCl", "--thickness", "100 nm", "--out", str(tmp_path), "--quiet"]) == 0
    )
    s = hs.load(tmp_path / "NaCl_cgan.hspy")
    assert type(s).__name__ == "LACBED" and s.metadata.LACBED.model.name == "default-forward"
    assert (tmp_path / "NaCl_cgan_montage.png").stat().st_size > 1000
    assert main(["retrieve", str(tmp_path / "NaCl_cgan.hspy"), "--out", str(tmp_path)]) == 0
    pot = hs.load(tmp_path / "NaCl_cgan_potential.hspy")
    assert type(pot).__name__ == "ProjectedPotential" and pot.data.shape == (128, 128)
    assert np.isfinite(pot.data).all()
    assert pot.axes_manager[0].units == "Å"
