"""Space-group operations: parsing, checking, comparing, and the 530 Hall settings.

The operations x' = W x + w act on fractional coordinates. Those a CIF lists are parsed
with :func:`parse_operation`; those a CIF only names come from spglib's table of the 530
Hall settings through :func:`operations_from_symbols`, which reads a Hall symbol, a
Hermann–Mauguin symbol with its setting (``:1``/``:2`` origin choice, ``:H``/``:R`` axes,
ICSD's trailing ``S``/``Z``/``H``/``R``) or a space-group number.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


class SpaceGroupError(ValueError):
    """Symmetry operations or a space-group symbol that cannot be used, with the fix."""


@dataclass(frozen=True)
class Operations:
    """Space-group operations x' = W x + w on fractional coordinates.

    ``rotations`` (k, 3, 3) integer, ``translations`` (k, 3) in [0, 1), ``source`` says where
    they came from (the CIF's list, a Hall symbol, ...).
    """

    rotations: np.ndarray
    translations: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.rotations)


def parse_fraction(text: str) -> float:
    """``"1/2"``, ``"0.5"`` or ``"2"`` as a float (``ValueError`` for anything else)."""
    if "/" in text:
        num, den = text.split("/")
        return float(num) / float(den)
    return float(text)


def _term_value(text: str) -> float:
    """A number in an operation: ``"1/2"``, ``"0.5"`` or ``"2"``."""
    try:
        return parse_fraction(text)
    except ValueError:
        raise SpaceGroupError(
            f"{text!r} in a symmetry operation is neither x, y, z nor a number."
        ) from None


def parse_operation(text: str) -> tuple[np.ndarray, np.ndarray]:
    """One symmetry operation such as ``"-y+1/2, x-y, z+1/6"`` as (W, w).

    Raises
    ------
    SpaceGroupError
        A term that is neither ±x, ±y, ±z nor a number, or a matrix that is not a rotation.
    """
    parts = str(text).strip().strip("'\"").lower().replace(" ", "").split(",")
    if len(parts) != 3:
        raise SpaceGroupError(
            f"Symmetry operation {text!r} does not have three parts like 'x,y,z'."
        )
    rot, trans = np.zeros((3, 3)), np.zeros(3)
    for row, part in enumerate(parts):
        for sign, term in re.findall(r"([+-]?)([^+-]+)", part):
            value = -1.0 if sign == "-" else 1.0
            if term[-1] in "xyz":
                coefficient = term[:-1].rstrip("*")
                if coefficient:
                    value *= _term_value(coefficient)
                rot[row, "xyz".index(term[-1])] += value
            else:
                trans[row] += value * _term_value(term)
    w_int = np.round(rot)
    if not np.allclose(rot, w_int) or abs(abs(np.linalg.det(w_int)) - 1) > 1e-9:
        raise SpaceGroupError(f"Symmetry operation {text!r} is not a crystallographic operation.")
    return w_int.astype(int), np.mod(trans, 1.0)


#: Translations are compared on a grid of 1/_GRID of the cell (finer than any CIF rounds to).
_GRID = 24000


def _snap(translations: np.ndarray) -> np.ndarray:
    """Translations in [0, 1), put on multiples of 1/24 when within CIF rounding of one
    (0.3333 → 1/3), so that products of operations compare exactly."""
    t = np.mod(translations, 1.0)
    grid = np.round(t * 24) / 24
    return np.mod(np.where(np.abs(t - grid) < 2e-3, grid, t), 1.0)


def _keys(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """One integer per operation, equal for operations equal modulo lattice translations.

    ``rotations`` and ``translations`` may hold several lists stacked; rotation ids are
    shared across the stack.
    """
    # Rotation entries are small integers: one base-17 number per matrix, then dense ids.
    code = (np.clip(rotations.reshape(len(rotations), 9), -8, 8) + 8).astype(np.int64)
    _, rid = np.unique(code @ 17 ** np.arange(9, dtype=np.int64), return_inverse=True)
    q = np.mod(np.round(np.mod(translations, 1.0) * _GRID).astype(np.int64), _GRID)
    return ((rid.reshape(-1).astype(np.int64) * _GRID + q[:, 0]) * _GRID + q[:, 1]) * _GRID + q[
        :, 2
    ]


def canonical(operations: Operations) -> Operations:
    """The same operations with duplicates (equal modulo lattice translations) removed."""
    trans = _snap(operations.translations)
    _, first = np.unique(_keys(operations.rotations, trans), return_index=True)
    keep = np.sort(first)
    return Operations(operations.rotations[keep], trans[keep], operations.source)


def check_group(operations: Operations) -> None:
    """Refuse operations that are not closed under composition (a list with a typo or gap).

    Raises
    ------
    SpaceGroupError
        Naming one product of two operations that is not in the list.
    """
    rots, trans = operations.rotations, _snap(operations.translations)
    k = len(rots)
    if not any(np.array_equal(w, np.eye(3)) for w in rots):
        raise SpaceGroupError("The symmetry operations do not include the identity 'x,y,z'.")
    # Product (W_i, w_i)(W_j, w_j) = (W_i W_j, W_i w_j + w_i) for every pair i, j.
    prod_w = np.einsum("iab,jbc->ijac", rots, rots).reshape(k * k, 3, 3)
    prod_t = _snap((np.einsum("iab,jb->ija", rots, trans) + trans[:, None, :]).reshape(-1, 3))
    keys = _keys(np.concatenate([rots, prod_w]), np.concatenate([trans, prod_t]))
    missing = np.flatnonzero(~np.isin(keys[k:], keys[:k]))
    if missing.size:
        i, j = divmod(int(missing[0]), k)
        raise SpaceGroupError(
            f"The symmetry operations listed do not form a group: operation {i + 1} applied "
            f"after operation {j + 1} gives an operation that is not in the list. Complete or "
            "correct the _space_group_symop_operation_xyz loop (the full list of the space "
            "group's operations, centring translations included)."
        )


@lru_cache(maxsize=1)
def hall_table() -> list[Any]:
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [spglib.get_spacegroup_type(n) for n in range(1, 531)]


def hall_operations(hall_number: int) -> Operations:
    """The operations of one of the 530 Hall settings (spglib's numbering)."""
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's error-handling notice
        data = spglib.get_symmetry_from_database(hall_number)
    sg = hall_table()[hall_number - 1]
    return Operations(
        np.asarray(data["rotations"], int),
        np.mod(np.asarray(data["translations"], float), 1.0),
        f"space group {sg.number} ({sg.international_short}), Hall symbol "
        f"'{sg.hall_symbol}'" + (f", setting {sg.choice}" if sg.choice else ""),
    )


def _squash(symbol: str) -> str:
    return re.sub(r"[\s_]", "", symbol).lower()


def _hm_keys(sg: Any) -> set[str]:
    """The spellings of one setting's H-M symbol: spglib's alternatives ('P 2_1/c = P 1 2_1/n
    1'), the full symbol and, for monoclinic settings, the symbol without its '1' axes
    ('P 1 21/n 1' is also 'P 21/n')."""
    spellings = [*sg.international.split("="), sg.international_full, sg.international_short]
    keys = set()
    for spelling in spellings:
        tokens = spelling.split()
        keys.add(_squash(spelling))
        reduced = [tokens[0]] + [t for t in tokens[1:] if t != "1"]
        # Only monoclinic '1' axes are optional: 'P 3 1 2' and 'P 3 2 1' are two groups.
        if 3 <= sg.number <= 15 and len(reduced) > 1:
            keys.add(_squash(" ".join(reduced)))
    return keys


def _is_rhombohedral_cell(lp: tuple[float, ...]) -> bool:
    a, b, c, al, be, ga = lp
    return (
        math.isclose(a, b, rel_tol=1e-4)
        and math.isclose(a, c, rel_tol=1e-4)
        and math.isclose(al, be, abs_tol=1e-3)
        and math.isclose(al, ga, abs_tol=1e-3)
        and not math.isclose(al, 90.0, abs_tol=1e-3)
    )


def _pick(candidates: list[int], choice: str, lp: tuple[float, ...]) -> int | None:
    """The Hall number among ``candidates`` for a setting (``""`` = the default)."""
    table = hall_table()
    if choice and any(table[n - 1].choice for n in candidates):
        hits = [n for n in candidates if table[n - 1].choice.lower() == choice.lower()]
        return hits[0] if hits else None
    if any(table[n - 1].choice == "R" for n in candidates):
        want = "R" if _is_rhombohedral_cell(lp) else "H"
        return next(n for n in candidates if table[n - 1].choice == want)
    first = table[candidates[0] - 1]
    if first.choice == "1" and any(table[n - 1].choice == "2" for n in candidates):
        warnings.warn(
            f"The CIF names space group {first.international_short} without its origin choice "
            "and lists no symmetry operations; origin choice 1 is used. Add ':2' to the "
            "symbol (or list the operations) if the coordinates are for origin choice 2.",
            UserWarning,
            stacklevel=7,  # the caller of load_structure
        )
    return candidates[0]  # origin choice 1, unique axis b: the tables' first setting


def operations_from_symbols(
    hall: str, hm: str, number: str, lattice_parameters: tuple[float, ...]
) -> Operations:
    """The operations named by a Hall symbol, an H-M symbol with setting, or a number.

    Raises
    ------
    SpaceGroupError
        A symbol that matches no tabulated setting.
    """
    table = hall_table()
    if hall:
        key = _squash(hall)
        for n, sg in enumerate(table, 1):
            if _squash(sg.hall_symbol) == key:
                return hall_operations(n)
        raise SpaceGroupError(
            f"The Hall symbol {hall!r} is not one of the 530 tabulated settings; list the "
            "symmetry operations in a _space_group_symop_operation_xyz loop instead."
        )
    if hm:
        match = re.match(r"^(.*?)\s*(?::\s*(\w+)|\s+([SZHR]))$", hm.strip())
        body, choice = (match.group(1), match.group(2) or match.group(3)) if match else (hm, "")
        choice = {"s": "1", "z": "2"}.get(choice.lower(), choice) if choice else ""
        key = _squash(body)
        candidates = [n for n, sg in enumerate(table, 1) if key in _hm_keys(sg)]
        if candidates:
            n = _pick(candidates, choice, lattice_parameters)
            if n is None:
                raise SpaceGroupError(
                    f"The space group {hm!r} has no setting {choice!r}; settings are "
                    f"{sorted({table[c - 1].choice for c in candidates})}."
                )
            return hall_operations(n)
        if not number:
            return _diffpy_operations(hm)
    if number:
        try:
            it_number = int(_term_value(number))
        except ValueError:
            it_number = 0
        candidates = [n for n, sg in enumerate(table, 1) if sg.number == it_number]
        if not candidates:
            raise SpaceGroupError(
                f"Space-group number {number!r} is not between 1 and 230; fix "
                "_space_group_IT_number or list the symmetry operations."
            )
        return hall_operations(_pick(candidates, "", lattice_parameters))  # type: ignore[arg-type]
    raise SpaceGroupError("The CIF states no space group.")


def _diffpy_operations(symbol: str) -> Operations:
    """Operations of a space-group name only diffpy knows (e.g. a short non-standard setting)."""
    from diffpy.structure.spacegroups import GetSpaceGroup, IsSpaceGroupIdentifier

    if not IsSpaceGroupIdentifier(symbol):
        raise SpaceGroupError(
            f"Unknown space group {symbol!r}; give the symmetry operations in a "
            "_space_group_symop_operation_xyz loop, or a Hall symbol."
        )
    sg = GetSpaceGroup(symbol)
    rots = np.array([op.R for op in sg.iter_symops()], int)
    trans = np.mod(np.array([op.t for op in sg.iter_symops()], float), 1.0)
    return Operations(rots, trans, f"space group {symbol!r} (diffpy's table)")


def point_group_order(number: str) -> int | None:
    try:
        it_number = int(_term_value(number))
    except ValueError:
        return None
    table = hall_table()
    halls = [n for n, sg in enumerate(table, 1) if sg.number == it_number]
    if not halls:
        return None
    rots = hall_operations(halls[0]).rotations
    return len(np.unique(rots.reshape(len(rots), -1), axis=0))


def cartesian_rotations(rotations: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Fractional rotations W (k, 3, 3) as Cartesian R = Bᵀ W B⁻ᵀ (``basis`` rows a, b, c)."""
    return basis.T @ rotations @ np.linalg.inv(basis).T


def same_operations(a: Operations, b: Operations) -> bool:
    """Whether two lists hold the same operations, modulo lattice translations and order."""
    keys = _keys(
        np.concatenate([a.rotations, b.rotations]),
        np.concatenate([_snap(a.translations), _snap(b.translations)]),
    )
    return set(keys[: len(a)]) == set(keys[len(a) :])
