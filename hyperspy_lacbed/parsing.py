"""One home for parsing user input that is not specific to a signal.

Every public function of the package that reads what a user may type (pint
quantities, strings such as ``"200 kV"`` or ``"100 nm"``, plain numbers in the
documented default unit, lists and arrays) goes through the functions here, so that
each conversion and each check exists once. The result is a plain Python value in the
internal unit (Å, 1/Å without 2π, V, keV for beam energies, mrad for angles).
Errors are :class:`ValueError` with a message naming the quantity and the fix.

No HyperSpy and no torch here: the crystal, Bloch-wave and network layers use these
functions too (see :doc:`/architecture`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pint

from hyperspy_lacbed.units import electron_wavelength, to_magnitude, ureg

__all__ = [
    "as_direction",
    "as_g_vectors",
    "as_int_vector",
    "as_reflections",
    "as_thickness",
    "as_thickness_axis",
    "dataclass_kwargs",
    "default_x_direction",
    "finite_positive",
    "is_angle",
    "is_evenly_spaced",
    "parse_angle_mrad",
    "parse_beam_energy",
    "parse_memory",
    "parse_tilt",
    "quantity",
    "reflection_tuples",
]


def quantity(value: Any, name: str) -> pint.Quantity | None:
    """Parse ``value`` into a pint quantity; ``None`` for a plain number."""
    if isinstance(value, pint.Quantity):
        return value
    if isinstance(value, str):
        try:
            q = ureg().Quantity(value)
        except Exception as exc:  # pint raises several unrelated types
            raise ValueError(
                f"Cannot read {name} {value!r} as a quantity; give a number or a string "
                "with its unit, such as '200 kV' or '0.3 1/Å'."
            ) from exc
        # "3" parses to a plain number, or to a unitless Quantity in newer pint
        return q if isinstance(q, pint.Quantity) and not q.unitless else None
    return None


def finite_positive(value: float, name: str, fix: str = "") -> float:
    """Return ``value`` as a float, or raise if it is NaN, infinite or not positive."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}. {fix}".strip())
    return value


def parse_beam_energy(value: Any) -> float:
    """Beam energy in keV from an energy ("200 keV"), a voltage ("200 kV") or a number in keV.

    Raises
    ------
    ValueError
        If the unit is neither an energy nor a voltage, or the value is not positive.
    """
    q = quantity(value, "beam_energy")
    if q is None:
        kev = to_magnitude(value, "keV", "beam_energy")
    else:
        reg = ureg()
        if q.dimensionality == reg.Quantity(1, "eV").dimensionality:
            kev = q.to("keV").magnitude
        elif q.dimensionality == reg.Quantity(1, "V").dimensionality:
            kev = q.to("kV").magnitude
        else:
            raise ValueError(
                f"beam_energy is given in {q.units:~}, which is neither an energy nor a "
                "voltage; give it as '200 kV', '200 keV' or a number in keV."
            )
    return finite_positive(
        np.asarray(kev).item(), "beam_energy (keV)", "Give it as '200 kV' or 200 (keV)."
    )


def is_angle(unit: Any) -> bool:
    """Whether ``unit`` (a string or pint unit) is an angle (dimensionless in pint)."""
    try:
        return ureg().Quantity(1, unit).dimensionless
    except Exception:
        return False


def parse_tilt(value: Any, name: str, beam_energy_kev: float | None) -> float:
    """A transverse wave vector or tilt in 1/Å.

    Parameters
    ----------
    value
        A reciprocal length ("0.3 1/Å", "3 1/nm"), an angle ("12 mrad", "0.5 deg"),
        a pint quantity of either, or a number in 1/Å.
    name
        What the value is, for the error message.
    beam_energy_kev
        Needed for angles (k = angle / λ); ``None`` if unknown.
    """
    q = quantity(value, name)
    if q is None:
        k = to_magnitude(value, "1/angstrom", name)
    elif q.dimensionless:
        if beam_energy_kev is None:
            raise ValueError(
                f"{name} is an angle ({value}), and converting it to 1/Å needs the beam "
                "energy: pass beam_energy='200 kV' or call "
                "set_experimental_parameters(beam_energy=...) first."
            )
        mrad = q.to("mrad").magnitude
        k = mrad / (1000.0 * electron_wavelength(beam_energy_kev * 1e3))
    else:
        k = to_magnitude(q, "1/angstrom", name)
    return finite_positive(np.asarray(k).item(), f"{name} (1/Å)")


def as_int_vector(value: Any, name: str, length: int = 3, nonzero: bool = False) -> list[int]:
    """A crystallographic direction or plane as a list of ``length`` integers."""
    arr = np.asarray(value)
    if arr.shape != (length,):
        raise ValueError(
            f"{name} must be {length} integers such as {[0] * (length - 1) + [1]}, got {value!r}."
        )
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain finite integers, got {value!r}.")
    if not np.allclose(arr, np.round(arr)):
        raise ValueError(f"{name} must contain integers (Miller indices), got {value!r}.")
    if nonzero and not np.any(arr):
        raise ValueError(
            f"{name} cannot be [0, 0, 0], which is not a direction; give one such as [0, 0, 1]."
        )
    return [int(v) for v in np.round(arr)]


def default_x_direction(zone_axis: Sequence[int]) -> list[int] | None:
    """The default in-plane x direction: [100] for the [001] zone axis, else unknown."""
    za = [int(v) for v in zone_axis]
    g = math.gcd(*za) or 1
    if [v // g for v in za] == [0, 0, 1]:
        return [1, 0, 0]
    return None


def as_reflections(value: Any) -> list[list[int]]:
    """Reflections as a list of [h, k, l] integer lists."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"reflections must be a list of [h, k, l], got {value!r}.") from exc
    if arr.ndim == 1 and arr.size == 3:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(
            "reflections must be a list of [h, k, l] integer triplets such as "
            f"[[0, 0, 0], [2, 0, 0]], got an array of shape {arr.shape}."
        )
    return [as_int_vector(r, "reflection") for r in arr]


def as_g_vectors(value: Any) -> list[list[float]]:
    """In-plane reciprocal vectors as a list of [gx, gy] in 1/Å."""
    if isinstance(value, pint.Quantity):
        value = to_magnitude(value, "1/angstrom", "g_vectors")
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            "g_vectors must be a list of [gx, gy] in 1/Å, one per reflection, got an array "
            f"of shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("g_vectors contain NaN or infinite values; give finite [gx, gy] in 1/Å.")
    return arr.tolist()


def as_thickness(value: Any) -> list[float]:
    """One or more thicknesses in Å (numbers in Å, strings such as "100 nm", quantities)."""
    if isinstance(value, (str, pint.Quantity)):
        mag = np.atleast_1d(to_magnitude(value, "angstrom", "thickness"))
    elif np.ndim(value) == 0:
        mag = np.atleast_1d(to_magnitude(value, "angstrom", "thickness"))
    else:
        mag = np.asarray([to_magnitude(v, "angstrom", "thickness") for v in value], dtype=float)
    mag = np.asarray(mag, dtype=float).ravel()
    if mag.size == 0 or not np.all(np.isfinite(mag)) or np.any(mag <= 0):
        raise ValueError(
            f"thickness must be positive and finite (one or more lengths, Å), got {value!r}; "
            "give e.g. '100 nm' or [500, 1000] (plain numbers are Å)."
        )
    if np.any(np.diff(mag) <= 0):
        raise ValueError(
            f"thicknesses must be strictly increasing, got {mag.tolist()} Å; sort them "
            "(and the data along the thickness axis) first."
        )
    return mag.tolist()


def as_thickness_axis(value: Any) -> tuple[list[float], bool]:
    """Thicknesses in Å as :func:`as_thickness`, and whether ``value`` asks for a thickness axis.

    A string or a scalar (number or quantity) is one thickness without an axis; a sequence
    or an array quantity, even of one value, asks for an axis.
    """
    if isinstance(value, str):
        multiple = False
    elif isinstance(value, pint.Quantity):
        multiple = np.ndim(value.magnitude) > 0
    else:
        multiple = np.ndim(value) > 0
    return as_thickness(value), multiple


def parse_angle_mrad(value: Any, name: str, beam_energy_kev: float | None) -> float:
    """An angle in mrad from an angle ("12 mrad"), a reciprocal length ("0.3 1/Å") or mrad."""
    q = quantity(value, name)
    if q is None:
        mrad = to_magnitude(value, "mrad", name)
    elif q.dimensionless:
        mrad = q.to("mrad").magnitude
    else:
        k = to_magnitude(q, "1/angstrom", name)
        if beam_energy_kev is None:
            raise ValueError(
                f"{name} is given as a reciprocal length ({value}); converting it to mrad needs "
                "the beam energy: pass beam_energy='200 kV' as well."
            )
        mrad = 1000.0 * electron_wavelength(beam_energy_kev * 1e3) * k
    return finite_positive(np.asarray(mrad).item(), f"{name} (mrad)")


def is_evenly_spaced(values: Sequence[float], rtol: float = 1e-9) -> bool:
    """Whether ``values`` are evenly spaced (always true for fewer than three)."""
    d = np.diff(np.asarray(values, dtype=float))
    return bool(d.size < 2 or np.allclose(d, d[0], rtol=rtol, atol=0))


def as_direction(value: Any, name: str) -> tuple[int, int, int]:
    """A crystallographic direction [u, v, w] as a tuple of three integers, not [0, 0, 0].

    :func:`as_int_vector` with ``nonzero=True``; a nested ``[[u, v, w]]`` is accepted.
    ``name`` is what the value is, for the error message (e.g. ``"The zone axis"``).
    """
    arr = np.asarray(value)
    if arr.ndim > 1 and arr.size == 3:
        arr = arr.ravel()
    return tuple(as_int_vector(arr, name, 3, nonzero=True))  # type: ignore[return-value]


def reflection_tuples(value: Any) -> tuple[tuple[int, int, int], ...] | None:
    """Reflections as a tuple of (h, k, l) integer tuples; ``None`` stays ``None``."""
    if value is None:
        return None
    return tuple(tuple(r) for r in as_reflections(value))  # type: ignore[misc]


def parse_memory(value: Any) -> float:
    """An amount of memory in bytes from ``"1 GiB"``, a quantity or a number of bytes."""
    if isinstance(value, (int, float)):
        mem = float(value)
    else:
        mem = float(to_magnitude(value, "byte", "max_memory"))
    if not (mem > 0 and math.isfinite(mem)):
        raise ValueError(f"max_memory must be a positive amount of memory, got {value!r}.")
    return mem


def dataclass_kwargs(cls: type, values: Any, what: str, hint: str = "") -> dict[str, Any]:
    """The keyword arguments of dataclass ``cls`` in ``values``, refusing unknown keys.

    The strict inverse of ``to_dict`` for the package's settings dataclasses (model
    domain, normalisation, dataset recipe, training and structure-generator settings):
    a key the class does not know is an error, not silently dropped, since it means the
    file was written by another version.

    Parameters
    ----------
    cls
        The dataclass.
    values
        A mapping of field names to values.
    what
        What the fields are, for the message (``"domain fields"``).
    hint
        How to fix it, appended to the message.

    Raises
    ------
    ValueError
        Naming the unknown keys.
    """
    d = dict(values)
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}" + (f"; {hint}" if hint else "."))
    return d
