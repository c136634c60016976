"""Recorded LACBED discs, one file per reflection, as one calibrated signal.

Experiments often store each disc as its own image (``GeSn_+2+2-4.dm3``): the reflection
is in the file name. :func:`load_discs` reads such a set with HyperSpy's readers, stacks
it along a ``reflection`` axis, sets the experimental parameters and calibrates it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_discs", "reflection_from_filename"]


def reflection_from_filename(path: str | os.PathLike) -> list[int]:
    """``[h, k, l]`` from a file name such as ``GeSn_+2+2-4.dm3`` (signed indices after ``_``).

    Raises
    ------
    ValueError
        If the part of the name after the first ``_`` does not hold three signed integers.
    """
    stem = Path(path).stem
    digits = re.findall(r"[+-]\d+", stem.split("_", 1)[-1])
    if len(digits) != 3:
        raise ValueError(
            f"Cannot read a reflection from {Path(path).name!r}: name the files like "
            "'Crystal_+2+2-4.dm3', or pass reflections= explicitly."
        )
    return [int(d) for d in digits]


def load_discs(
    files: Sequence[str | os.PathLike],
    *,
    disc_radius: Any,
    reflections: Sequence[Sequence[int]] | None = None,
    title: str | None = None,
    **experimental: Any,
) -> Any:
    """Recorded discs, one image per reflection, as one calibrated ``LACBED`` signal.

    Parameters
    ----------
    files
        One image file per disc (any format HyperSpy reads).
    disc_radius
        The discs' radius, e.g. ``"0.673 1/Å"``
        (:meth:`~hyperspy_lacbed.signals.lacbed.LACBED.calibrate`).
    reflections
        ``(h, k, l)`` of each file; default read from the names
        (:func:`reflection_from_filename`).
    title
        Title of the signal.
    **experimental
        :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.set_experimental_parameters`
        (``beam_energy``, ``zone_axis``, ``x_direction``, ...).

    Returns
    -------
    LACBED
        The discs along a ``reflection`` navigation axis, calibrated.

    Raises
    ------
    FileNotFoundError
        If ``files`` is empty.
    """
    import hyperspy.api as hs

    files = [Path(f) for f in files]
    if not files:
        raise FileNotFoundError("load_discs got no files; check the folder and the pattern.")
    discs = []
    for f in files:
        s = hs.load(f)
        s.set_signal_type("LACBED")
        discs.append(s)
    stack = hs.stack(discs, new_axis_name="reflection", show_progressbar=False)
    if reflections is None:
        reflections = [reflection_from_filename(f) for f in files]
    stack.set_experimental_parameters(
        reflections=[list(map(int, r)) for r in reflections], **experimental
    )
    stack = stack.calibrate(disc_radius=disc_radius)
    if title is not None:
        stack.metadata.General.title = title
    return stack
