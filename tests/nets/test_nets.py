"""The cGAN surrogates in use: architectures, registry, ``generate``, ``retrieve_potential``.

A tiny domain (16-pixel discs, 32-pixel potentials) and tiny networks trained for a few
steps on Bloch-wave patterns of example crystals stand in for the shipped weights.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import DOMAIN, TINY_D, TINY_G  # noqa: E402

import hyperspy_lacbed as hl  # noqa: E402
from hyperspy_lacbed.crystal.potential import projected_potential_array  # noqa: E402
from hyperspy_lacbed.crystal.structure import load_structure  # noqa: E402
from hyperspy_lacbed.nets import registry  # noqa: E402
from hyperspy_lacbed.nets.architectures import (  # noqa: E402
    ConditionalDiscriminator,
    Pix2PixHDGenerator,
    count_parameters,
)
from hyperspy_lacbed.nets.normalisation import Encoding, canonical_origin  # noqa: E402
from hyperspy_lacbed.nets.surrogate import load_surrogate  # noqa: E402
from hyperspy_lacbed.signals.lacbed import LACBED  # noqa: E402
from hyperspy_lacbed.signals.surrogates import inverse_inputs  # noqa: E402
from hyperspy_lacbed.train.loop import TrainConfig, export, fit  # noqa: E402

#: Largest change of the forward output under whole-pixel cyclic shifts of the input.
#: The potential is moved to a canonical origin before the network, so it is exactly 0.
SHIFT_TOLERANCE = 0.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_arrays):
    """Tiny forward and inverse models, trained a few steps and exported."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("nets")
    ds = tiny_arrays
    out = {"dir": root / "models", "dataset": ds}
    for direction in ("forward", "inverse"):
        cfg = TrainConfig(
            direction=direction,
            architecture="pix2pixhd",  # the tiny pix2pixHD: seconds on a CPU
            lambda_amplitude=0.0,
            generator=TINY_G,
            discriminator=TINY_D,
            batch_size=4,
            steps=8,
            checkpoint_every=8,
            lr=2e-3,
            out_dir=str(root / direction),
        )
        fit(ds, cfg, show_progressbar=False)
        out[direction] = export(root / direction, out["dir"], f"tiny-{direction}")
    return out


# ----------------------------------------------------------------------------- architecture
def test_default_architectures_shapes_and_size():
    g = Pix2PixHDGenerator()
    assert 2e6 < count_parameters(g) < 6e6  # ~17.5 MB of float32 weights
    g.eval()
    with torch.inference_mode():
        y = g(torch.zeros(2, 1, 128, 128), torch.zeros(2, 2))
        assert y.shape == (2, 9, 64, 64)
        inv = Pix2PixHDGenerator(9, 1, 64, 128, padding_in="reflect", padding_out="circular")
        assert inv.eval()(torch.zeros(1, 9, 64, 64), torch.zeros(1, 2)).shape == (1, 1, 128, 128)
        d = ConditionalDiscriminator(1, 9)
        feats = d(torch.zeros(1, 1, 128, 128), torch.zeros(1, 2), y[:1])
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert feats[1][-1].shape[-1] < feats[0][-1].shape[-1]
    with pytest.raises(ValueError, match="conditioning"):
        g(torch.zeros(1, 1, 128, 128), None)


def test_encoding_round_trip():
    enc = Encoding.for_domain(DOMAIN)
    v = np.linspace(5, 3000, 32 * 32).reshape(32, 32)
    np.testing.assert_allclose(enc.decode_potential(enc.encode_potential(v, False)), v, rtol=1e-5)
    i = np.linspace(0, 1, 100)
    np.testing.assert_allclose(enc.decode_discs(enc.encode_discs(i)), i, atol=1e-6)
    lo, hi = DOMAIN.lattice_parameter_range
    c = enc.encode_conditioning([lo, hi], [500.0, 1000.0])
    np.testing.assert_allclose(c, [[-1, -1], [1, 1]])
    assert Encoding.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc


def test_canonical_origin_is_shift_invariant():
    for name in ("Si", "NaCl", "SrTiO3", "CsCl"):
        img, _ = projected_potential_array(load_structure(name), (0, 0, 1), None, (32, 32))
        ref, _ = canonical_origin(img)
        # a maximum (of symmetry-equivalent ones) on the centre pixel
        assert ref[16, 16] >= ref.max() - 1e-4 * np.ptp(ref)
        for shift in ((1, 0), (0, 5), (7, 13), (31, 31)):
            got, _ = canonical_origin(np.roll(img, shift, axis=(0, 1)))
            np.testing.assert_array_equal(got, ref)


# ----------------------------------------------------------------------------- registry
def test_list_models_and_default(models, tmp_path):
    listed = registry.list_models(models["dir"])
    names = [m["name"] for m in listed]
    assert {"tiny-forward", "tiny-inverse"} <= set(names)
    text = repr(listed)
    assert "tiny-forward" in text and "cubic [001] 200 kV" in text
    empty = registry.ModelList()
    assert "No pretrained" in repr(empty) and "train" in repr(empty)

    # "default" resolves to the card that declares itself default for its direction
    dst = tmp_path / "m" / "my-forward"
    shutil.copytree(models["forward"], dst)
    card = json.loads((dst / "card.json").read_text())
    card["default"] = True
    (dst / "card.json").write_text(json.dumps(card))
    assert registry.resolve_model("default", "forward", tmp_path / "m") == dst
    with pytest.raises(ValueError, match="forward model"):
        registry.resolve_model(dst, "inverse")


def test_no_default_model_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "model_dirs", lambda models_dir=None: [tmp_path])
    with pytest.raises(
        FileNotFoundError, match="No pretrained forward model.*hyperspy_lacbed.train"
    ):
        hl.generate("Si")
    with pytest.raises(FileNotFoundError, match="No model named 'nope'"):
        registry.load_model("nope")
    assert len(hl.list_models()) == 0


def test_sha256_mismatch_is_refused(models, tmp_path):
    dst = tmp_path / "tampered"
    shutil.copytree(models["forward"], dst)
    module, card = registry.load_model(dst)
    assert not module.training and card["direction"] == "forward"
    weights = dst / registry.MODEL_FILE
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="SHA-256"):
        registry.load_model(dst)
    with pytest.raises(ValueError, match="SHA-256"):
        hl.generate("Si", model=dst)


def test_unknown_architecture_is_refused(models, tmp_path):
    dst = tmp_path / "alien"
    shutil.copytree(models["forward"], dst)
    card = json.loads((dst / "card.json").read_text())
    card["architecture"]["name"] = "unet9000"
    (dst / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="Unknown architecture 'unet9000'"):
        registry.load_model(dst)


# ----------------------------------------------------------------------------- forward
def test_generate_matches_simulate_layout(models):
    s = hl.generate("Si", model=models["forward"])
    sim = hl.simulate("Si", **DOMAIN.simulation_kwargs(load_structure("Si").lattice_parameters[0]))
    assert type(s) is LACBED and s.data.shape == sim.data.shape == (2, 9, 16, 16)
    assert s.metadata.LACBED.source == "cgan"
    card = registry.read_card(models["forward"])
    assert s.metadata.LACBED.model.sha256 == card["sha256"]
    assert s.metadata.LACBED.model.name == "tiny-forward"
    assert s.reflections == sim.reflections
    np.testing.assert_allclose(s.g_vectors, sim.g_vectors)
    np.testing.assert_allclose(s.thicknesses, sim.thicknesses)
    for a, b in zip(s.axes_manager._axes, sim.axes_manager._axes, strict=True):
        assert (a.name, a.units, a.size) == (b.name, b.units, b.size)
        assert a.scale == pytest.approx(b.scale) and a.offset == pytest.approx(b.offset)
    assert s.convergence_angle == pytest.approx(sim.convergence_angle)
    sim_keys = set(sim.metadata.LACBED.settings.as_dictionary())
    assert sim_keys <= set(s.metadata.LACBED.settings.as_dictionary())
    diff = s - sim  # comparable with one subtraction
    assert np.all(np.isfinite(diff.data))
    assert np.all(s.data >= 0) and np.all(s.data <= 1)


def test_generate_lists_single_thickness_and_domain_errors(models):
    m = models["forward"]
    out = hl.generate(["Si", "Al"], thickness="50 nm", model=m)
    assert [x.data.shape for x in out] == [(9, 16, 16)] * 2
    assert out[1].metadata.Sample.thickness == [500.0]
    sub = hl.generate("Si", thickness=[500, 1000], model=m, reflections=[[2, 0, 0], [0, 2, 0]])
    assert sub.reflections == [(0, 0, 0), (2, 0, 0), (0, 2, 0)]

    from diffpy.structure import Atom, Lattice, Structure

    tetragonal = Structure([Atom("Si", [0, 0, 0])], lattice=Lattice(4, 4, 6, 90, 90, 90))
    with pytest.raises(ValueError, match="not cubic"):
        hl.generate(tetragonal, model=m)
    with pytest.raises(ValueError, match="Zone axis"):
        hl.generate("Si", model=m, zone_axis=[1, 1, 0])
    with pytest.raises(ValueError, match="300 keV"):
        hl.generate("Si", model=m, voltage="300 kV")
    with pytest.raises(ValueError, match=r"reflections \[\[4, 0, 0\]\]"):
        hl.generate("Si", model=m, reflections=[[4, 0, 0]])
    with pytest.raises(ValueError, match="outside"):
        hl.generate("Si", model=m, thickness="500 nm")
    with pytest.raises(ValueError, match="inverse model"):
        hl.generate("Si", model=models["inverse"])


def _potential_stack(n: int, lazy: bool = False):
    base, _ = projected_potential_array(load_structure("GaAs"), (0, 0, 1), None, (32, 32))
    rng = np.random.default_rng(0)
    stack = np.stack(
        [
            np.roll(base, tuple(rng.integers(0, 32, 2)), (0, 1)) * rng.uniform(0.5, 2)
            for _ in range(n)
        ]
    )
    p = hl.projected_potential("GaAs", shape=(32, 32))
    from hyperspy_lacbed.signals.potential import ProjectedPotential

    s = ProjectedPotential.from_array(
        stack.reshape(4, n // 4, 32, 32),
        extent=p.cell_extent,
        zone_axis=[0, 0, 1],
        x_direction=[1, 0, 0],
        lattice_parameters=p.lattice_parameters,
    )
    first = s.axes_manager._axes[0]  # array axis 0
    first.name, first.scale, first.units = "dose", 2.5, "e"
    return s.as_lazy() if lazy else s


def test_forward_periodicity(models):
    """Cyclic whole-pixel shifts of the potential leave the forward output unchanged."""
    sur = load_surrogate(models["forward"], "forward")
    p = hl.projected_potential("SrTiO3", shape=(32, 32))
    ref = p.generate_lacbed(model=sur).data
    worst = 0.0
    for shift in ((1, 0), (0, 3), (5, 11), (16, 16), (31, 1)):
        q = p.deepcopy()
        q.data = np.roll(q.data, shift, axis=(0, 1))
        worst = max(worst, float(np.abs(q.generate_lacbed(model=sur).data - ref).max()))
    assert worst <= SHIFT_TOLERANCE
    # Without the canonical origin the network alone is only approximately invariant.
    enc = sur.encoding
    x = [
        enc.encode_potential(np.roll(p.data, s, (0, 1)), canonical=False) for s in ((0, 0), (1, 0))
    ]
    cond = enc.encode_conditioning([3.905] * 2, [500.0] * 2)
    raw = sur.run(np.stack(x)[:, None], cond)
    assert np.abs(raw[0] - raw[1]).max() > worst
    # another grid is resampled periodically (Fourier) to the model's
    fine = hl.projected_potential("SrTiO3", shape=(64, 64)).generate_lacbed(model=sur)
    np.testing.assert_allclose(fine.data, ref, atol=0.02 * ref.max())


def test_forward_stack_lazy_equals_eager(models):
    m = models["forward"]
    eager = _potential_stack(20).generate_lacbed(model=m)
    assert eager.data.shape == (4, 5, 2, 9, 16, 16)
    ax = eager.axes_manager._axes[0]
    assert (ax.name, ax.scale, ax.units) == ("dose", 2.5, "e")
    assert [a.name for a in eager.axes_manager._axes[2:]] == [
        "thickness",
        "reflection",
        "ky",
        "kx",
    ]
    lazy = _potential_stack(20, lazy=True).generate_lacbed(model=m)
    assert lazy._lazy
    np.testing.assert_array_equal(lazy.data.compute(), eager.data)
    # larger than one batch: 20 potentials × 2 thicknesses in batches of 6 network passes
    small = _potential_stack(20).generate_lacbed(model=m, batch_size=6)
    np.testing.assert_allclose(small.data, eager.data, rtol=1e-5, atol=1e-6)
    lazy_small = _potential_stack(20, lazy=True).generate_lacbed(model=m, batch_size=6)
    assert lazy_small.data.numblocks[0] > 1
    np.testing.assert_allclose(lazy_small.data.compute(), eager.data, rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="interpolates"):
        single = _potential_stack(20).generate_lacbed(thickness=750, model=m)
    assert single.data.shape == (4, 5, 9, 16, 16)


# ----------------------------------------------------------------------------- inverse
@pytest.fixture(scope="module")
def patterns(models):
    return hl.generate("Si", model=models["forward"])


@pytest.fixture(scope="module")
def one(models):
    return hl.generate("Si", thickness=500.0, model=models["forward"])


def _disc_kwargs(s: LACBED, **kw) -> dict:
    out = {
        "reflections": s.metadata.LACBED.reflections,
        "g_vectors": s.g_vectors,
        "thickness": 500.0,
        "dk": s.axes_manager["kx"].scale,
        "voltage": 200e3,
        "zone_axis": [0, 0, 1],
        "source": "experiment",
    }
    out.update(kw)
    return out


def test_retrieve_potential_shapes_and_metadata(models, patterns, one):
    p = patterns.retrieve_potential(model=models["inverse"])
    assert type(p).__name__ == "ProjectedPotential"
    assert p.data.shape == (2, 32, 32) and np.all(np.isfinite(p.data))
    assert p.axes_manager._axes[0].name == "thickness"
    a = load_structure("Si").lattice_parameters[0]
    assert p.cell_extent == pytest.approx((a, a))
    card = registry.read_card(models["inverse"])
    assert p.metadata.ProjectedPotential.settings.model.sha256 == card["sha256"]
    # one thickness; the lattice parameter from the g vectors alone
    bare = one.deepcopy()
    bare.metadata.LACBED.settings = {}
    q = bare.retrieve_potential(model=models["inverse"])
    assert q.data.shape == (32, 32)
    np.testing.assert_allclose(q.data, p.data[0], rtol=1e-5)
    with pytest.raises(ValueError, match="ambiguous"):
        patterns.inav[:, 0].retrieve_potential(model=models["inverse"])
    sliced = patterns.inav[:, 0].retrieve_potential(model=models["inverse"], thickness=500)
    np.testing.assert_allclose(sliced.data, p.data[0], rtol=1e-5)
    # montage in, potential out
    mont = one.to_montage()
    r = mont.retrieve_potential(model=models["inverse"])
    assert r.data.shape == (32, 32) and np.all(np.isfinite(r.data))


def test_retrieve_stack_lazy_equals_eager(models, patterns):
    rng = np.random.default_rng(1)
    base = patterns.data[0]
    data = base[None] * rng.uniform(0.5, 1.5, (20, 1, 1, 1))
    kw = _disc_kwargs(patterns)
    s = LACBED.from_discs(data, **kw)
    eager = s.retrieve_potential(model=models["inverse"])
    lazy = LACBED.from_discs(data, lazy=True, **kw).retrieve_potential(model=models["inverse"])
    assert eager.data.shape == (20, 32, 32) and lazy._lazy
    np.testing.assert_array_equal(lazy.data.compute(), eager.data)
    lazy8 = LACBED.from_discs(data, lazy=True, **kw).retrieve_potential(
        model=models["inverse"], batch_size=8
    )
    assert lazy8.data.numblocks[0] == 3
    np.testing.assert_allclose(lazy8.data.compute(), eager.data, rtol=1e-5, atol=1e-5)


def test_mrad_and_inverse_angstrom_give_the_same_network_input(models, one):
    x1, c1 = inverse_inputs(one, models["inverse"])
    x2, c2 = inverse_inputs(one.to_mrad(), models["inverse"])
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(c1, c2)
    # off the model grid (finer sampling, larger field): resampled through the calibration
    fine = LACBED.from_discs(
        np.ones((9, 40, 40)) * np.linspace(0, 1, 40)[None, None, :],
        **_disc_kwargs(one, dk=one.axes_manager["kx"].scale * 0.45),
    )
    y1, _ = inverse_inputs(fine, models["inverse"])
    y2, _ = inverse_inputs(fine.to_mrad(), models["inverse"])
    assert y1.shape == (9, 16, 16)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    assert np.all(np.diff(y1[0], axis=1) > 0)  # the ramp survives resampling


def test_retrieve_potential_errors(models, one):
    m = models["inverse"]
    wrong_kv = one.deepcopy()
    wrong_kv.set_experimental_parameters(beam_energy=300)
    with pytest.raises(ValueError, match="300 keV"):
        wrong_kv.retrieve_potential(model=m)
    kw = _disc_kwargs(one)
    kw.update(reflections=kw["reflections"][:5], g_vectors=kw["g_vectors"][:5])
    five = LACBED.from_discs(one.data[:5], **kw)
    with pytest.raises(ValueError, match=r"lack the reflections \[\[2, 2, 0\]"):
        five.retrieve_potential(model=m)
    small = one.calibrate(scale=one.axes_manager["kx"].scale / 2)
    with pytest.raises(ValueError, match="convergence angle"):
        small.retrieve_potential(model=m)
    no_t = one.deepcopy()
    del no_t.metadata.Sample.thickness
    with pytest.raises(ValueError, match="thickness is unknown"):
        no_t.retrieve_potential(model=m)
    assert no_t.retrieve_potential(model=m, thickness="50 nm").data.shape == (32, 32)
    with pytest.raises(ValueError, match="outside"):
        one.retrieve_potential(model=m, lattice_parameter=20.0)
    with pytest.raises(ValueError, match="Zone axis"):
        one.set_experimental_parameters(zone_axis=[1, 1, 1], inplace=False).retrieve_potential(
            model=m
        )


def test_retrieve_potential_rejects_bad_intensities(models, one):
    m = models["inverse"]
    for value, match in ((np.inf, "infinite"), (-1.0, "negative")):
        bad = one.deepcopy()
        bad.data[0, 3, 3] = value
        with pytest.raises(ValueError, match=match):
            bad.retrieve_potential(model=m)
    complex_discs = one.deepcopy()
    complex_discs.data = complex_discs.data.astype(complex)
    with pytest.raises(ValueError, match="real numbers"):
        complex_discs.retrieve_potential(model=m)
    # NaN pixels (outside the discs of a montage) count as zero, not as an error.
    holes = one.deepcopy()
    holes.data[0, 0, 0] = np.nan
    assert np.isfinite(holes.retrieve_potential(model=m).data).all()
    assert np.isfinite(one.data).all()  # the input was never modified


def test_command_line_models_generate_and_retrieve(models, one, tmp_path, capsys):
    from hyperspy_lacbed.cli import main

    assert main(["models", "--models-dir", str(models["dir"])]) == 0
    assert "tiny-forward" in capsys.readouterr().out
    fwd = str(models["forward"])
    assert (
        main(
            [
                "generate",
                "Si",
                "--thickness",
                "50 nm",
                "--model",
                fwd,
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "Si_cgan.hspy").is_file()
    assert (tmp_path / "Si_cgan_montage.png").stat().st_size > 1000
    pattern = tmp_path / "pattern.hspy"
    one.save(pattern)
    inv = str(models["inverse"])
    assert main(["retrieve", str(pattern), "--model", inv, "--out", str(tmp_path)]) == 0
    import hyperspy.api as hs

    pot = hs.load(tmp_path / "pattern_potential.hspy")
    assert type(pot).__name__ == "ProjectedPotential"
    # No file is replaced without --overwrite; the reason is one line on stderr.
    capsys.readouterr()
    assert main(["retrieve", str(pattern), "--model", inv, "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
