"""The settings of a Bloch-wave LACBED calculation, validated once.

:class:`SimulationSettings` is the single list of simulation settings: the
keywords of :func:`hyperspy_lacbed.simulate`, the metadata a simulated signal keeps
(``metadata.LACBED.settings``) and the Bloch-wave settings of a surrogate's domain are
its fields. :meth:`SimulationSettings.from_user` is the one place where user input
(quantities, strings, lists) is checked and turned into internal units, and where a
preset is applied.

Precedence
----------
A keyword the user gives wins over the preset, and the preset wins over the default:
**explicit keyword > preset > default**. A keyword given as ``None`` counts as not
given, so ``simulate(..., preset="felix")`` takes every Felix convention that the call
does not set itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.convergence import DEFAULT_BUDGET, DEFAULT_TOLERANCE
from hyperspy_lacbed.parsing import as_direction, as_thickness, quantity, reflection_tuples
from hyperspy_lacbed.units import electron_wavelength, to_magnitude

__all__ = ["PRESETS", "SimulationSettings", "felix_settings"]

#: Presets of :meth:`SimulationSettings.from_user` (and of ``simulate(preset=...)``).
PRESETS = ("felix",)

SOLVERS = ("auto", "exact", "fast")


@dataclass(frozen=True)
class SimulationSettings:
    """Every setting of a Bloch-wave LACBED calculation, in internal units.

    Lengths in Å, reciprocal lengths in 1/Å (no 2π), voltage in V. The defaults are the
    package's default physics; :func:`felix_settings` gives Felix's conventions. Build
    one from user input with :meth:`from_user`, which validates every value; the
    fields are described in :func:`hyperspy_lacbed.simulate`.
    """

    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] | None = None
    surface_normal: tuple[int, int, int] | None = None
    voltage: float = 200e3
    thickness: tuple[float, ...] = (500.0, 1000.0, 1500.0, 2000.0)
    reflections: tuple[tuple[int, int, int], ...] | None = None
    pixels: int = 64
    disc_radius: float | None = None
    absorption: str = "proportional"
    absorption_fraction: float = 0.1
    scattering_factors: str = "kirkland"
    debye_waller: bool = True
    # None: chosen by ``tolerance`` (issue 16); given: used exactly.
    strong_beams: int | None = None
    weak_beams: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    max_beams: int = DEFAULT_BUDGET.max_beams
    beam_pool: int | None = None
    strong_beam_step: float = 0.0
    laue_zones: tuple[int, ...] = (0,)
    # Upper-Laue-zone reflections in the pool (bloch.holz); off by default (see simulate).
    holz: bool = False
    mean_inner_potential: bool = True
    mean_absorption: bool = True
    solver: str = "auto"
    symmetry: bool = True
    preset: str | None = None

    @property
    def diagonal(self) -> str:
        """What the potential matrix's diagonal holds (:func:`~hyperspy_lacbed.bloch.matrix.diagonal_mode`)."""
        from hyperspy_lacbed.bloch.matrix import diagonal_mode

        return diagonal_mode(self.mean_inner_potential, self.mean_absorption)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for metadata."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of the settings (the fields), in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_user(cls, preset: str | None = None, **kwargs: Any) -> SimulationSettings:
        """Validated settings from user input, with a preset applied.

        Parameters
        ----------
        preset
            ``None`` (the package's default physics) or a name of :data:`PRESETS`
            (``"felix"``: :func:`felix_settings`).
        **kwargs
            Any field of :class:`SimulationSettings`, in the forms
            :func:`hyperspy_lacbed.simulate` accepts: ``voltage="200 kV"`` (numbers in
            V), ``thickness="100 nm"`` or a list (numbers in Å), ``disc_radius="6 mrad"``
            or ``"0.25 1/Å"`` (numbers in 1/Å), directions and reflections as integer
            lists. ``None`` means "not given".

        Returns
        -------
        SimulationSettings

        Notes
        -----
        Precedence: a keyword given (not ``None``) > the preset > the default.

        Raises
        ------
        TypeError
            For a keyword that is not a setting.
        ValueError
            For a value out of range or of the wrong kind; the message names the setting
            and the fix.

        Examples
        --------
        >>> s = SimulationSettings.from_user(preset="felix", thickness="100 nm")
        >>> s.thickness, s.mean_absorption, s.beam_pool
        ((1000.0,), False, 329)
        >>> SimulationSettings.from_user(preset="felix", mean_absorption=True).mean_absorption
        True
        """
        names = cls.names()
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(
                f"Unknown simulation setting(s) {unknown}; the settings are {list(names)}."
            )
        given = {k: v for k, v in kwargs.items() if v is not None}
        if preset is None:
            preset = given.pop("preset", None)
        else:
            given.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"Unknown preset {preset!r}; available: {', '.join(PRESETS)}.")
            given = {**felix_settings(), **given}
        defaults = cls()
        get = lambda name: given.pop(name, getattr(defaults, name))  # noqa: E731

        voltage = float(to_magnitude(get("voltage"), "V", "voltage"))
        if not (10e3 <= voltage <= 1000e3):
            raise ValueError(
                f"voltage {voltage / 1e3:g} kV is outside 10–1000 kV; give e.g. '200 kV' "
                "(plain numbers are volts)."
            )
        thickness = tuple(as_thickness(get("thickness")))
        pixels = int(get("pixels"))
        if pixels < 2 or pixels % 2:
            raise ValueError(
                f"pixels must be an even number ≥ 2 (the disc is 2N × 2N), got {pixels}."
            )
        strong, weak, tolerance, max_beams = _beam_settings(
            get("strong_beams"), get("weak_beams"), get("tolerance"), get("max_beams"), preset
        )
        solver = get("solver")
        if solver not in SOLVERS:
            raise ValueError(f"Unknown solver {solver!r}; choose 'auto', 'exact' or 'fast'.")
        x_dir, normal = get("x_direction"), get("surface_normal")
        holz, laue_zones = get("holz"), tuple(int(z) for z in np.atleast_1d(get("laue_zones")))
        if not isinstance(holz, (bool, np.bool_)):
            raise ValueError(f"holz must be True or False, got {holz!r}.")
        if holz and laue_zones != (0,):
            raise ValueError(
                f"holz=True chooses the upper Laue zones itself (every zone whose reflections "
                f"come near the Ewald sphere); leave laue_zones at (0,), not {list(laue_zones)}."
            )
        radius = get("disc_radius")
        if radius is not None:
            radius = disc_radius_in_inverse_angstrom(radius, voltage)
            if not (math.isfinite(radius) and radius > 0):
                raise ValueError(f"disc_radius must be positive, got {radius}.")
        return cls(
            zone_axis=as_direction(get("zone_axis"), "The zone axis"),
            x_direction=None if x_dir is None else as_direction(x_dir, "The x-direction"),
            surface_normal=None if normal is None else as_direction(normal, "The surface normal"),
            voltage=voltage,
            thickness=thickness,
            pixels=pixels,
            strong_beams=strong,
            weak_beams=weak,
            tolerance=tolerance,
            max_beams=max_beams,
            solver=solver,
            reflections=reflection_tuples(get("reflections")),
            disc_radius=radius,
            laue_zones=laue_zones,
            holz=bool(holz),
            preset=preset,
            **given,
        )


def _beam_settings(
    strong: Any, weak: Any, tolerance: Any, max_beams: Any, preset: str | None
) -> tuple[int | None, int | None, float, int]:
    """Validated beam counts (None: chosen by the tolerance), tolerance and beam budget."""
    if strong is not None:
        strong = int(strong)
        if strong < 1:
            raise ValueError(f"strong_beams must be at least 1, got {strong}.")
    if weak is not None:
        weak = int(weak)
        if weak < 0:
            raise ValueError(f"weak_beams must be ≥ 0, got {weak}.")
    tolerance = float(tolerance)
    if not (0 < tolerance < 1 or tolerance == math.inf):
        raise ValueError(
            f"tolerance is a fraction of each image's maximum in (0, 1), got {tolerance}; "
            "e.g. 0.01 for 1 % (or inf with explicit strong_beams= to measure nothing)."
        )
    if tolerance == math.inf and strong is None and weak is None and preset is None:
        raise ValueError(
            "tolerance=inf measures nothing, so the beams cannot be chosen by it; give "
            "strong_beams= (and weak_beams=) or a finite tolerance such as 0.01."
        )
    max_beams = int(max_beams)
    if max_beams < DEFAULT_BUDGET.min_strong:
        raise ValueError(
            f"max_beams must be at least {DEFAULT_BUDGET.min_strong}, got {max_beams}."
        )
    return strong, weak, tolerance, max_beams


def felix_settings(**overrides: Any) -> dict[str, Any]:
    """Settings that reproduce Felix's conventions (see ``shared/reference`` case.json).

    Vacuum K (no mean-inner-potential correction), exact s_g alone on the diagonal (no U_0
    or U'_0 there), proportional absorption of U_g only, a beam pool of 329 reflections
    and strong beams by |s_g| with the threshold raised in 0.005 1/Å steps.
    """
    base = {
        "mean_inner_potential": False,
        "mean_absorption": False,
        "strong_beam_step": 0.005,
        "beam_pool": 329,
        "absorption": "proportional",
        "absorption_fraction": 0.1,
        "scattering_factors": "kirkland",
    }
    base.update(overrides)
    return base


def disc_radius_in_inverse_angstrom(radius: Any, voltage: float) -> float:
    """A disc radius in 1/Å from an angle (``"6 mrad"``), a reciprocal length or 1/Å.

    ``voltage`` (V) converts angles: k = angle / λ.
    """
    q = quantity(radius, "disc_radius")
    if q is not None and q.check("[]"):
        # an angle: mrad = 1000 λ k
        return float(q.to("rad").magnitude / electron_wavelength(voltage))
    return float(to_magnitude(radius if q is None else q, "1/angstrom", "disc_radius"))
