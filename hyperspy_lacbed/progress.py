"""One progress bar for the whole package.

:func:`want_progress` resolves ``show_progressbar=None`` to HyperSpy's preference
(``hs.preferences.General.show_progressbar``) when HyperSpy is loaded, and to no bar
otherwise: this module never imports HyperSpy itself, so the array layers that use it
(crystal, bloch, nets, train) stay free of it (see :doc:`/architecture`).
:class:`ProgressBar` is a ``tqdm`` bar that is a no-op when not wanted.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["ProgressBar", "want_progress"]


def want_progress(show: bool | None) -> bool:
    """Whether to show a progress bar.

    Parameters
    ----------
    show
        ``True`` or ``False`` is returned as given; ``None`` follows HyperSpy's
        preference if HyperSpy has been imported (as it is whenever signals are in use),
        and means no bar otherwise.
    """
    if show is not None:
        return bool(show)
    if "hyperspy" not in sys.modules:
        return False  # the engine used on its own: never load HyperSpy for a preference
    try:
        prefs = importlib.import_module("hyperspy.defaults_parser").preferences
        return bool(prefs.General.show_progressbar)
    except Exception:  # HyperSpy not configured
        return False


class ProgressBar:
    """A ``tqdm`` progress bar, or nothing when :func:`want_progress` says no.

    Parameters
    ----------
    total
        Number of items.
    show
        As for :func:`want_progress`.
    desc, unit
        Label and unit shown by ``tqdm``.
    initial
        Items already done (a resumed run).

    Examples
    --------
    >>> with ProgressBar(3, show=False, desc="work") as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    """

    def __init__(
        self, total: int, show: bool | None, desc: str = "", unit: str = "it", initial: int = 0
    ):
        self.bar: Any = None
        if want_progress(show) and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial)

    @property
    def active(self) -> bool:
        """Whether a bar is shown."""
        return self.bar is not None

    def __enter__(self) -> ProgressBar:
        return self

    def update(self, n: int) -> None:
        """Advance the bar by ``n`` items."""
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        """Close the bar (also done on leaving a ``with`` block)."""
        if self.bar is not None:
            self.bar.close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
