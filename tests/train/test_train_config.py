"""The shipped v1 training config: one file for the data and both trainings."""

from pathlib import Path

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.train.__main__ import _config, fit_table

V1 = Path(__file__).resolve().parents[2] / "configs" / "v1.toml"


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
    assert "max_beams" not in Domain().simulation_kwargs(5.43)
    assert Domain.from_dict(domain.to_dict()) == domain
