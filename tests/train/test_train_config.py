"""The shipped v1 recipe: one file for the data and both trainings, and every default."""

import tomllib
from pathlib import Path

import pytest

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.train import recipe
from hyperspy_lacbed.train.__main__ import _config, _without_machine_keys, fit_table
from hyperspy_lacbed.train.loop import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
V1 = CONFIGS / "v1.toml"
V0 = CONFIGS / "v0.toml"


def test_fit_tables_per_direction():
    forward = fit_table(str(V1), "forward")
    inverse = fit_table(str(V1), "inverse")
    assert forward["architecture"] == "fourier-forward"
    assert inverse["architecture"] == "fourier-inverse"
    assert forward["direction"] == "forward" and inverse["direction"] == "inverse"
    # the common [fit] settings reach both, the store comes from [dataset]
    store = _config(str(V1), "dataset")["store"]
    for table in (forward, inverse):
        assert table["val_split"] == "val"
        assert table["store"] == store
        assert "forward" not in table and "inverse" not in table
    assert forward["out"] != inverse["out"]


def test_domain_beam_budget_reaches_the_engine():
    domain = Domain.from_dict({**Domain().to_dict(), **_config(str(V1), "dataset")["domain"]})
    assert domain.strong_beams is None and domain.tolerance == 0.02
    settings = domain.simulation_settings(5.43)
    assert settings.max_beams == domain.max_beams == 750
    assert settings.pixels == domain.disc_pixels == 32
    # without a budget the engine's own default stays
    assert "max_beams" not in Domain(max_beams=None).simulation_kwargs(5.43)
    assert Domain.from_dict(domain.to_dict()) == domain


def test_recipe_module_is_the_v1_file():
    """One recipe: the module's tables are configs/v1.toml but for one machine's settings."""
    shipped = tomllib.loads(V1.read_text())
    assert _without_machine_keys(shipped) == {"dataset": recipe.DATASET, "fit": recipe.FIT}
    # the left-out settings are folders, cores and hours only
    assert {k for k in shipped["dataset"] if k not in recipe.DATASET} == {"store", "workers"}
    assert {k for k in shipped["fit"]["inverse"] if k not in recipe.FIT["inverse"]} == {
        "out",
        "hours",
    }


def test_domain_defaults_are_the_recipe():
    assert Domain() == Domain.from_dict({**Domain().to_dict(), **recipe.DATASET["domain"]})
    d = Domain()
    assert (d.disc_pixels, d.strong_beams, d.tolerance, d.max_beams) == (32, None, 0.02, 750)
    assert d.lattice_parameter_range == (2.8, 8.1)
    # the shipped models were trained on that domain
    assert Domain.from_dict(_shipped_card_domain()) == Domain()


def _shipped_card_domain() -> dict:
    import json

    card = CONFIGS.parent / "models" / "default-forward" / "card.json"
    return json.loads(card.read_text())["domain"]


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_train_config_defaults_are_the_recipe(direction):
    cfg = TrainConfig(direction=direction)
    want = recipe.fit_defaults(direction)
    for key, value in want.items():
        if key in TrainConfig.__dataclass_fields__:
            assert getattr(cfg, key) == value, key
    assert cfg.architecture == f"fourier-{direction}"
    assert cfg.lambda_amplitude == (10.0 if direction == "inverse" else 0.0)
    # the recipe's generator settings belong to its architecture: not given to another
    other = TrainConfig(direction=direction, architecture="pix2pixhd")
    assert other.generator == {} and other.batch_size == want["batch_size"]
    # explicit values win, and a resolved config survives its JSON form
    cfg = TrainConfig(direction=direction, batch_size=3, lr_decay_after=7, generator={})
    assert (cfg.batch_size, cfg.lr_decay_after, cfg.generator) == (3, 7, {})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_command_line_defaults_to_the_recipe():
    """Without --config: the recipe's tables, less the settings of one machine."""
    inverse = fit_table(None, "inverse")
    assert inverse["architecture"] == "fourier-inverse" and inverse["lambda_amplitude"] == 10.0
    assert inverse["generator"] == {"geometry": False} and inverse["val_split"] == "val"
    assert not {"store", "out", "hours", "threads"} & set(inverse)
    dataset = _config(None, "dataset")
    assert dataset["seed"] == 1 and dataset["structures"]["kind"] == "realistic"
    assert "store" not in dataset and "workers" not in dataset
    dataset["domain"]["disc_pixels"] = 8  # a copy: the recipe itself does not change
    assert recipe.DATASET["domain"]["disc_pixels"] == 32


def test_v0_history_config_still_means_v0():
    """v0.toml spells out what differs from the v1 defaults: 64 px, 60 beams, 3-12 Å."""
    table = _config(str(V0), "dataset")
    domain = Domain.from_dict({**Domain().to_dict(), **table["domain"]})
    assert (domain.disc_pixels, domain.strong_beams, domain.tolerance) == (64, 60, None)
    assert domain.max_beams is None and domain.lattice_parameter_range == (3.0, 12.0)
    assert "tolerance" not in domain.simulation_kwargs(5.43)  # the engine's own
    assert "structures" not in table  # random crystals, as the v0 store's recipe says
    fields = set(TrainConfig.__dataclass_fields__)
    forward = {k: v for k, v in fit_table(str(V0), "forward").items() if k in fields}
    cfg = TrainConfig(**forward)
    assert (cfg.architecture, cfg.generator, cfg.lambda_amplitude) == ("pix2pixhd", {}, 0.0)
    assert V0.read_text().startswith("# HISTORY")
