"""A loaded surrogate network with its card, domain and encoding: arrays in, arrays out.

:class:`Surrogate` runs a generator on encoded NumPy arrays (and decodes its outputs);
:func:`load_surrogate` finds, checks (SHA-256) and caches one. No HyperSpy here: the
signal side lives in :mod:`hyperspy_lacbed.api.surrogates` (``generate``) and
:mod:`hyperspy_lacbed.signals.surrogates` (``LACBED.retrieve_potential``,
``ProjectedPotential.generate_lacbed``). Inference runs in ``torch.inference_mode`` on
CPU, or on CUDA when available.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.nets.normalisation import Encoding
from hyperspy_lacbed.nets.registry import MODEL_FILE, choose_device, load_model, resolve_model

__all__ = ["Surrogate", "load_surrogate"]


@dataclass
class Surrogate:
    """A loaded generator with its card, domain and encoding."""

    module: Any
    card: dict[str, Any]
    domain: Domain = field(init=False)
    encoding: Encoding = field(init=False)

    def __post_init__(self) -> None:
        self.domain = Domain.from_dict(self.card["domain"])
        enc = self.card.get("normalisation")
        self.encoding = Encoding.from_dict(enc) if enc else Encoding.for_domain(self.domain)

    @property
    def name(self) -> str:
        return str(self.card.get("name", "?"))

    @property
    def direction(self) -> str:
        return str(self.card["direction"])

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device

    def info(self) -> dict[str, Any]:
        """What the metadata records about the model."""
        return {
            "name": self.name,
            "sha256": self.card["sha256"],
            "direction": self.direction,
            "architecture": self.card["architecture"].get("name"),
        }

    def run(
        self,
        x: np.ndarray,
        cond: np.ndarray,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Raw network outputs for encoded inputs ``x`` (N, C, H, W) and ``cond`` (N, 2).

        The one run of a generator: inference (:meth:`forward_discs`,
        :meth:`inverse_potentials`), the validation of a training run and the scores of
        the ablation (:func:`hyperspy_lacbed.train.evaluate.evaluate_arrays`) all go
        through it, so that what is logged in training is what a user gets.

        Parameters
        ----------
        x, cond
            Encoded inputs and conditioning (:class:`~hyperspy_lacbed.nets.normalisation.Encoding`).
        batch_size
            Samples per pass of the network.
        progress
            Called with the number of samples after each batch.

        Returns
        -------
        numpy.ndarray
            (N, C', H', W') float32, in the network's encoded units.
        """
        import torch

        out = []
        dev = self.device
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
                cb = torch.from_numpy(np.ascontiguousarray(cond[start : start + batch_size]))
                yb = self.module(xb.to(dev), cb.to(dev))
                out.append(yb.float().cpu().numpy())
                if progress is not None:
                    progress(len(xb))
        if not out:
            return np.empty((0, *self._out_shape()), np.float32)
        return np.concatenate(out)

    def _out_shape(self) -> tuple[int, ...]:
        kw = self.card["architecture"]["kwargs"]
        return (kw["out_channels"], kw["out_size"], kw["out_size"])

    def forward_discs(
        self,
        potentials: np.ndarray,
        lattice_parameter: np.ndarray,
        thicknesses: Sequence[float],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Discs ``(N, n_thickness, n_disc, D, D)`` of potentials ``(N, P, P)`` in V·Å."""
        n, n_t = len(potentials), len(thicknesses)
        x = self.encoding.encode_potential(potentials)[:, None]  # canonical origin
        x = np.repeat(x, n_t, axis=0)
        a = np.repeat(np.asarray(lattice_parameter, float).reshape(n), n_t)
        t = np.tile(np.asarray(thicknesses, float), n)
        y = self.run(x, self.encoding.encode_conditioning(a, t), batch_size, progress)
        return self.encoding.decode_discs(y).reshape(n, n_t, *y.shape[1:])

    def inverse_potentials(
        self,
        discs: np.ndarray,
        lattice_parameter: np.ndarray,
        thickness: np.ndarray,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Potentials ``(N, P, P)`` in V·Å of discs ``(N, n_disc, D, D)`` on the model grid."""
        x = self.encoding.encode_input_discs(discs)
        cond = self.encoding.encode_conditioning(lattice_parameter, thickness)
        y = self.run(x, cond, batch_size, progress)
        return self.encoding.decode_potential(y[:, 0])


_CACHE: dict[tuple, Surrogate] = {}


def load_surrogate(
    model: Any = "default",
    direction: str = "forward",
    device: Any = None,
    models_dir: str | os.PathLike | None = None,
) -> Surrogate:
    """A :class:`Surrogate` by name, ``"default"``, path, or an already loaded one.

    Loaded models are cached per (folder, weights file state, device); the SHA-256 is
    checked on every first load.
    """
    if isinstance(model, Surrogate):
        if model.direction != direction:
            raise ValueError(f"{model.name!r} is a {model.direction} model; need {direction}.")
        return model
    folder = resolve_model(model, direction, models_dir)
    weights = folder / MODEL_FILE
    stat = weights.stat() if weights.is_file() else None
    dev = choose_device(device)
    key = (
        str(folder.resolve()),
        None if stat is None else (stat.st_mtime_ns, stat.st_size),
        str(dev),
        (folder / "card.json").stat().st_mtime_ns,
    )
    if key not in _CACHE:
        module, card = load_model(folder, device=dev, direction=direction)
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = Surrogate(module, card)
    return _CACHE[key]
