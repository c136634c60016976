"""The ablation harness: variants, same budget, tables; the command end to end on a tiny store."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from helpers import DOMAIN, TINY_D, TINY_G

from hyperspy_lacbed.train.__main__ import main, split_structures
from hyperspy_lacbed.train.ablation import parse_variant, run_ablation
from hyperspy_lacbed.train.dataset import DatasetRecipe, open_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {
    "pix2pixhd": TINY_G,
    "fourier-forward": {"width": 16, "latent": 32, "n_layers": 2},
    "fourier-inverse": {"ngf": 8, "hidden": 64, "n_downsampling": 2},
    "physics-forward": {"width": 16, "latent": 32, "n_layers": 2},
}


def test_variant_names():
    v = parse_variant("fourier+geometry+sym", "forward")
    assert v.architecture == "fourier-forward" and v.data == "realistic"
    assert v.generator == {
        "geometry": True,
        "phase_features": False,
        "symmetrise": True,
        "output": "tanh",
    }
    assert parse_variant("v0", "inverse").data == "random"
    assert parse_variant("v0+realistic", "forward").architecture == "pix2pixhd"
    assert parse_variant("fourier+geometry", "inverse").generator == {"geometry": True}
    amp = parse_variant("fourier+amp", "inverse")
    assert amp.training == {"lambda_amplitude": 10.0} and amp.generator == {"geometry": False}
    for bad, direction, match in [
        ("unet", "forward", "Invalid variant"),
        ("fourier+magic", "forward", "Invalid variant"),
        ("v0+geometry", "forward", "v0 takes only"),
        ("fourier+sym", "inverse", "forward generator"),
        ("fourier+phase", "forward", "needs 'geometry'"),
        ("fourier+amp", "forward", "inverse direction"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_variant(bad, direction)


def test_physics_variant_names():
    a = parse_variant("fourier+geometry+phase+sym+bloch20w40", "forward")
    assert a.architecture == "physics-forward"
    assert (a.generator["physics"], a.generator["strong_beams"], a.generator["weak_beams"]) == (
        "residual",
        20,
        40,
    )
    b = parse_variant("fourier+geometry+bloch10+effective", "forward")
    assert b.generator["physics"] == "effective" and b.generator["weak_beams"] == 0
    for bad, match in [
        ("fourier+geometry+effective", "needs a 'bloch"),
        ("fourier+bloch10+bloch20", "one 'bloch"),
        ("fourier+bloch10+scale", "drop 'scale'"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_variant(bad, "forward")


def test_physics_variants_train_and_score(tiny_arrays, tmp_path):
    """Both ways of putting the Bloch layer in the generator train through the harness."""
    variants = ["fourier+geometry+sym+bloch6+residual", "fourier+geometry+sym+bloch6w4+effective"]
    rep = run_ablation(
        tiny_arrays, tiny_arrays, tmp_path / "abl", variants=variants, minutes=0.01,
        config={"batch_size": 2, "discriminator": TINY_D}, generator=SMALL,
    )  # fmt: skip
    for name in variants:
        r = rep["results"][name]
        assert r["architecture"] == "physics-forward" and r["steps"] >= 1
        assert 0 < r["summary"]["lmse_median"] < 1


def test_in_memory_ablation(tiny_arrays, tmp_path, monkeypatch):
    from hyperspy_lacbed.nets.surrogate import Surrogate

    variants = ["v0+realistic", "fourier+geometry+phase+sym"]
    with pytest.raises(ValueError, match="random_train"):
        run_ablation(tiny_arrays, tiny_arrays, tmp_path, variants=["v0"], minutes=0.01)
    # the variants are scored by the same run of the generator as inference
    run, patterns = Surrogate.run, []
    monkeypatch.setattr(
        Surrogate, "run", lambda self, x, *a, **k: patterns.append(len(x)) or run(self, x, *a, **k)
    )
    rep = run_ablation(
        tiny_arrays,
        tiny_arrays,
        tmp_path / "abl",
        variants=variants,
        minutes=0.01,
        config={"batch_size": 2, "discriminator": TINY_D},
        generator=SMALL,
    )
    for name in variants:
        r = rep["results"][name]
        assert r["steps"] >= 1 and r["train_wall_s"] < 5
        assert {row["family"] for row in r["by_family"]} == {"all", "000", "200", "220"}
        assert 0 < r["summary"]["lmse_median"] < 1 and 0 <= r["summary"]["zmcc_median"] <= 1
    assert rep["results"]["fourier+geometry+phase+sym"]["architecture"] == "fourier-forward"
    assert sum(patterns) == len(variants) * len(tiny_arrays) * len(tiny_arrays.thicknesses)
    with pytest.raises(ValueError, match="harness sets"):
        run_ablation(tiny_arrays, tiny_arrays, tmp_path, variants=variants, config={"steps": 3})


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """A zarr store of the tiny domain made by the generate command: realistic train and
    test splits and a random split (``split_structures.random = {kind = "random"}``)."""
    folder = tmp_path_factory.mktemp("ablation")
    store = folder / "store.zarr"
    dom = ", ".join(
        f"{k} = {list(v) if isinstance(v, tuple) else v}"
        for k, v in DOMAIN.to_dict().items()
        if k in ("disc_pixels", "potential_pixels", "strong_beams", "thicknesses")
    )
    config = folder / "data.toml"
    config.write_text(
        "[dataset]\nseed = 1\nsplits = {train = 3, random = 2, test = 2}\n"
        f"domain = {{{dom}}}\n"
        'structures = {kind = "realistic", random_fraction = 0.2}\n'
        '[dataset.split_structures.random]\nkind = "random"\n'
    )
    assert main(["--config", str(config), "generate", "--store", str(store), "--quiet"]) == 0
    kinds = {
        split: DatasetRecipe.from_dict(dict(open_dataset(store, split).attrs["recipe"]))
        for split in ("train", "random", "test")
    }
    assert {k: r.structure_kind for k, r in kinds.items()} == {
        "train": "realistic",
        "random": "random",
        "test": "realistic",
    }
    return store


def test_fit_command_trains_and_exports_the_physics_informed_generators(tiny_store, tmp_path):
    from hyperspy_lacbed.nets.registry import load_model
    from hyperspy_lacbed.train.loop import load_checkpoint

    for direction in ("forward", "inverse"):
        arch = f"fourier-{direction}"
        config = tmp_path / f"{direction}.toml"
        gen = ", ".join(f"{a} = {b}" for a, b in SMALL[arch].items())
        config.write_text(
            f"[fit]\ngenerator = {{{gen}}}\ndiscriminator = {{ndf = 8, n_layers = 2}}\n"
        )
        out = tmp_path / f"run-{direction}"
        args = ["--config", str(config), "fit", "--store", str(tiny_store), "--direction"]
        args += [direction, "--architecture", arch, "--steps", "3", "--batch-size", "2"]
        assert main([*args, "--out", str(out), "--quiet"]) == 0
        assert load_checkpoint(out)["step"] == 3
        models = tmp_path / "models"
        assert (
            main(["export", "--checkpoint", str(out), "--name", arch, "--models-dir", str(models)])
            == 0
        )
        module, card = load_model(arch, models_dir=models)
        assert card["architecture"]["name"] == arch and type(module).__name__.startswith("Fourier")
    # an architecture of the other direction is refused with a clear message
    bad = ["fit", "--store", str(tiny_store), "--direction", "inverse", "--architecture"]
    assert main([*bad, "fourier-forward", "--out", str(tmp_path / "bad"), "--quiet"]) == 2


def test_ablation_command_end_to_end(tiny_store, tmp_path):
    store = tiny_store
    config = tmp_path / "run.toml"
    config.write_text(
        "[ablation]\nbatch_size = 2\n"
        "config_fit = {discriminator = {ndf = 8, n_layers = 2}}\n"
        "[ablation.generator]\n"
        + "".join(
            f"{k} = {{{', '.join(f'{a} = {b}' for a, b in v.items())}}}\n"
            for k, v in SMALL.items()
        )
    )
    out = tmp_path / "ablation"
    args = ["--config", str(config), "ablation", "--store", str(store), "--random-split"]
    args += ["random", "--minutes", "0.01", "--out", str(out), "--quiet"]
    variants = "v0,v0+realistic,fourier,fourier+geometry+amp"
    assert main([*args, "--variants", variants, "--direction", "inverse"]) == 0
    rep = json.loads((out / "ablation.json").read_text())
    assert rep["direction"] == "inverse" and rep["variants"] == variants.split(",")
    assert rep["results"]["v0"]["data"] == "random"
    assert rep["results"]["v0"]["training_samples"] == 2
    assert rep["results"]["fourier"]["training_samples"] == 3
    amp = rep["results"]["fourier+geometry+amp"]
    assert amp["training"] == {"lambda_amplitude": 10.0} and amp["steps"] >= 1
    assert all(
        r["summary"]["lmse_oi_median"] <= r["summary"]["lmse_median"] + 1e-12
        for r in rep["results"].values()
    )
    rst = (out / "ablation.rst").read_text()
    assert rst.count(".. list-table::") == 2 and "fourier+geometry" in rst
    # a second call reuses the finished variants (same numbers, no training)
    before = (out / "ablation.json").read_text()
    assert main([*args, "--variants", variants, "--direction", "inverse"]) == 0
    assert (
        json.loads((out / "ablation.json").read_text())["results"] == json.loads(before)["results"]
    )
    # another budget retrains (the finished results do not match its settings)
    longer = [a if a != "0.01" else "0.02" for a in args]
    assert main([*longer, "--variants", "v0+realistic", "--direction", "inverse"]) == 0
    again = json.loads((out / "ablation.json").read_text())["results"]["v0+realistic"]
    assert again["settings"]["minutes"] == 0.02
    assert main([*args, "--variants", "v0+sym"]) == 2  # a clear error, not a traceback


def test_a_random_split_in_a_realistic_store():
    common = {"kind": "realistic", "random_fraction": 0.2, "exclude_prototypes": ["garnet"]}
    assert split_structures(common, {"kind": "random"}) == {"kind": "random"}
    held = split_structures(common, {"prototypes": ["garnet"], "exclude_prototypes": []})
    assert held["kind"] == "realistic" and held["random_fraction"] == 0.2
    assert held["exclude_prototypes"] == [] and split_structures(common, {}) == common
    # the merged settings are valid recipes of each kind
    DatasetRecipe(DOMAIN.to_dict(), 2, 0, split_structures(common, {"kind": "random"}), "random")
    DatasetRecipe(DOMAIN.to_dict(), 2, 0, held, "heldout")


def test_physics_ablation_config_names_valid_variants():
    """configs/v2-physics.toml asks for issue 21's set, and every variant of it parses."""
    import tomllib
    from pathlib import Path

    from hyperspy_lacbed.train.ablation import DEFAULT_VARIANTS

    root = Path(__file__).resolve().parents[2]
    opts = tomllib.loads((root / "configs" / "v2-physics.toml").read_text())["ablation"]
    names = DEFAULT_VARIANTS[opts["variants"]]
    parsed = [parse_variant(n, opts["direction"]) for n in names]
    sizes = {
        (v.generator.get("strong_beams", 0), v.generator.get("weak_beams", 0)) for v in parsed
    }
    assert sizes == {(0, 0), (10, 0), (20, 40), (40, 80)}
    assert {v.generator.get("physics") for v in parsed} == {None, "residual", "effective"}
