"""Physical quantities: parsing user input with pint and the electron-optical constants.

All internal lengths are in Å, reciprocal lengths in 1/Å without 2π, voltages in V
(:doc:`/user_guide/conventions`). Public functions accept pint quantities, strings such as ``"200 kV"``
or plain numbers in a documented default unit; this module turns any of them into a
float in the internal unit, with an error that names the quantity when the
dimensions do not fit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pint

# CODATA 2018, SI
PLANCK = 6.62607015e-34  # J s
ELECTRON_MASS = 9.1093837015e-31  # kg
ELEMENTARY_CHARGE = 1.602176634e-19  # C
SPEED_OF_LIGHT = 299792458.0  # m / s


def ureg() -> pint.UnitRegistry:
    """Return pint's application registry (the one HyperSpy shares)."""
    return pint.get_application_registry()


def to_magnitude(value: Any, unit: str, name: str = "value") -> float | np.ndarray:
    """Convert ``value`` to a plain float (or array) in ``unit``.

    Parameters
    ----------
    value
        A pint quantity, a string such as ``"100 nm"``, or a number (or array of
        numbers) already in ``unit``.
    unit
        The unit to return, in pint syntax (``"angstrom"``, ``"V"``, ``"1/angstrom"``).
    name
        What the value is, for the error message.

    Raises
    ------
    ValueError
        If the string cannot be parsed or its dimensions do not match ``unit``.
    """
    reg = ureg()
    if isinstance(value, str):
        try:
            value = reg.Quantity(value)
        except Exception as exc:  # pint raises several unrelated types
            raise ValueError(
                f"Cannot read {name} {value!r} as a quantity; give a number in {unit} "
                f"or a string such as '1.5 {unit}'."
            ) from exc
        if not isinstance(value, pint.Quantity):  # "3" parses to a plain number
            return float(value)
    if isinstance(value, pint.Quantity):
        try:
            return value.to(unit).magnitude
        except pint.DimensionalityError as exc:
            raise ValueError(
                f"{name} is given in {value.units:~}, which cannot be converted to {unit}; "
                f"give it in units of {unit} (for example '{unit}')."
            ) from exc
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray([to_magnitude(v, unit, name) for v in np.ravel(value)], float).reshape(
            np.shape(value)
        )
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a number or a quantity in {unit}, not {value!r}."
        ) from exc


def electron_wavelength(voltage: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in V."""
    ev = ELEMENTARY_CHARGE * voltage
    p = math.sqrt(2 * ELECTRON_MASS * ev * (1 + ev / (2 * ELECTRON_MASS * SPEED_OF_LIGHT**2)))
    return PLANCK / p * 1e10


def relativistic_gamma(voltage: float) -> float:
    """Lorentz factor γ = 1 + eV / m0 c² for an accelerating voltage in V."""
    return 1.0 + ELEMENTARY_CHARGE * voltage / (ELECTRON_MASS * SPEED_OF_LIGHT**2)


def u_to_volts(gamma: float) -> float:
    """Factor turning U_g in Å⁻² into V_g in volts: V = U h² / (2 m0 γ e)."""
    return PLANCK**2 / (2 * ELECTRON_MASS * gamma * ELEMENTARY_CHARGE) * 1e20


def mrad_per_inverse_angstrom(voltage: float) -> float:
    """Tilt in mrad corresponding to 1 Å⁻¹ of transverse wave vector: 1000·λ."""
    return 1000.0 * electron_wavelength(voltage)
