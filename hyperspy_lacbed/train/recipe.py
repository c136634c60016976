"""The recipe of the shipped surrogates (v1): what every training default means.

``configs/v1.toml`` is the file that produced ``models/default-forward`` and
``models/default-inverse``; :data:`DATASET` and :data:`FIT` are its ``[dataset]`` and
``[fit]`` tables without the settings of one machine or one checkout
(:data:`MACHINE_KEYS`: folders, worker and thread counts, the wall-clock budget), and a
test checks that the two agree. They are the defaults of the training command line
(``python -m hyperspy_lacbed.train`` without ``--config``) and of
:class:`~hyperspy_lacbed.train.loop.TrainConfig`; the domain's defaults are
:class:`~hyperspy_lacbed.nets.domain.Domain`'s own (the same test checks them too).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["DATASET", "FIT", "MACHINE_KEYS", "fit_defaults", "table"]

#: Settings that belong to a machine or a checkout, not to the recipe: where the data and
#: runs go, how many cores a run takes, and how long one call may run.
MACHINE_KEYS = ("store", "out", "workers", "threads", "hours")

#: ``[dataset]`` of ``configs/v1.toml`` (see its comments for the reasons of each value).
DATASET: dict[str, Any] = {
    "seed": 1,
    "splits": {"val": 16, "test": 64, "heldout": 32, "random": 32, "train": 4000},
    "structures": {
        "kind": "realistic",
        "random_fraction": 0.2,
        "exclude_prototypes": ["pyrite", "A15"],
    },
    "domain": {
        "disc_pixels": 32,
        "strong_beams": "auto",
        "tolerance": 0.02,
        "max_beams": 750,
        "lattice_parameter_range": [2.8, 8.1],
    },
    "split_structures": {
        "heldout": {
            "prototypes": ["pyrite", "A15"],
            "exclude_prototypes": [],
            "random_fraction": 0.0,
        },
        "random": {"kind": "random"},
    },
}

#: ``[fit]`` of ``configs/v1.toml``: the settings of both directions, then each one's own.
FIT: dict[str, Any] = {
    "val_split": "val",
    "max_convergence": 0.05,
    "checkpoint_every": 500,
    "forward": {
        "architecture": "fourier-forward",
        "batch_size": 16,
        "steps": 9000,
        "lr_decay_after": 5000,
    },
    "inverse": {
        "architecture": "fourier-inverse",
        "generator": {"geometry": False},
        "lambda_amplitude": 10.0,
        "discriminator": {"ndf": 16},
        "batch_size": 8,
        "steps": 7500,
        "lr_decay_after": 4500,
    },
}

_TABLES = {"dataset": DATASET, "fit": FIT}


def table(name: str) -> dict[str, Any]:
    """A copy of one table of the recipe (``"dataset"`` or ``"fit"``; others are empty).

    Parameters
    ----------
    name
        The TOML table's name.

    Returns
    -------
    dict
        A deep copy, so that callers may change it.
    """
    return copy.deepcopy(_TABLES.get(name, {}))


def fit_defaults(direction: str) -> dict[str, Any]:
    """The recipe's training settings of one direction: ``[fit]`` with its direction's table.

    Parameters
    ----------
    direction
        ``"forward"`` or ``"inverse"``.

    Returns
    -------
    dict
        The common settings updated by the direction's own (a deep copy).
    """
    fit = table("fit")
    own = fit.get(direction, {})
    common = {k: v for k, v in fit.items() if k not in ("forward", "inverse")}
    return {**common, **own}
