"""CIF reading: split sites, the CIF's own symmetry operations and its settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import spglib
from cif_text import cif_text, write
from helpers import EXPERIMENTAL, needs_shared

from hyperspy_lacbed.crystal.structure import StructureError, load_structure
from hyperspy_lacbed.crystal.structure_factors import structure_factors

CUBIC = (5.0, 5.0, 5.0, 90, 90, 90)


def _hall_types() -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [spglib.get_spacegroup_type(n) for n in range(1, 531)]


HALL = _hall_types()


def _ops(hall_number: int) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = spglib.get_symmetry_from_database(hall_number)
    return np.asarray(data["rotations"]), np.mod(np.asarray(data["translations"]), 1.0)


def _hall_number(number: int, choice: str) -> int:
    return next(n for n, t in enumerate(HALL, 1) if t.number == number and t.choice == choice)


def _same_sites(a: np.ndarray, b: np.ndarray, shift=(0.0, 0.0, 0.0)) -> bool:
    """Whether two lists of fractional positions are the same set after shifting ``a``."""
    if len(a) != len(b):
        return False
    d = (np.asarray(a) + shift)[:, None, :] - np.asarray(b)[None]
    d -= np.round(d)
    close = np.abs(d).max(axis=-1) < 1e-6
    return bool(close.any(axis=1).all() and close.any(axis=0).all())


# ----------------------------------------------------------------------------------------
# Split and disordered sites
# ----------------------------------------------------------------------------------------


def test_split_site_with_occupancies_summing_to_one_loads(tmp_path):
    # Mg 0.075 Å from Li, as in Mg-doped LiNbO3; 0.015 × 5 Å = 0.075 Å.
    rows = [("Li1", "Li", 0, 0, 0, 0.95, 0.5), ("Mg1", "Mg", 0.015, 0, 0, 0.05, 0.5)]
    crystal = load_structure(write(tmp_path, cif_text(CUBIC, rows)))
    assert crystal.elements == ("Li", "Mg")
    np.testing.assert_allclose(crystal.occupancies, [0.95, 0.05])


def test_three_way_split_by_symmetry_loads_within_rounding(tmp_path):
    # One atom 0.2 Å off a 3-fold axis at occupancy 1/3 written as 0.334: three images of
    # it sum to 1.002, within the CIF's rounding.
    header = ("_space_group_name_H-M_alt 'P 3'",)
    rows = [("Na1", "Na", 0.04, 0.0, 0.0, 0.334, 0.5)]
    crystal = load_structure(
        write(tmp_path, cif_text((5, 5, 5, 90, 90, 120), rows, header=header))
    )
    assert len(crystal) == 3
    assert crystal.occupancies.sum() == pytest.approx(1.002)


def test_split_site_summing_to_more_than_one_is_refused_with_the_sum(tmp_path):
    rows = [("Li1", "Li", 0, 0, 0, 1.0, 0.5), ("Mg1", "Mg", 0.015, 0, 0, 0.05, 0.5)]
    with pytest.raises(StructureError, match=r"total occupancy is 1\.05 > 1") as info:
        load_structure(write(tmp_path, cif_text(CUBIC, rows)))
    assert "sum to at most 1" in str(info.value)  # names the fix
    assert "0.075 Å" in str(info.value)


def test_close_neighbours_of_one_atom_are_summed_together(tmp_path):
    # Each pair sums to 0.8 but the middle atom and both neighbours sum to 1.2.
    rows = [
        ("O1", "O", 0.0, 0, 0, 0.4, 0.5),
        ("O2", "O", 0.06, 0, 0, 0.4, 0.5),
        ("O3", "O", 0.12, 0, 0, 0.4, 0.5),
    ]
    with pytest.raises(StructureError, match=r"total occupancy is 1\.2 > 1"):
        load_structure(write(tmp_path, cif_text(CUBIC, rows)))


@needs_shared
def test_shared_mg_doped_linbo3_loads_with_its_split_site():
    crystal = load_structure(EXPERIMENTAL / "LiNbO3_1-10" / "LiNbO3.cif")
    counts = {e: crystal.elements.count(e) for e in set(crystal.elements)}
    assert counts == {"Li": 6, "Mg": 6, "Nb": 6, "O": 18}  # R3c on hexagonal axes
    li, mg = (np.flatnonzero(np.array(crystal.elements) == e) for e in ("Li", "Mg"))
    # Each Mg sits 0.075 Å from one Li, and the pair shares one site.
    cart = crystal.cartesian_positions
    gap = np.linalg.norm(cart[li][:, None] - cart[mg][None], axis=-1).min(axis=0)
    np.testing.assert_allclose(gap, 0.0054 * 13.8497, rtol=1e-9)
    assert crystal.occupancies[li].sum() + crystal.occupancies[mg].sum() == pytest.approx(6)
    assert crystal.space_group_number == 161


@needs_shared
def test_linbo3_as_its_authors_wrote_it_is_refused(tmp_path):
    # Their input had Li at occupancy 1.0 beside the 5 % Mg: 1.05 on one site.
    text = (EXPERIMENTAL / "LiNbO3_1-10" / "LiNbO3.cif").read_text()
    assert "Li1 Li 0 0 0.2916 0.1 0.95" in text
    path = write(tmp_path, text.replace("0.2916 0.1 0.95", "0.2916 0.1 1.0"), "authors")
    with pytest.raises(StructureError, match=r"Li \(1\) .*Mg \(0\.05\).*0\.075 Å away.*1\.05 > 1"):
        load_structure(path)


# ----------------------------------------------------------------------------------------
# Origin choices: the CIF's operations are the truth
# ----------------------------------------------------------------------------------------

O2 = _ops(526)  # Fd-3m origin choice 2, Hall -F 4vw 2vw 3
SPINEL_O2 = [
    ("Mg1", "Mg", 0.125, 0.125, 0.125, 1, 0.4),
    ("Al1", "Al", 0.5, 0.5, 0.5, 1, 0.4),
    ("O1", "O", 0.2624, 0.2624, 0.2624, 1, 0.6),
]
#: Origin choice 1 is origin choice 2 shifted by +1/8 (ITA: origin 2 at −1/8 from −43m).
SPINEL_O1 = [(*r[:2], *(np.add(r[2:5], 0.125)), *r[5:]) for r in SPINEL_O2]
SI_O2 = [("Si1", "Si", 0.125, 0.125, 0.125, 1, 0.46)]
SI_O1 = [("Si1", "Si", 0, 0, 0, 1, 0.46)]
FD3M = ("_space_group_name_H-M_alt 'F d -3 m'", "_space_group_IT_number 227")


@pytest.mark.parametrize(
    ("origin2", "origin1", "a", "n_atoms"),
    [(SI_O2, SI_O1, 5.431, 8), (SPINEL_O2, SPINEL_O1, 8.08, 56)],
    ids=["Si", "MgAl2O4"],
)
def test_origin_choice_2_operations_are_used(tmp_path, origin2, origin1, a, n_atoms):
    cell = (a, a, a, 90, 90, 90)
    # The origin-2 file also names Fd-3m and 227, which alone mean origin choice 1.
    text2 = cif_text(cell, origin2, operations=O2, header=FD3M)
    with pytest.warns(UserWarning, match="another setting.*the listed operations are used"):
        crystal2 = load_structure(write(tmp_path, text2, "o2"))
    text1 = cif_text(cell, origin1, header=("_space_group_name_H-M_alt 'F d -3 m :1'",))
    crystal1 = load_structure(write(tmp_path, text1, "o1"))
    assert len(crystal2) == len(crystal1) == n_atoms
    assert crystal2.space_group_number == 227
    hkl = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 0], [3, 1, 1], [2, 2, 2], [4, 0, 0], [5, 3, 1]])
    u1, u2 = structure_factors(crystal1, hkl), structure_factors(crystal2, hkl)
    # x1 = x2 + 1/8: the same crystal seen from another origin, U_g picks up a phase.
    phase = np.exp(-2j * np.pi * hkl @ np.full(3, 0.125))
    np.testing.assert_allclose(u1, u2 * phase, rtol=0, atol=1e-12 * abs(u1[0]))


@pytest.mark.parametrize(
    "header",
    [
        ("_space_group_name_H-M_alt 'F d -3 m :2'",),
        ("_symmetry_space_group_name_H-M 'F d -3 m Z'",),  # ICSD's spelling
        ("_space_group_name_Hall '-F 4vw 2vw 3'", "_space_group_IT_number 227"),
    ],
)
def test_origin_choice_2_from_symbols_without_operations(tmp_path, header):
    crystal = load_structure(
        write(tmp_path, cif_text((8.08, 8.08, 8.08, 90, 90, 90), SPINEL_O2, header=header))
    )
    assert len(crystal) == 56
    assert crystal.elements.count("O") == 32


def test_symbol_without_origin_choice_warns_and_uses_origin_1(tmp_path):
    path = write(tmp_path, cif_text((5.431,) * 3 + (90,) * 3, SI_O1, header=FD3M[:1]))
    with pytest.warns(UserWarning, match="origin choice 1 is used"):
        crystal = load_structure(path)
    assert len(crystal) == 8


def test_stated_multiplicity_catches_a_setting_mix_up(tmp_path):
    # Origin-2 coordinates under an origin-1 reading give 16 Si instead of 8; the CIF's
    # own multiplicity column turns that silent error into a named one.
    text = cif_text(
        (5.431,) * 3 + (90,) * 3,
        [(*SI_O2[0], 8)],
        header=("_space_group_name_H-M_alt 'F d -3 m :1'",),
        columns=("occupancy", "B_iso_or_equiv", "symmetry_multiplicity"),
    )
    with pytest.raises(StructureError, match=r"multiplicity 8 .* give 16 atoms"):
        load_structure(write(tmp_path, text))


def test_incomplete_operation_list_is_refused(tmp_path):
    rots, trans = O2
    text = cif_text((5.431,) * 3 + (90,) * 3, SI_O2, operations=(rots[:-1], trans[:-1]))
    with pytest.raises(StructureError, match="do not form a group"):
        load_structure(write(tmp_path, text))


def test_operations_of_another_point_group_than_the_number_are_refused(tmp_path):
    # The 96 operations of F-43m (216) labelled as 227: the point groups' orders differ.
    text = cif_text(
        (5.431,) * 3 + (90,) * 3,
        SI_O1,
        operations=_ops(_hall_number(216, "")),
        header=("_space_group_IT_number 227",),
    )
    with pytest.raises(StructureError, match="order 48.*24 distinct rotations"):
        load_structure(write(tmp_path, text))


TWO_ORIGINS = sorted({t.number for t in HALL if t.choice == "2"})


def _cell_for(number: int) -> tuple[float, ...]:
    if number >= 195:
        return (10.3, 10.3, 10.3, 90, 90, 90)
    if number >= 75:
        return (9.1, 9.1, 11.7, 90, 90, 90)
    return (9.1, 10.3, 11.7, 90, 90, 90)


def _origin_shift(ops1, ops2) -> np.ndarray:
    """t with x1 = x2 + t: every (W, w2 + (I − W) t) is an operation of ``ops1``."""
    grid = np.arange(8) / 8
    for t in np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3):
        moved = ops2[1] + (t - np.einsum("kij,j->ki", ops2[0], t))
        ok = True
        for w, m in zip(ops2[0], moved, strict=True):
            same = np.all(ops1[0] == w, axis=(1, 2))
            d = ops1[1][same] - m
            if not np.any(np.abs(d - np.round(d)).max(axis=1) < 1e-9):
                ok = False
                break
        if ok:
            return t
    raise AssertionError("no origin shift on the 1/8 grid")


def _general_position(ops, cell) -> np.ndarray:
    """A position whose images under ``ops`` are all at least 1 Å apart."""
    basis = np.diag(cell[:3])  # the cells used here are orthogonal
    for p in np.random.default_rng(0).uniform(0.02, 0.48, (50, 3)):
        images = np.mod(np.einsum("kij,j->ki", ops[0], p) + ops[1], 1.0)
        d = images[:, None] - images[None]
        d -= np.round(d)
        dist = np.linalg.norm(d @ basis, axis=-1) + 9 * np.eye(len(images))
        if dist.min() > 1.0:
            return p
    raise AssertionError("no general position found")


@pytest.mark.parametrize("how", ["operations", "symbol", "hall"])
@pytest.mark.parametrize("number", TWO_ORIGINS)
def test_every_two_origin_group_expands_in_origin_choice_2(tmp_path, number, how):
    h1, h2 = _hall_number(number, "1"), _hall_number(number, "2")
    ops1, ops2 = _ops(h1), _ops(h2)
    t = _origin_shift(ops1, ops2)
    symbol = HALL[h2 - 1].international
    header = {
        # The number alone would mean origin choice 1: the listed operations must win.
        "operations": (
            f"_space_group_name_H-M_alt '{symbol}'",
            f"_space_group_IT_number {number}",
        ),
        "symbol": (f"_space_group_name_H-M_alt '{symbol} :2'",),
        "hall": (f"_space_group_name_Hall '{HALL[h2 - 1].hall_symbol}'",),
    }[how]
    listed = ops2 if how == "operations" else None
    cell = _cell_for(number)
    general = _general_position(ops2, cell)
    for p2 in (general, np.zeros(3)):  # a general position and the inversion centre
        text2 = cif_text(cell, [("Ca1", "Ca", *p2, 1, 0.5)], operations=listed, header=header)
        text1 = cif_text(cell, [("Ca1", "Ca", *(p2 + t), 1, 0.5)], operations=ops1)
        if how == "operations":  # the symbol alone would mean origin choice 1: say so
            with pytest.warns(UserWarning, match="the listed operations are used"):
                crystal2 = load_structure(write(tmp_path, text2, "o2"))
        else:
            crystal2 = load_structure(write(tmp_path, text2, "o2"))
        crystal1 = load_structure(write(tmp_path, text1, "o1"))
        assert _same_sites(crystal2.positions, crystal1.positions, t)
        if not p2.any():
            # Origin choice 2 puts a centre of symmetry at the origin: its site symmetry is
            # the operations with no translation, whatever the other origin would give.
            site = np.all(np.abs(ops2[1] - np.round(ops2[1])) < 1e-9, axis=1).sum()
            assert len(crystal2) == len(ops2[0]) // site
        else:
            assert len(crystal2) == len(ops2[0])


# ----------------------------------------------------------------------------------------
# Rhombohedral and hexagonal axes
# ----------------------------------------------------------------------------------------

# Bi2Te3, R-3m: Te1 3a, Bi 6c, Te2 6c on hexagonal axes; (0, 0, z) is (z, z, z) on
# rhombohedral (obverse) axes.
BI2TE3 = [("Te1", "Te", 0.0), ("Bi1", "Bi", 0.4001), ("Te2", "Te", 0.2095)]
A_HEX, C_HEX = 4.386, 30.497


def _rhombohedral_cell() -> tuple[float, ...]:
    a_r = np.sqrt(A_HEX**2 / 3 + C_HEX**2 / 9)
    cos_alpha = (2 * C_HEX**2 - 3 * A_HEX**2) / (2 * C_HEX**2 + 6 * A_HEX**2)
    alpha = float(np.degrees(np.arccos(cos_alpha)))
    return (a_r, a_r, a_r, alpha, alpha, alpha)


@pytest.mark.parametrize(
    ("hex_symbol", "rho_symbol"),
    [("R -3 m :H", "R -3 m :R"), ("R -3 m", "R -3 m"), ("R -3 m H", "R -3 m R")],
)
def test_rhombohedral_and_hexagonal_axes_give_the_same_structure_factors(
    tmp_path, hex_symbol, rho_symbol
):
    hex_rows = [(label, el, 0, 0, z, 1, 0.6) for label, el, z in BI2TE3]
    rho_rows = [(label, el, z, z, z, 1, 0.6) for label, el, z in BI2TE3]
    hex_cell = (A_HEX, A_HEX, C_HEX, 90, 90, 120)
    hexagonal = load_structure(
        write(
            tmp_path,
            cif_text(hex_cell, hex_rows, header=(f"_space_group_name_H-M_alt '{hex_symbol}'",)),
            "h",
        )
    )
    rhombohedral = load_structure(
        write(
            tmp_path,
            cif_text(
                _rhombohedral_cell(),
                rho_rows,
                header=(f"_space_group_name_H-M_alt '{rho_symbol}'",),
            ),
            "r",
        )
    )
    assert (len(hexagonal), len(rhombohedral)) == (15, 5)
    assert hexagonal.space_group_number == rhombohedral.space_group_number == 166
    assert hexagonal.volume == pytest.approx(3 * rhombohedral.volume)
    # Obverse reflections (−h + k + l = 3n) of the hexagonal cell, on rhombohedral axes.
    hkl_h = np.array(
        [
            [0, 0, 0],
            [0, 0, 3],
            [1, 0, 1],
            [0, 1, 2],
            [1, 1, 0],
            [1, 0, 4],
            [0, 1, 5],
            [2, -1, 3],
            [0, 0, 15],
            [2, 0, -1],
        ]
    )
    assert np.all((-hkl_h[:, 0] + hkl_h[:, 1] + hkl_h[:, 2]) % 3 == 0)
    to_rho = np.array([[2, 1, 1], [-1, 1, 1], [-1, -2, 1]]).T / 3
    hkl_r = np.round(hkl_h @ to_rho).astype(int)
    np.testing.assert_allclose(hkl_r @ np.linalg.inv(to_rho), hkl_h, atol=1e-12)
    u_h, u_r = structure_factors(hexagonal, hkl_h), structure_factors(rhombohedral, hkl_r)
    np.testing.assert_allclose(u_r, u_h, rtol=0, atol=1e-12 * abs(u_h[0]))
    # Reverse reflections are absent on hexagonal axes (R centring).
    assert abs(structure_factors(hexagonal, np.array([[1, 0, 0]]))[0]) < 1e-12 * abs(u_h[0])


# ----------------------------------------------------------------------------------------
# Settings named by symbols
# ----------------------------------------------------------------------------------------


def _same_operations(ops, rotations, translations) -> bool:
    if len(ops) != len(rotations):
        return False
    for w, t in zip(rotations, translations, strict=True):
        same = np.all(ops.rotations == w, axis=(1, 2))
        d = ops.translations[same] - t
        if not np.any(np.abs(d - np.round(d)).max(axis=1) < 1e-9):
            return False
    return True


HEX_CELL = (5.0, 5.0, 13.0, 90, 90, 120)
RHO_CELL = (5.5, 5.5, 5.5, 55, 55, 55)


@pytest.mark.parametrize(
    ("header", "cell", "number", "choice"),
    [
        ("_symmetry_space_group_name_H-M 'P 21/n'", CUBIC, 14, "b2"),  # P 1 21/n 1
        ("_symmetry_space_group_name_H-M 'P 1 21/n 1'", CUBIC, 14, "b2"),
        ("_symmetry_space_group_name_H-M 'P 21/c'", CUBIC, 14, "b1"),
        ("_space_group_name_H-M_alt 'P n m a'", CUBIC, 62, ""),
        ("_space_group_name_H-M_alt 'P b n m'", CUBIC, 62, "cab"),
        ("_space_group_name_H-M_alt 'P m -3 m :1'", CUBIC, 221, ""),  # one setting only
        ("_space_group_name_H-M_alt 'I 41/a m d :2'", CUBIC, 141, "2"),
        ("_space_group_name_H-M_alt 'R -3 c'", HEX_CELL, 167, "H"),
        ("_space_group_name_H-M_alt 'R -3 c'", RHO_CELL, 167, "R"),
        ("_space_group_IT_number 166", RHO_CELL, 166, "R"),
        ("_space_group_IT_number 166", HEX_CELL, 166, "H"),
        ("_space_group_name_Hall '-P 4 2 3'", CUBIC, 221, ""),
        # Spaces matter in trigonal symbols: three different groups.
        ("_space_group_name_H-M_alt 'P 3 1 2'", HEX_CELL, 149, ""),
        ("_space_group_name_H-M_alt 'P 3 2 1'", HEX_CELL, 150, ""),
        ("_space_group_name_H-M_alt 'P 31 2 1'", HEX_CELL, 152, ""),
    ],
)
def test_symbols_name_their_setting(tmp_path, header, cell, number, choice):
    from hyperspy_lacbed.crystal.cif import read_cif

    unit = read_cif(write(tmp_path, cif_text(cell, SI_O1, header=(header,))))
    hall = _hall_number(number, choice)
    assert _same_operations(unit.operations, *_ops(hall))


def test_every_symbol_spelling_names_one_space_group():
    from hyperspy_lacbed.crystal.spacegroup import _hm_keys, hall_table

    numbers: dict[str, set[int]] = {}
    for sg in hall_table():
        for key in _hm_keys(sg):
            numbers.setdefault(key, set()).add(sg.number)
    assert {k: v for k, v in numbers.items() if len(v) > 1} == {}
    assert len(numbers) > 530  # every setting, with its short spellings


def test_unknown_symbol_and_setting_are_refused(tmp_path):
    for header, match in (
        ("_space_group_name_H-M_alt 'Q 7'", "Unknown space group 'Q 7'"),
        ("_space_group_name_H-M_alt 'F d -3 m :3'", "no setting '3'"),
        ("_space_group_name_Hall '-F 9'", "not one of the 530"),
        ("_space_group_IT_number 231", "not between 1 and 230"),
    ):
        with pytest.raises(StructureError, match=match):
            load_structure(write(tmp_path, cif_text(CUBIC, SI_O1, header=(header,))))


def test_missing_coordinates_are_refused(tmp_path):
    text = cif_text(CUBIC, [("Si1", "Si", 0, "?", 0, 1, 0.5)])
    with pytest.raises(StructureError, match="Si1 .*has no coordinates"):
        load_structure(write(tmp_path, text))


def test_aniso_columns_in_the_atom_loop(tmp_path):
    # Some programs append the aniso columns to the atom loop instead of a loop of their own.
    text = cif_text(
        CUBIC,
        [("Na1", "Na", 0, 0, 0, 1, 0.01, 0.02, 0.03)],
        columns=("occupancy", "aniso_U_11", "aniso_U_22", "aniso_U_33"),
    )
    crystal = load_structure(write(tmp_path, text))
    np.testing.assert_allclose(crystal.u_aniso[0], np.diag([0.01, 0.02, 0.03]), atol=1e-15)


def test_operation_text_forms():
    from hyperspy_lacbed.crystal.spacegroup import SpaceGroupError, parse_operation

    w, t = parse_operation("1/2+X, -x+y ,z-1/6")
    np.testing.assert_array_equal(w, [[1, 0, 0], [-1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(t, [0.5, 0, 5 / 6])
    w, t = parse_operation("'-y+0.25,x,-z'")
    np.testing.assert_array_equal(w, [[0, -1, 0], [1, 0, 0], [0, 0, -1]])
    np.testing.assert_allclose(t, [0.25, 0, 0])
    for bad, match in (
        ("x,y", "three parts"),
        ("x,x,z", "not a crystallographic"),
        ("q,y,z", "'q'"),
    ):
        with pytest.raises(SpaceGroupError, match=match):
            parse_operation(bad)
