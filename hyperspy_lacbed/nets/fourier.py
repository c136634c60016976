"""Fixed (not learned) Fourier layers between projected potentials and ZOLZ coefficients.

A LACBED pattern depends on the crystal potential only through its zero-order Laue zone
(ZOLZ) Fourier coefficients, the lattice parameter and the thickness. These layers give a
network that representation directly, and turn predicted coefficients back into an image.

Conventions (those of :func:`~hyperspy_lacbed.crystal.potential.projected_potential_array`):
a projected potential is a ``P × P`` image of one ``a × a`` cell in V·Å, pixel ``[iy, ix]``
at ``r = (ix, iy) · a / P`` from the cell origin, and

    V_proj(r) = c Σ_g V_g exp(2πi g·r),    g = (h, k, 0) / a,   c = a (period along [001]),

with V_g in volts. Hence the discrete Fourier transform of the image divided by P² is
exactly ``c V_g`` for ``|h|, |k| < P / 2`` (the image is band-limited there). The engine's
structure factors are ``U_g = V_g / u_to_volts(γ)`` in Å⁻² (:mod:`hyperspy_lacbed.units`;
``u_to_volts(γ) = h² / (2 m0 γ e)``), so

    U_g = coefficient / (a · u_to_volts(γ)).

Coefficient arrays have shape ``(..., 2 h_max + 1, 2 h_max + 1)``; element
``[k + h_max, h + h_max]`` holds reflection (h, k, 0): rows are k (along y), columns h
(along x), like the image.

Origin: the origin of a projected potential is arbitrary; a shift t of the crystal
multiplies every coefficient by exp(−2πi g·t), so the amplitudes never depend on it. With
``origin="max_at_centre"`` the image is first shifted by whole pixels as
:func:`~hyperspy_lacbed.nets.normalisation.canonical_origin` does (its maximum on the
centre pixel, ties broken by a fixed rule), so the full complex coefficients are the same
for every cyclic shift of the input. ``"max_at_origin"`` puts that maximum on pixel (0, 0)
instead (centrosymmetric crystals with the heaviest column on a centre of symmetry then
have real coefficients). The shift is found in numpy (it is a discrete choice, not
differentiable); the layer itself is differentiable in the potential.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperspy_lacbed.nets.normalisation import canonical_origin
from hyperspy_lacbed.units import relativistic_gamma, u_to_volts

__all__ = [
    "ORIGINS",
    "UNITS",
    "FourierCoefficients",
    "InverseFourier",
    "channels_to_coefficients",
    "coefficients_to_channels",
    "zolz_indices",
]

#: Origin conventions of :class:`FourierCoefficients`.
ORIGINS = ("none", "max_at_centre", "max_at_origin")
#: Units of the coefficients: ``"projected"`` c·V_g (V·Å), ``"volts"`` V_g (V),
#: ``"structure_factor"`` U_g (Å⁻², at the layer's voltage).
UNITS = ("projected", "volts", "structure_factor")


def zolz_indices(h_max: int) -> np.ndarray:
    """Miller indices (h, k, 0) of the coefficient grid, shape (2 h_max + 1, 2 h_max + 1, 3).

    Element ``[k + h_max, h + h_max]`` is ``(h, k, 0)``.
    """
    r = np.arange(-int(h_max), int(h_max) + 1)
    k, h = np.meshgrid(r, r, indexing="ij")
    return np.stack([h, k, np.zeros_like(h)], axis=-1)


def _check(h_max: int, pixels: int, units: str) -> None:
    if units not in UNITS:
        raise ValueError(f"Unknown units {units!r}; choose one of {', '.join(UNITS)}.")
    if int(h_max) < 0:
        raise ValueError(f"h_max must be non-negative, got {h_max}.")
    if not 2 * int(h_max) < int(pixels):
        raise ValueError(
            f"h_max = {h_max} needs more than {2 * int(h_max)} pixels per cell (a P × P image "
            f"holds |h| < P / 2); got P = {pixels}. Lower h_max or use finer potentials."
        )


def _scale(
    units: str, lattice_parameter: Any, voltage: float, like: torch.Tensor
) -> torch.Tensor | float:
    """Divisor that turns c·V_g (V·Å) into the requested units, broadcast over the batch."""
    if units == "projected":
        return 1.0
    if lattice_parameter is None:
        raise ValueError(f"units={units!r} needs the lattice parameter a (Å) of each potential.")
    a = torch.as_tensor(lattice_parameter, dtype=like.real.dtype, device=like.device)
    lead = like.ndim - 2
    if a.ndim > lead:
        raise ValueError(
            f"lattice_parameter has shape {tuple(a.shape)}; give one value per image "
            f"(batch shape {tuple(like.shape[:-2])})."
        )
    # (N,) for a batch (N, 1, ...) of images: one value per leading index.
    a = a.reshape(*a.shape, *([1] * (lead - a.ndim)), 1, 1)
    if units == "volts":
        return a
    return a * u_to_volts(relativistic_gamma(voltage))


class FourierCoefficients(nn.Module):
    """Projected potentials ``(..., P, P)`` → ZOLZ Fourier coefficients (fixed, no weights).

    Parameters
    ----------
    h_max
        Largest ``|h|`` and ``|k|`` kept; the output is complex,
        ``(..., 2 h_max + 1, 2 h_max + 1)``.
    pixels
        P, the side of the input images (checked against the input).
    origin
        ``"max_at_centre"`` (default, the shift of
        :func:`~hyperspy_lacbed.nets.normalisation.canonical_origin`), ``"max_at_origin"``
        or ``"none"`` (the image's own origin).
    units
        ``"projected"`` (c·V_g, V·Å, default), ``"volts"`` (V_g) or ``"structure_factor"``
        (U_g in Å⁻², as :func:`~hyperspy_lacbed.crystal.structure_factors.structure_factors`).
    voltage
        Accelerating voltage (V) for ``units="structure_factor"``.

    Examples
    --------
    >>> import torch
    >>> from hyperspy_lacbed.nets.fourier import FourierCoefficients
    >>> layer = FourierCoefficients(h_max=4, pixels=16)
    >>> layer(torch.rand(2, 16, 16)).shape
    torch.Size([2, 9, 9])
    """

    def __init__(
        self,
        h_max: int = 8,
        pixels: int = 128,
        origin: str = "max_at_centre",
        units: str = "projected",
        voltage: float = 200e3,
    ):
        super().__init__()
        if origin not in ORIGINS:
            raise ValueError(f"Unknown origin {origin!r}; choose one of {', '.join(ORIGINS)}.")
        _check(h_max, pixels, units)
        self.h_max, self.pixels, self.origin, self.units = int(h_max), int(pixels), origin, units
        self.voltage = float(voltage)
        r = torch.arange(-self.h_max, self.h_max + 1)
        self.register_buffer("index", r % self.pixels, persistent=False)
        self.register_buffer("orders", r.to(torch.float64), persistent=False)

    def extra_repr(self) -> str:
        return f"h_max={self.h_max}, pixels={self.pixels}, origin={self.origin!r}, units={self.units!r}"

    def shifts(self, potential: torch.Tensor) -> torch.Tensor:
        """Whole-pixel (dy, dx) rolls that bring each image to the layer's origin, (..., 2)."""
        lead = potential.shape[:-2]
        if self.origin == "none":
            return torch.zeros(*lead, 2, dtype=torch.int64)
        _, s = canonical_origin(potential.detach().cpu().to(torch.float64).numpy())
        s = torch.from_numpy(np.asarray(s, np.int64))
        if self.origin == "max_at_origin":
            s = s - torch.tensor([self.pixels // 2, self.pixels // 2])
        return s

    def forward(self, potential: torch.Tensor, lattice_parameter: Any = None) -> torch.Tensor:
        """Coefficients of each image (complex, ``(..., n, n)``, n = 2 h_max + 1).

        Parameters
        ----------
        potential
            Real images ``(..., P, P)`` in V·Å (a channel axis of size 1 is fine).
        lattice_parameter
            a (Å) per image: a number, or shape ``potential.shape[:-2]`` or a prefix of it
            (``(N,)`` for ``(N, 1, P, P)``); needed for ``units="volts"`` and
            ``"structure_factor"``.
        """
        if potential.shape[-2:] != (self.pixels, self.pixels):
            raise ValueError(
                f"Expected {self.pixels} × {self.pixels} potentials, got {tuple(potential.shape[-2:])}."
            )
        if potential.is_complex():
            raise ValueError("The projected potential must be real.")
        spectrum = torch.fft.fft2(potential) / (self.pixels**2)
        idx = self.index
        coeff = spectrum[..., idx[:, None], idx[None, :]]
        if self.origin != "none":
            # roll by (dy, dx) ⇔ multiply (h, k) by exp(−2πi (h dx + k dy) / P)
            s = self.shifts(potential).to(device=coeff.device, dtype=torch.float64)
            dy, dx = s[..., 0, None, None], s[..., 1, None, None]
            n = self.orders
            phase = -2 * math.pi * (n[None, :] * dx + n[:, None] * dy) / self.pixels
            coeff = coeff * torch.polar(torch.ones_like(phase), phase).to(coeff.dtype)
        return coeff / _scale(self.units, lattice_parameter, self.voltage, coeff)


class InverseFourier(nn.Module):
    """ZOLZ coefficients ``(..., n, n)`` → real projected potentials ``(..., P, P)`` (fixed).

    The inverse of :class:`FourierCoefficients` on the band ``|h|, |k| ≤ h_max`` (all other
    coefficients are zero): ``V(r) = Σ C_hk exp(2πi (h x + k y) / a)`` sampled on the
    P × P grid, after making the coefficients Hermitian (``C_{-g} = C_g*``, the mean of a
    coefficient and its Friedel mate's conjugate) so that the image is exactly real.

    Parameters
    ----------
    h_max, pixels, units, voltage
        As for :class:`FourierCoefficients`; coefficients in ``units`` are turned back into
        V·Å (``"volts"`` and ``"structure_factor"`` need the lattice parameter).

    Examples
    --------
    >>> import torch
    >>> from hyperspy_lacbed.nets.fourier import FourierCoefficients, InverseFourier
    >>> layer = FourierCoefficients(7, 16, origin="none")
    >>> c = layer(torch.rand(1, 16, 16, dtype=torch.float64))
    >>> w = InverseFourier(7, 16)(c)  # the image without its Nyquist row and column
    >>> bool(torch.allclose(layer(w), c))
    True
    """

    def __init__(
        self,
        h_max: int = 8,
        pixels: int = 128,
        units: str = "projected",
        voltage: float = 200e3,
    ):
        super().__init__()
        _check(h_max, pixels, units)
        self.h_max, self.pixels, self.units, self.voltage = int(h_max), int(pixels), units, voltage
        r = torch.arange(-self.h_max, self.h_max + 1)
        self.register_buffer("index", r % self.pixels, persistent=False)

    def extra_repr(self) -> str:
        return f"h_max={self.h_max}, pixels={self.pixels}, units={self.units!r}"

    def forward(self, coefficients: torch.Tensor, lattice_parameter: Any = None) -> torch.Tensor:
        """The real image of each coefficient array."""
        n = 2 * self.h_max + 1
        if coefficients.shape[-2:] != (n, n):
            raise ValueError(
                f"Expected ({n}, {n}) coefficients for h_max = {self.h_max}, got "
                f"{tuple(coefficients.shape[-2:])}."
            )
        c = coefficients if coefficients.is_complex() else coefficients.to(torch.complex64)
        c = c * _scale(self.units, lattice_parameter, self.voltage, c)
        c = 0.5 * (c + torch.flip(c, dims=(-2, -1)).conj())  # Hermitian: a real image
        spectrum = torch.zeros(*c.shape[:-2], self.pixels, self.pixels, dtype=c.dtype,
                               device=c.device)  # fmt: skip
        idx = self.index
        spectrum[..., idx[:, None], idx[None, :]] = c
        return torch.fft.ifft2(spectrum).real * (self.pixels**2)


def coefficients_to_channels(coefficients: torch.Tensor) -> torch.Tensor:
    """Complex ``(N, n, n)`` → real ``(N, 2, n, n)`` (real and imaginary parts) for a CNN."""
    return torch.stack([coefficients.real, coefficients.imag], dim=-3)


def channels_to_coefficients(channels: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`coefficients_to_channels`."""
    if channels.shape[-3] != 2:
        raise ValueError(f"Expected 2 channels (real, imaginary), got {channels.shape[-3]}.")
    return torch.complex(channels[..., 0, :, :], channels[..., 1, :, :])
