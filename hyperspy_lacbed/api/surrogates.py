"""``hyperspy_lacbed.generate``: crystal structures in, LACBED signals from the forward cGAN out.

The signal side of the forward surrogate: user input is checked against the model's
:class:`~hyperspy_lacbed.nets.domain.Domain`, the projected potentials come from
:mod:`hyperspy_lacbed.crystal.potential`, the network runs on arrays
(:meth:`~hyperspy_lacbed.nets.surrogate.Surrogate.forward_discs`), and the result is a
:class:`~hyperspy_lacbed.signals.lacbed.LACBED` with the axes and metadata layout of
:func:`hyperspy_lacbed.simulate` (``metadata.LACBED.source == "cgan"``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hyperspy_lacbed.api.simulate import is_many
from hyperspy_lacbed.bloch.discs import mean_absorption_factor
from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import load_structure, zone_frame
from hyperspy_lacbed.nets.surrogate import load_surrogate
from hyperspy_lacbed.parsing import reflection_tuples
from hyperspy_lacbed.progress import ProgressBar
from hyperspy_lacbed.signals.lacbed import LACBED
from hyperspy_lacbed.units import to_magnitude

__all__ = ["generate"]


def generate(
    structure: Any,
    thickness: Any = None,
    model: Any = "default",
    batch_size: int = 32,
    device: Any = None,
    show_progressbar: bool | None = None,
    *,
    zone_axis: Sequence[int] | None = None,
    voltage: Any = None,
    reflections: Sequence[Sequence[int]] | None = None,
    models_dir: str | os.PathLike | None = None,
):
    """LACBED discs of a cubic crystal from the forward cGAN surrogate.

    Parameters
    ----------
    structure
        A CIF path, a ``diffpy.structure.Structure``, a ``Crystal`` or an example name; or
        a list of them (batched together; a list of signals is returned).
    thickness
        One or more thicknesses (``"100 nm"``, quantities, numbers in Å) within the model's
        range; default the model's training thicknesses.
    model
        ``"default"``, a model name (see :func:`hyperspy_lacbed.list_models`), the path of
        an exported model folder, or a loaded
        :class:`~hyperspy_lacbed.nets.surrogate.Surrogate`.
    batch_size
        Network passes per batch.
    device
        ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``...
    show_progressbar
        Default: HyperSpy's preference.
    zone_axis, voltage, reflections
        Optional: checked against the model's domain (a ``ValueError`` names the mismatch).
        ``reflections`` selects discs among the model's (000 is always included).
    models_dir
        A further folder of models to search first.

    Returns
    -------
    LACBED or list of LACBED
        Navigation axes (thickness, reflection) as for :func:`~hyperspy_lacbed.simulate`
        (no thickness axis for a single thickness), signal axes (ky, kx) in 1/Å with disc
        radius ``Domain.disc_radius(a)``; ``metadata.LACBED.source == "cgan"``, and
        ``metadata.LACBED.settings`` holds the domain's Bloch-wave settings, the structure
        and ``model`` (name, sha256).

    Raises
    ------
    ValueError
        For a non-cubic crystal, a lattice parameter, thickness, zone axis, voltage or
        reflection outside the model's domain.
    FileNotFoundError
        If no such model exists (e.g. a name that is not installed; the message says how to
        train one).

    Examples
    --------
    >>> import hyperspy_lacbed as hl
    >>> s = hl.generate("Si", thickness="100 nm", show_progressbar=False)
    >>> s
    <LACBED, title: LACBED (cgan), dimensions: (9|32, 32)>
    >>> s.metadata.LACBED.model.name, s.reflections[:3]
    ('default-forward', [(0, 0, 0), (2, 0, 0), (-2, 0, 0)])
    """
    sur = load_surrogate(model, "forward", device, models_dir)
    dom, label = sur.domain, f"model {sur.name!r}"
    dom.check_zone_axis(zone_axis, label)
    if voltage is not None:
        dom.check_beam_energy(float(to_magnitude(voltage, "V", "voltage")) / 1e3, label)
    t_list, multi = dom.resolve_thickness(thickness)
    dom.check_thickness(t_list, label)
    out_refl = _requested_reflections(dom, reflections, label)
    many = is_many(structure)
    structures = list(structure) if many else [structure]
    if not structures:
        raise ValueError("No structures given: pass at least one CIF path, Structure or name.")
    crystals = [load_structure(s) for s in structures]
    for c in crystals:
        dom.check_crystal(c, label)
    potentials = [
        projected_potential_array(
            c, dom.zone_axis, dom.x_direction, (dom.potential_pixels, dom.potential_pixels),
            dom.scattering_factors, True,
        )[0]
        for c in crystals
    ]  # fmt: skip
    a = np.array([c.lattice_parameters[0] for c in crystals])
    start = time.perf_counter()
    with ProgressBar(
        len(crystals) * len(t_list), show_progressbar, "cGAN forward", "pattern"
    ) as bar:
        discs = sur.forward_discs(np.stack(potentials), a, t_list, batch_size, bar.update)
    timing = {"wall_s": (time.perf_counter() - start) / len(crystals), "device": str(sur.device)}
    pick = [list(map(tuple, dom.reflections)).index(r) for r in out_refl]
    signals = [
        _forward_signal(sur, c, discs[i][:, pick], t_list, multi, out_refl, timing)
        for i, c in enumerate(crystals)
    ]
    return signals if many else signals[0]


def _requested_reflections(dom: Any, reflections: Any, label: str) -> list[tuple[int, ...]]:
    """The discs to return: the model's, or those asked for among them (000 always)."""
    out_refl = [tuple(r) for r in dom.reflections]
    if reflections is None:
        return out_refl
    req = list(reflection_tuples(reflections))
    if (0, 0, 0) not in req:
        req.insert(0, (0, 0, 0))
    unknown = [list(r) for r in req if tuple(r) not in out_refl]
    if unknown:
        raise ValueError(
            f"{label} does not know the reflections {unknown}; it predicts "
            f"{[list(r) for r in out_refl]}. Use hyperspy_lacbed.simulate for others."
        )
    return [tuple(r) for r in req]


def _forward_signal(sur, c, d, t_list, multi, out_refl, timing):
    """One crystal's discs as a calibrated LACBED signal with the model's metadata."""
    dom = sur.domain
    frame = zone_frame(c, dom.zone_axis, dom.x_direction)
    a = float(c.lattice_parameters[0])
    if not dom.mean_absorption:
        # The network learnt patterns without the mean absorption (a uniform factor
        # per thickness, see Domain.mean_absorption); put it back analytically.
        factor = mean_absorption_factor(
            c, t_list, dom.voltage, dom.absorption, dom.absorption_fraction,
            dom.scattering_factors,
        )  # fmt: skip
        d = d * factor.reshape(-1, *([1] * (d.ndim - 1))).astype(d.dtype)
    if not multi:
        d = d[0]
    hkl = np.asarray(out_refl, int)
    g = (c.g_vectors(hkl) @ frame.rotation.T)[:, :2]
    settings = dom.simulation_settings(a, t_list, out_refl).to_dict()
    # The factor above puts the mean absorption back: the Bloch-wave settings that
    # reproduce these discs include it, so simulate(**settings) compares 1:1.
    settings.update(structure=c.to_dict(), mean_absorption=True)
    signal = LACBED.from_discs(
        d, reflections=hkl.tolist(), g_vectors=g.tolist(),
        thickness=t_list if multi else t_list[0], dk=dom.disc_radius(a) / (dom.disc_pixels / 2),
        voltage=dom.voltage, zone_axis=list(frame.zone_axis),
        x_direction=list(frame.x_direction), source="cgan", settings=settings,
    )  # fmt: skip
    # Beside the settings, as simulate keeps its timing, so that the settings stay
    # exactly the keyword arguments of simulate.
    signal.metadata.set_item("LACBED.model", sur.info())
    signal.metadata.set_item("LACBED.timing", timing)
    return signal
