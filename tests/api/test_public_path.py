"""Every public entry point, called exactly as a user calls it.

``hl.simulate`` / ``hl.generate`` / ``hl.load_structure`` / ``hl.projected_potential`` /
``hl.list_models`` / ``hl.model_settings``, the ``LACBED`` methods on what ``simulate``
returns, and each ``hyperspy-lacbed`` subcommand through ``hyperspy_lacbed.cli.main``.
No private helper is called here: a defect a user meets must fail a test in this file.
The surrogate tests use the shipped default models, as a user would.
"""

from __future__ import annotations

import json

import hyperspy.api as hs
import numpy as np
import pytest
from helpers import REFERENCE, SI_DIAMOND_ATOMS, needs_shared, p1_cif

import hyperspy_lacbed as hl
from hyperspy_lacbed.cli import main

#: Cu [001]: 000, the 200 and the 220 shells are the 9 shortest reflections of the pool.
CU_POOL = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0]]
CU_POOL += [[2, 2, 0], [2, -2, 0], [-2, 2, 0], [-2, -2, 0]]


def _disc_pixels() -> int:
    """Disc size of the shipped models (their card's domain)."""
    from hyperspy_lacbed.nets import registry

    card = registry.read_card(registry.resolve_model("default", "forward"))
    return int(card["domain"]["disc_pixels"])


def si_p1_cif(
    atoms: list[tuple[str, float, float, float]], a: float = 5.4307, c: float | None = None
):
    """A CIF with a cell and every atom listed (B of the shipped Si.cif), no symmetry."""
    rows = [f"{el}{i} {el} {x} {y} {z} 0.46" for i, (el, x, y, z) in enumerate(atoms)]
    return p1_cif(rows, a, c=c, columns=("B_iso_or_equiv",), name="p1_cell")


#: Diamond Si as a P1 cell, with the B of the shipped Si.cif.
SI_P1 = si_p1_cif(SI_DIAMOND_ATOMS)
#: Two atoms in a square prism: tetragonal, P4/mmm, whatever the cell lengths.
TETRAGONAL_P1 = si_p1_cif([("Si", 0, 0, 0), ("Si", 0.5, 0.5, 0)], a=4.0)


def _normalised(s, absorbing: bool) -> None:
    """Physical check: finite, non-negative and no more intensity than came in.

    The bound holds with the mean absorption U'_0 on the diagonal (the default physics):
    the absorptive potential is then non-negative and the intensity cannot grow. Felix's
    conventions (``preset="felix"``) leave U'_0 out, and the off-diagonal absorption
    alone can add a little intensity at some tilts (1.007 on Si [001] at 50 nm).
    """
    data = np.asarray(s.data)
    assert np.isfinite(data).all() and (data >= -1e-6).all()
    total = data.sum(axis=-3)  # over the reflection axis
    bound = 1 + 1e-4 if s.metadata.LACBED.settings.mean_absorption else 1.05
    assert (total <= bound).all()
    if not absorbing:
        assert total.max() > 0.2


# ----------------------------------------------------------------------------- defect 2
@pytest.fixture(scope="module")
def cgan_si():
    """``hl.generate("Si", thickness="100 nm")``: a pattern the default inverse model reads."""
    return hl.generate("Si", thickness="100 nm")


def test_retrieve_potential_refuses_nan_patterns(cgan_si):
    empty = cgan_si.deepcopy()
    empty.data[:] = np.nan
    with pytest.raises(ValueError, match="NaN in every pixel"):
        empty.retrieve_potential()
    hole = cgan_si.deepcopy()
    c = hole.data.shape[-1] // 2
    hole.data[0, c, c] = np.nan  # the centre of the 000 disc
    with pytest.raises(ValueError, match="1 NaN values inside the model's disc"):
        hole.retrieve_potential()
    one_empty = hs.stack([cgan_si, empty])  # a stack in which one pattern is empty
    one_empty.set_signal_type("LACBED")
    with pytest.raises(ValueError, match="1 of the 2 discs|of the .* discs are NaN"):
        one_empty.retrieve_potential()
    # NaN in a corner, outside every disc (as a cut montage has), counts as 0
    corner = cgan_si.deepcopy()
    corner.data[:, 0, 0] = np.nan
    zero = cgan_si.deepcopy()
    zero.data[:, 0, 0] = 0.0
    np.testing.assert_allclose(corner.retrieve_potential().data, zero.retrieve_potential().data)
    assert np.isnan(corner.data[:, 0, 0]).all()  # the user's signal is untouched
    # infinite values were refused before; still are
    inf = cgan_si.deepcopy()
    inf.data[0, c, c] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        inf.retrieve_potential()


def test_retrieve_potential_of_a_montage(cgan_si):
    m = cgan_si.to_montage()
    assert np.isnan(m.data).any()  # pixels outside the discs
    p = m.retrieve_potential()
    assert p.data.shape == (128, 128) and np.isfinite(p.data).all()


# ----------------------------------------------------------------------------- defect 3
def test_p1_cif_loads_and_keeps_its_symmetry(tmp_path):
    path = tmp_path / "si_p1.cif"
    path.write_text(SI_P1)
    c = hl.load_structure(path)
    assert len(c) == 8 and c.space_group_number == 227 and c.is_cubic
    # identical physics to the CIF with the full symmetry
    ref = hl.load_structure("Si")
    kw = {"thickness": "50 nm", "pixels": 8, "strong_beams": 20, "show_progressbar": False}
    np.testing.assert_allclose(hl.simulate(c, **kw).data, hl.simulate(ref, **kw).data, atol=1e-6)
    # and the cubic-only surrogate takes it: the same discs as for the shipped Si
    g = hl.generate(path, thickness="100 nm")
    g_ref = hl.generate("Si", thickness="100 nm")
    np.testing.assert_allclose(g.data, g_ref.data, atol=1e-5 * g_ref.data.max())


def test_non_cubic_p1_cif_is_refused_by_cubic_models(tmp_path):
    path = tmp_path / "tetragonal.cif"
    path.write_text(TETRAGONAL_P1)
    c = hl.load_structure(path)
    assert (len(c), c.space_group_symbol, c.is_cubic) == (2, "P4/mmm", False)
    with pytest.raises(ValueError, match="not cubic"):
        hl.generate(path, thickness="100 nm")
    with pytest.raises(ValueError, match="not cubic"):
        hl.model_settings(path)
    s = hl.simulate(path, thickness="100 nm", pixels=8, strong_beams=20)  # Bloch waves: fine
    _normalised(s, absorbing=True)
    with pytest.raises(ValueError, match="not cubic"):
        s.retrieve_potential()


def test_cif_naming_an_unknown_space_group_is_still_refused(tmp_path):
    path = tmp_path / "bad_sg.cif"
    path.write_text(SI_P1.replace("loop_", "_symmetry_space_group_name_H-M 'X 9 q'\nloop_", 1))
    from hyperspy_lacbed.crystal.structure import StructureError

    with pytest.raises(StructureError, match="X 9 q"):
        hl.load_structure(path)


# ----------------------------------------------------------------------------- simulate
KEYWORDS = {
    "defaults": {},
    "preset felix": {"preset": "felix"},
    "mrad radius": {"disc_radius": "4 mrad"},
    "x direction": {"x_direction": (0, 1, 0)},
    "bird-king": {"absorption": "bird-king"},
    "lobato, no DW": {"scattering_factors": "lobato", "debye_waller": False},
    "weak beams": {"weak_beams": 10},
    "exact, no symmetry": {"solver": "exact", "symmetry": False},
    "[111]": {"zone_axis": (1, 1, 1)},
    "felix, explicit wins": {"preset": "felix", "absorption_fraction": 0.05, "beam_pool": 60},
    "HOLZ, tilted surface": {"laue_zones": (0, 1), "surface_normal": (0, 1, 8)},
    "Felix conventions by hand": {
        "mean_inner_potential": False,
        "mean_absorption": False,
        "strong_beam_step": 0.005,
    },
    "quantities": {"voltage": "300 kV", "thickness": ["20 nm", "400 Å"]},
}


@pytest.mark.parametrize("kwargs", KEYWORDS.values(), ids=KEYWORDS.keys())
def test_simulate_documented_keywords(kwargs):
    kw = {"thickness": "50 nm", "pixels": 8, "strong_beams": 20, **kwargs}
    s = hl.simulate("Si", **kw)
    assert s.metadata.LACBED.source == "bloch"
    _normalised(s, absorbing=True)
    # the settings in the metadata compute the same signal again
    again = hl.simulate(**s.metadata.LACBED.settings.as_dictionary())
    np.testing.assert_allclose(again.data, s.data, atol=1e-6)
    settings = s.metadata.LACBED.settings
    for key, value in kwargs.items():  # what the user gave is what was used
        stored = settings.get_item(key)
        assert (list(stored) if isinstance(stored, (list, tuple)) else stored) == (
            list(value) if isinstance(value, tuple) else value
        ) or key in ("disc_radius", "voltage", "thickness"), key


def test_simulate_is_unitary_without_absorption():
    """Every beam of the pool returned, no absorption: intensity is conserved exactly."""
    s = hl.simulate(
        "Cu", reflections=CU_POOL, beam_pool=9, strong_beams=9, absorption="none",
        pixels=4, thickness=["10 nm", "100 nm"],
    )  # fmt: skip
    np.testing.assert_allclose(s.data.sum(axis=1), 1.0, atol=1e-5)
    lossy = hl.simulate("Cu", reflections=CU_POOL, beam_pool=9, strong_beams=9, pixels=4,
                        thickness=["10 nm", "100 nm"])  # fmt: skip
    total = lossy.data.sum(axis=1)
    assert (total < 1).all() and (total[1] < total[0]).all()  # absorption grows with t


def test_simulate_units_are_interchangeable():
    base = {"pixels": 4, "strong_beams": 20}
    a = hl.simulate("Si", thickness="50 nm", voltage="200 kV", disc_radius="0.1 1/Å", **base)
    b = hl.simulate("Si", thickness=500, voltage=200e3, disc_radius=0.1, **base)
    c = hl.simulate("Si", thickness="500", voltage="200000", disc_radius="0.1", **base)
    mrad = 1000 * 0.1 * a.wavelength  # the same radius as an angle
    d = hl.simulate("Si", thickness="0.05 µm", disc_radius=f"{mrad} mrad", **base)
    for other in (b, c, d):
        np.testing.assert_allclose(other.data, a.data, atol=1e-6)


def test_simulate_many_structures_returns_a_list():
    out = hl.simulate(["Si", "Cu"], thickness="50 nm", pixels=4, strong_beams=10)
    assert [type(s).__name__ for s in out] == ["LACBED", "LACBED"]
    assert out[1].metadata.LACBED.settings.structure.name == "Cu"


# ----------------------------------------------------------------------------- the rest of hl
def test_model_settings_is_the_models_domain():
    kw = hl.model_settings("NaCl")
    assert kw["disc_radius"] == pytest.approx(0.75 * 2 / 5.64, rel=1e-3)
    assert len(kw["reflections"]) == 9 and kw["pixels"] == _disc_pixels()
    fwd = hl.model_settings("NaCl", direction="forward")
    assert fwd == kw  # the shipped pair shares one domain
    with pytest.raises(FileNotFoundError, match="No model named"):
        hl.model_settings("NaCl", model="no-such-model")


def test_projected_potential_and_list_models():
    pot = hl.projected_potential("SrTiO3", shape=(32, 32))
    assert pot.data.shape == (32, 32) and pot.cell_extent == pytest.approx((3.905, 3.905))
    assert (pot.data > 0).all()  # V·Å of a positive potential
    names = {m["name"]: m for m in hl.list_models()}
    assert names["default-forward"]["default"] and names["default-inverse"]["default"]
    assert "cubic [001] 200 kV" in repr(hl.list_models())


def test_lacbed_methods_on_simulate_output():
    s = hl.simulate("Si", thickness=["50 nm", "100 nm"], pixels=8, strong_beams=20)
    before = s.data.copy()
    m = s.to_mrad()
    assert m.axes_manager["kx"].units == "mrad"
    back = m.to_inverse_angstrom()
    assert back.axes_manager["kx"].scale == pytest.approx(s.axes_manager["kx"].scale)
    d = s.get_disc((2, 2, 0))
    np.testing.assert_array_equal(d.data, s.data[:, 1])
    mont = s.to_montage()
    cut = type(s).from_montage(mont)
    inside = ~np.isnan(cut.data)
    np.testing.assert_allclose(cut.data[inside], s.data[inside])
    fig = s.plot_montage(scale="per_disc", units="mrad")
    assert len(fig.axes) >= 1
    np.testing.assert_array_equal(s.data, before)  # nothing changed in place


# ----------------------------------------------------------------------------- the CLI
FELIX_ARGS = [
    "--preset", "felix", "--zone-axis", "0,0,1", "--x-direction", "1,0,0",
    "--surface-normal", "0,0,1", "--voltage", "200 kV",
    "--thickness", "500", "1000", "1500", "2000",
    "--reflections", "0,0,0 2,-2,0 2,2,0 4,0,0 0,4,0",
    "--pixels", "64", "--disc-radius", "0.25 1/Å", "--strong-beams", "100",
    "--weak-beams", "0", "--beam-pool", "329", "--absorption", "proportional",
    "--absorption-fraction", "10%", "--scattering-factors", "kirkland", "--debye-waller",
]  # fmt: skip


@pytest.fixture
def recorded_simulate(monkeypatch):
    """Replace hl.simulate by a recorder that returns a tiny real signal."""
    calls = []
    tiny = hl.simulate("Si", thickness="50 nm", pixels=4, strong_beams=10)

    def fake(structure, **kwargs):
        calls.append((structure, kwargs))
        return tiny

    monkeypatch.setattr(hl, "simulate", fake)
    return calls


def test_cli_expresses_the_felix_case(recorded_simulate, tmp_path):
    out = tmp_path / "felix" / "si.hspy"
    assert main(["simulate", "Si.cif", *FELIX_ARGS, "-o", str(out), "--quiet"]) == 0
    structure, kw = recorded_simulate[0]
    assert structure == "Si.cif"
    assert kw == {
        "preset": "felix",
        "zone_axis": (0, 0, 1),
        "x_direction": (1, 0, 0),
        "surface_normal": (0, 0, 1),
        "voltage": "200 kV",
        "thickness": ["500", "1000", "1500", "2000"],
        "reflections": [(0, 0, 0), (2, -2, 0), (2, 2, 0), (4, 0, 0), (0, 4, 0)],
        "pixels": 64,
        "disc_radius": "0.25 1/Å",
        "strong_beams": 100,
        "weak_beams": 0,
        "beam_pool": 329,
        "absorption": "proportional",
        "absorption_fraction": 0.1,
        "scattering_factors": "kirkland",
        "debye_waller": True,
        "show_progressbar": False,
    }
    assert out.is_file() and (tmp_path / "felix" / "si_montage.png").is_file()


def test_cli_passes_only_what_is_given(recorded_simulate, tmp_path):
    """Options left out must not override simulate's defaults or a preset's conventions."""
    assert main(["simulate", "Si", "--preset", "felix", "--out", str(tmp_path)]) == 0
    _, kw = recorded_simulate[0]
    assert kw == {"preset": "felix", "thickness": ["100 nm"], "show_progressbar": True}
    hkl = tmp_path / "felix.hkl"
    hkl.write_text("[0,0,0]\n[-2,2,0]\n[4,0,0]\n")  # Felix's reflection file
    args = ["simulate", "Si", "--reflections", str(hkl), "--convergence-angle", "6 mrad",
            "--no-debye-waller", "--absorption-fraction", "0.05", "--out", str(tmp_path),
            "--overwrite"]  # fmt: skip
    assert main(args) == 0
    _, kw = recorded_simulate[1]
    assert kw["reflections"] == [(0, 0, 0), (-2, 2, 0), (4, 0, 0)]
    assert (kw["disc_radius"], kw["debye_waller"], kw["absorption_fraction"]) == (
        "6 mrad",
        False,
        0.05,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reflections", "0,0 2,2,0"], "integer triples"),
        (["--zone-axis", "1,0"], "integer triples"),
        (["--x-direction", "1,0,0 0,1,0"], "one direction"),
        (["--absorption-fraction", "ten"], "percentage"),
        (["-o", "x.png"], ".hspy or .zspy"),
        (["-o", "x.hspy", "--out", "folder"], "not both"),
        (["--preset", "multislice"], "Unknown preset"),
        (["--thickness", "-5 nm"], "thickness must be positive"),
        (["--disc-radius", "3 kV"], "disc_radius"),
    ],
)
def test_cli_bad_options_exit_2_with_a_reason(args, message, tmp_path, capsys):
    code = main(["simulate", "Si", "--pixels", "4", "--strong-beams", "10", *args,
                 "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_every_subcommand(tmp_path, capsys, cgan_si):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--pixels", "4", "--quiet"]) == 0
    assert (tmp_path / "demo" / "si001.hspy").is_file()
    sim = tmp_path / "sim" / "cu.hspy"
    assert main(["simulate", "Cu", "--pixels", "4", "--strong-beams", "10", "-o", str(sim),
                 "--quiet"]) == 0  # fmt: skip
    s = hs.load(sim)
    assert s.metadata.Signal.signal_type == "LACBED" and s.metadata.LACBED.source == "bloch"
    _normalised(s, absorbing=True)
    assert main(["models"]) == 0
    assert "default-inverse" in capsys.readouterr().out
    gen = tmp_path / "gen.hspy"
    assert main(["generate", "Si", "--thickness", "100 nm", "-o", str(gen), "--quiet"]) == 0
    np.testing.assert_allclose(hs.load(gen).data, cgan_si.data, rtol=1e-6)
    pot = tmp_path / "pot" / "si_potential.hspy"
    assert main(["retrieve", str(gen), "-o", str(pot)]) == 0
    assert hs.load(pot).data.shape == (128, 128)
    assert (tmp_path / "pot" / "si_potential.png").is_file()
    # files are not overwritten without --overwrite
    assert main(["retrieve", str(gen), "-o", str(pot)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@needs_shared
def test_felix_case_json_is_what_the_cli_test_expresses():
    """FELIX_ARGS above are the inputs of the shared Felix case, option by option."""
    from hyperspy_lacbed.cli import build_parser

    inputs = json.loads((REFERENCE / "felix_si001" / "case.json").read_text())["inputs"]
    ns = build_parser().parse_args(["simulate", "Si.cif", *FELIX_ARGS])
    assert ns.reflections == [" ".join(",".join(map(str, r)) for r in inputs["reflections"])]
    assert ns.zone_axis == ",".join(map(str, inputs["zone"]))
    assert ns.x_direction == ",".join(map(str, inputs["x_direction"]))
    assert ns.surface_normal == ",".join(map(str, inputs["normal"]))
    assert [float(t) for t in ns.thickness] == inputs["thicknesses_A"]
    assert ns.pixels == 2 * inputs["IPixelCount"]
    assert ns.beam_pool == inputs["IMinReflectionPool"]
    assert ns.strong_beams == inputs["IMinStrongBeams"]
    assert ns.weak_beams == inputs["IMinWeakBeams"]
    assert ns.disc_radius == f"{inputs['ROuterConvergenceAngle_invA']} 1/Å"
    assert ns.absorption_fraction == f"{inputs['RAbsorptionPer']:g}%"
    assert (ns.absorption, inputs["IAbsorbFLAG"]) == ("proportional", 1)
    assert (ns.scattering_factors, inputs["IScatterFactorMethodFLAG"]) == ("kirkland", 0)


@needs_shared
def test_cli_reproduces_the_felix_case(tmp_path):
    """The Felix Si [001] case from the command line: every image within 1 % of Felix's."""
    case = json.loads((REFERENCE / "felix_si001" / "case.json").read_text())["inputs"]
    images = np.load(REFERENCE / "felix_si001" / "felix_si001_n32.npz")
    out = tmp_path / "felix.hspy"
    cif = str(REFERENCE / "felix_si001" / "Si.cif")
    assert main(["simulate", cif, *FELIX_ARGS, "-o", str(out), "--quiet"]) == 0
    s = hs.load(out)
    assert s.metadata.LACBED.reflections == case["reflections"]
    worst = 0.0
    for ti, t in enumerate(case["thicknesses_A"]):
        for ri, hkl in enumerate(case["reflections"]):
            ref = images["{:+d}{:+d}{:+d}_{}A".format(*hkl, t)]
            err = np.abs(s.data[ti, ri] - ref).max() / ref.max()
            worst = max(worst, err)
            assert err < 0.01, f"{hkl} at {t} Å differs by {err:.2%} of the image maximum"
    assert worst > 1e-5  # a real comparison, not the reference read back


def test_generate_documented_keywords(cgan_si):
    s = hl.generate("Si", thickness=["50 nm", "100 nm"], reflections=[[2, 0, 0]],
                    zone_axis=(0, 0, 1), voltage="200 kV")  # fmt: skip
    d = _disc_pixels()
    assert s.reflections == [(0, 0, 0), (2, 0, 0)] and s.data.shape == (2, 2, d, d)
    # 100 nm, 000 and 200; float32 batches of another size differ in the last bits
    np.testing.assert_allclose(s.data[1], cgan_si.data[:2], rtol=1e-5, atol=1e-6 * s.data.max())
    many = hl.generate(["Si", "NaCl"], thickness="100 nm")
    np.testing.assert_allclose(many[0].data, cgan_si.data, rtol=1e-5, atol=1e-6 * s.data.max())
    # the same discs from the potential (ProjectedPotential.generate_lacbed), but for the
    # mean absorption exp(-2π U'_0 t / K), which a potential alone does not determine
    from hyperspy_lacbed.bloch.discs import mean_absorption_factor

    from_pot = hl.projected_potential("Si").generate_lacbed(thickness="100 nm")
    assert from_pot.metadata.LACBED.settings.mean_absorption is False
    np.testing.assert_allclose(
        from_pot.data * mean_absorption_factor("Si", "100 nm")[0],
        cgan_si.data,
        atol=1e-3 * cgan_si.data.max(),
    )
    for bad, match in (({"zone_axis": (1, 1, 0)}, "Zone axis"), ({"voltage": "300 kV"}, "300"),
                       ({"thickness": "500 nm"}, "outside")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            hl.generate("Si", **{"thickness": "100 nm", **bad})
