"""Helpers shared by the signal classes: metadata values and axis dictionaries.

The user-input parsers live in :mod:`hyperspy_lacbed.parsing`; this module keeps what
is specific to HyperSpy metadata and axes (traits' undefined values, axis
dictionaries, saveable settings), so that the metadata survives a save and load in
the ``.hspy`` and ``.zspy`` formats and reads back the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np
import pint
import traits.api as t

from hyperspy_lacbed.parsing import is_evenly_spaced

#: Unit strings written on the axes. Both parse with pint's application registry,
#: the one HyperSpy's ``axes_manager.convert_units`` uses.
INVERSE_ANGSTROM = "1/Å"
ANGSTROM = "Å"
MRAD = "mrad"


def is_undefined(value: Any) -> bool:
    """Whether a traits value (an axis name or unit) has not been set."""
    return value is t.Undefined or value is None or value == "<undefined>"


def clean_settings(value: Any) -> Any:
    """Turn a free-form settings object into plain, saveable Python values.

    Dataclasses become dicts, NumPy scalars and arrays become numbers and lists,
    paths become strings, mappings get string keys; anything else becomes its
    ``repr``. The result saves and loads with ``.hspy`` and ``.zspy``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean_settings(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): clean_settings(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, pint.Quantity):
        return f"{value:~}"
    if isinstance(value, (list, tuple)):
        return [clean_settings(v) for v in value]
    return repr(value)


def thickness_axis_dict(values: Sequence[float]) -> dict[str, Any]:
    """A HyperSpy axis dictionary for thicknesses in Å (non-uniform unless evenly spaced)."""
    v = np.asarray(values, dtype=float)
    d = {"name": "thickness", "units": ANGSTROM, "navigate": True}
    if v.size == 1:
        return {**d, "size": 1, "offset": float(v[0]), "scale": 1.0}
    if is_evenly_spaced(v):
        return {**d, "size": int(v.size), "offset": float(v[0]), "scale": float(v[1] - v[0])}
    return {**d, "axis": v}


def set_axis_values(axis: Any, values: Sequence[float]) -> None:
    """Set the values of a navigation axis in place, switching uniform/non-uniform as needed."""
    v = np.asarray(values, dtype=float)
    if v.size != axis.size:
        raise ValueError(f"{v.size} values given for the {axis.name} axis of size {axis.size}.")
    if v.size == 1 or is_evenly_spaced(v):
        if not axis.is_uniform:
            axis.convert_to_uniform_axis(log_scale_error=False)
        axis.scale = float(v[1] - v[0]) if v.size > 1 else 1.0
        axis.offset = float(v[0])
    else:
        if axis.is_uniform:
            axis.convert_to_non_uniform_axis()
        axis.axis = v


def array_order_axes(signal: Any) -> list[Any]:
    """The axes of a signal in the order of its data array's dimensions."""
    am = signal.axes_manager
    return sorted((*am.navigation_axes, *am.signal_axes), key=lambda axis: axis.index_in_array)


def copy_axes(dst_axes: Sequence[Any], src_axes: Sequence[Any]) -> None:
    """Copy names and calibrations of HyperSpy axes (uniform or not), pairwise."""
    for d, s in zip(dst_axes, src_axes, strict=True):
        d.name = s.name
        d.units = s.units
        if getattr(s, "is_uniform", True):
            d.scale, d.offset = s.scale, s.offset
        else:
            d.convert_to_non_uniform_axis()
            d.axis = np.asarray(s.axis, float)


def signal_class(signal_type: str, lazy: bool = False) -> type:
    """The signal class registered for ``signal_type`` (as ``set_signal_type`` finds it).

    Lets one signal module build another type's signal without importing its class
    (and so without an import cycle between the signal modules).
    """
    from hyperspy.io import assign_signal_subclass

    return assign_signal_subclass(
        dtype=np.dtype("float32"), signal_dimension=2, signal_type=signal_type, lazy=lazy
    )
