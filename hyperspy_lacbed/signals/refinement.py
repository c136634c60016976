"""``hyperspy_lacbed.refinement`` and ``LACBED.refine``: fit a crystal to recorded discs.

The signal side of :mod:`hyperspy_lacbed.refinement`: the experiment (a calibrated
:class:`~hyperspy_lacbed.signals.lacbed.LACBED` with one disc per reflection) is checked
and turned into arrays, :func:`~hyperspy_lacbed.refinement.fit.refine_discs` does the fit, and
the best fit comes back as a LACBED signal whose metadata holds everything needed to run
the fit again. The experiment is never modified. The LACBED class is found by its
signal type (no import of signals.lacbed, which calls this module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperspy_lacbed.refinement.fit import Stage, refine_discs
from hyperspy_lacbed.refinement.result import RefinementResult
from hyperspy_lacbed.signals.metadata import signal_class

if TYPE_CHECKING:
    from hyperspy_lacbed.signals.refinement_map import RefinementMap

__all__ = ["refine"]


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    import hyperspy.api as hs

    return bool(hs.preferences.General.show_progressbar)


def _calibration(experiment: Any) -> dict[str, Any]:
    """The reflections, pixel size and physics of an experiment with a reflection axis, checked."""
    if not isinstance(experiment, signal_class("LACBED")) and not isinstance(
        experiment, signal_class("LACBED", lazy=True)
    ):
        raise TypeError(
            f"The experiment must be a LACBED signal, not {type(experiment).__name__}; load "
            "the discs and call s.set_signal_type('LACBED'), set_experimental_parameters and "
            "calibrate first."
        )
    nav = experiment.axes_manager.navigation_axes
    names = [ax.name for ax in nav]
    if names.count("reflection") != 1:
        raise ValueError(
            f"The experiment needs one navigation axis 'reflection' (one disc per reflection, "
            f"plus any scan axes); it has {names or 'none'}. Set reflections with "
            "s.set_experimental_parameters(reflections=[[h, k, l], ...])."
        )
    axis = nav[names.index("reflection")]
    reflections = experiment.reflections
    if len(reflections) != axis.size:
        raise ValueError(
            f"metadata.LACBED.reflections has {len(reflections)} entries for {axis.size} "
            "discs; give one [h, k, l] per disc with "
            "s.set_experimental_parameters(reflections=...)."
        )
    (dkx, offx), (dky, offy) = experiment.k_calibration()
    ny, nx = experiment.axes_manager.signal_shape[::-1]
    if ny != nx or nx % 2:
        raise ValueError(
            f"The discs are {ny} × {nx} pixels; the refinement needs square discs with an "
            "even side (crop them, e.g. s.isig[1:, 1:])."
        )
    if dkx <= 0 or dky <= 0 or not math.isclose(dkx, dky, rel_tol=1e-6):
        raise ValueError(
            f"The kx and ky pixel sizes are {dkx:.6g} and {dky:.6g} 1/Å; the refinement needs "
            "equal, positive pixel sizes. Calibrate both axes with s.calibrate(...)."
        )
    for off, name in ((offx, "kx"), (offy, "ky")):
        centre = off + (nx - 1) / 2 * dkx
        if abs(centre) > 1e-3 * dkx:
            raise ValueError(
                f"The {name} axis is not centred on the disc (its centre is at {centre:.4g} "
                "1/Å); the refinement needs the tilt (0, 0) at the disc centre: "
                "s.calibrate(...) centres the axes."
            )
    voltage = experiment.beam_energy
    if voltage is None:
        raise ValueError(
            "The beam energy is not set; call s.set_experimental_parameters(beam_energy='200 kV')."
        )
    zone = experiment.zone_axis
    x_dir = experiment.metadata.get_item("Sample.x_direction")
    return {
        "reflections": np.array(reflections, int),
        "reflection_index": axis.index_in_array,
        "dk": float(dkx),
        "voltage": 1000.0 * float(voltage),
        "zone_axis": None if zone is None else tuple(int(v) for v in zone),
        "x_direction": None if x_dir is None else tuple(int(v) for v in x_dir),
        "g_vectors": experiment.g_vectors,
    }


def _valid_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The user's mask (disc shape or (R, ny, nx)) as booleans of ``shape[-3:]``."""
    valid = np.ones(shape[-3:], bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape not in (shape[-3:], shape[-2:]):
            raise ValueError(
                f"mask has shape {m.shape}; give one of the disc shape {shape[-2:]} or of "
                f"the discs of one pattern {shape[-3:]} (True = use the pixel)."
            )
        valid &= m if m.ndim == 3 else m[None]
    return valid


def _experiment_arrays(experiment: Any, mask: Any) -> dict[str, Any]:
    """The discs, reflections and calibration of a one-pattern experiment, checked."""
    arrays = _calibration(experiment)
    data = np.asarray(experiment.data, dtype=float)
    valid = _valid_mask(mask, data.shape)
    reflections = arrays["reflections"]
    bad = ~np.isfinite(data) & valid
    if bad.any():
        r = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{int(bad.sum())} pixels are NaN or infinite (first in disc "
            f"{list(reflections[r])}); mark dead pixels with mask= (False there) or replace "
            "them."
        )
    negative = (np.where(valid, data, 0.0) < 0).sum()
    if negative:
        raise ValueError(
            f"{int(negative)} pixels are negative; intensities must be ≥ 0 (add the detector "
            "offset back, or mask them with mask=)."
        )
    return {**arrays, "data": np.where(valid, data, np.nan), "mask": valid}


def _physics(arrays: dict[str, Any], physics: dict[str, Any]) -> dict[str, Any]:
    """The physics keywords with the voltage, zone axis and x-direction of the experiment."""
    physics = dict(physics)
    physics.setdefault("voltage", arrays["voltage"])
    if physics.get("zone_axis") is None:
        if arrays["zone_axis"] is None:
            raise ValueError(
                "The zone axis is not set; call s.set_experimental_parameters(zone_axis=[u, v, "
                "w]) or pass zone_axis=."
            )
        physics["zone_axis"] = arrays["zone_axis"]
    if physics.get("x_direction") is None and arrays["x_direction"] is not None:
        physics["x_direction"] = arrays["x_direction"]
    return physics


def _start_thickness(experiment: Any, thickness: Any) -> float | list[float]:
    """The start thickness (or scan range) in Å."""
    from hyperspy_lacbed.units import to_magnitude

    if thickness is None:
        t = experiment.metadata.get_item("Sample.thickness")
        return float(np.atleast_1d(t)[0]) if t is not None else 1000.0
    if isinstance(thickness, (list, tuple)) and len(thickness) == 2:
        return [float(to_magnitude(v, "angstrom", "thickness")) for v in thickness]
    return float(to_magnitude(thickness, "angstrom", "thickness"))


def refine(
    experiment: Any,
    structure: Any,
    parameters: Sequence[str] = ("thickness",),
    *,
    thickness: Any = None,
    orientation: tuple[int, bool] | str = (0, False),
    blur: float = 0.0,
    fom: str = "zncc",
    mask: Any = None,
    disc_shape: str = "circle",
    weights: Any = "poisson",
    stages: Sequence[Stage | dict] | str | None = "auto",
    progress: bool | None = None,
    compute: bool = True,
    check: bool = True,
    **physics: Any,
) -> RefinementResult | RefinementMap:
    """Refine a crystal, the thickness and the experiment's geometry against recorded discs.

    Gradient descent (L-BFGS) through a differentiable Bloch-wave model
    (:mod:`hyperspy_lacbed.refinement`), coarse to fine, with standard uncertainties and
    correlations from the curvature of the figure of merit.

    Parameters
    ----------
    experiment
        A calibrated LACBED signal: one navigation axis ``reflection`` with
        ``metadata.LACBED.reflections``, signal axes in 1/Å or mrad centred on the disc,
        the beam energy and the zone axis set. It is not modified.
    structure
        Start structure: CIF path, diffpy Structure, Crystal or example name.
    parameters
        What to refine: ``"thickness"``, ``"B"`` (per element), ``"B[Ge]"`` / ``"B[Ge1]"``
        (an element / a site), ``"occupancy[Sn]"``, ``"xyz[O1]"`` (free coordinates of a
        site), ``"Ug[1,1,1]"`` (|U_g| of a reflection and its equivalents),
        ``"Ug[1,1,1].phase"``, ``"absorption"``, ``"scale"`` (disc calibration),
        ``"offset"`` (tilt-grid centre), ``"blur"``, ``"background"`` (``fom="lsq"``).
    thickness
        Start thickness (``"130 nm"``, a number in Å), or a (lower, upper) range to scan;
        default ``metadata.Sample.thickness`` or 100 nm.
    orientation
        ``(k, transpose)`` with experiment ≈ ``orient(simulation, k, transpose)``
        (:func:`hyperspy_lacbed.analysis.square.orient`), or ``"auto"``.
    blur
        Gaussian blur σ of the simulation in pixels (the start value when refined).
    fom
        ``"zncc"`` (1 − mean ZNCC over the discs, as Felix) or ``"lsq"`` (weighted least
        squares with a profiled intensity scale; Poisson counts by default).
    mask
        Valid pixels (True), of the disc shape or of the data; dead pixels False.
    disc_shape
        ``"circle"``: compare the pixels inside the disc only; ``"square"``: all.
    weights
        For ``"lsq"``: ``"poisson"``, None (uniform) or an array of σ.
    stages
        ``"auto"`` (default): coarse-to-fine stages chosen from the disc size, the crystal
        and the beams (:func:`~hyperspy_lacbed.refinement.fit.default_stages`); or a list
        of :class:`~hyperspy_lacbed.refinement.fit.Stage` or dicts with ``bin``,
        ``strong_beams``, ``weak_beams``, ``max_iter``, ``supersample``. Any bin is
        accepted (the odd pixel is padded). The result is checked against the start at
        full resolution, with a
        :class:`~hyperspy_lacbed.refinement.driver.RefinementWarning` when it fits worse.
    progress
        Show a progress bar; default HyperSpy's preference.
    check
        Compare the result with the start at full resolution (the result's images, ZNCC
        and best fit are then those of full resolution); False keeps the last stage's grid
        and checks nothing. A map is always checked.
    compute
        For a map (navigation axes beyond ``reflection``): False returns a lazy
        :class:`~hyperspy_lacbed.signals.refinement_map.RefinementMap` (``.compute()`` runs
        it); ignored for one pattern.
    **physics
        Physics settings as for :func:`hyperspy_lacbed.simulate` (``x_direction``,
        ``surface_normal``, ``absorption``, ``strong_beams``, ``preset``, ...); the zone
        axis, x-direction and voltage default to the experiment's metadata.

    Returns
    -------
    RefinementResult or RefinementMap
        For one pattern, a :class:`~hyperspy_lacbed.refinement.result.RefinementResult` with
        ``result.signal`` the best fit as a LACBED signal (``metadata.LACBED.refinement``
        holds the recipe and the results) and ``result.difference_signal`` the z-scored
        differences. For a map (scan axes beside ``reflection``) every pattern is refined
        on its own, lazily through dask (a ``dask.distributed`` client is used when one is
        active), and a :class:`~hyperspy_lacbed.signals.refinement_map.RefinementMap` holds the
        refined values, their σ and the figures of merit as signals over the scan axes and
        the best fits as a LACBED signal shaped like the experiment.

    Examples
    --------
    >>> import hyperspy_lacbed as hl  # doctest: +SKIP
    >>> res = hl.refine(discs, "GeSn.cif", ["thickness", "B", "blur"])  # doctest: +SKIP
    >>> print(res.summary())  # doctest: +SKIP
    """
    stage_list = stages
    if stages is not None and not isinstance(stages, str):
        stage_list = [s if isinstance(s, Stage) else Stage(**s) for s in stages]
    options = dict(
        thickness=thickness, orientation=orientation, blur=blur, fom=fom, disc_shape=disc_shape,
        weights=weights, stages=stage_list, check=check,
    )  # fmt: skip
    arrays = _calibration(experiment)
    if experiment.axes_manager.navigation_dimension > 1:
        from hyperspy_lacbed.signals.refinement_map import refine_map

        options["thickness"] = _start_thickness(experiment, thickness)
        return refine_map(
            experiment, structure, parameters, calibration=arrays,
            valid=_valid_mask(mask, (len(arrays["reflections"]), *experiment.axes_manager.signal_shape[::-1])), compute=compute,
            progress=_want_progress(progress), **options, **_physics(arrays, physics),
        )  # fmt: skip
    arrays = _experiment_arrays(experiment, mask)
    physics = _physics(arrays, physics)
    options["thickness"] = _start_thickness(experiment, thickness)
    result = refine_discs(
        structure, arrays["data"], arrays["reflections"], arrays["dk"], parameters,
        mask=arrays["mask"], progress=_want_progress(progress), **options, **physics,
    )  # fmt: skip
    return _with_signals(result, experiment, arrays, physics)


def _with_signals(
    result: RefinementResult, experiment: Any, arrays: dict[str, Any], physics: dict[str, Any]
) -> RefinementResult:
    """The result with its best fit and z-scored differences as LACBED signals."""
    record = result.to_dict()
    g = arrays["g_vectors"]
    if g is None:
        g = np.zeros((len(arrays["reflections"]), 2))
    common = {
        "reflections": arrays["reflections"].tolist(),
        "g_vectors": np.asarray(g).tolist(),
        "thickness": float(result.thickness),
        "dk": result.dk,
        "voltage": physics["voltage"],
        "zone_axis": list(physics["zone_axis"]),
        "x_direction": None
        if physics.get("x_direction") is None
        else list(physics["x_direction"]),
        "settings": {"refinement": record["recipe"]},
    }
    lacbed = signal_class("LACBED")
    best = lacbed.from_discs(
        np.where(result.mask, result.simulated, np.nan), source="bloch", **common
    )
    best.metadata.set_item("LACBED.refinement", record)
    best.metadata.General.title = f"{experiment.metadata.General.title} (best fit)".strip()
    diff = lacbed.from_discs(result.difference, source="bloch", **common)
    diff.metadata.General.title = "best fit − experiment (z-scores)"
    result.signal = best
    result.difference_signal = diff
    return result
