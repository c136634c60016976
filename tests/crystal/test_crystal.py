"""Crystal layer: structures, structure factors and projected potentials."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REFERENCE, SHARED, STRUCTURES, needs_shared, p1_cif, require_shared

from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import (
    DEFAULT_B_ISO,
    StructureError,
    lattice_period,
    load_structure,
    zolz_reflections,
    zone_frame,
)
from hyperspy_lacbed.crystal.structure_factors import (
    absorptive_structure_factors,
    fourier_coefficients_volts,
    optical_structure_factors,
    structure_factors,
)
from hyperspy_lacbed.data import example_structures


@needs_shared
@pytest.mark.parametrize(
    ("name", "n_atoms", "number"),
    [
        ("Si", 8, 227),
        ("GaAs", 8, 216),
        ("NaCl", 8, 225),
        ("MgO", 8, 225),
        ("SrTiO3", 5, 221),
        ("CaF2", 12, 225),
        ("Cu", 4, 225),
        ("Fe_bcc", 2, 229),
    ],
)
def test_shared_structures_load_with_all_atoms(name, n_atoms, number):
    crystal = load_structure(STRUCTURES / f"{name}.cif")
    assert len(crystal) == n_atoms
    assert crystal.space_group_number == number
    assert crystal.is_cubic
    assert np.all(crystal.b_iso > 0)


@pytest.mark.parametrize("name", example_structures())
def test_example_structures_are_valid_cubic_crystals(name):
    crystal = load_structure(name)
    assert crystal.is_cubic
    assert crystal.name == name
    # The cell is neutral in the sense that every atom is a known element with B > 0.
    assert np.all(crystal.atomic_numbers > 0)


def test_mixed_occupancy_site_is_one_site():
    path = require_shared(SHARED / "experimental" / "GeSn_1-10" / "GeSn.cif")
    crystal = load_structure(path)
    assert len(crystal) == 16  # 8 Ge + 8 Sn sharing the diamond sites
    assert crystal.space_group_number == 227
    assert np.isclose(crystal.occupancies.sum(), 8.0)


@needs_shared
def test_si_structure_factors_match_py4dstem():
    ref = json.loads((REFERENCE / "si001_zone_axis.json").read_text())
    ref = ref["structure_potentials_py4dstem_lobato"]
    si = load_structure(REFERENCE / "felix_si001" / "Si.cif")
    u = structure_factors(
        si, np.array([[0, 0, 0], [2, 2, 0], [4, 0, 0]]), 200e3, "lobato", debye_waller=False
    )
    for value, key in zip(u, ("U000", "U220", "U400")):
        assert abs(value.imag) < 1e-12
        # README: within 0.001 % (measured 0.0008 % at most), 20 % for noise
        assert value.real == pytest.approx(ref[key], rel=1.2e-5)


@pytest.mark.parametrize("name", ["GaAs", "SrTiO3", "Si"])
def test_friedel_pairs_without_absorption(name):
    crystal = load_structure(name)
    hkl = zolz_reflections(crystal, (0, 0, 1), 2.5)
    hkl = np.concatenate([hkl, zolz_reflections(crystal, (1, 1, 1), 1.5)])
    u = structure_factors(crystal, hkl)
    u_minus = structure_factors(crystal, -hkl)
    np.testing.assert_allclose(u_minus, np.conj(u), atol=1e-14)


def test_extinctions():
    si = load_structure("Si")
    fe = load_structure("Fe")
    nacl = load_structure("NaCl")
    gaas = load_structure("GaAs")
    scale = abs(structure_factors(si, np.array([[0, 0, 0]]))[0])
    assert abs(structure_factors(si, np.array([[2, 0, 0]]))[0]) < 1e-12 * scale  # d-glide
    assert abs(structure_factors(si, np.array([[1, 1, 0]]))[0]) < 1e-12 * scale  # F centring
    assert abs(structure_factors(fe, np.array([[1, 0, 0]]))[0]) < 1e-12 * scale  # I centring
    assert abs(structure_factors(nacl, np.array([[1, 1, 1]]))[0]) > 1e-3
    assert abs(structure_factors(gaas, np.array([[2, 0, 0]]))[0]) > 1e-4
    assert abs(structure_factors(si, np.array([[2, 2, 0]]))[0]) > 1e-2


def test_debye_waller_and_absorption():
    si = load_structure("Si")
    hkl = np.array([[2, 2, 0], [4, 0, 0], [8, 8, 0]])
    cold = structure_factors(si, hkl, debye_waller=False)
    warm = structure_factors(si, hkl, debye_waller=True)
    s2 = (np.linalg.norm(si.g_vectors(hkl), axis=1) / 2) ** 2
    np.testing.assert_allclose(np.abs(warm), np.abs(cold) * np.exp(-si.b_iso[0] * s2), rtol=1e-9)
    prop = absorptive_structure_factors(
        si, hkl, absorption="proportional", absorption_fraction=0.1
    )
    np.testing.assert_allclose(prop, 0.1 * warm, rtol=1e-12)
    none = absorptive_structure_factors(si, hkl, absorption="none")
    assert not np.any(none)
    with pytest.raises(ValueError, match="absorption model"):
        absorptive_structure_factors(si, hkl, absorption="ring")


def test_optical_structure_factors_pair_both_parts():
    # The pair the Bloch engine uses is U_g and U'_g as computed one by one, for a model
    # that reuses U_g (proportional) and one that does not (Bird & King).
    si = load_structure("Si")
    hkl = np.array([[0, 0, 0], [2, 2, 0], [4, 0, 0]])
    for model in ("proportional", "bird-king"):
        u, u_abs = optical_structure_factors(si, hkl, 120e3, model, 0.05)
        np.testing.assert_allclose(u, structure_factors(si, hkl, 120e3), rtol=1e-12)
        expected = absorptive_structure_factors(si, hkl, 120e3, model, 0.05)
        np.testing.assert_allclose(u_abs, expected, rtol=1e-12)
        assert np.all(np.abs(u_abs) > 0)


def test_zolz_enumeration_obeys_weiss_zone_law():
    crystal = load_structure("GaAs")
    for zone in ([0, 0, 1], [1, 1, 0], [1, 1, 1], [2, 1, 0]):
        hkl = zolz_reflections(crystal, zone, 2.0)
        assert np.all(hkl @ np.array(zone) == 0)
        lengths = np.linalg.norm(crystal.g_vectors(hkl), axis=1)
        assert lengths.max() <= 2.0 + 1e-9
        assert np.all(np.diff(lengths) >= -1e-12)
        assert (hkl[0] == 0).all()
    # The enumeration is complete: a brute-force count agrees.
    rng = np.arange(-12, 13)
    grid = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    brute = grid[(grid @ [1, 1, 1] == 0)]
    brute = brute[np.linalg.norm(crystal.g_vectors(brute), axis=1) <= 2.0]
    assert len(brute) == len(zolz_reflections(crystal, [1, 1, 1], 2.0))


def test_zone_frame_and_errors():
    si = load_structure("Si")
    frame = zone_frame(si, (0, 0, 1))
    assert frame.x_direction == (1, 0, 0)
    np.testing.assert_allclose(frame.ey, [0, 1, 0], atol=1e-12)
    frame = zone_frame(si, (1, -1, 0), (0, 0, -1))
    np.testing.assert_allclose(np.cross(frame.ez, frame.ex), frame.ey)
    with pytest.raises(ValueError, match="not perpendicular"):
        zone_frame(si, (0, 0, 1), (1, 0, 1))
    with pytest.raises(ValueError, match=r"\[0, 0, 0\]"):
        zone_frame(si, (0, 0, 0))
    with pytest.raises(ValueError, match="integer"):
        zone_frame(si, (0.5, 0, 1))
    _, period = lattice_period(si, np.array([1.0, 1.0, 0.0]))
    assert period == pytest.approx(si.lattice_parameters[0] * np.sqrt(2))


def test_projected_potential_mean_symmetry_and_origin_shift():
    si = load_structure("Si")
    image, cell = projected_potential_array(si, (0, 0, 1), shape=(64, 64))
    v0 = fourier_coefficients_volts(si, np.zeros((1, 3), int))[0].real
    assert image.mean() == pytest.approx(v0 * cell.height, rel=1e-10)
    assert cell.height == pytest.approx(si.lattice_parameters[2])
    # 4mm about the origin: x → −x, y → −y and x ↔ y.
    flip = np.roll(image[:, ::-1], 1, axis=1)
    np.testing.assert_allclose(flip, image, atol=1e-8 * np.abs(image).max())
    np.testing.assert_allclose(image.T, image, atol=1e-8 * np.abs(image).max())
    # Shifting every atom by (1/4, 1/8, 0) of the cell rolls the image by (16, 8) pixels.
    shifted = si.with_positions(si.positions + [0.25, 0.125, 0.3])
    image2, _ = projected_potential_array(shifted, (0, 0, 1), shape=(64, 64))
    np.testing.assert_allclose(image2, np.roll(image, (8, 16), axis=(0, 1)), atol=1e-8)
    # The potential is peaked on the atom columns.
    assert np.unravel_index(image.argmax(), image.shape) in {(0, 0), (32, 32), (0, 32), (32, 0)}


def test_projected_potential_other_zone_is_periodic_rectangle():
    gaas = load_structure("GaAs")
    image, cell = projected_potential_array(gaas, (1, 1, 0), (0, 0, 1), shape=(32, 48))
    assert cell.width_x == pytest.approx(5.6533)
    assert cell.width_y == pytest.approx(5.6533 * np.sqrt(2))
    # Periods are those of the conventional cell (the lattice the CIF describes).
    assert cell.height == pytest.approx(5.6533 * np.sqrt(2))
    assert np.isfinite(image).all() and image.std() > 0


def _cif(tmp_path, a=4.0, rows="Si1 Si 0 0 0 1.0", atoms=True):
    path = tmp_path / "x.cif"
    text = p1_cif(
        rows.splitlines() if atoms else None,
        a,
        columns=("occupancy",),
        header=("_symmetry_space_group_name_H-M 'P 1'",),
        name="test",
    )
    path.write_text(text)
    return path


def test_default_b_when_cif_has_none(tmp_path):
    crystal = load_structure(_cif(tmp_path))
    assert crystal.b_iso.tolist() == [DEFAULT_B_ISO]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": "X1 Qq 0 0 0 1.0"}, "Unknown element"),
        ({"rows": "Si1 Si 0 0 0 1.0\nSi2 Si 0.05 0 0 1.0"}, "Overlapping atoms"),
        ({"rows": "Si1 Si 0 0 0 1.0\nGe1 Ge 0 0 0 0.5"}, "total occupancy"),
        ({"rows": "Si1 Si 0 0 0 0.0"}, "occupancy"),
        ({"a": -4.0}, "positive"),
        ({"atoms": False}, "no atoms"),
    ],
)
def test_bad_structures_raise_named_errors(tmp_path, kwargs, match):
    with pytest.raises(StructureError, match=match):
        load_structure(_cif(tmp_path, **kwargs))


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\n'unterminated\n")
    with pytest.raises(StructureError, match="Cannot read broken.cif"):
        load_structure(bad)
    with pytest.raises(FileNotFoundError, match="examples are"):
        load_structure(tmp_path / "nothing.cif")
    with pytest.raises(TypeError, match="CIF path"):
        load_structure(42)


def test_diffpy_structure_round_trip():
    from diffpy.structure import Atom, Lattice, Structure

    s = Structure(
        [
            Atom("Cu", [0, 0, 0]),
            Atom("Cu", [0.5, 0.5, 0]),
            Atom("Cu", [0.5, 0, 0.5]),
            Atom("Cu", [0, 0.5, 0.5]),
        ],
        lattice=Lattice(3.61, 3.61, 3.61, 90, 90, 90),
    )
    crystal = load_structure(s)
    assert crystal.space_group_number == 225
    again = type(crystal).from_dict(crystal.to_dict())
    np.testing.assert_allclose(again.positions, crystal.positions)
