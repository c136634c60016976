"""Electron structure factors U_g, with Debye–Waller factors and absorption.

Conventions (:doc:`/user_guide/conventions`): for reflection g (1/Å, no 2π)

    U_g = γ / (π Ω) Σ_j occ_j f_j(|g|) exp(−B_j s²) exp(−2πi g·r_j),   s = |g| / 2,

in Å⁻², with f_j the electron scattering factor in Å and Ω the cell volume. For a
crystal with anisotropic displacement tensors (``Crystal.u_aniso``, Cartesian Å²) the
factor exp(−B_j s²) becomes exp(−2π² gᵀ U_j g), which is the same for U_j = B_j/(8π²)·I.
The crystal potential is V(r) = Σ_g V_g exp(2πi g·r) with V_g = U_g h² / (2 m0 γ e).
The absorptive potential U'_g enters the Bloch-wave equations as U_g + i U'_g.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from hyperspy_lacbed.crystal.scattering import absorptive_scattering_factor, scattering_factor
from hyperspy_lacbed.crystal.structure import Crystal
from hyperspy_lacbed.units import relativistic_gamma, u_to_volts

ABSORPTION_MODELS = ("none", "proportional", "bird-king")
AbsorptionModel = Literal["none", "proportional", "bird-king"]


def _check_absorption(absorption: str, fraction: float) -> None:
    if absorption not in ABSORPTION_MODELS:
        raise ValueError(
            f"Unknown absorption model {absorption!r}; choose one of {', '.join(ABSORPTION_MODELS)}."
        )
    if absorption == "proportional" and not (0 <= fraction < 10 and math.isfinite(fraction)):
        raise ValueError(
            f"absorption_fraction must be a small non-negative number (0.1 for 10 %), got {fraction}."
        )


def _unique_q(crystal: Crystal, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.linalg.norm(crystal.g_vectors(hkl), axis=-1)
    # Many reflections share |g| (symmetry); evaluate scattering factors once per value. The
    # rounded value only groups them: each group keeps one exact |g|, so that exp(−B s²)
    # equals the anisotropic exp(−2π² gᵀ U g) of U = B/(8π²)·I to rounding, not to 1e-10.
    _, first, inverse = np.unique(np.round(q, 10), return_index=True, return_inverse=True)
    return q.reshape(-1)[first], inverse.reshape(q.shape)


def _phases(crystal: Crystal, hkl: np.ndarray) -> np.ndarray:
    return np.exp(-2j * np.pi * (np.asarray(hkl, float) @ crystal.positions.T))


def structure_factors(
    crystal: Crystal,
    hkl: np.ndarray,
    voltage: float = 200e3,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> np.ndarray:
    """Structure factors U_g (Å⁻²) of the real crystal potential.

    Parameters
    ----------
    crystal
        The crystal (see :func:`~hyperspy_lacbed.crystal.structure.load_structure`).
    hkl
        Miller indices, shape (..., 3).
    voltage
        Accelerating voltage in V (enters through γ).
    scattering_factors
        ``"kirkland"`` (default) or ``"lobato"``.
    debye_waller
        Apply each atom's Debye–Waller factor: exp(−B s²), or exp(−2π² gᵀ U g) when the
        crystal has anisotropic tensors (``crystal.u_aniso`` is not None).

    Returns
    -------
    numpy.ndarray
        Complex U_g, shape ``hkl.shape[:-1]``.
    """
    hkl = np.asarray(hkl)
    q_unique, inverse = _unique_q(crystal, hkl)
    s2 = (q_unique / 2) ** 2
    atom_f = np.empty((len(crystal), q_unique.size))
    for element in set(crystal.elements):
        rows = [i for i, e in enumerate(crystal.elements) if e == element]
        atom_f[rows] = scattering_factor(element, q_unique, table=scattering_factors)
    atom_f *= crystal.occupancies[:, None]
    if debye_waller and crystal.u_aniso is None:
        atom_f *= np.exp(-crystal.b_iso[:, None] * s2[None, :])
    anisotropic = debye_waller and crystal.u_aniso is not None
    return _sum_atoms(crystal, hkl, atom_f, inverse, voltage, anisotropic)


def debye_waller_factors(crystal: Crystal, hkl: np.ndarray) -> np.ndarray:
    """Debye–Waller factor of each reflection and atom, shape (n_g, n_atoms).

    exp(−2π² gᵀ U_j g) with the Cartesian tensors ``crystal.u_aniso`` (Å², g in 1/Å without
    2π) when the crystal has them, else exp(−B_j s²) with s = |g|/2; the two agree for
    U_j = B_j/(8π²)·I.

    Parameters
    ----------
    crystal
        The crystal.
    hkl
        Miller indices, shape (..., 3).

    Returns
    -------
    numpy.ndarray
        Real factors in (0, 1], one row per reflection of ``hkl`` (flattened).
    """
    g = crystal.g_vectors(np.asarray(hkl).reshape(-1, 3))  # 1/Å, no 2π
    if crystal.u_aniso is None:
        s2 = (g**2).sum(axis=1) / 4
        # One exponential per distinct B (most crystals have a few), then one column per atom.
        b_values, b_index = np.unique(crystal.b_iso, return_inverse=True)
        return np.exp(-s2[:, None] * b_values[None, :])[:, b_index.reshape(-1)]
    return np.exp(-2 * math.pi**2 * np.einsum("gi,aij,gj->ga", g, crystal.u_aniso, g))


def _sum_atoms(
    crystal: Crystal,
    hkl: np.ndarray,
    atom_f: np.ndarray,
    inverse: np.ndarray,
    voltage: float,
    anisotropic: bool = False,
) -> np.ndarray:
    flat = hkl.reshape(-1, 3)
    inv = inverse.reshape(-1)
    phases = _phases(crystal, flat)  # (n_g, n_atoms)
    weights = atom_f[:, inv]  # (n_atoms, n_g)
    if anisotropic:
        # Per reflection, not per distinct |g|: the factor depends on the direction of g.
        weights *= debye_waller_factors(crystal, flat).T
    u = np.einsum("ga,ag->g", phases, weights)
    prefactor = relativistic_gamma(voltage) / (math.pi * crystal.volume)
    return (prefactor * u).reshape(hkl.shape[:-1])


def absorptive_structure_factors(
    crystal: Crystal,
    hkl: np.ndarray,
    voltage: float = 200e3,
    absorption: AbsorptionModel = "proportional",
    absorption_fraction: float = 0.1,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
    u_real: np.ndarray | None = None,
) -> np.ndarray:
    """Absorptive structure factors U'_g (Å⁻²).

    Parameters
    ----------
    absorption
        ``"none"``: zero. ``"proportional"``: U'_g = κ U_g with κ = ``absorption_fraction``
        (Felix ``RAbsorptionPer``/100). ``"bird-king"``: thermal-diffuse-scattering
        absorptive form factors of Bird & King (1990), which depend on each atom's B. For
        an atom with an anisotropic tensor they use its isotropic equivalent
        B_eq = 8π² tr(U)/3 (``crystal.b_iso``), both in the absorptive form factor and in the
        Debye–Waller factor it contains: the absorptive potential is a small correction
        whose dependence on the direction of g Bird & King's isotropic integral does not
        describe.
    u_real
        Already computed U_g for the same ``hkl`` (saves the work for ``"proportional"``).

    Other parameters are as for :func:`structure_factors`.
    """
    _check_absorption(absorption, absorption_fraction)
    hkl = np.asarray(hkl)
    if absorption == "none":
        return np.zeros(hkl.shape[:-1], complex)
    if absorption == "proportional":
        if u_real is None:
            u_real = structure_factors(crystal, hkl, voltage, scattering_factors, debye_waller)
        return absorption_fraction * u_real
    q_unique, inverse = _unique_q(crystal, hkl)
    atom_f = np.empty((len(crystal), q_unique.size))
    for key in {(e, b) for e, b in zip(crystal.elements, crystal.b_iso)}:
        rows = [
            i for i, (e, b) in enumerate(zip(crystal.elements, crystal.b_iso)) if (e, b) == key
        ]
        atom_f[rows] = absorptive_scattering_factor(
            key[0], q_unique, float(key[1]), voltage, table=scattering_factors
        )
    atom_f *= crystal.occupancies[:, None]
    return _sum_atoms(crystal, hkl, atom_f, inverse, voltage)


def optical_structure_factors(
    crystal: Crystal,
    hkl: np.ndarray,
    voltage: float = 200e3,
    absorption: AbsorptionModel = "proportional",
    absorption_fraction: float = 0.1,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Both parts of the optical potential, U_g and U'_g (Å⁻²), for the same reflections.

    The Bloch-wave equations use ``U_g + i U'_g``; this computes U_g once and passes it on to
    :func:`absorptive_structure_factors` (which reuses it for ``"proportional"``).

    Parameters are as for :func:`absorptive_structure_factors`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(u, u_abs)``, each complex of shape ``hkl.shape[:-1]``.
    """
    u = structure_factors(crystal, hkl, voltage, scattering_factors, debye_waller)
    u_abs = absorptive_structure_factors(
        crystal,
        hkl,
        voltage,
        absorption,
        absorption_fraction,
        scattering_factors,
        debye_waller,
        u_real=u,
    )
    return u, u_abs


def fourier_coefficients_volts(
    crystal: Crystal,
    hkl: np.ndarray,
    scattering_factors: str = "kirkland",
    debye_waller: bool = True,
) -> np.ndarray:
    """Fourier coefficients V_g of the crystal potential in volts (independent of voltage)."""
    u = structure_factors(crystal, hkl, 0.0, scattering_factors, debye_waller)
    return u * u_to_volts(1.0)
