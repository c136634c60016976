"""The domain of a surrogate model: every number that defines what it was trained on.

One :class:`Domain` is kept in each model card, drives dataset generation and is checked
by the registry before a model is used, so that no number of DESIGN.md §4 is scattered
as a literal through the code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: 000, ±200, ±020, ±2±20: allowed for P, I and F cubic lattices along [001].
DEFAULT_REFLECTIONS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (2, 0, 0),
    (-2, 0, 0),
    (0, 2, 0),
    (0, -2, 0),
    (2, 2, 0),
    (2, -2, 0),
    (-2, 2, 0),
    (-2, -2, 0),
)


@dataclass(frozen=True)
class Domain:
    """What a surrogate model covers and how its training patterns are simulated.

    Attributes
    ----------
    crystal_system
        Only ``"cubic"`` for the shipped models.
    zone_axis, x_direction
        Beam direction and in-plane x direction.
    voltage
        Accelerating voltage in V.
    thicknesses
        Thicknesses in Å the model was trained on.
    reflections
        The discs, in output-channel order.
    disc_pixels
        Discs are ``disc_pixels`` × ``disc_pixels``.
    disc_radius_g200
        Disc radius in units of |g_200| = 2/a, so that Bragg lines cross every disc at the
        same pixels whatever the lattice parameter.
    potential_pixels
        Projected potentials are ``potential_pixels`` × ``potential_pixels`` over one cell.
    lattice_parameter_range
        Range of lattice parameters a (Å) of the training crystals.
    strong_beams, absorption, absorption_fraction, scattering_factors
        Bloch-wave settings of the training patterns.
    mean_absorption
        Whether the training patterns include the mean absorption i U'_0. It only
        multiplies every pixel by exp(−2π U'_0 t / K), which spans decades between light
        and heavy crystals and would dominate an ℓMSE normalised by the pattern maximum,
        so the networks learn patterns without it and
        :func:`~hyperspy_lacbed.nets.inference.generate` applies the factor analytically
        (:func:`~hyperspy_lacbed.bloch.lacbed.mean_absorption_factor`).
    """

    crystal_system: str = "cubic"
    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] = (1, 0, 0)
    voltage: float = 200e3
    thicknesses: tuple[float, ...] = (500.0, 1000.0, 1500.0, 2000.0)
    reflections: tuple[tuple[int, int, int], ...] = DEFAULT_REFLECTIONS
    disc_pixels: int = 64
    disc_radius_g200: float = 0.75
    potential_pixels: int = 128
    lattice_parameter_range: tuple[float, float] = (3.0, 12.0)
    strong_beams: int = 80
    absorption: str = "proportional"
    absorption_fraction: float = 0.1
    scattering_factors: str = "kirkland"
    mean_absorption: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def disc_radius(self, lattice_parameter: float) -> float:
        """Disc radius in 1/Å for a cubic lattice parameter a (Å): factor · 2 / a."""
        return self.disc_radius_g200 * 2.0 / lattice_parameter

    def simulation_kwargs(self, lattice_parameter: float) -> dict[str, Any]:
        """Keyword arguments of :func:`hyperspy_lacbed.simulate` for a crystal of this domain."""
        return {
            "zone_axis": self.zone_axis,
            "x_direction": self.x_direction,
            "voltage": self.voltage,
            "thickness": list(self.thicknesses),
            "reflections": [list(r) for r in self.reflections],
            "pixels": self.disc_pixels,
            "disc_radius": self.disc_radius(lattice_parameter),
            "strong_beams": self.strong_beams,
            "absorption": self.absorption,
            "absorption_fraction": self.absorption_fraction,
            "scattering_factors": self.scattering_factors,
            "mean_absorption": self.mean_absorption,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values (for model cards and dataset recipes)."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer card format)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"Unknown domain fields {sorted(unknown)}; this card was written by a newer "
                "hyperspy-lacbed. Upgrade the package to use it."
            )
        kw: dict[str, Any] = {}
        for key, value in d.items():
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kw[key] = value
        return cls(**kw)
