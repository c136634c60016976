"""How physical arrays become network tensors and back; kept in every model card.

Encodings (all to roughly [-1, 1]):

Potential (V·Å)
    ``y = asinh(V / s) / k - 1`` with ``s = 50 V·Å`` and ``k = 3``. Projected potentials
    of cubic crystals span ~10 V·Å (between the columns of light crystals) to a few
    thousand (heavy columns, long periods): linear below ``s``, logarithmic above, so
    light and heavy crystals are learned with similar *relative* precision, which is
    what the ℓMSE (errors divided by the reference maximum) measures.
Origin
    The projected potential's origin is arbitrary. Before encoding, every potential is
    cyclically shifted so that its maximum sits on the centre pixel ``(n // 2, n // 2)``
    (:func:`canonical_origin`). A whole-pixel cyclic shift of the input therefore leaves
    the forward network's input, and its output, unchanged; and the inverse network is
    trained to put the strongest column at the centre (its output has that origin).
Discs (intensities, fractions of the incident beam)
    Targets and outputs: ``y = 2 sqrt(I) - 1``, decoded ``I = ((y + 1) / 2)²`` with ``y``
    clipped to [-1, 1]: the square root lifts the weak discs (|g| = 220 discs are ~10×
    weaker than 000) so that each disc is learned relative to its own maximum.
    Inverse-network inputs are divided by the maximum over the whole pattern (all discs)
    first, so that experimental patterns in any intensity unit can be used.
Conditioning
    Lattice parameter and thickness mapped linearly from the model domain's ranges to
    [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from hyperspy_lacbed.nets.domain import NEWER_CARD, Domain
from hyperspy_lacbed.parsing import dataclass_kwargs

__all__ = ["Encoding", "canonical_origin"]

#: Relative tolerance (of the potential's range) within which maxima count as tied.
TIE_TOLERANCE = 1e-4
#: At most this many tied maxima are compared by the tie-break key.
MAX_CANDIDATES = 512


@lru_cache(maxsize=8)
def _tie_weight(shape: tuple[int, int]) -> np.ndarray:
    """A fixed, asymmetric weight whose overlap with each candidate image breaks ties."""
    return np.random.default_rng(20250305).standard_normal(shape)


def canonical_origin(potential: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift each periodic image so that its maximum is on the centre pixel.

    Maxima within :data:`TIE_TOLERANCE` of the image range (symmetry-equivalent columns)
    are told apart by the overlap of the shifted image with a fixed asymmetric weight,
    so the result depends only on the image up to cyclic shifts: ``canonical_origin(
    np.roll(v, s, axis=(-2, -1)))`` equals ``canonical_origin(v)`` bit for bit.

    Parameters
    ----------
    potential
        Array ``(..., ny, nx)``.

    Returns
    -------
    shifted, shifts
        The shifted images and the (dy, dx) roll applied to each, shape ``(..., 2)``.
    """
    v = np.asarray(potential)
    lead, (ny, nx) = v.shape[:-2], v.shape[-2:]
    flat = v.reshape(-1, ny, nx)
    out = np.empty_like(flat)
    shifts = np.empty((flat.shape[0], 2), dtype=np.int64)
    centre = np.array([ny // 2, nx // 2])
    w = _tie_weight((ny, nx))
    for i, img in enumerate(flat):
        vmax, vmin = img.max(), img.min()
        cand = np.flatnonzero(img.ravel() >= vmax - TIE_TOLERANCE * (vmax - vmin))
        cand = cand[np.argsort(-img.ravel()[cand], kind="stable")][:MAX_CANDIDATES]
        best, best_key = None, None
        for c in cand:
            shift = centre - np.array(divmod(int(c), nx))
            rolled = np.roll(img, tuple(shift), axis=(0, 1))
            key = float(np.sum(rolled * w))
            if best_key is None or key < best_key:
                best, best_key = (rolled, shift), key
        out[i], shifts[i] = best[0], best[1]
    return out.reshape(v.shape), shifts.reshape(*lead, 2)


@dataclass(frozen=True)
class Encoding:
    """The fixed encoding of one model (stored in its card under ``normalisation``).

    Attributes
    ----------
    potential_scale
        ``s`` in V·Å of ``asinh(V / s) / k - 1``.
    potential_divisor
        ``k``.
    disc_transform
        ``"sqrt"`` (``2 sqrt(I) - 1``) or ``"linear"`` (``2 I - 1``).
    input_discs
        ``"pattern_max"``: inverse inputs divided by the pattern's maximum; ``"absolute"``.
    origin
        ``"max_at_centre"`` (see :func:`canonical_origin`) or ``"none"``.
    lattice_parameter_range, thickness_range
        Mapped to [-1, 1] for the conditioning channels (Å).
    """

    potential_scale: float = 50.0
    potential_divisor: float = 3.0
    disc_transform: str = "sqrt"
    input_discs: str = "pattern_max"
    origin: str = "max_at_centre"
    lattice_parameter_range: tuple[float, float] = (3.0, 12.0)
    thickness_range: tuple[float, float] = (500.0, 2000.0)

    def __post_init__(self) -> None:
        if self.disc_transform not in ("sqrt", "linear"):
            raise ValueError(f"Unknown disc_transform {self.disc_transform!r}.")
        if self.input_discs not in ("pattern_max", "absolute"):
            raise ValueError(f"Unknown input_discs {self.input_discs!r}.")
        if self.origin not in ("max_at_centre", "none"):
            raise ValueError(f"Unknown origin {self.origin!r}.")

    @classmethod
    def for_domain(cls, domain: Domain, **overrides: Any) -> Encoding:
        """The default encoding of a domain (conditioning ranges from the domain)."""
        t = [float(x) for x in domain.thicknesses]
        kw: dict[str, Any] = {
            "lattice_parameter_range": tuple(float(x) for x in domain.lattice_parameter_range),
            "thickness_range": (min(t), max(t)),
        }
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        d["lattice_parameter_range"] = list(self.lattice_parameter_range)
        d["thickness_range"] = list(self.thickness_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Encoding:
        """Inverse of :meth:`to_dict`."""
        kw = dataclass_kwargs(cls, d, "normalisation fields", NEWER_CARD)
        for key in ("lattice_parameter_range", "thickness_range"):
            if key in kw:
                kw[key] = tuple(float(x) for x in kw[key])
        return cls(**kw)

    # -- potentials
    def encode_potential(self, v: np.ndarray, canonical: bool = True) -> np.ndarray:
        """V·Å → network values (float32), shifted to the canonical origin first."""
        v = np.asarray(v, dtype=np.float64)
        if canonical and self.origin == "max_at_centre":
            v = canonical_origin(v)[0]
        return (np.arcsinh(v / self.potential_scale) / self.potential_divisor - 1.0).astype(
            np.float32
        )

    def decode_potential(self, y: np.ndarray) -> np.ndarray:
        """Network values → V·Å (float32)."""
        y = np.asarray(y, dtype=np.float64)
        return (self.potential_scale * np.sinh((y + 1.0) * self.potential_divisor)).astype(
            np.float32
        )

    # -- discs
    def encode_discs(self, intensity: np.ndarray) -> np.ndarray:
        """Disc intensities → network values (targets of the forward network)."""
        i = np.clip(np.nan_to_num(np.asarray(intensity, dtype=np.float64)), 0.0, None)
        y = 2.0 * np.sqrt(i) - 1.0 if self.disc_transform == "sqrt" else 2.0 * i - 1.0
        return y.astype(np.float32)

    def decode_discs(self, y: np.ndarray) -> np.ndarray:
        """Network values → disc intensities (float32, ≥ 0)."""
        y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
        i = ((y + 1.0) / 2.0) ** 2 if self.disc_transform == "sqrt" else (y + 1.0) / 2.0
        return i.astype(np.float32)

    def encode_input_discs(self, intensity: np.ndarray) -> np.ndarray:
        """Inverse-network inputs ``(..., n_disc, ny, nx)``: normalised per pattern, encoded."""
        i = np.clip(np.nan_to_num(np.asarray(intensity, dtype=np.float64)), 0.0, None)
        if self.input_discs == "pattern_max":
            peak = i.max(axis=(-3, -2, -1), keepdims=True)
            i = i / np.where(peak > 0, peak, 1.0)
        return self.encode_discs(i)

    # -- conditioning
    def encode_conditioning(self, lattice_parameter: Any, thickness: Any) -> np.ndarray:
        """``(N, 2)`` float32 of (a, t) mapped from the domain ranges to [-1, 1]."""
        a = np.atleast_1d(np.asarray(lattice_parameter, dtype=np.float64))
        t = np.atleast_1d(np.asarray(thickness, dtype=np.float64))
        a, t = np.broadcast_arrays(a, t)
        return np.stack(
            [_to_unit(a, self.lattice_parameter_range), _to_unit(t, self.thickness_range)],
            axis=-1,
        ).astype(np.float32)


def _to_unit(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    lo, hi = bounds
    if not math.isclose(lo, hi):
        return 2.0 * (x - lo) / (hi - lo) - 1.0
    return np.zeros_like(x)
