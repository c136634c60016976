"""The training loop: losses go down, exact resume, wall-clock budget, export to the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import DOMAIN, TINY_D, TINY_G  # noqa: E402

import hyperspy_lacbed as hl  # noqa: E402
from hyperspy_lacbed.nets import registry  # noqa: E402
from hyperspy_lacbed.nets.architectures import (  # noqa: E402
    build_generator,
    generator_kwargs,
)
from hyperspy_lacbed.nets.domain import Domain  # noqa: E402
from hyperspy_lacbed.nets.normalisation import Encoding  # noqa: E402
from hyperspy_lacbed.train.loop import (  # noqa: E402
    ArrayDataset,
    TrainConfig,
    _encode,
    _item_arrays,
    export,
    fit,
    load_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tiny_arrays) -> ArrayDataset:
    """Bloch-wave discs and potentials of four example crystals on a tiny domain."""
    return tiny_arrays


def config(tmp_path, name="run", **kw) -> TrainConfig:
    # The tiny pix2pixHD, without the recipe's amplitude loss: cheap and the same in both
    # directions (the recipe's own defaults are tested in test_train_config).
    base = {
        "direction": "forward",
        "architecture": "pix2pixhd",
        "lambda_amplitude": 0.0,
        "generator": TINY_G,
        "discriminator": TINY_D,
        "batch_size": 4,
        "steps": 4,
        "checkpoint_every": 2,
        "log_every": 1,
        "lr": 2e-3,
        "seed": 3,
        "out_dir": str(tmp_path / name),
    }
    base.update(kw)
    return TrainConfig(**base)


def _fixed_batch(dataset, direction):
    enc = Encoding.for_domain(DOMAIN)
    rng = np.random.default_rng(0)
    xs, cs, ys = zip(
        *(_encode(direction, enc, *_item_arrays(dataset[i], 0, rng)) for i in range(len(dataset))),
        strict=True,
    )
    return tuple(torch.from_numpy(np.stack(v)) for v in (xs, cs, ys))


def _l1(G, batch) -> float:
    x, c, y = batch
    with torch.no_grad():
        return float(torch.nn.functional.l1_loss(G(x, c), y))


#: Small physics-informed generators (the tiny pix2pixHD is TINY_G).
SMALL_PI = {
    "fourier-forward": {"width": 16, "latent": 32, "n_layers": 2},
    "fourier-inverse": {"ngf": 8, "hidden": 64, "n_downsampling": 2},
}


@pytest.mark.parametrize(
    "direction, arch",
    [
        ("forward", "pix2pixhd"),
        ("inverse", "pix2pixhd"),
        ("forward", "fourier-forward"),
        ("inverse", "fourier-inverse"),
    ],
)
def test_loss_goes_down_export_load_generate(dataset, tmp_path, direction, arch):
    small = SMALL_PI.get(arch, TINY_G)
    cfg = config(
        tmp_path,
        direction=direction,
        architecture=arch,
        generator=small,
        steps=25,
        checkpoint_every=25,
        log_every=5,
    )
    batch = _fixed_batch(dataset, direction)
    torch.manual_seed(cfg.seed)  # fit initialises the generator from this seed
    G0 = build_generator(arch, generator_kwargs(direction, DOMAIN, small, arch)).eval()
    res = fit(dataset, cfg, val_dataset=dataset, show_progressbar=False)
    assert res["step"] == 25 and res["stopped"] == "steps"
    want = {"val_lmse", "val_lmse_median"}
    if direction == "inverse":
        want |= {"val_lmse_origin_invariant", "val_lmse_origin_invariant_median"}
    assert set(res["val"]) == want
    G = build_generator(arch, generator_kwargs(direction, DOMAIN, small, arch))
    G.load_state_dict(load_checkpoint(cfg.out_dir)["generator"])
    G.eval()
    before, after = _l1(G0, batch), _l1(G, batch)
    assert after < 0.8 * before, (before, after)

    folder = export(
        cfg.out_dir, tmp_path / "models", f"tiny-{direction}", extra_card={"default": True}
    )
    card = json.loads((folder / "card.json").read_text())
    assert card["sha256"] == registry.sha256_file(folder / registry.MODEL_FILE)
    assert card["direction"] == direction and card["default"] is True
    assert card["architecture"]["name"] == arch
    assert Domain.from_dict(card["domain"]) == DOMAIN
    assert card["training"]["steps_done"] == 25 and card["training"]["lr"] == 2e-3
    assert card["training"]["epochs"] == 25.0  # 25 steps of 4 samples over 4 structures
    assert card["dataset"]["kind"] == "in-memory" and "val_lmse" in card["metrics"]
    assert Encoding.from_dict(card["normalisation"]) == Encoding.for_domain(DOMAIN)
    with pytest.raises(FileExistsError):
        export(cfg.out_dir, tmp_path / "models", f"tiny-{direction}")

    module, loaded = registry.load_model(
        "default", direction=direction, models_dir=tmp_path / "models"
    )
    assert loaded["name"] == f"tiny-{direction}" and not module.training
    if direction == "forward":
        s = hl.generate("GaAs", model="default", models_dir=tmp_path / "models")
        assert s.data.shape == (2, 9, 16, 16) and s.metadata.LACBED.source == "cgan"
    else:
        s = hl.simulate("GaAs", **DOMAIN.simulation_kwargs(5.6533))
        p = s.retrieve_potential(model="default", models_dir=tmp_path / "models")
        assert p.data.shape == (2, 32, 32)


def test_exact_resume(dataset, tmp_path):
    whole = fit(dataset, config(tmp_path, "whole", steps=4), show_progressbar=False)
    fit(dataset, config(tmp_path, "split", steps=2), show_progressbar=False)
    half = load_checkpoint(tmp_path / "split")
    assert half["step"] == 2
    resumed = fit(dataset, config(tmp_path, "split", steps=4), show_progressbar=False)
    assert whole["step"] == resumed["step"] == 4
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    for part in ("generator", "discriminator"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for k, v in a["opt_g"]["state"].items():
        assert torch.equal(v["exp_avg"], b["opt_g"]["state"][k]["exp_avg"])
    assert torch.equal(a["rng_torch"], b["rng_torch"])
    steps = [json.loads(line)["step"] for line in open(resumed["log"])]
    assert steps == [1, 2, 3, 4]  # no duplicate lines after the resume
    # the settings that shape the model cannot change on resume
    with pytest.raises(ValueError, match="Cannot resume"):
        fit(dataset, config(tmp_path, "split", steps=6, seed=4), show_progressbar=False)


def test_hours_budget_and_items(dataset, tmp_path):
    res = fit(dataset, config(tmp_path, "budget", steps=50, hours=1e-9), show_progressbar=False)
    assert res["stopped"] == "hours" and res["step"] == 1  # one step per call, then stop
    assert load_checkpoint(tmp_path / "budget")["step"] == res["step"]
    # items with all thicknesses, or one: one thickness is used per sample
    item = dataset[1]
    pot, discs, t, _ = _item_arrays(item, 1, np.random.default_rng(0))
    assert pot.shape == (32, 32) and discs.shape == (9, 16, 16) and t == 1000.0
    single = {**item, "discs": item["discs"][0], "thickness": 500.0}
    assert _item_arrays(single, None, np.random.default_rng(0))[2] == 500.0
    cfg = config(tmp_path)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="direction"):
        TrainConfig(direction="sideways")


def test_amplitude_loss_is_origin_invariant(dataset, tmp_path):
    from hyperspy_lacbed.train.loop import amplitude_loss

    enc = Encoding.for_domain(DOMAIN)
    v = np.stack([dataset[i]["potential"][0] for i in range(3)])
    y = torch.from_numpy(enc.encode_potential(v, canonical=False))[:, None]
    moved = torch.roll(y, (5, -9), dims=(-2, -1))
    assert float(amplitude_loss(moved, y, enc)) < 1e-5
    other = torch.roll(y, 1, dims=0)  # another crystal
    assert float(amplitude_loss(other, y, enc)) > 1e-3  # vs < 1e-5 for a translation
    cfg = config(
        tmp_path,
        direction="inverse",
        architecture="fourier-inverse",
        generator=SMALL_PI["fourier-inverse"],
        lambda_amplitude=10.0,
        steps=2,
    )
    res = fit(dataset, cfg, show_progressbar=False)
    assert res["last"]["loss_amp"] > 0
    with pytest.raises(ValueError, match="lambda_amplitude"):
        TrainConfig(direction="forward", lambda_amplitude=1.0)


def test_validation_logs_the_cards_metric_through_the_inference_path(
    dataset, tmp_path, monkeypatch
):
    """The logged val_lmse is metrics.lmse of each pattern, run by Surrogate.run."""
    from hyperspy_lacbed.nets.surrogate import Surrogate
    from hyperspy_lacbed.train.evaluate import dataset_arrays
    from hyperspy_lacbed.train.loop import checkpoint_surrogate
    from hyperspy_lacbed.train.metrics import lmse

    run, patterns = Surrogate.run, []

    def counted(self, x, *args, **kwargs):
        patterns.append(len(x))
        return run(self, x, *args, **kwargs)

    monkeypatch.setattr(Surrogate, "run", counted)
    cfg = config(tmp_path, steps=2, checkpoint_every=2)
    res = fit(dataset, cfg, val_dataset=dataset, show_progressbar=False)
    n_t = len(dataset.thicknesses)
    assert sum(patterns) == len(dataset) * n_t  # every sample at every thickness
    monkeypatch.setattr(Surrogate, "run", run)
    arrays = dataset_arrays(dataset)
    surrogate = checkpoint_surrogate(cfg.out_dir)
    pred = surrogate.forward_discs(
        arrays["potentials"], arrays["lattice_parameters"], arrays["thicknesses"]
    )
    per_pattern = lmse(pred, arrays["discs"], axes=(-3, -2, -1))  # the forward card's ℓMSE
    assert per_pattern.shape == (len(dataset), n_t)
    assert res["val"]["val_lmse"] == pytest.approx(float(per_pattern.mean()), rel=1e-5)
    assert res["val"]["val_lmse_median"] == pytest.approx(float(np.median(per_pattern)), rel=1e-5)
    logged = [json.loads(line) for line in open(res["log"])]
    assert logged[-1] == {"step": 2, **res["val"]}
