"""The domain of a surrogate model: every number that defines what it was trained on.

One :class:`Domain` is kept in each model card, drives dataset generation and checks
every input before a model is used (its ``check_*`` methods), so that no number of the
surrogates' domain (:doc:`/user_guide/conventions`) is scattered as a literal through
the code.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.parsing import as_thickness_axis, dataclass_kwargs

#: How to read a card with fields this version does not know.
NEWER_CARD = "this card was written by a newer hyperspy-lacbed. Upgrade the package to use it."

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

#: Beam settings that ``"auto"`` (TOML's stand-in for None) leaves to the engine.
_AUTO_BEAM_SETTINGS = ("strong_beams", "weak_beams", "tolerance", "max_beams")


@dataclass(frozen=True)
class Domain:
    """What a surrogate model covers and how its training patterns are simulated.

    The defaults are the domain of the shipped models, the v1 recipe
    (``configs/v1.toml``, :data:`hyperspy_lacbed.train.recipe.DATASET`): 32-pixel discs,
    beams chosen to 2 % within a budget of 750, a = 2.8–8.1 Å.

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
    strong_beams, weak_beams, tolerance
        The beams of the training patterns: explicit counts (the v0 models: 60 strong
        beams, no weak ones), or ``None`` counts and a ``tolerance`` for
        :func:`~hyperspy_lacbed.simulate`'s converged choice (the v1 data and the
        default: 2 % of each image's maximum, see the convergence page of the user
        guide). A ``None`` tolerance is :func:`~hyperspy_lacbed.simulate`'s own.
    max_beams
        The beam budget (strong + weak) of the converged choice; ``None`` is
        :func:`~hyperspy_lacbed.simulate`'s. A sample that misses the tolerance at the
        budget keeps its measured error in the store, and the card states their share.
    absorption, absorption_fraction, scattering_factors
        Bloch-wave settings of the training patterns.
    mean_absorption
        Whether the training patterns include the mean absorption i U'_0. It only
        multiplies every pixel by exp(−2π U'_0 t / K), which spans decades between light
        and heavy crystals and would dominate an ℓMSE normalised by the pattern maximum,
        so the networks learn patterns without it and
        :func:`~hyperspy_lacbed.api.surrogates.generate` applies the factor analytically
        (:func:`~hyperspy_lacbed.bloch.discs.mean_absorption_factor`).
    """

    crystal_system: str = "cubic"
    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] = (1, 0, 0)
    voltage: float = 200e3
    thicknesses: tuple[float, ...] = (500.0, 1000.0, 1500.0, 2000.0)
    reflections: tuple[tuple[int, int, int], ...] = DEFAULT_REFLECTIONS
    disc_pixels: int = 32
    disc_radius_g200: float = 0.75
    potential_pixels: int = 128
    lattice_parameter_range: tuple[float, float] = (2.8, 8.1)
    strong_beams: int | None = None
    weak_beams: int | None = None
    tolerance: float | None = 0.02
    max_beams: int | None = 750
    absorption: str = "proportional"
    absorption_fraction: float = 0.1
    scattering_factors: str = "kirkland"
    mean_absorption: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def disc_radius(self, lattice_parameter: float) -> float:
        """Disc radius in 1/Å for a cubic lattice parameter a (Å): factor · 2 / a."""
        return self.disc_radius_g200 * 2.0 / lattice_parameter

    def simulation_kwargs(self, lattice_parameter: float) -> dict[str, Any]:
        """Keyword arguments of :func:`hyperspy_lacbed.simulate` for a crystal of this domain.

        Beam settings left at ``None`` are left out, so that ``simulate`` chooses them.
        """
        kw = {
            "zone_axis": self.zone_axis,
            "x_direction": self.x_direction,
            "voltage": self.voltage,
            "thickness": list(self.thicknesses),
            "reflections": [list(r) for r in self.reflections],
            "pixels": self.disc_pixels,
            "disc_radius": self.disc_radius(lattice_parameter),
            "strong_beams": self.strong_beams,
            "weak_beams": self.weak_beams,
            "tolerance": self.tolerance,
            "max_beams": self.max_beams,
            "absorption": self.absorption,
            "absorption_fraction": self.absorption_fraction,
            "scattering_factors": self.scattering_factors,
            "mean_absorption": self.mean_absorption,
        }
        return {k: v for k, v in kw.items() if v is not None}

    def simulation_settings(
        self,
        lattice_parameter: float,
        thicknesses: Sequence[float] | None = None,
        reflections: Sequence[Sequence[int]] | None = None,
    ) -> SimulationSettings:
        """The Bloch-wave settings of this domain for a crystal of lattice parameter a (Å).

        ``thicknesses`` (Å) and ``reflections`` replace the domain's when given.
        """
        kw = self.simulation_kwargs(lattice_parameter)
        if thicknesses is not None:
            kw["thickness"] = [float(t) for t in thicknesses]
        if reflections is not None:
            kw["reflections"] = [list(r) for r in reflections]
        return SimulationSettings.from_user(**kw)

    def resolve_thickness(self, thickness: Any) -> tuple[list[float], bool]:
        """(thicknesses in Å, whether several were asked for) of a user's ``thickness``.

        ``None`` gives the domain's training thicknesses (several); a string or a scalar
        quantity or number gives one.
        """
        if thickness is None:
            return [float(t) for t in self.thicknesses], True
        return as_thickness_axis(thickness)

    # ------------------------------------------------------------- checks
    def check_crystal(self, crystal: Any, model: str = "the model") -> None:
        """Raise ``ValueError`` if a crystal is outside a model's domain (crystal system, a)."""
        if self.crystal_system == "cubic" and not crystal.is_cubic:
            raise ValueError(
                f"{crystal.name or 'The crystal'} has space group {crystal.space_group_number} "
                f"({crystal.space_group_symbol}), which is not cubic (195–230); {model} was "
                "trained on cubic crystals only. Use hyperspy_lacbed.simulate (Bloch waves) for "
                "this crystal."
            )
        self.check_lattice_parameter(float(crystal.lattice_parameters[0]), model)

    def check_lattice_parameter(self, a: float, model: str = "the model") -> None:
        """Raise ``ValueError`` if the lattice parameter is outside the domain's range."""
        lo, hi = self.lattice_parameter_range
        if not (lo - 1e-9 <= a <= hi + 1e-9):
            raise ValueError(
                f"Lattice parameter {a:g} Å is outside {model}'s range {lo:g}–{hi:g} Å; use "
                "hyperspy_lacbed.simulate, or train a model on that range."
            )

    def check_zone_axis(self, zone_axis: Any, model: str = "the model") -> None:
        """Raise ``ValueError`` unless ``zone_axis`` is the domain's (None passes)."""
        if zone_axis is None:
            return
        if not _parallel(zone_axis, self.zone_axis):
            raise ValueError(
                f"Zone axis {list(zone_axis)} is not {model}'s {list(self.zone_axis)}; the model "
                "only knows that orientation. Use hyperspy_lacbed.simulate for other zone axes, or "
                "train a model for this one."
            )

    def check_beam_energy(self, kev: float | None, model: str = "the model") -> None:
        """Raise ``ValueError`` unless the beam energy (keV) is the domain's voltage."""
        want = self.voltage / 1e3
        if kev is None:
            raise ValueError(
                f"The beam energy is unknown; {model} needs {want:g} keV patterns. Set it with "
                f"s.set_experimental_parameters(beam_energy={want:g}) or pass beam_energy="
                f"'{want:g} kV'."
            )
        if abs(kev - want) > 1e-3 * want:
            raise ValueError(
                f"Beam energy {kev:g} keV differs from {model}'s {want:g} keV; the model is only "
                f"valid at {want:g} kV. Use hyperspy_lacbed.simulate, or train a model at "
                f"{kev:g} kV."
            )

    def check_reflections(self, reflections: Sequence[Sequence[int]]) -> list[int]:
        """Index of each domain reflection in ``reflections``; ``ValueError`` if one is missing."""
        have = [tuple(int(v) for v in r) for r in reflections]
        missing = [list(r) for r in self.reflections if tuple(r) not in have]
        if missing:
            raise ValueError(
                f"The discs lack the reflections {missing} that the model needs "
                f"({[list(r) for r in self.reflections]}); give a pattern with all of them "
                "(set them with s.set_experimental_parameters(reflections=...))."
            )
        return [have.index(tuple(r)) for r in self.reflections]

    def check_thickness(self, thickness: Sequence[float], model: str = "the model") -> None:
        """Raise ``ValueError`` for thicknesses outside the trained range; warn between them."""
        t = np.atleast_1d(np.asarray(thickness, float))
        lo, hi = min(self.thicknesses), max(self.thicknesses)
        bad = t[(t < lo * (1 - 1e-6)) | (t > hi * (1 + 1e-6))]
        if bad.size:
            raise ValueError(
                f"Thickness {bad[0]:g} Å is outside {model}'s range {lo:g}–{hi:g} Å "
                f"(trained on {list(self.thicknesses)} Å); use hyperspy_lacbed.simulate."
            )
        trained = np.asarray(self.thicknesses, float)
        off = [x for x in t if np.min(np.abs(trained - x)) > 1e-6 * x]
        if off:
            warnings.warn(
                f"Thickness {off[0]:g} Å lies between the trained thicknesses {trained.tolist()} "
                "Å; the model interpolates there.",
                UserWarning,
                stacklevel=3,
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values (for model cards and dataset recipes)."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Domain:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer card format).

        ``"auto"`` as ``strong_beams``, ``weak_beams``, ``tolerance`` or ``max_beams`` is
        ``None`` (TOML has no null): the engine chooses the beams to the domain's
        ``tolerance``, and an ``"auto"`` tolerance or budget is the engine's own.
        """
        d = dataclass_kwargs(cls, d, "domain fields", NEWER_CARD)
        kw: dict[str, Any] = {}
        for key, value in d.items():
            if key in _AUTO_BEAM_SETTINGS and value == "auto":
                value = None
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kw[key] = value
        return cls(**kw)


def _parallel(a: Sequence[int], b: Sequence[int]) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.linalg.norm(np.cross(a, b)) < 1e-9 and a @ b > 0)


def cubic_lattice_parameter(
    lattice_parameters: Sequence[float] | None, what: str, model: str = "the model"
) -> float:
    """The lattice parameter a of cubic lattice parameters (a, b, c, α, β, γ).

    Raises
    ------
    ValueError
        If ``lattice_parameters`` is ``None`` or not those of a cubic cell (``what`` names
        the object in the message, ``model`` the model that needs a cubic crystal).
    """
    if lattice_parameters is None:
        raise ValueError(
            f"{what} has no lattice parameters (metadata.Sample.lattice_parameters); pass "
            "lattice_parameter= in Å."
        )
    a, b, c, al, be, ga = (float(v) for v in lattice_parameters)
    if not (
        math.isclose(a, b, rel_tol=1e-5)
        and math.isclose(a, c, rel_tol=1e-5)
        and all(math.isclose(x, 90.0, abs_tol=1e-4) for x in (al, be, ga))
    ):
        raise ValueError(
            f"{what} has lattice parameters {[a, b, c, al, be, ga]}, not those of a cubic "
            f"crystal; {model} was trained on cubic crystals only. Use hyperspy_lacbed.simulate."
        )
    return a
