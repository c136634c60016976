"""Refinement of every pattern of a map, the kikuchipy way (``EBSD.refine_orientation``).

A LACBED signal with scan axes beside ``reflection`` (a line or a map of patterns) is
refined pattern by pattern with :func:`~hyperspy_lacbed.refinement.fit.refine_discs`: the
patterns are the blocks of a dask graph (``dask.array.map_blocks``), computed with a
progress bar on the threaded scheduler or, when a ``dask.distributed`` client is active,
on its workers. ``compute=False`` returns the result lazily. The result,
:class:`RefinementMap`, gives the refined values, their σ and the figures of merit as
signals over the scan axes, and the best fits as a LACBED signal shaped like the
experiment.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyperspy_lacbed.refinement.driver import RefinementWarning

__all__ = ["RefinementMap", "refine_map"]

#: Per-pattern figures packed after the values and σ: last stage's figure of merit, mean
#: ZNCC at the start and refined (full resolution).
_FIGURES = ("fom", "zncc_start", "zncc")


def _active_client():
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a dependency of the maps
        return None
    try:
        return get_client()
    except ValueError:
        return None


def compute_with_progress(array: Any, progress: bool) -> np.ndarray:
    """Compute a dask array with a progress bar, on the active distributed client if any.

    Parameters
    ----------
    array
        A dask array.
    progress
        Show a progress bar (``distributed.progress`` on a client, else dask's
        ``ProgressBar`` on stderr).

    Returns
    -------
    numpy.ndarray
    """
    client = _active_client()
    if client is not None:
        future = client.compute(array)
        if progress:
            from distributed import progress as show

            show(future)
        return np.asarray(future.result())
    from dask.diagnostics import ProgressBar

    # on stderr, as tqdm's bars (stdout is the user's)
    with ProgressBar(out=sys.stderr) if progress else nullcontext():
        return np.asarray(array.compute())


def _refine_block(block: np.ndarray, **kw: Any) -> np.ndarray:
    """Refine each pattern of a block (..., R, ny, nx); one packed row per pattern."""
    from hyperspy_lacbed.refinement.fit import refine_discs

    lead = block.shape[:-3]
    n_par = len(kw["names"])
    out = np.full((*lead, 2 * n_par + len(_FIGURES) + int(np.prod(block.shape[-3:]))), np.nan)
    valid = kw["valid"]
    for idx in np.ndindex(*lead):
        data = np.where(valid, block[idx], np.nan)
        try:
            res = refine_discs(
                kw["crystal"], data, kw["reflections"], kw["dk"], kw["parameters"],
                mask=valid, progress=False, check=True, **kw["options"],
            )  # fmt: skip
        except (ValueError, RuntimeError) as err:
            warnings.warn(
                f"Pattern {idx} of a block was not refined ({err}); its row is NaN.",
                RefinementWarning,
                stacklevel=2,
            )
            continue
        row = [res.values[n] for n in kw["names"]] + [res.uncertainties[n] for n in kw["names"]]
        row += [res.fom_value, res.mean_zncc_start, res.mean_zncc]
        best = np.where(res.mask, res.simulated, np.nan).ravel()
        out[idx] = np.concatenate([np.asarray(row, float), best])
    return out


def _parameter_names(crystal, parameters, options: dict[str, Any], pixels: int, dk: float):
    """Names and units of the scalar parameters (and a clear error for a bad name, up front)."""
    from hyperspy_lacbed.bloch.settings import SimulationSettings
    from hyperspy_lacbed.refinement.parameters import resolve_parameters

    physics = {
        k: v
        for k, v in options.items()
        if k not in ("thickness", "orientation", "blur", "fom", "disc_shape", "weights")
        and k not in ("stages", "thickness_scan", "keep_site_sums", "tolerance")
    }
    phys = SimulationSettings.from_user(**physics)
    params = resolve_parameters(
        parameters, crystal, thickness=float(np.mean(options["thickness"])),
        absorption=phys.absorption, absorption_fraction=phys.absorption_fraction,
        fom=options["fom"], blur=options["blur"],
        keep_site_sums=options.get("keep_site_sums", True), disc_radius=dk * pixels / 2,
    )  # fmt: skip
    if not params:
        raise ValueError(
            "No parameter to refine; give at least one, e.g. parameters=['thickness']."
        )
    return [p.name for p in params], [p.unit for p in params]


def refine_map(
    experiment: Any,
    structure: Any,
    parameters: Sequence[str],
    *,
    calibration: dict[str, Any],
    valid: np.ndarray,
    compute: bool = True,
    progress: bool = True,
    **options: Any,
) -> RefinementMap:
    """Refine every pattern of a LACBED map (scan axes beside ``reflection``).

    Called by :func:`hyperspy_lacbed.signals.refinement.refine` for a signal with more
    than one navigation axis, after it has checked the calibration; every option is that
    function's.

    Parameters
    ----------
    experiment
        A calibrated LACBED signal, lazy or not, with a ``reflection`` axis and scan axes.
    structure
        Start structure: CIF path, diffpy Structure, Crystal or example name.
    parameters
        What to refine (as :func:`~hyperspy_lacbed.signals.refinement.refine`).
    calibration
        The experiment's reflections, pixel size and where the reflection axis sits in
        its data array (``reflections``, ``dk``, ``reflection_index``).
    valid
        Valid pixels of every pattern, (R, ny, nx) in the order of the reflections.
    compute
        True: compute now (with a progress bar); False: a lazy :class:`RefinementMap`.
    progress
        Show a progress bar while computing.
    **options
        The other options of :func:`~hyperspy_lacbed.refinement.fit.refine_discs`
        (thickness in Å) and the physics settings (voltage and zone axis included).

    Returns
    -------
    RefinementMap
    """
    import dask.array as da

    from hyperspy_lacbed.crystal.structure import Crystal, load_structure

    arrays = calibration
    if options.get("check") is False:
        raise ValueError(
            "A map is always checked at full resolution (its best fits are full-resolution "
            "images); leave check out."
        )
    options.pop("check", None)
    crystal = structure if isinstance(structure, Crystal) else load_structure(structure)
    data = da.moveaxis(da.asarray(experiment.data), arrays["reflection_index"], -3)
    pixels = data.shape[-1]
    names, units = _parameter_names(crystal, parameters, options, pixels, arrays["dk"])
    lead = data.shape[:-3]
    data = data.rechunk((1,) * len(lead) + (-1, -1, -1)).astype(float)
    width = 2 * len(names) + len(_FIGURES) + int(np.prod(data.shape[-3:]))
    packed = da.map_blocks(
        _refine_block, data, dtype=float, drop_axis=[len(lead), len(lead) + 1, len(lead) + 2],
        new_axis=[len(lead)], chunks=data.chunks[: len(lead)] + ((width,),),
        meta=np.empty((0,) * (len(lead) + 1)), crystal=crystal,
        reflections=arrays["reflections"], dk=arrays["dk"], parameters=list(parameters),
        names=names, valid=valid, options=options,
    )  # fmt: skip
    result = RefinementMap(
        names=names, units=units, packed=packed, experiment=experiment,
        reflection_index=arrays["reflection_index"], options=options,
    )  # fmt: skip
    return result.compute(progress) if compute else result


@dataclass
class RefinementMap:
    """The refinement of every pattern of a map.

    Attributes
    ----------
    names, units
        The refined parameters and their units.
    packed
        One row per pattern (scan shape + (width,)): the values, the σ, the last stage's
        figure of merit, the mean ZNCC at the start and refined (full resolution), and the
        best-fit discs; a dask array while lazy.
    experiment
        The refined signal (its axes and metadata shape the outputs; it is not modified).
    reflection_index
        Where the reflection axis sits in the experiment's data array.
    options
        The options every pattern was refined with.
    """

    names: list[str]
    units: list[str]
    packed: Any = field(repr=False)
    experiment: Any = field(repr=False)
    reflection_index: int
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def lazy(self) -> bool:
        """True until :meth:`compute`."""
        return not isinstance(self.packed, np.ndarray)

    def compute(self, progress: bool = True) -> RefinementMap:
        """The computed map (every pattern refined, on a distributed client if one is active).

        Parameters
        ----------
        progress
            Show a progress bar.

        Returns
        -------
        RefinementMap
        """
        if not self.lazy:
            return self
        packed = compute_with_progress(self.packed, progress)
        return RefinementMap(
            self.names, self.units, packed, self.experiment, self.reflection_index, self.options
        )

    def _scan_axes(self) -> list[dict[str, Any]]:
        """The experiment's scan axes (array order) as axis dictionaries."""
        axes = [ax for ax in self.experiment.axes_manager._axes if ax.navigate]
        return [ax.get_axis_dictionary() for ax in axes if ax.name != "reflection"]

    def _map(self, column: int, title: str, units: str = ""):
        """One packed column as a signal over the scan axes (lazy while the map is)."""
        import hyperspy.api as hs

        data = self.packed[..., column]
        axes = self._scan_axes()
        klass = {1: hs.signals.Signal1D, 2: hs.signals.Signal2D}.get(
            len(axes), hs.signals.BaseSignal
        )
        s = klass(data, axes=axes)
        if self.lazy:
            s = s.as_lazy()
        s.metadata.General.title = title
        s.metadata.set_item("Signal.quantity", f"{title} ({units})" if units else title)
        return s

    @property
    def values(self) -> dict[str, Any]:
        """The refined value of each parameter as a signal over the scan axes."""
        return {n: self._map(i, n, u) for i, (n, u) in enumerate(zip(self.names, self.units))}

    @property
    def uncertainties(self) -> dict[str, Any]:
        """The standard uncertainty σ of each parameter as a signal over the scan axes."""
        p = len(self.names)
        return {
            n: self._map(p + i, f"σ {n}", u)
            for i, (n, u) in enumerate(zip(self.names, self.units))
        }

    @property
    def fom(self) -> Any:
        """The figure of merit of each pattern's last stage, over the scan axes."""
        return self._map(2 * len(self.names), f"figure of merit ({self.options.get('fom')})")

    @property
    def zncc(self) -> Any:
        """The mean ZNCC of each refined pattern at full resolution, over the scan axes."""
        return self._map(2 * len(self.names) + 2, "mean ZNCC (refined)")

    @property
    def zncc_start(self) -> Any:
        """The mean ZNCC of each pattern at the start values, over the scan axes."""
        return self._map(2 * len(self.names) + 1, "mean ZNCC (start)")

    @property
    def best_fit(self) -> Any:
        """The best fits as a LACBED signal with the experiment's axes (NaN outside the mask)."""
        exp = self.experiment
        shape = tuple(self.packed.shape[:-1])
        r_ny_nx = (exp.axes_manager["reflection"].size, *exp.axes_manager.signal_shape[::-1])
        discs = self.packed[..., 2 * len(self.names) + len(_FIGURES) :]
        discs = discs.reshape(shape + r_ny_nx)
        if self.lazy:
            import dask.array as da

            discs = da.moveaxis(discs, -3, self.reflection_index)
        else:
            discs = np.moveaxis(discs, -3, self.reflection_index)
        axes = [ax.get_axis_dictionary() for ax in exp.axes_manager._axes]
        best = exp._new(discs, axes, exp.metadata.as_dictionary())
        best.metadata.General.title = f"{exp.metadata.General.title} (best fit)".strip()
        best.metadata.set_item("LACBED.source", "bloch")
        return best

    def summary(self) -> str:
        """Mean, spread and mean σ of each parameter over the map (computes a lazy map)."""
        done = self.compute(progress=False)
        p = len(self.names)
        rows = done.packed.reshape(-1, done.packed.shape[-1])
        lines = [f"{'parameter':<22}{'mean':>14}{'std':>12}{'mean σ':>12}  unit"]
        for i, (n, u) in enumerate(zip(self.names, self.units)):
            v, s = rows[:, i], rows[:, p + i]
            lines.append(
                f"{n:<22}{np.nanmean(v):>14.6g}{np.nanstd(v):>12.3g}{np.nanmean(s):>12.3g}  {u}"
            )
        z0, z1 = rows[:, 2 * p + 1], rows[:, 2 * p + 2]
        lines.append(
            f"{len(rows)} patterns; mean ZNCC {np.nanmean(z0):.4f} -> {np.nanmean(z1):.4f} "
            f"(full resolution); {int(np.isnan(rows[:, 0]).sum())} not refined"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
