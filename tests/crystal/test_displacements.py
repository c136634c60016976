"""Anisotropic displacement parameters: reading, symmetry expansion and Debye–Waller factors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cif_text import cif_text, write

from hyperspy_lacbed.crystal.structure import Crystal, StructureError, load_structure
from hyperspy_lacbed.crystal.structure_factors import (
    absorptive_structure_factors,
    debye_waller_factors,
    structure_factors,
)

EIGHT_PI2 = 8 * math.pi**2

# Wurtzite GaN, P6_3mc, both atoms on 2b (1/3, 2/3, z), site symmetry 3m.
GAN_CELL = (3.189, 3.189, 5.185, 90, 90, 120)
GAN_HEADER = ("_space_group_name_H-M_alt 'P 63 m c'", "_space_group_IT_number 186")
GAN_ATOMS = [("Ga1", "Ga", "1/3", "2/3", 0.0, 1, 0.6), ("N1", "N", "1/3", "2/3", 0.377, 1, 0.4)]


def _gan(tmp_path, aniso=None, name="gan", kind="U"):
    text = cif_text(GAN_CELL, GAN_ATOMS, header=GAN_HEADER, aniso=aniso, aniso_kind=kind)
    return load_structure(write(tmp_path, text, name))


def _isotropic_hexagonal(label: str, u: float) -> tuple:
    # On hexagonal axes an isotropic tensor has U12 = U cos γ* = U/2 (γ* = 60°).
    return (label, u, u, u, u / 2, 0.0, 0.0)


def test_isotropic_tensors_give_the_b_iso_structure_factors(tmp_path):
    iso = _gan(tmp_path)
    aniso = _gan(
        tmp_path,
        [
            _isotropic_hexagonal("Ga1", 0.6 / EIGHT_PI2),
            _isotropic_hexagonal("N1", 0.4 / EIGHT_PI2),
        ],
        "aniso",
    )
    assert iso.u_aniso is None
    np.testing.assert_allclose(aniso.b_iso, iso.b_iso, rtol=1e-12)
    np.testing.assert_allclose(
        aniso.u_aniso, iso.b_iso[:, None, None] / EIGHT_PI2 * np.eye(3), atol=1e-15
    )
    rng = np.arange(-3, 4)
    hkl = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    u_iso, u_aniso = structure_factors(iso, hkl), structure_factors(aniso, hkl)
    np.testing.assert_allclose(u_aniso, u_iso, rtol=1e-12, atol=1e-12 * abs(u_iso).max())
    # Bird & King use B_eq, here B itself.
    bk_iso = absorptive_structure_factors(iso, hkl[:20], absorption="bird-king")
    bk_aniso = absorptive_structure_factors(aniso, hkl[:20], absorption="bird-king")
    np.testing.assert_allclose(bk_aniso, bk_iso, rtol=1e-12, atol=1e-14)


def test_cubic_isotropic_tensor_equals_b_iso(tmp_path):
    b = 0.47
    rows = [("Si1", "Si", 0, 0, 0, 1, b)]
    header = ("_space_group_name_H-M_alt 'F d -3 m :1'",)
    cell = (5.431,) * 3 + (90,) * 3
    iso = load_structure(write(tmp_path, cif_text(cell, rows, header=header), "iso"))
    u = b / EIGHT_PI2
    aniso_text = cif_text(cell, rows, header=header, aniso=[("Si1", u, u, u, 0.0, 0.0, 0.0)])
    aniso = load_structure(write(tmp_path, aniso_text, "aniso"))
    hkl = np.array([[1, 1, 1], [2, 2, 0], [3, 1, 1], [4, 0, 0], [8, 8, 0], [13, 7, 5]])
    np.testing.assert_allclose(
        structure_factors(aniso, hkl), structure_factors(iso, hkl), rtol=1e-12
    )


GAN_U11, GAN_U33 = 0.005, 0.020
GAN_ANISO = [
    ("Ga1", GAN_U11, GAN_U11, GAN_U33, GAN_U11 / 2, 0.0, 0.0),
    ("N1", GAN_U11, GAN_U11, GAN_U33, GAN_U11 / 2, 0.0, 0.0),
]


def test_wurtzite_damping_is_stronger_along_c_star(tmp_path):
    gan = _gan(tmp_path, GAN_ANISO)
    assert gan.space_group_number == 186
    # In-plane vibration U11, along c U33: the Cartesian tensor is diagonal.
    np.testing.assert_allclose(gan.u_aniso[0], np.diag([GAN_U11, GAN_U11, GAN_U33]), atol=1e-15)
    hkl = np.array([[0, 0, 2], [0, 0, 4], [1, 0, 0], [2, 0, 0], [1, 1, 0]])
    warm = structure_factors(gan, hkl)
    cold = structure_factors(gan, hkl, debye_waller=False)
    # Both atoms vibrate alike, so U_g = exp(−2π² gᵀ U g) × U_g(rest) for every g.
    g2 = np.linalg.norm(gan.g_vectors(hkl), axis=1) ** 2
    per_g2 = -np.log(np.abs(warm) / np.abs(cold)) / (2 * math.pi**2 * g2)
    np.testing.assert_allclose(per_g2, [GAN_U33, GAN_U33, GAN_U11, GAN_U11, GAN_U11], rtol=1e-9)
    # Against the isotropic equivalent U_eq = (2 U11 + U33)/3: 00l lose, hk0 gain.
    u_eq = (2 * GAN_U11 + GAN_U33) / 3
    assert gan.b_iso == pytest.approx(EIGHT_PI2 * u_eq)
    iso = Crystal(
        *(
            getattr(gan, f)
            for f in ("lattice_parameters", "elements", "positions", "occupancies", "b_iso")
        )
    )
    ratio = np.abs(warm) / np.abs(structure_factors(iso, hkl))
    assert np.all(ratio[:2] < 1) and np.all(ratio[2:] > 1)


def test_b_and_beta_loops_give_the_u_tensors(tmp_path):
    reference = _gan(tmp_path, GAN_ANISO, "u")
    as_b = [(r[0], *(EIGHT_PI2 * v for v in r[1:])) for r in GAN_ANISO]
    # β_ij = 2π² a*_i a*_j U_ij with a* = b* = 2/(√3 a), c* = 1/c on hexagonal axes.
    a_star = 2 / (math.sqrt(3) * GAN_CELL[0])
    star = np.array([a_star, a_star, 1 / GAN_CELL[2]])
    pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    as_beta = [
        (
            r[0],
            *(
                2 * math.pi**2 * star[i] * star[j] * v
                for (i, j), v in zip(pairs, r[1:], strict=True)
            ),
        )
        for r in GAN_ANISO
    ]
    for rows, kind in ((as_b, "B"), (as_beta, "beta")):
        crystal = _gan(tmp_path, rows, kind, kind)
        np.testing.assert_allclose(crystal.u_aniso, reference.u_aniso, rtol=1e-12, atol=1e-16)


# Rutile TiO2, P4_2/mnm: Ti 2a (0, 0, 0) and O 4f (x, x, 0), both with site symmetry m.mm
# (U11 = U22, U13 = U23 = 0, U12 free). The 4_2 axis maps (x, x, 0) onto (−x, x, 1/2)-type
# sites and changes the sign of U12 there.
RUTILE_CELL = (4.594, 4.594, 2.959, 90, 90, 90)
RUTILE_HEADER = ("_space_group_name_H-M_alt 'P 42/m n m'",)
RUTILE_ATOMS = [("Ti1", "Ti", 0, 0, 0, 1, 0.4), ("O1", "O", 0.3049, 0.3049, 0, 1, 0.5)]
U_TI = np.array([[0.006, 0.0002, 0], [0.0002, 0.006, 0], [0, 0, 0.004]])
U_O = np.array([[0.007, -0.002, 0], [-0.002, 0.007, 0], [0, 0, 0.005]])


def _tensor_row(label: str, u: np.ndarray) -> tuple:
    return (label, u[0, 0], u[1, 1], u[2, 2], u[0, 1], u[0, 2], u[1, 2])


def _rutile(tmp_path, u_o=U_O):
    text = cif_text(
        RUTILE_CELL,
        RUTILE_ATOMS,
        header=RUTILE_HEADER,
        aniso=[_tensor_row("Ti1", U_TI), _tensor_row("O1", u_o)],
    )
    return write(tmp_path, text, "rutile")


def test_site_constrained_tensor_follows_the_symmetry_operations(tmp_path):
    from hyperspy_lacbed.crystal.spacegroup import hall_operations

    crystal = load_structure(_rutile(tmp_path))
    assert crystal.elements.count("O") == 4 and crystal.elements.count("Ti") == 2
    assert crystal.space_group_number == 136  # the tensors keep the whole group
    ops = hall_operations(419)  # P4_2/mnm
    basis = np.diag(RUTILE_CELL[:3])  # orthogonal cell: Cartesian axes along a, b, c
    for element, p, u0 in (("Ti", np.zeros(3), U_TI), ("O", np.array([0.3049, 0.3049, 0]), U_O)):
        for w, t in zip(ops.rotations, ops.translations, strict=True):
            image = np.mod(w @ p + t, 1.0)
            d = crystal.positions - image
            d -= np.round(d)
            j = int(np.argmin(np.abs(d).max(axis=1)))
            assert np.abs(d[j]).max() < 1e-9 and crystal.elements[j] == element
            r = basis.T @ w @ np.linalg.inv(basis).T
            np.testing.assert_allclose(crystal.u_aniso[j], r @ u0 @ r.T, atol=1e-15)
    # O at (x, x, 0) and (−x+1/2, x+1/2, 1/2) have U12 of opposite signs.
    o_u12 = crystal.u_aniso[np.array(crystal.elements) == "O"][:, 0, 1]
    np.testing.assert_allclose(sorted(o_u12), [-0.002, -0.002, 0.002, 0.002], atol=1e-15)


def test_symmetry_equivalent_reflections_stay_equivalent(tmp_path):
    crystal = load_structure(_rutile(tmp_path))
    # The images of (h, k, l) under 4/mmm: with untransformed tensors they would differ.
    hkl = np.array([[1, 2, 1], [2, 1, 1], [-2, 1, 1], [1, -2, 1], [-1, -2, -1], [2, -1, -1]])
    u = np.abs(structure_factors(crystal, hkl))
    np.testing.assert_allclose(u, u[0], rtol=1e-12)
    hkl = np.array([[3, 1, 2], [1, 3, 2], [-1, 3, 2], [3, -1, -2]])
    u = np.abs(structure_factors(crystal, hkl))
    np.testing.assert_allclose(u, u[0], rtol=1e-12)


def test_tensor_that_breaks_its_site_symmetry_is_refused(tmp_path):
    bad = U_O.copy()
    bad[1, 1] = 0.010  # U22 ≠ U11 on a site with a mirror x ↔ y
    with pytest.raises(StructureError, match=r"O1: .*breaks the symmetry of its site"):
        load_structure(_rutile(tmp_path, bad))


# A monoclinic cell (β ≠ 90°) with one atom on a general position and a full tensor.
MONO_CELL = (5.1, 6.2, 7.3, 90, 104.0, 90)
MONO_U = (0.010, 0.012, 0.015, 0.001, 0.003, -0.002)


def _monoclinic(tmp_path):
    text = cif_text(
        MONO_CELL,
        [("Fe1", "Fe", 0.21, 0.13, 0.37, 1, 0.5)],
        header=("_space_group_name_H-M_alt 'P 1 21/c 1'",),
        aniso=[("Fe1", *MONO_U)],
    )
    return write(tmp_path, text, "mono")


def test_general_position_tensor_in_an_oblique_cell(tmp_path):
    crystal = load_structure(_monoclinic(tmp_path))
    assert len(crystal) == 4
    assert crystal.space_group_number == 14
    # The crystallographers' form of the factor, exp(−2π² Σ h_i h_j a*_i a*_j U_ij),
    # for the atom as listed (the first one).
    a, b, c, _, beta, _ = MONO_CELL
    sb = math.sin(math.radians(beta))
    star = np.array([1 / (a * sb), 1 / b, 1 / (c * sb)])
    u11, u22, u33, u12, u13, u23 = MONO_U
    u_cif = np.array([[u11, u12, u13], [u12, u22, u23], [u13, u23, u33]])
    hkl = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 2, -3], [-2, 1, 4], [3, -3, 1]])
    expected = np.exp(-2 * math.pi**2 * np.einsum("gi,ij,gj->g", hkl * star, u_cif, hkl * star))
    np.testing.assert_allclose(debye_waller_factors(crystal, hkl)[:, 0], expected, rtol=1e-12)
    # 2/m (b unique): (h k l), (h −k l), (−h k −l), (−h −k −l) have one |U_g|.
    for h, k, l in hkl:
        equivalent = np.array([[h, k, l], [h, -k, l], [-h, k, -l], [-h, -k, -l]])
        u = np.abs(structure_factors(crystal, equivalent))
        np.testing.assert_allclose(u, u[0], rtol=1e-12)


def test_diffpy_structure_and_cif_give_the_same_crystal(tmp_path):
    from diffpy.structure import loadStructure

    for path in (_monoclinic(tmp_path), _rutile(tmp_path)):
        ours = load_structure(path)
        theirs = load_structure(loadStructure(str(path)))
        assert theirs.u_aniso is not None and len(theirs) == len(ours)
        hkl = np.array([[1, 0, 0], [1, 2, -3], [-2, 1, 4], [3, -3, 1], [0, 0, 2]])
        np.testing.assert_allclose(
            structure_factors(theirs, hkl), structure_factors(ours, hkl), rtol=1e-9
        )


def test_tensors_survive_dict_round_trip_and_origin_shift(tmp_path):
    crystal = load_structure(_rutile(tmp_path))
    again = Crystal.from_dict(crystal.to_dict())
    np.testing.assert_array_equal(again.u_aniso, crystal.u_aniso)
    assert "u_aniso" not in load_structure("Si").to_dict()
    shifted = crystal.with_positions(crystal.positions + 0.1)
    np.testing.assert_array_equal(shifted.u_aniso, crystal.u_aniso)
    d = crystal.to_dict()
    d["b_iso"] = [1.0] * len(crystal)
    with pytest.raises(StructureError, match="B_eq"):
        Crystal.from_dict(d)


def test_tensor_that_is_not_positive_definite_is_refused(tmp_path):
    rows = [("Na1", "Na", 0, 0, 0, 1, 0.5)]
    text = cif_text(
        (5, 5, 5, 90, 90, 90), rows, aniso=[("Na1", 0.01, 0.01, -0.002, 0.0, 0.0, 0.0)]
    )
    with pytest.raises(StructureError, match="not positive definite"):
        load_structure(write(tmp_path, text))


def test_no_debye_waller_ignores_the_tensors(tmp_path):
    aniso = _gan(tmp_path, GAN_ANISO, "aniso")
    iso = _gan(tmp_path)
    hkl = np.array([[0, 0, 2], [1, 0, 0], [1, 0, 3]])
    np.testing.assert_allclose(
        structure_factors(aniso, hkl, debye_waller=False),
        structure_factors(iso, hkl, debye_waller=False),
        rtol=1e-14,
    )


def test_symmetry_search_keeps_only_operations_that_respect_the_tensors():
    # fcc Cu whose atoms all vibrate more along z: the positions are cubic (225), the
    # crystal with its tensors is tetragonal (I4/mmm on the F-centred cell's axes).
    cu = load_structure("Cu")
    u = np.diag([0.005, 0.005, 0.012])
    d = cu.to_dict()
    d["u_aniso"] = [u.tolist()] * len(cu)
    d["b_iso"] = [EIGHT_PI2 * np.trace(u) / 3] * len(cu)
    stretched = Crystal.from_dict(d)
    assert cu.space_group_number == 225
    assert stretched.space_group_number == 139
    rotations = stretched.point_group_rotations
    assert len(rotations) == 16  # 4/mmm
    for w in rotations:  # cubic cell: fractional rotations are Cartesian ones
        np.testing.assert_allclose(w @ u @ w.T, u, atol=1e-15)
    # Tensors that obey the cubic symmetry keep it.
    d["u_aniso"] = [(np.eye(3) * 0.006).tolist()] * len(cu)
    d["b_iso"] = [EIGHT_PI2 * 0.006] * len(cu)
    assert Crystal.from_dict(d).space_group_number == 225


def test_atom_typed_uiso_keeps_its_isotropic_value(tmp_path):
    # MnO2-like file: O2 is 'Uiso' but the aniso loop still has a row for it.
    text = cif_text(
        (4.97, 2.84, 7.18, 90, 98.0, 90),
        [
            ("Mn1", "Mn", 0, 0, 0, 1.0, 0.0459, "Uani"),
            ("O2", "O", 0.5087, 0, 0.5521, 0.43, 0.0041, "Uiso"),
        ],
        header=("_symmetry_space_group_name_H-M 'C 1 2/m 1'",),
        columns=("occupancy", "U_iso_or_equiv", "adp_type"),
        aniso=[
            ("Mn1", 0.0044, 0.0044, 0.1265, 0.0, 0.0, 0.0),
            ("O2", 0.0044, 0.0044, 0.0173, 0.0, 0.0, 0.0),
        ],
    )
    crystal = load_structure(write(tmp_path, text))
    oxygen = np.flatnonzero(np.array(crystal.elements) == "O")
    np.testing.assert_allclose(
        crystal.u_aniso[oxygen], np.broadcast_to(0.0041 * np.eye(3), (4, 3, 3)), atol=1e-15
    )
    np.testing.assert_allclose(crystal.b_iso[oxygen], EIGHT_PI2 * 0.0041)
    # Mn keeps its tensor (U33 along c, which is not Cartesian z's only component here).
    assert crystal.b_iso[0] == pytest.approx(EIGHT_PI2 * np.trace(crystal.u_aniso[0]) / 3)
    assert np.ptp(np.linalg.eigvalsh(crystal.u_aniso[0])) > 0.1
