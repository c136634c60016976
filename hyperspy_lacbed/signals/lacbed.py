"""The LACBED signal: large-angle CBED discs as a calibrated HyperSpy ``Signal2D``.

Data layout
-----------
The array has the shape ``(*stack, n_thickness, n_reflection, ny, nx)``; any of the
navigation dimensions may be absent. The axes are

============  =========  =============================================================
axis          units      calibration
============  =========  =============================================================
kx (x, cols)  ``1/Å``    pixel centres at ``(j - (nx - 1) / 2) · dk``, i.e. at
                         ``(j - N + 0.5) · dk`` for ``nx = 2N``: no pixel at k = 0
ky (y, rows)  ``1/Å``    the same along the rows; ky grows with the row index
reflection    (index)    one disc per entry of ``metadata.LACBED.reflections``
thickness     ``Å``      a non-uniform axis when the thicknesses are not evenly spaced
============  =========  =============================================================

Reciprocal lengths are without 2π (|g| = 1/d). Angles follow from mrad = 1000·λ·k
(:meth:`LACBED.to_mrad`).

Metadata
--------
``Acquisition_instrument.TEM.beam_energy`` (keV), ``Acquisition_instrument.TEM.
convergence_angle`` (mrad, the disc radius), ``Sample.thickness`` (list, Å),
``Sample.zone_axis`` and ``Sample.x_direction`` (3 integers), ``LACBED.reflections``
(list of [h, k, l]), ``LACBED.g_vectors`` (list of [gx, gy] in 1/Å in the kx, ky frame),
``LACBED.source`` ("bloch", "cgan" or "experiment") and ``LACBED.settings`` (a free-form
dict of whatever produced the signal). A montage (:meth:`LACBED.to_montage`) also has
``LACBED.montage``, which :meth:`LACBED.from_montage` reads.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
from hyperspy.docstrings.signal import LAZYSIGNAL_DOC
from hyperspy.signals import LazySignal2D, Signal2D

from hyperspy_lacbed.analysis.montage import (
    MONTAGE_GAP,
    array_module,
    cut_index,
    disc_mask,
    disc_positions,
    discs_overlap,
    gather,
    min_spacing,
    montage_index,
)
from hyperspy_lacbed.parsing import (
    as_g_vectors,
    as_int_vector,
    as_reflections,
    as_thickness,
    as_thickness_axis,
    default_x_direction,
    finite_positive,
    is_angle,
    parse_angle_mrad,
    parse_beam_energy,
    parse_tilt,
)
from hyperspy_lacbed.signals.metadata import (
    INVERSE_ANGSTROM,
    MRAD,
    clean_settings,
    is_undefined,
    set_axis_values,
    thickness_axis_dict,
)
from hyperspy_lacbed.units import electron_wavelength, to_magnitude, ureg

__all__ = ["LACBED", "MONTAGE_GAP", "SOURCES", "LazyLACBED"]

#: Allowed values of ``metadata.LACBED.source``.
SOURCES = ("bloch", "cgan", "experiment")

_BEAM_ENERGY = "Acquisition_instrument.TEM.beam_energy"
_CONVERGENCE = "Acquisition_instrument.TEM.convergence_angle"
_HOW_TO_CALIBRATE = (
    "Call s.calibrate(scale='0.005 1/Å') with the size of one pixel, or "
    "s.calibrate(disc_radius='10 mrad', beam_energy='200 kV') with the disc radius."
)


def _centred_axis(name: str, size: int, scale: float, units: str) -> dict[str, Any]:
    """A signal axis dictionary whose pixel centres are symmetric about 0."""
    return {
        "name": name,
        "size": int(size),
        "scale": float(scale),
        "offset": -(size - 1) / 2 * float(scale),
        "units": units,
        "navigate": False,
    }


class LACBED(Signal2D):
    """Large-angle convergent-beam electron diffraction (LACBED) discs.

    A stack of discs, one per reflection, optionally per thickness and per entry of a
    user stack, with the signal axes ``kx``, ``ky`` calibrated in 1/Å (see the module
    documentation for the layout). Build one from arrays with :meth:`from_discs`, or
    turn a loaded image into one with ``s.set_signal_type("LACBED")`` and
    :meth:`set_experimental_parameters` / :meth:`calibrate`.

    No method changes the signal in place unless it is given ``inplace=True``
    (:meth:`set_experimental_parameters`, a setter, defaults to in place).
    """

    _signal_type = "LACBED"
    _alias_signal_types = ("lacbed", "LACBED_pattern")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_discs(
        cls,
        discs: np.ndarray | da.Array,
        reflections: Sequence[Sequence[int]],
        g_vectors: Sequence[Sequence[float]] | np.ndarray,
        thickness: float | Sequence[float],
        dk: float,
        voltage: float,
        zone_axis: Sequence[int],
        x_direction: Sequence[int] | None = None,
        source: str = "bloch",
        settings: dict[str, Any] | None = None,
        lazy: bool | None = None,
    ) -> LACBED:
        """Build a fully calibrated LACBED signal from an array of discs.

        Parameters
        ----------
        discs
            NumPy or dask array of shape ``(*stack, n_thickness, n_reflection, ny, nx)``
            when ``thickness`` is a sequence, ``(*stack, n_reflection, ny, nx)`` when it
            is a single number. Pixel ``[i, j]`` is the tilt
            ``(kx, ky) = ((j - (nx-1)/2) dk, (i - (ny-1)/2) dk)``.
        reflections
            ``[h, k, l]`` of each disc, in the order of the reflection axis.
        g_vectors
            ``[gx, gy]`` of each reflection in 1/Å in the kx, ky frame (shape ``(n, 2)``).
        thickness
            Thickness in Å: a number (no thickness axis) or a strictly increasing sequence
            (one entry per index of the thickness axis). A one-element sequence gives a
            thickness axis of size 1 only if ``discs.shape[-4] == 1``, else it is taken as
            a number.
        dk
            Size of one pixel in 1/Å (the same along kx and ky); a quantity or string
            ("0.05 1/Å", "0.5 mrad") is converted.
        voltage
            Accelerating voltage in V (or a quantity / string such as "200 kV").
        zone_axis
            Zone axis [u, v, w] (the beam direction).
        x_direction
            The crystal direction along kx; default [1, 0, 0] for the [0, 0, 1] zone axis,
            unset otherwise.
        source
            "bloch", "cgan" or "experiment".
        settings
            Whatever produced the discs (engine or model settings); stored, after
            conversion to plain Python values, in ``metadata.LACBED.settings``.
        lazy
            ``None`` (default): lazy if ``discs`` is a dask array. ``True``: a
            :class:`LazyLACBED` (a NumPy array is wrapped with :func:`dask.array.from_array`).
            ``False``: an in-memory :class:`LACBED` (a dask array is computed).

        Returns
        -------
        LACBED or LazyLACBED
            With ``beam_energy = voltage / 1000`` keV and ``convergence_angle`` the
            image half-width ``min(nx, ny) / 2 · dk`` in mrad.

        Raises
        ------
        ValueError
            When the shapes of ``discs``, ``reflections``, ``g_vectors`` and
            ``thickness`` disagree, or a calibration value is not finite and positive.
        """
        is_dask = isinstance(discs, da.Array)
        data = discs if is_dask else np.asarray(discs)
        refl = as_reflections(reflections)
        g = as_g_vectors(g_vectors)
        t_list, multi_t = as_thickness_axis(thickness)
        if multi_t and len(t_list) == 1 and not (data.ndim >= 4 and data.shape[-4] == 1):
            multi_t = False  # [t] for data without a thickness axis: same as t
        voltage = finite_positive(to_magnitude(voltage, "V", "voltage"), "voltage (V)")
        dk = parse_tilt(dk, "dk", voltage / 1000.0)
        za = as_int_vector(zone_axis, "zone_axis", nonzero=True)
        xd = (
            default_x_direction(za)
            if x_direction is None
            else as_int_vector(x_direction, "x_direction", nonzero=True)
        )
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}.")

        need = 4 if multi_t else 3
        if data.ndim < need:
            layout = (
                "(*stack, n_thickness, n_reflection, ny, nx)"
                if multi_t
                else "(*stack, n_reflection, ny, nx)"
            )
            raise ValueError(
                f"discs has {data.ndim} dimensions, expected at least {need}: {layout}. "
                "Add a reflection axis of size 1 for a single disc (discs[None])."
            )
        n_refl = data.shape[-3]
        if len(refl) != n_refl:
            raise ValueError(
                f"{len(refl)} reflections given for {n_refl} discs (axis -3 of discs); give "
                "one [h, k, l] per disc."
            )
        if len(g) != n_refl:
            raise ValueError(
                f"{len(g)} g_vectors given for {n_refl} discs; give one [gx, gy] per disc."
            )
        if multi_t and len(t_list) != data.shape[-4]:
            raise ValueError(
                f"{len(t_list)} thicknesses given for a thickness axis (axis -4 of discs) of "
                f"size {data.shape[-4]}; give one thickness per index, or a single number "
                "for data without a thickness axis."
            )
        ny, nx = data.shape[-2:]
        if lazy is None:
            lazy = is_dask
        if lazy and not is_dask:
            data = da.from_array(data)
        elif not lazy and is_dask:
            data = data.compute()

        axes: list[dict[str, Any]] = [
            {"size": int(n), "navigate": True} for n in data.shape[: data.ndim - need]
        ]
        if multi_t:
            axes.append(thickness_axis_dict(t_list))
        axes.append(
            {"name": "reflection", "size": n_refl, "scale": 1.0, "offset": 0.0, "navigate": True}
        )
        axes.append(_centred_axis("ky", ny, dk, INVERSE_ANGSTROM))
        axes.append(_centred_axis("kx", nx, dk, INVERSE_ANGSTROM))

        kev = voltage / 1000.0
        radius_mrad = 1000.0 * electron_wavelength(kev * 1e3) * min(nx, ny) / 2 * dk
        sample: dict[str, Any] = {"thickness": t_list, "zone_axis": za}
        if xd is not None:
            sample["x_direction"] = xd
        metadata = {
            "General": {"title": f"LACBED ({source})"},
            "Signal": {"signal_type": "LACBED", "quantity": "Intensity"},
            "Acquisition_instrument": {
                "TEM": {"beam_energy": kev, "convergence_angle": radius_mrad}
            },
            "Sample": sample,
            "LACBED": {
                "reflections": refl,
                "g_vectors": g,
                "source": source,
                "settings": clean_settings(settings or {}),
            },
        }
        klass = LazyLACBED if lazy else LACBED
        return klass(data, axes=axes, metadata=metadata)

    # ------------------------------------------------------------------ properties
    @property
    def beam_energy(self) -> float | None:
        """Beam energy in keV (``None`` if not set)."""
        v = self.metadata.get_item(_BEAM_ENERGY)
        return None if v is None else float(v)

    @property
    def convergence_angle(self) -> float | None:
        """Convergence semi-angle (the disc radius) in mrad (``None`` if not set)."""
        v = self.metadata.get_item(_CONVERGENCE)
        return None if v is None else float(v)

    @property
    def wavelength(self) -> float | None:
        """Relativistic electron wavelength in Å (``None`` without a beam energy)."""
        kev = self.beam_energy
        return None if kev is None else electron_wavelength(kev * 1e3)

    @property
    def reflections(self) -> list[tuple[int, int, int]]:
        """The [h, k, l] of each disc as tuples (empty if not set)."""
        refl = self.metadata.get_item("LACBED.reflections")
        if refl is None:
            return []
        return [tuple(r) for r in as_reflections(refl)]

    @property
    def g_vectors(self) -> np.ndarray | None:
        """``(n_reflection, 2)`` array of [gx, gy] in 1/Å (``None`` if not set)."""
        g = self.metadata.get_item("LACBED.g_vectors")
        return None if g is None else np.asarray(as_g_vectors(g))

    @property
    def thicknesses(self) -> np.ndarray | None:
        """The thicknesses in Å: the thickness axis if there is one, else the metadata."""
        ax = self.navigation_axis("thickness")
        if ax is not None:
            values = np.asarray(ax.axis, dtype=float)
            if not is_undefined(ax.units):
                values = ureg().Quantity(values, ax.units).to("angstrom").magnitude
            return values
        t = self.metadata.get_item("Sample.thickness")
        return None if t is None else np.atleast_1d(np.asarray(t, dtype=float))

    @property
    def zone_axis(self) -> tuple[int, int, int] | None:
        """The zone axis [u, v, w] (``None`` if not set)."""
        za = self.metadata.get_item("Sample.zone_axis")
        return None if za is None else tuple(int(v) for v in za)

    # ------------------------------------------------------------------ helpers
    def navigation_axis(self, name: str) -> Any:
        """The navigation axis called ``name`` (``"thickness"``, ``"reflection"``...), or ``None``."""
        for ax in self.axes_manager.navigation_axes:
            if ax.name == name:
                return ax
        return None

    def reflection_axis(self, what: str = "This method") -> Any:
        """The reflection axis, checked against ``metadata.LACBED.reflections``.

        ``what`` names the caller in the error raised when there is none.
        """
        ax = self.navigation_axis("reflection")
        if ax is None:
            raise ValueError(
                f"{what} needs a navigation axis named 'reflection' (one disc per reflection); "
                "this signal has none. Build the signal with LACBED.from_discs, or name the "
                "axis with s.set_experimental_parameters(reflections=[[h, k, l], ...]) on data "
                "of shape (..., n_reflection, ny, nx)."
            )
        n = len(self.reflections)
        if n != ax.size:
            raise ValueError(
                f"metadata.LACBED.reflections has {n} entries but the reflection axis has "
                f"{ax.size}; set one [h, k, l] per disc with "
                "s.set_experimental_parameters(reflections=...)."
            )
        return ax

    def _checked_g_vectors(self, n: int) -> np.ndarray:
        g = self.g_vectors
        if g is None:
            raise ValueError(
                "metadata.LACBED.g_vectors is not set; give the [gx, gy] (1/Å) of each "
                "reflection with s.set_experimental_parameters(g_vectors=...)."
            )
        if len(g) != n:
            raise ValueError(
                f"metadata.LACBED.g_vectors has {len(g)} entries for {n} reflections; give one "
                "[gx, gy] per reflection with s.set_experimental_parameters(g_vectors=...)."
            )
        return g

    def _beam_energy_or(self, beam_energy: Any) -> float | None:
        return parse_beam_energy(beam_energy) if beam_energy is not None else self.beam_energy

    def k_calibration(self, beam_energy: Any = None) -> tuple[tuple[float, float], ...]:
        """``((scale_x, offset_x), (scale_y, offset_y))`` of the signal axes in 1/Å.

        Axes in an angle are converted with the beam energy (``beam_energy``, else the
        metadata's); a ``ValueError`` says how to calibrate uncalibrated axes.
        """
        out = []
        for ax in self.axes_manager.signal_axes:
            units = ax.units
            scale, offset = float(ax.scale), float(ax.offset)
            if not (math.isfinite(scale) and math.isfinite(offset)) or scale == 0:
                raise ValueError(
                    f"The {ax.name} axis has scale {scale} and offset {offset}, which is no "
                    f"calibration. {_HOW_TO_CALIBRATE}"
                )
            if is_undefined(units):
                raise ValueError(
                    f"The signal axes are not calibrated (the {ax.name} axis has no units). "
                    f"{_HOW_TO_CALIBRATE}"
                )
            f = self._unit_factor(units, beam_energy, what=f"the {ax.name} axis")
            out.append((scale * f, offset * f))
        return tuple(out)

    def _disc_radius(self, dkx: float, dky: float) -> float:
        """The disc radius in 1/Å: the convergence angle if known, else the half-width."""
        ny, nx = self.axes_manager.signal_shape[::-1]
        half = min(nx * dkx, ny * dky) / 2
        conv, kev = self.convergence_angle, self.beam_energy
        if conv is None or kev is None or not (math.isfinite(conv) and conv > 0):
            return half
        return min(
            conv / (1000.0 * electron_wavelength(kev * 1e3)), math.hypot(nx * dkx, ny * dky) / 2
        )

    def _new(self, data: Any, axes: list[dict[str, Any]], metadata: dict[str, Any]) -> LACBED:
        """A new LACBED (lazy if ``data`` is a dask array) with these axes and metadata."""
        metadata = copy.deepcopy(metadata)
        metadata.pop("_HyperSpy", None)
        klass = LazyLACBED if isinstance(data, da.Array) else LACBED
        return klass(
            data,
            axes=axes,
            metadata=metadata,
            original_metadata=self.original_metadata.as_dictionary(),
        )

    # ------------------------------------------------------------------ metadata
    def set_experimental_parameters(
        self,
        beam_energy: Any = None,
        convergence_angle: Any = None,
        thickness: Any = None,
        zone_axis: Sequence[int] | None = None,
        x_direction: Sequence[int] | None = None,
        reflections: Sequence[Sequence[int]] | None = None,
        g_vectors: Any = None,
        inplace: bool = True,
    ) -> LACBED | None:
        """Set the experimental parameters in the metadata (and name matching axes).

        Every value may be a pint quantity, a string with its unit ("200 kV",
        "100 nm", "12 mrad") or a plain number in the default unit. Parameters left
        at ``None`` are not changed. All values are checked before anything is set.

        Parameters
        ----------
        beam_energy
            Beam energy; numbers in keV, strings as an energy ("200 keV") or a voltage
            ("200 kV").
        convergence_angle
            Convergence semi-angle, i.e. the disc radius; numbers in mrad; a reciprocal
            length ("0.3 1/Å") is converted through the beam energy.
        thickness
            One or more thicknesses (strictly increasing); numbers in Å. With several,
            the thickness axis takes their values; if there is none, the navigation axis just
            outside the reflection axis (array axis -4, or -3 without a reflection axis)
            becomes the thickness axis when its size matches, whatever its name.
        zone_axis, x_direction
            Three integers [u, v, w].
        reflections
            ``[[h, k, l], ...]``, one per disc. If the signal has no axis named
            "reflection" and its first navigation axis (array axis -3, following the layout
            ``(..., n_thickness, n_reflection, ny, nx)``) has the same size, that axis
            becomes the reflection axis, whatever its name (a .tif stack names it e.g.
            "image series"). Otherwise the signal is taken for a montage and only the
            metadata is set.
        g_vectors
            ``[[gx, gy], ...]`` in 1/Å in the kx, ky frame, one per reflection.
        inplace
            ``True`` (default, like HyperSpy's ``set_microscope_parameters``): change this
            signal and return ``None``; ``False``: return a changed copy.

        Raises
        ------
        ValueError
            For values in impossible units, non-finite values, or lengths that do not
            match the reflection or thickness axes.
        """
        kev = parse_beam_energy(beam_energy) if beam_energy is not None else None
        kev_any = kev if kev is not None else self.beam_energy
        conv = (
            parse_angle_mrad(convergence_angle, "convergence_angle", kev_any)
            if convergence_angle is not None
            else None
        )
        za = None if zone_axis is None else as_int_vector(zone_axis, "zone_axis", nonzero=True)
        xd = None
        if x_direction is not None:
            xd = as_int_vector(x_direction, "x_direction", nonzero=True)
        refl = None if reflections is None else as_reflections(reflections)
        g = None if g_vectors is None else as_g_vectors(g_vectors)
        t_list = None if thickness is None else as_thickness(thickness)
        if refl is not None and g is not None and len(refl) != len(g):
            raise ValueError(
                f"{len(refl)} reflections but {len(g)} g_vectors; give one [gx, gy] per "
                "reflection."
            )

        # which axes the lists go to (checked before anything changes)
        nav = list(self.axes_manager.navigation_axes)
        refl_ax = self.navigation_axis("reflection")
        claim_refl = None
        n_refl = len(refl) if refl is not None else (len(g) if g is not None else None)
        if n_refl is not None:
            if refl_ax is not None and refl_ax.size != n_refl:
                what = "reflections" if refl is not None else "g_vectors"
                raise ValueError(
                    f"{n_refl} {what} given but the reflection axis has {refl_ax.size} discs; "
                    f"give one entry per disc."
                )
            if (
                refl_ax is None
                and refl is not None
                and nav
                and nav[0].name != "thickness"
                and nav[0].size == n_refl
            ):
                claim_refl = nav[0]
        t_ax = self.navigation_axis("thickness")
        claim_t = None
        if t_list is not None:
            if t_ax is not None and t_ax.size != len(t_list):
                raise ValueError(
                    f"{len(t_list)} thicknesses given but the thickness axis has {t_ax.size} "
                    "entries; give one thickness per index of the thickness axis."
                )
            if t_ax is None and len(t_list) > 1:
                r = refl_ax if refl_ax is not None else claim_refl
                i = 0 if r is None else nav.index(r) + 1
                if i < len(nav) and nav[i].name != "reflection" and nav[i].size == len(t_list):
                    claim_t = nav[i]
                else:
                    raise ValueError(
                        f"{len(t_list)} thicknesses given, but there is no thickness axis of "
                        f"that size (expected a navigation axis of size {len(t_list)} just "
                        "outside the reflection axis, layout (..., n_thickness, n_reflection, "
                        "ny, nx)); give a single thickness or reshape the data."
                    )

        s = self if inplace else self.deepcopy()
        md = s.metadata
        if kev is not None:
            md.set_item(_BEAM_ENERGY, kev)
        if conv is not None:
            md.set_item(_CONVERGENCE, conv)
        if za is not None:
            md.set_item("Sample.zone_axis", za)
        if xd is not None:
            md.set_item("Sample.x_direction", xd)
        if refl is not None:
            md.set_item("LACBED.reflections", refl)
        if g is not None:
            md.set_item("LACBED.g_vectors", g)
        if claim_refl is not None:
            ax = s.axes_manager[claim_refl.index_in_axes_manager]
            ax.name = "reflection"
        if t_list is not None:
            md.set_item("Sample.thickness", t_list)
            target = t_ax if t_ax is not None else claim_t
            if target is not None:
                ax = s.axes_manager[target.index_in_axes_manager]
                ax.name = "thickness"
                ax.units = "Å"
                set_axis_values(ax, t_list)
        if not md.has_item("LACBED.source"):
            md.set_item("LACBED.source", "experiment")
        return None if inplace else s

    # ------------------------------------------------------------------ calibration
    def calibrate(
        self,
        scale: Any = None,
        disc_radius: Any = None,
        beam_energy: Any = None,
        inplace: bool = False,
    ) -> LACBED | None:
        """Calibrate the signal axes kx, ky in 1/Å, centred on the image centre.

        Give exactly one of ``scale`` and ``disc_radius``. After calibration the pixel
        centres of an image of width ``n`` are at ``(j - (n - 1) / 2) · dk``.

        Parameters
        ----------
        scale
            Size of one pixel: a reciprocal length ("0.0045 1/Å", "0.045 1/nm"), an
            angle ("0.11 mrad", needs the beam energy), a pint quantity, or a number in
            1/Å.
        disc_radius
            The disc radius, spread over the image half-width ``min(nx, ny) / 2``:
            "12 mrad", "0.3 1/Å", a quantity or a number in 1/Å. Also sets the
            convergence angle in the metadata when the beam energy is known.
        beam_energy
            Beam energy ("200 kV", or keV); needed for angles when the metadata has
            none, and stored in the metadata when given.
        inplace
            If ``True`` change this signal and return ``None``; by default return a
            calibrated copy.

        Raises
        ------
        ValueError
            If both or neither of ``scale`` and ``disc_radius`` are given, a value is
            not finite and positive or in a wrong unit, or an angle is given without
            a beam energy.
        """
        if (scale is None) == (disc_radius is None):
            raise ValueError(
                "Give exactly one of scale (the size of one pixel, e.g. '0.005 1/Å') or "
                "disc_radius (e.g. '12 mrad')."
            )
        kev = self._beam_energy_or(beam_energy)
        ny, nx = self.axes_manager.signal_shape[::-1]
        if scale is not None:
            dk = parse_tilt(scale, "scale", kev)
            radius = None
        else:
            radius = parse_tilt(disc_radius, "disc_radius", kev)
            dk = radius / (min(nx, ny) / 2)
        s = self if inplace else self.deepcopy()
        kx, ky = s.axes_manager.signal_axes
        for ax, name, n in ((kx, "kx", nx), (ky, "ky", ny)):
            ax.name, ax.units, ax.scale, ax.offset = name, INVERSE_ANGSTROM, dk, -(n - 1) / 2 * dk
        if beam_energy is not None:
            s.metadata.set_item(_BEAM_ENERGY, kev)
        if radius is not None and kev is not None:
            s.metadata.set_item(_CONVERGENCE, 1000.0 * electron_wavelength(kev * 1e3) * radius)
        return None if inplace else s

    def _convert_signal_axes(self, to_mrad: bool, beam_energy: Any, inplace: bool) -> Any:
        kev = self._beam_energy_or(beam_energy)
        cal = self.k_calibration(beam_energy)
        if to_mrad and kev is None:
            raise ValueError(
                "Converting 1/Å to mrad needs the beam energy: pass beam_energy='200 kV' or "
                "call s.set_experimental_parameters(beam_energy=...) first."
            )
        f = 1000.0 * electron_wavelength(kev * 1e3) if to_mrad else 1.0
        s = self if inplace else self.deepcopy()
        for ax, (scale, offset) in zip(s.axes_manager.signal_axes, cal, strict=True):
            ax.scale, ax.offset = scale * f, offset * f
            ax.units = MRAD if to_mrad else INVERSE_ANGSTROM
        if beam_energy is not None:
            s.metadata.set_item(_BEAM_ENERGY, kev)
        return None if inplace else s

    def to_mrad(self, beam_energy: Any = None, inplace: bool = False) -> LACBED | None:
        """The signal axes in mrad, through mrad = 1000·λ·k.

        Parameters
        ----------
        beam_energy
            Beam energy ("200 kV" or keV) if the metadata has none.
        inplace
            If ``True`` change this signal and return ``None``; by default return a copy.

        Raises
        ------
        ValueError
            If the beam energy is unknown or the axes are not calibrated.
        """
        return self._convert_signal_axes(True, beam_energy, inplace)

    def to_inverse_angstrom(self, beam_energy: Any = None, inplace: bool = False) -> LACBED | None:
        """The signal axes in 1/Å (the inverse of :meth:`to_mrad`; accepts any angle or 1/length).

        Parameters
        ----------
        beam_energy
            Beam energy ("200 kV" or keV), needed if the axes are angles and the metadata
            has none.
        inplace
            If ``True`` change this signal and return ``None``; by default return a copy.
        """
        return self._convert_signal_axes(False, beam_energy, inplace)

    # ------------------------------------------------------------------ discs
    def plot_montage(self, **kwargs: Any) -> Any:
        """Matplotlib figure of the discs at their g positions, one panel per thickness.

        Keyword arguments go to :func:`hyperspy_lacbed.signals.plotting.plot_montage`
        (``scale="shared"`` or ``"per_disc"``, ``units="mrad"`` or ``"1/Å"``, ``cmap``,
        ``labels``, ``columns``).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from hyperspy_lacbed.signals.plotting import plot_montage

        return plot_montage(self, **kwargs)

    def get_disc(self, hkl: Sequence[int]) -> LACBED:
        """The disc(s) of one reflection, without the reflection axis (a copy).

        Parameters
        ----------
        hkl
            The reflection, e.g. ``(2, 0, 0)``.

        Raises
        ------
        ValueError
            If the reflection is not in ``metadata.LACBED.reflections``.
        """
        ax = self.reflection_axis("get_disc")
        key = tuple(as_int_vector(hkl, "hkl"))
        refl = self.reflections
        if key not in refl:
            raise ValueError(f"Reflection {list(key)} is not among the discs {refl}.")
        i = refl.index(key)
        index: list[Any] = [slice(None)] * self.axes_manager.navigation_dimension
        index[ax.index_in_axes_manager] = i
        s = self.inav[tuple(index)].deepcopy()
        s.metadata.set_item("LACBED.reflections", [list(key)])
        g = self.g_vectors
        if g is not None and len(g) == len(refl):
            s.metadata.set_item("LACBED.g_vectors", [g[i].tolist()])
        s.metadata.General.title = f"{self.metadata.General.title} {''.join(map(str, key))}"
        return s

    # ------------------------------------------------------------------ montage
    def to_montage(
        self, spacing: float | None = None, disc: str = "circle", fill: float = np.nan
    ) -> LACBED:
        """Lay the discs out at their g positions as one image.

        Disc ``g`` is centred ``spacing · g / dk`` pixels (rounded) from the centre of
        disc 000. LACBED discs overlap when the disc radius exceeds |Δg| / 2, so the
        centres are spread by ``spacing``; the default is the smallest factor ≥ 1 for
        which no two discs overlap and at least :data:`~hyperspy_lacbed.analysis.montage.MONTAGE_GAP` pixels separate
        them. Navigation axes other than the reflection axis are kept.

        Parameters
        ----------
        spacing
            Factor on the disc positions; ``None`` picks the smallest that separates
            the discs. With a smaller one the discs overlap (later discs are drawn on
            top, with a warning) and :meth:`from_montage` can no longer recover them.
        disc
            ``"circle"`` (default): only pixels within the disc radius (the convergence
            angle, or the image half-width if it is unknown) are drawn, the usual
            LACBED picture; ``"square"``: the whole image of each disc is drawn.
        fill
            Value of the pixels outside every disc; NaN by default (shown blank in
            plots; the data become floating point), 0 to keep an integer dtype.

        Returns
        -------
        LACBED
            The montage (lazy if this signal is), with axes kx, ky in the units of this
            signal (one pixel = one pixel of a disc, offset so that disc 000 keeps its
            calibration) and ``metadata.LACBED.montage`` holding the spacing, the disc
            shape, size and radius, the top-left pixel of every disc and the disc axes.

        Raises
        ------
        ValueError
            Without a reflection axis, g vectors or calibrated signal axes, or if two
            reflections share a g vector.
        """
        ax = self.reflection_axis("to_montage")
        n_refl = ax.size
        g = self._checked_g_vectors(n_refl)
        (dkx, _), (dky, _) = self.k_calibration()
        dkx, dky = abs(dkx), abs(dky)
        ny, nx = self.axes_manager.signal_shape[::-1]
        radius = self._disc_radius(dkx, dky)
        mask = disc_mask(ny, nx, dkx, dky, radius, disc)

        auto = spacing is None
        if auto:
            spacing = min_spacing(g, radius, dkx, dky, nx, ny, disc, MONTAGE_GAP)
            # discs grown by half the gap must not touch: raise the spacing by 1 % steps
            pad = math.ceil(MONTAGE_GAP / 2)
            grown = disc_mask(
                ny + 2 * pad, nx + 2 * pad, dkx, dky, radius + pad * max(dkx, dky), disc
            )
            for _ in range(200):
                if not discs_overlap(disc_positions(spacing, g, dkx, dky) - pad, grown):
                    break
                spacing = math.ceil(spacing * 1.01 * 1e4) / 1e4
        else:
            spacing = finite_positive(spacing, "spacing")
        pos = disc_positions(spacing, g, dkx, dky)
        height = int(pos[:, 0].max() + ny)
        width = int(pos[:, 1].max() + nx)
        index = montage_index(pos, mask, (height, width))
        if discs_overlap(pos, mask):
            warnings.warn(
                f"With spacing={spacing} the discs overlap in the montage; later discs are drawn "
                "on top and from_montage cannot recover the hidden pixels. Leave spacing=None "
                "for the smallest spacing without overlap.",
                stacklevel=2,
            )
        # the montage pixel of disc 000's first pixel: disc g is shifted by spacing · g / dk
        lo = np.round(spacing * g / np.array([dkx, dky])).astype(int).min(axis=0)  # (x, y)

        data = array_module(self.data).moveaxis(self.data, ax.index_in_array, -3)
        lead = data.shape[:-3]
        flat = data.reshape(*lead, n_refl * ny * nx)
        out = gather(flat, index, fill).reshape(*lead, height, width)

        sx, sy = self.axes_manager.signal_axes
        axes = [
            a.get_axis_dictionary() for a in self.axes_manager.navigation_axes[::-1] if a is not ax
        ]
        for a, low in ((sy, lo[1]), (sx, lo[0])):
            d = a.get_axis_dictionary()
            d.update(size=height if a is sy else width, offset=a.offset + int(low) * a.scale)
            axes.append(d)
        md = self.metadata.as_dictionary()
        md["LACBED"]["montage"] = {
            "spacing": float(spacing),
            "disc_shape": disc,
            "disc_size": [int(ny), int(nx)],
            "disc_radius": float(radius),
            "positions": pos.tolist(),
            "fill": float(fill),
            "disc_axes": [sy.get_axis_dictionary(), sx.get_axis_dictionary()],
            "reflection_axis": ax.get_axis_dictionary(),
            "reflection_axis_position": int(ax.index_in_array - self.data.ndim),
            "title": self.metadata.General.title,
        }
        md["General"]["title"] = f"{self.metadata.General.title} montage"
        return self._new(out, axes, md)

    @classmethod
    def from_montage(
        cls, montage: Signal2D, disc_size: int | None = None, fill: float = np.nan
    ) -> LACBED:
        """Cut the discs out of a montage: the inverse of :meth:`to_montage`.

        A montage made by :meth:`to_montage` is cut using ``metadata.LACBED.montage``
        and gives back the original stack (exactly, for pixels inside the discs).
        Any other LACBED image (an experimental montage) is cut at the positions of
        ``metadata.LACBED.g_vectors`` on its calibrated kx, ky axes, with the disc
        radius of ``metadata.Acquisition_instrument.TEM.convergence_angle``.

        Parameters
        ----------
        montage
            A LACBED montage (any Signal2D with the metadata above).
        disc_size
            Only for montages not made by :meth:`to_montage`: width of the square disc
            images in pixels (default: the disc diameter, rounded up to an even number).
        fill
            Only for montages not made by :meth:`to_montage`: value of the pixels outside
            the disc or the image (the stored one is used otherwise).

        Returns
        -------
        LACBED
            The discs, shape ``(*nav, n_reflection, ny, nx)`` (lazy if the montage is).

        Raises
        ------
        ValueError
            If the montage has a reflection axis, or lacks the metadata needed.
        """
        if not isinstance(montage, LACBED):
            montage = montage.deepcopy()
            montage.set_signal_type("LACBED")
        if montage.navigation_axis("reflection") is not None:
            raise ValueError(
                "from_montage expects a montage (discs laid out in one image), but this signal "
                "already has a reflection axis: it is a stack of discs."
            )
        mm = montage.metadata.get_item("LACBED.montage")
        height, width = montage.axes_manager.signal_shape[::-1]
        refl = montage.reflections
        if not refl:
            raise ValueError(
                "The montage has no metadata.LACBED.reflections; set them with "
                "s.set_experimental_parameters(reflections=[[h, k, l], ...])."
            )
        if mm is not None:
            mm = mm.as_dictionary()
            ny, nx = (int(v) for v in mm["disc_size"])
            pos = np.asarray(mm["positions"], dtype=int).reshape(-1, 2)
            fill = float(mm["fill"])
            disc_axes = [dict(d) for d in mm["disc_axes"]]
            dky = abs(float(disc_axes[0]["scale"]))
            dkx = abs(float(disc_axes[1]["scale"]))
            f = montage._unit_factor(disc_axes[0]["units"])
            dkx, dky = dkx * f, dky * f
            mask = disc_mask(ny, nx, dkx, dky, float(mm["disc_radius"]), mm["disc_shape"])
            refl_axis = dict(mm["reflection_axis"])
            position = int(mm["reflection_axis_position"])
            title = mm.get("title", montage.metadata.General.title)
        else:
            g = montage._checked_g_vectors(len(refl))
            (dkx, offx), (dky, offy) = montage.k_calibration()
            radius = montage._disc_radius(abs(dkx), abs(dky))
            if montage.convergence_angle is None or montage.beam_energy is None:
                if disc_size is None:
                    raise ValueError(
                        "Cutting discs out of a montage needs the disc radius: set "
                        "convergence_angle and beam_energy with "
                        "s.set_experimental_parameters(...), or pass disc_size."
                    )
                radius = disc_size / 2 * min(abs(dkx), abs(dky))
            if disc_size is None:
                disc_size = 2 * math.ceil(radius / min(abs(dkx), abs(dky)) - 1e-9)
            ny = nx = int(disc_size)
            centre_col = (g[:, 0] - offx) / dkx
            centre_row = (g[:, 1] - offy) / dky
            pos = np.stack(
                [np.round(centre_row - (ny - 1) / 2), np.round(centre_col - (nx - 1) / 2)], axis=1
            ).astype(int)
            mask = disc_mask(ny, nx, abs(dkx), abs(dky), radius, "circle")
            disc_axes = [
                _centred_axis("ky", ny, abs(dky), INVERSE_ANGSTROM),
                _centred_axis("kx", nx, abs(dkx), INVERSE_ANGSTROM),
            ]
            refl_axis = {"name": "reflection", "size": len(refl), "scale": 1.0, "offset": 0.0}
            position = -3
            title = f"{montage.metadata.General.title} discs"
        n_refl = len(refl)
        if len(pos) != n_refl:
            raise ValueError(
                f"metadata.LACBED.montage has {len(pos)} disc positions for {n_refl} reflections."
            )

        index = cut_index(pos, mask, (height, width))

        data = montage.data
        lead = data.shape[:-2]
        flat = data.reshape(*lead, height * width)
        out = gather(flat, index, fill).reshape(*lead, n_refl, ny, nx)
        ndim = out.ndim
        out = array_module(out).moveaxis(out, -3, ndim + position)

        nav = [a.get_axis_dictionary() for a in montage.axes_manager.navigation_axes[::-1]]
        refl_axis.update(navigate=True, size=n_refl)
        nav.insert(ndim + position, refl_axis)
        for d in disc_axes:
            d["navigate"] = False
        md = montage.metadata.as_dictionary()
        md["LACBED"].pop("montage", None)
        md["General"]["title"] = title
        return montage._new(out, nav + disc_axes, md)

    # ------------------------------------------------------------------ refinement
    def refine(
        self, structure: Any, parameters: Sequence[str] = ("thickness",), **kwargs: Any
    ) -> Any:
        """Refine a crystal against these recorded discs (gradient descent through the engine).

        A thin wrapper of :func:`hyperspy_lacbed.signals.refinement.refine` (see it for
        every option); the signal is not modified.

        Parameters
        ----------
        structure
            Start structure: CIF path, diffpy Structure, Crystal or example name.
        parameters
            What to refine, e.g. ``["thickness", "B", "scale", "offset", "blur"]``.

        Returns
        -------
        RefinementResult
            Values, uncertainties, correlations, history, and the best fit as a LACBED
            signal (``result.signal``).
        """
        from hyperspy_lacbed.signals.refinement import refine

        return refine(self, structure, parameters, **kwargs)

    # ------------------------------------------------------------------ cGAN
    def retrieve_potential(
        self,
        model: Any = "default",
        lattice_parameter: Any = None,
        thickness: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The projected potential behind these discs, from the inverse cGAN surrogate.

        A thin wrapper of :func:`hyperspy_lacbed.signals.surrogates.retrieve_potential` (see it
        for every option: ``beam_energy``, ``batch_size``, ``device``,
        ``show_progressbar``, ``models_dir``). Works on stacks of discs and on montages,
        in memory or lazily.

        Parameters
        ----------
        model
            ``"default"``, a model name (``hyperspy_lacbed.list_models()``) or folder.
        lattice_parameter
            Cubic lattice parameter in Å (or a quantity); default from the metadata or the
            g vectors.
        thickness
            Default the thickness axis or ``metadata.Sample.thickness``.

        Returns
        -------
        ProjectedPotential
            In V·Å, one cell of edge a, the strongest column on the centre pixel.
        """
        from hyperspy_lacbed.signals.surrogates import retrieve_potential

        return retrieve_potential(self, model, lattice_parameter, thickness, **kwargs)

    def _unit_factor(self, units: str, beam_energy: Any = None, what: str = "the axis") -> float:
        """Factor taking a value in ``units`` (a reciprocal length or an angle) to 1/Å."""
        reg = ureg()
        if is_angle(units):
            kev = self._beam_energy_or(beam_energy)
            if kev is None:
                raise ValueError(
                    f"{what.capitalize()} is in {units}; converting it to 1/Å needs the beam "
                    "energy: pass beam_energy='200 kV' or call "
                    "s.set_experimental_parameters(beam_energy=...) first."
                )
            return reg.Quantity(1, units).to("mrad").magnitude / (
                1000.0 * electron_wavelength(kev * 1e3)
            )
        try:
            return reg.Quantity(1, units).to("1/angstrom").magnitude
        except Exception as exc:
            raise ValueError(
                f"{what.capitalize()} is in {units!r}, neither a reciprocal length nor an angle. "
                f"{_HOW_TO_CALIBRATE}"
            ) from exc


class LazyLACBED(LazySignal2D, LACBED):
    """Lazy LACBED discs (dask-backed); methods keep the result lazy."""

    __doc__ += LAZYSIGNAL_DOC.replace("__BASECLASS__", "LACBED")
