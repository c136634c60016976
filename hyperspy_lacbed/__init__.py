"""hyperspy-lacbed: dynamical large-angle CBED for HyperSpy.

Public API
----------
simulate
    Bloch-wave LACBED discs of a crystal (:mod:`hyperspy_lacbed.api.simulate`).
generate
    The same discs from the forward cGAN surrogate (:mod:`hyperspy_lacbed.api.surrogates`).
load_structure
    A validated crystal structure from a CIF path, a diffpy Structure or an example name.
projected_potential
    The projected potential of one unit cell as a ``ProjectedPotential`` signal.
list_models
    The pretrained surrogate models that ship with the package.
model_settings
    The ``simulate`` keywords of a surrogate model's domain, e.g.
    ``simulate(si, **model_settings(si))`` before ``retrieve_potential``.
load_discs
    Recorded discs, one file per reflection, as one calibrated ``LACBED`` signal
    (:mod:`hyperspy_lacbed.api.recorded`).
refine
    Fit a crystal, the thickness and the geometry to recorded discs by gradient descent
    through the Bloch-wave engine (:mod:`hyperspy_lacbed.signals.refinement`).

Heavy modules (torch, HyperSpy) are imported on first use, so that ``import
hyperspy.api`` stays fast when it discovers this extension.
"""

from __future__ import annotations

import importlib
from typing import Any

from hyperspy_lacbed._version import __version__

_LAZY = {
    "simulate": "hyperspy_lacbed.api.simulate",
    "generate": "hyperspy_lacbed.api.surrogates",
    "list_models": "hyperspy_lacbed.nets.registry",
    "model_settings": "hyperspy_lacbed.nets.registry",
    "load_structure": "hyperspy_lacbed.crystal.structure",
    "projected_potential": "hyperspy_lacbed.api.potential",
    "example_structures": "hyperspy_lacbed.data",
    "refine": "hyperspy_lacbed.signals.refinement",
    "load_discs": "hyperspy_lacbed.api.recorded",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hyperspy_lacbed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
