"""The cGAN surrogates in use: ``generate`` (forward) and ``retrieve_potential`` (inverse).

* :func:`generate` — crystal structure(s) → LACBED discs, with the axes and metadata
  layout of :func:`hyperspy_lacbed.simulate` (``metadata.LACBED.source == "cgan"``).
* :func:`potential_to_lacbed` — a ``ProjectedPotential`` signal (or a stack) → LACBED
  (``ProjectedPotential.generate_lacbed``).
* :func:`retrieve_potential` — a LACBED signal (stack of discs or montage) →
  ``ProjectedPotential`` (``LACBED.retrieve_potential``).

Stacks of any size run in batches of ``batch_size`` network passes. In-memory signals
are processed at once (with a progress bar); lazy signals stay lazy: the work is a
``dask.array.map_blocks`` graph whose blocks hold at most ``batch_size`` patterns, so
memory stays bounded, and each block is exactly one batch of the eager path when the
stack is one-dimensional. Inference runs in ``torch.inference_mode`` on CPU, or on CUDA
when available.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.nets.normalisation import Encoding
from hyperspy_lacbed.nets.registry import (
    check_beam_energy,
    check_crystal,
    check_lattice_parameter,
    check_reflections,
    check_thickness,
    check_zone_axis,
    load_model,
    resolve_model,
)

__all__ = [
    "Surrogate",
    "generate",
    "inverse_inputs",
    "load_surrogate",
    "potential_to_lacbed",
    "resample_discs",
    "retrieve_potential",
]


# ----------------------------------------------------------------------------- the model
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
        """Raw network outputs for encoded inputs ``x`` (N, C, H, W) and ``cond`` (N, 2)."""
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
    from hyperspy_lacbed.nets.registry import MODEL_FILE, choose_device

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


# ----------------------------------------------------------------------------- batching
def _want_progress(show: bool | None) -> bool:
    from hyperspy_lacbed.bloch.lacbed import _want_progress as want

    return want(show)


class _Bar:
    def __init__(self, total: int, show: bool | None, desc: str):
        self.bar = None
        if _want_progress(show) and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="pattern")

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _lead_chunks(lead: tuple[int, ...], items_per_block: int) -> tuple[int, ...]:
    """Chunk sizes of the leading axes so that a block holds at most ``items_per_block``."""
    remaining, out = max(int(items_per_block), 1), []
    for d in reversed(lead):
        c = max(1, min(int(d), remaining))
        out.append(c)
        remaining = max(1, remaining // c)
    return tuple(reversed(out))


def _map_items(
    data: Any,
    extras: Sequence[np.ndarray],
    item_ndim: int,
    out_item: tuple[int, ...],
    fn: Callable[[np.ndarray, list[np.ndarray], Callable[[int], None] | None], np.ndarray],
    items_per_block: int,
    show_progressbar: bool | None,
    patterns_per_item: int,
    desc: str,
) -> Any:
    """Apply ``fn`` to the items (trailing ``item_ndim`` axes) of ``data``, in blocks.

    ``extras`` are per-item arrays of shape ``data.shape[:-item_ndim]``. NumPy in →
    NumPy out (with a progress bar); dask in → dask out (one task per block).
    """
    lead = tuple(data.shape[: data.ndim - item_ndim])
    item_in = tuple(data.shape[data.ndim - item_ndim :])
    n_lead = len(lead)
    if not isinstance(data, da.Array):
        n = int(np.prod(lead, dtype=np.int64))
        flat = np.asarray(data).reshape(n, *item_in)
        ex = [np.broadcast_to(e, lead).reshape(n) for e in extras]
        bar = _Bar(n * patterns_per_item, show_progressbar, desc)
        try:
            parts = [
                fn(
                    flat[s : s + items_per_block],
                    [e[s : s + items_per_block] for e in ex],
                    bar.update,
                )
                for s in range(0, n, items_per_block)
            ]
        finally:
            bar.close()
        out = np.concatenate(parts) if parts else np.empty((0, *out_item), np.float32)
        return out.reshape(*lead, *out_item)

    # lazy: same number of dimensions in and out (singleton axes pad the shorter item)
    k, m = len(out_item), item_ndim
    width = max(k, m)
    x = data[(Ellipsis,) + (None,) * (width - m) + (slice(None),) * m] if width > m else data
    lead_chunks = _lead_chunks(lead, items_per_block)
    x = x.rechunk(lead_chunks + (1,) * (width - m) + item_in)
    ex_da = [
        da.from_array(
            np.ascontiguousarray(np.broadcast_to(e, lead)).reshape(lead + (1,) * width),
            chunks=lead_chunks + (1,) * width,
        )
        for e in extras
    ]
    out_tail = (1,) * (width - k) + out_item

    def block(xb: np.ndarray, *eb: np.ndarray) -> np.ndarray:
        blead = xb.shape[:n_lead]
        nb = int(np.prod(blead, dtype=np.int64))
        items = xb.reshape(nb, *item_in)
        res = fn(items, [e.reshape(nb) for e in eb], None)
        return res.reshape(*blead, *out_tail).astype(np.float32, copy=False)

    chunks = x.chunks[:n_lead] + tuple((s,) for s in out_tail)
    out = da.map_blocks(
        block,
        x,
        *ex_da,
        chunks=chunks,
        dtype=np.float32,
        meta=np.empty((0,) * x.ndim, np.float32),
        name=f"{desc.replace(' ', '-')}-{uuid.uuid4().hex}",
    )
    if width > k:
        out = out.reshape(*lead, *out_item)
    return out


def _copy_axes(dst_axes: Sequence[Any], src_axes: Sequence[Any]) -> None:
    """Copy names and calibrations of HyperSpy axes (uniform or not), pairwise."""
    for d, s in zip(dst_axes, src_axes, strict=True):
        d.name = s.name
        d.units = s.units
        if getattr(s, "is_uniform", True):
            d.scale, d.offset = s.scale, s.offset
        else:
            d.convert_to_non_uniform_axis()
            d.axis = np.asarray(s.axis, float)


# ----------------------------------------------------------------------------- geometry
def _cubic_g_vectors(
    a: float, reflections: Sequence[Sequence[int]], zone_axis: Sequence[int], x_dir: Sequence[int]
) -> np.ndarray:
    """[gx, gy] (1/Å) of cubic reflections in the (zone axis, x-direction) frame."""
    ez = np.asarray(zone_axis, float)
    ez /= np.linalg.norm(ez)
    ex = np.asarray(x_dir, float)
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    g = np.asarray(reflections, float) / a
    return np.stack([g @ ex, g @ ey], axis=1)


def _thickness_list(thickness: Any, domain: Domain) -> tuple[list[float], bool]:
    """(thicknesses in Å, whether the caller gave several)."""
    from hyperspy_lacbed.signals._metadata import as_thickness

    if thickness is None:
        return [float(t) for t in domain.thicknesses], True
    import pint

    if isinstance(thickness, str):
        multi = False
    elif isinstance(thickness, pint.Quantity):
        multi = np.ndim(thickness.magnitude) > 0
    else:
        multi = np.ndim(thickness) > 0
    return as_thickness(thickness), multi


def _settings(domain: Domain, a: float, thicknesses: list[float], reflections, extra) -> dict:
    """The Bloch-wave settings of the domain (the layout of ``simulate``'s metadata)."""
    from hyperspy_lacbed.bloch.lacbed import _as_settings

    kw = domain.simulation_kwargs(a)
    kw.update(thickness=list(thicknesses), reflections=[list(r) for r in reflections])
    settings = _as_settings(**kw).to_dict()
    settings.update(extra)
    return settings


def _resample_potential(v: np.ndarray, n: int) -> np.ndarray:
    """Periodic (Fourier) resampling of ``(..., m, m)`` images to ``n × n``."""
    if v.shape[-1] == n and v.shape[-2] == n:
        return v
    from scipy.signal import resample

    v = resample(v, n, axis=-1)
    return resample(v, n, axis=-2)


# ----------------------------------------------------------------------------- forward
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
        :class:`~hyperspy_lacbed.nets.inference.Surrogate`.
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
    <LACBED, title: LACBED (cgan), dimensions: (9|64, 64)>
    >>> s.metadata.LACBED.model.name, s.reflections[:3]
    ('default-forward', [(0, 0, 0), (2, 0, 0), (-2, 0, 0)])
    """
    from hyperspy_lacbed.bloch.lacbed import _parse_reflections
    from hyperspy_lacbed.crystal.potential import projected_potential_array
    from hyperspy_lacbed.crystal.structure import load_structure, zone_frame
    from hyperspy_lacbed.signals.lacbed import LACBED
    from hyperspy_lacbed.units import to_magnitude

    sur = load_surrogate(model, "forward", device, models_dir)
    dom, label = sur.domain, f"model {sur.name!r}"
    check_zone_axis(zone_axis, dom, label)
    if voltage is not None:
        check_beam_energy(float(to_magnitude(voltage, "V", "voltage")) / 1e3, dom, label)
    t_list, multi = _thickness_list(thickness, dom)
    check_thickness(t_list, dom, label)
    out_refl = [tuple(r) for r in dom.reflections]
    if reflections is not None:
        req = list(_parse_reflections(reflections))
        if (0, 0, 0) not in req:
            req.insert(0, (0, 0, 0))
        unknown = [list(r) for r in req if tuple(r) not in out_refl]
        if unknown:
            raise ValueError(
                f"{label} does not know the reflections {unknown}; it predicts "
                f"{[list(r) for r in out_refl]}. Use hyperspy_lacbed.simulate for others."
            )
        out_refl = [tuple(r) for r in req]
    pick = [list(map(tuple, dom.reflections)).index(r) for r in out_refl]

    try:
        from diffpy.structure import Structure as _Structure
    except ImportError:  # pragma: no cover - diffpy is a core dependency
        _Structure = ()
    # a diffpy Structure is itself a list (of atoms)
    many = isinstance(structure, (list, tuple)) and not isinstance(structure, _Structure)
    structures = list(structure) if many else [structure]
    if not structures:
        raise ValueError("No structures given: pass at least one CIF path, Structure or name.")
    crystals, potentials, frames = [], [], []
    for s in structures:
        c = load_structure(s)
        check_crystal(c, dom, label)
        frame = zone_frame(c, dom.zone_axis, dom.x_direction)
        img, _ = projected_potential_array(
            c,
            dom.zone_axis,
            dom.x_direction,
            (dom.potential_pixels, dom.potential_pixels),
            dom.scattering_factors,
            True,
        )
        crystals.append(c)
        potentials.append(img)
        frames.append(frame)
    a = np.array([c.lattice_parameters[0] for c in crystals])
    start = time.perf_counter()
    bar = _Bar(len(crystals) * len(t_list), show_progressbar, "cGAN forward")
    try:
        discs = sur.forward_discs(np.stack(potentials), a, t_list, batch_size, bar.update)
    finally:
        bar.close()
    wall = time.perf_counter() - start

    signals = []
    for i, (c, frame) in enumerate(zip(crystals, frames, strict=True)):
        d = discs[i][:, pick]
        if not dom.mean_absorption:
            # The network learnt patterns without the mean absorption (a uniform factor
            # per thickness, see Domain.mean_absorption); put it back analytically.
            from hyperspy_lacbed.bloch.lacbed import mean_absorption_factor

            factor = mean_absorption_factor(
                c,
                t_list,
                dom.voltage,
                dom.absorption,
                dom.absorption_fraction,
                dom.scattering_factors,
            )
            d = d * factor.reshape(-1, *([1] * (d.ndim - 1))).astype(d.dtype)
        if not multi:
            d = d[0]
        hkl = np.asarray(out_refl, int)
        g = (c.g_vectors(hkl) @ frame.rotation.T)[:, :2]
        radius = dom.disc_radius(float(a[i]))
        settings = _settings(
            dom,
            float(a[i]),
            t_list,
            out_refl,
            # The factor above puts the mean absorption back: the Bloch-wave settings that
            # reproduce these discs include it, so simulate(**settings) compares 1:1.
            {"structure": c.to_dict(), "mean_absorption": True},
        )
        signal = LACBED.from_discs(
            d,
            reflections=hkl.tolist(),
            g_vectors=g.tolist(),
            thickness=t_list if multi else t_list[0],
            dk=radius / (dom.disc_pixels / 2),
            voltage=dom.voltage,
            zone_axis=list(frame.zone_axis),
            x_direction=list(frame.x_direction),
            source="cgan",
            settings=settings,
        )
        # Beside the settings, as simulate keeps its timing, so that the settings stay
        # exactly the keyword arguments of simulate.
        signal.metadata.set_item("LACBED.model", sur.info())
        signal.metadata.set_item(
            "LACBED.timing", {"wall_s": wall / len(crystals), "device": str(sur.device)}
        )
        signals.append(signal)
    return signals if many else signals[0]


def _cubic_parameter(lp: Sequence[float] | None, what: str, label: str) -> float:
    if lp is None:
        raise ValueError(
            f"{what} has no lattice parameters (metadata.Sample.lattice_parameters); pass "
            "lattice_parameter= in Å."
        )
    a, b, c, al, be, ga = (float(v) for v in lp)
    if not (
        math.isclose(a, b, rel_tol=1e-5)
        and math.isclose(a, c, rel_tol=1e-5)
        and all(math.isclose(x, 90.0, abs_tol=1e-4) for x in (al, be, ga))
    ):
        raise ValueError(
            f"{what} has lattice parameters {[a, b, c, al, be, ga]}, not those of a cubic "
            f"crystal; {label} was trained on cubic crystals only. Use hyperspy_lacbed.simulate."
        )
    return a


def potential_to_lacbed(
    potential: Any,
    thickness: Any = None,
    model: Any = "default",
    batch_size: int = 32,
    device: Any = None,
    show_progressbar: bool | None = None,
    models_dir: str | os.PathLike | None = None,
):
    """LACBED discs of a ``ProjectedPotential`` signal (one cell or a stack) by the cGAN.

    Parameters
    ----------
    potential
        A (lazy) ``ProjectedPotential`` of a cubic crystal along the model's zone axis, in
        V·Å, any square grid (resampled periodically to the model's); the lattice parameter
        comes from ``metadata.Sample.lattice_parameters``.
    thickness, model, batch_size, device, show_progressbar, models_dir
        As for :func:`generate`.

    Returns
    -------
    LACBED or LazyLACBED
        Shape ``(*stack, [n_thickness], n_disc, D, D)``; the stack axes keep their names
        and calibration; lazy if the potential is.
    """
    from hyperspy_lacbed.signals.lacbed import LACBED

    sur = load_surrogate(model, "forward", device, models_dir)
    dom, label = sur.domain, f"model {sur.name!r}"
    a = _cubic_parameter(potential.lattice_parameters, "The potential", label)
    check_lattice_parameter(a, dom, label)
    check_zone_axis(potential.zone_axis, dom, label)
    xd = potential.x_direction
    if xd is not None and not np.allclose(
        np.cross(xd, dom.x_direction), 0
    ):  # a rotated frame would mislabel the discs
        raise ValueError(
            f"The potential's x-direction {list(xd)} is not {label}'s {list(dom.x_direction)}; "
            "recompute it with projected_potential(..., x_direction="
            f"{list(dom.x_direction)})."
        )
    ext = potential.cell_extent
    if ext is not None and not math.isclose(ext[0], ext[1], rel_tol=1e-5):
        raise ValueError(
            f"The potential's cell is {ext[0]:g} × {ext[1]:g} Å, not square: not a cubic crystal "
            f"along {list(dom.zone_axis)}."
        )
    ny, nx = potential.axes_manager.signal_shape[::-1]
    if ny != nx:
        raise ValueError(f"The potential image must be square, got {ny} × {nx} pixels.")
    t_list, multi = _thickness_list(thickness, dom)
    check_thickness(t_list, dom, label)
    n_t, n_refl, dpx = len(t_list), len(dom.reflections), dom.disc_pixels
    pp = dom.potential_pixels

    def fn(items: np.ndarray, extras: list[np.ndarray], progress) -> np.ndarray:
        v = _resample_potential(np.asarray(items, np.float64), pp)
        return sur.forward_discs(v, extras[0], t_list, batch_size, progress)

    data = potential.data
    lead = tuple(data.shape[:-2])
    out = _map_items(
        data,
        [np.full(lead, a)],
        2,
        (n_t, n_refl, dpx, dpx),
        fn,
        max(1, batch_size // n_t),
        show_progressbar,
        n_t,
        "cGAN forward",
    )
    if not multi:
        out = out[..., 0, :, :, :]
    settings = _settings(
        dom,
        a,
        t_list,
        dom.reflections,
        {
            "potential": potential.metadata.get_item("ProjectedPotential.settings", {}),
            "model": sur.info(),
        },
    )
    if hasattr(settings["potential"], "as_dictionary"):
        settings["potential"] = settings["potential"].as_dictionary()
    s = LACBED.from_discs(
        out,
        reflections=[list(r) for r in dom.reflections],
        g_vectors=_cubic_g_vectors(a, dom.reflections, dom.zone_axis, dom.x_direction),
        thickness=t_list if multi else t_list[0],
        dk=dom.disc_radius(a) / (dpx / 2),
        voltage=dom.voltage,
        zone_axis=list(dom.zone_axis),
        x_direction=list(dom.x_direction),
        source="cgan",
        settings=settings,
    )
    _copy_axes(s.axes_manager._axes[: len(lead)], potential.axes_manager._axes[: len(lead)])
    return s


# ----------------------------------------------------------------------------- inverse
def _calibration_1d(scale: float, offset: float, n: int, dk: float, size: int) -> np.ndarray:
    """Linear-interpolation weights (size, n) from a source axis to the model axis."""
    k = (np.arange(size) - (size - 1) / 2) * dk
    pos = (k - offset) / scale
    w = np.zeros((size, n))
    if n == size and np.allclose(pos, np.arange(n), atol=1e-6, rtol=0):
        w[np.arange(n), np.arange(n)] = 1.0
        return w
    pos = np.clip(pos, 0, n - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, max(n - 2, 0))
    frac = pos - lo
    rows = np.arange(size)
    w[rows, lo] += 1 - frac
    if n > 1:
        w[rows, lo + 1] += frac
    return w


def resample_discs(
    discs: np.ndarray,
    calibration: tuple[tuple[float, float], tuple[float, float]],
    dk: float,
    size: int,
) -> np.ndarray:
    """Bilinear resampling of discs ``(..., ny, nx)`` to the model's ``size × size`` grid.

    Parameters
    ----------
    discs
        The discs. NaN outside the model's disc (the corners of a montage's cells) counts
        as 0; NaN inside it, or a disc that is NaN everywhere, is a ``ValueError``.
    calibration
        ``((scale_x, offset_x), (scale_y, offset_y))`` of the signal axes in 1/Å.
    dk
        Model pixel size in 1/Å; pixel ``j`` is at ``(j - (size - 1) / 2) dk``.
    size
        Model disc size in pixels.

    Returns
    -------
    numpy.ndarray
        ``(..., size, size)`` float32; unchanged values when the grids coincide.
    """
    (sx, ox), (sy, oy) = calibration
    ny, nx = discs.shape[-2:]
    wx = _calibration_1d(sx, ox, nx, dk, size)
    wy = _calibration_1d(sy, oy, ny, dk, size)
    raw = np.asarray(discs)
    if not np.issubdtype(raw.dtype, np.number) or np.iscomplexobj(raw):
        raise ValueError(
            f"Disc intensities must be real numbers, not {raw.dtype}; take the modulus "
            "squared of complex amplitudes first (np.abs(psi) ** 2)."
        )
    d = raw.astype(np.float64)
    if np.isinf(d).any():
        raise ValueError(
            f"The discs hold {int(np.isinf(d).sum())} infinite values; replace them (e.g. "
            "with s.map(np.nan_to_num)) before retrieving the potential."
        )
    if (d < 0).any():
        raise ValueError(
            f"The discs hold {int((d < 0).sum())} negative intensities (minimum {np.nanmin(d):g}); "
            "intensities are counts ≥ 0. Remove the offset or clip them, e.g. "
            "s.map(np.clip, a_min=0, a_max=None)."
        )
    nan = np.isnan(d)
    if nan.any():
        _check_nan_pixels(nan, calibration, dk * size / 2)
    d = np.nan_to_num(d)
    if np.array_equal(wx, np.eye(size)) and np.array_equal(wy, np.eye(size)):
        return d.astype(np.float32)
    return np.einsum("yi,...ij,xj->...yx", wy, d, wx, optimize=True).astype(np.float32)


def _check_nan_pixels(
    nan: np.ndarray, calibration: tuple[tuple[float, float], tuple[float, float]], radius: float
) -> None:
    """Refuse NaN pixels inside the model's disc; those outside it count as 0.

    A montage cut into discs (``LACBED.from_montage``) leaves NaN in the corners of each
    square outside the disc, which the model never reads as information. A NaN inside the
    disc is a missing measurement that the network would silently see as zero intensity,
    so it is an error, and so is a pattern that is NaN everywhere.
    """
    (sx, ox), (sy, oy) = calibration
    ny, nx = nan.shape[-2:]
    kx = ox + np.arange(nx) * sx
    ky = oy + np.arange(ny) * sy
    inside = ky[:, None] ** 2 + kx[None, :] ** 2 <= radius**2 * (1 + 1e-9)
    flat = nan.reshape(-1, ny, nx)
    if flat.all(axis=(1, 2)).any():
        n_all = int(flat.all(axis=(1, 2)).sum())
        raise ValueError(
            f"{n_all} of the {len(flat)} discs are NaN in every pixel: there is no pattern to "
            "retrieve a potential from. Check how the data were loaded or cropped, and drop "
            "empty patterns (e.g. s.inav[...]) before calling retrieve_potential."
        )
    bad = int((flat & inside).sum())
    if bad:
        raise ValueError(
            f"The discs hold {bad} NaN values inside the model's disc (|k| ≤ {radius:.4g} 1/Å), "
            "where the network reads intensities; missing measurements cannot count as zero "
            "there. Fill them (e.g. s.map(np.nan_to_num) for zeros, or interpolate) before "
            "retrieving the potential. NaN outside the disc (a montage's corners) is allowed."
        )


@dataclass
class _InversePlan:
    data: Any  # (*lead, R_signal, ny, nx), reflection axis moved to -3
    lead_axes: list[Any]
    order: list[int]
    calibration: tuple[tuple[float, float], tuple[float, float]]
    dk: float
    lattice_parameter: float
    thickness: np.ndarray  # (*lead,)
    beam_energy: float

    def model_discs(self, items: np.ndarray, size: int) -> np.ndarray:
        """Items ``(n, R_signal, ny, nx)`` → ``(n, n_disc, size, size)`` on the model grid."""
        return resample_discs(np.asarray(items)[:, self.order], self.calibration, self.dk, size)


def _lattice_parameter_of(s: Any, dom: Domain, label: str) -> float:
    """From the simulated structure, metadata.Sample, or the g vectors (a = |hkl| / |g|)."""
    sg = s.metadata.get_item("LACBED.settings.structure.space_group")
    if sg is not None and not 195 <= int(sg) <= 230:
        raise ValueError(
            f"The pattern's structure has space group {sg}, which is not cubic; {label} was "
            "trained on cubic crystals only."
        )
    for key in ("LACBED.settings.structure.lattice_parameters", "Sample.lattice_parameters"):
        lp = s.metadata.get_item(key)
        if lp is not None:
            return _cubic_parameter(list(lp), "The pattern's crystal", label)
    g = s.g_vectors
    refl = np.asarray(s.reflections, float)
    if g is not None and len(g) == len(refl):
        n_hkl = np.linalg.norm(refl, axis=1)
        n_g = np.linalg.norm(g, axis=1)
        ok = (n_hkl > 0) & (n_g > 0)
        if ok.any():
            est = n_hkl[ok] / n_g[ok]
            if np.ptp(est) > 1e-2 * est.mean():
                raise ValueError(
                    "The g vectors of the pattern are not those of a cubic lattice (|hkl| / |g| "
                    f"ranges over {est.min():.4g}–{est.max():.4g} Å); {label} was trained on "
                    "cubic crystals only. Pass lattice_parameter= if the g vectors are wrong."
                )
            return float(est.mean())
    raise ValueError(
        "The lattice parameter is unknown (no structure, lattice parameters or g vectors in "
        "the metadata); pass lattice_parameter= in Å."
    )


def _plan_inverse(
    signal: Any,
    dom: Domain,
    label: str,
    lattice_parameter: Any = None,
    thickness: Any = None,
    beam_energy: Any = None,
) -> _InversePlan:
    from hyperspy_lacbed.signals._metadata import as_thickness, parse_beam_energy
    from hyperspy_lacbed.signals.lacbed import LACBED
    from hyperspy_lacbed.units import to_magnitude

    s = signal
    if not isinstance(s, LACBED):
        raise TypeError(f"Expected a LACBED signal, got {type(s).__name__}.")
    if s._nav_axis("reflection") is None:
        s = LACBED.from_montage(s)
    # The crystal first: a non-cubic one is refused whatever else is wrong with the pattern.
    if lattice_parameter is not None:
        a = float(to_magnitude(lattice_parameter, "angstrom", "lattice_parameter"))
    else:
        a = _lattice_parameter_of(s, dom, label)
    check_lattice_parameter(a, dom, label)
    kev = parse_beam_energy(beam_energy) if beam_energy is not None else s.beam_energy
    check_beam_energy(kev, dom, label)
    check_zone_axis(s.zone_axis, dom, label)
    ax = s._reflection_axis("retrieve_potential")
    try:
        order = [int(i) for i in check_reflections(s.reflections, dom)]
    except ValueError as exc:
        raise ValueError(f"{exc} {_how_to_match(s)}") from None

    data = s.data
    xp = da if isinstance(data, da.Array) else np
    data = xp.moveaxis(data, ax.index_in_array, -3)
    lead_axes = [x for x in s.axes_manager._axes[: data.ndim - 2] if x is not ax]
    lead = tuple(data.shape[:-3])

    t_ax = s._nav_axis("thickness")
    if thickness is not None:
        t = np.asarray(as_thickness(thickness), float)
        if t.size == 1:
            t_arr = np.full(lead, t[0])
        elif t_ax is not None and t.size == t_ax.size:
            t_arr = _along(lead, lead_axes.index(t_ax), t)
        else:
            raise ValueError(
                f"{t.size} thicknesses given; give one, or one per index of the thickness axis."
            )
    elif t_ax is not None:
        t_arr = _along(lead, lead_axes.index(t_ax), np.asarray(s.thicknesses, float))
    else:
        t_md = s.metadata.get_item("Sample.thickness")
        t_md = None if t_md is None else np.atleast_1d(np.asarray(t_md, float))
        if t_md is None:
            raise ValueError(
                "The thickness is unknown (no thickness axis and no metadata.Sample.thickness); "
                "pass thickness='100 nm' (or one per index of the thickness axis)."
            )
        if t_md.size != 1:
            raise ValueError(
                f"The thickness is ambiguous: metadata.Sample.thickness lists {t_md.tolist()} Å "
                "but the signal has no thickness axis (was it sliced?); pass thickness=..."
            )
        t_arr = np.full(lead, float(t_md[0]))
    check_thickness(np.unique(t_arr), dom, label)

    cal = s._k_calibration(kev)  # through the signal's own unit conversion (mrad or 1/Å)
    (sx, ox), (sy, oy) = cal
    ny, nx = s.axes_manager.signal_shape[::-1]
    radius = dom.disc_radius(a)
    dk = radius / (dom.disc_pixels / 2)
    half = radius - dk / 2  # the model's outermost pixel centres
    # extent covered by the signal's pixels (to their outer edges)
    reach = min(
        min(-lo, hi)
        for lo, hi in (
            sorted((ox - sx / 2, ox + (nx - 0.5) * sx)),
            sorted((oy - sy / 2, oy + (ny - 0.5) * sy)),
        )
    )
    if reach < half - 1e-6 * radius:
        wav = 1000.0 * _wavelength(kev)
        raise ValueError(
            f"The discs cover |k| ≤ {reach:.4g} 1/Å, less than the model's disc radius {radius:.4g} 1/Å ({radius * wav:.3g} mrad "
            f"= {dom.disc_radius_g200:g} |g_200| for a = {a:g} Å); the model needs patterns "
            "recorded with at least that convergence angle. Check the calibration "
            f"(s.calibrate) and the lattice parameter. {_how_to_match(s)}"
        )
    return _InversePlan(data, lead_axes, order, cal, dk, a, t_arr, kev)


def _how_to_match(s: Any) -> str:
    """The call that makes a pattern the model can read, for the error messages."""
    if s.metadata.get_item("LACBED.source") == "bloch":
        from hyperspy_lacbed.data import example_structures

        name = s.metadata.get_item("LACBED.settings.structure.name")
        st = repr(name) if name in example_structures() else "structure"
        return (
            "For a simulated pattern, simulate at the model's settings: "
            f"s = hl.simulate({st}, **hl.model_settings({st})), then "
            f"s.retrieve_potential(); or start from hl.generate({st})."
        )
    return (
        "A recorded pattern needs the model's discs and convergence angle; "
        "hl.model_settings(structure) lists them (reflections, disc_radius in 1/Å)."
    )


def _wavelength(kev: float) -> float:
    from hyperspy_lacbed.signals._metadata import wavelength_from_kev

    return wavelength_from_kev(kev)


def _along(lead: tuple[int, ...], axis: int, values: np.ndarray) -> np.ndarray:
    shape = [1] * len(lead)
    shape[axis] = len(values)
    return np.broadcast_to(np.asarray(values, float).reshape(shape), lead).copy()


def inverse_inputs(
    signal: Any,
    model: Any = "default",
    lattice_parameter: Any = None,
    thickness: Any = None,
    beam_energy: Any = None,
    models_dir: str | os.PathLike | None = None,
    device: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact inverse-network inputs of a LACBED signal (in memory), for inspection.

    Returns
    -------
    discs, conditioning
        ``(*stack, n_disc, D, D)`` encoded discs on the model grid and ``(*stack, 2)``
        encoded (lattice parameter, thickness).
    """
    sur = load_surrogate(model, "inverse", device, models_dir)
    plan = _plan_inverse(
        signal, sur.domain, f"model {sur.name!r}", lattice_parameter, thickness, beam_energy
    )
    data = np.asarray(plan.data.compute() if isinstance(plan.data, da.Array) else plan.data)
    lead = data.shape[:-3]
    items = data.reshape(-1, *data.shape[-3:])
    x = sur.encoding.encode_input_discs(plan.model_discs(items, sur.domain.disc_pixels))
    cond = sur.encoding.encode_conditioning(plan.lattice_parameter, plan.thickness.reshape(-1))
    return x.reshape(*lead, *x.shape[1:]), cond.reshape(*lead, 2)


def retrieve_potential(
    signal: Any,
    model: Any = "default",
    lattice_parameter: Any = None,
    thickness: Any = None,
    *,
    beam_energy: Any = None,
    batch_size: int = 32,
    device: Any = None,
    show_progressbar: bool | None = None,
    models_dir: str | os.PathLike | None = None,
):
    """The projected potential behind a LACBED pattern, by the inverse cGAN surrogate.

    Parameters
    ----------
    signal
        A (lazy) LACBED stack of discs ``(*stack, [thickness], reflection, ky, kx)`` or a
        montage (cut with :meth:`~hyperspy_lacbed.signals.lacbed.LACBED.from_montage`). Its signal axes may be in 1/Å or
        an angle (mrad); the discs are resampled bilinearly to the model's grid (radius
        ``Domain.disc_radius(a)``). NaN pixels outside that radius (the corners of a
        montage's cells) count as 0; NaN inside it is refused.
    model
        ``"default"``, a model name, a model folder or a loaded
        :class:`~hyperspy_lacbed.nets.inference.Surrogate`.
    lattice_parameter
        Cubic lattice parameter (Å, or a quantity); default from the metadata (the
        simulated structure) or from the g vectors (a = |hkl| / |g|).
    thickness
        One thickness for every pattern or one per index of the thickness axis; default
        the thickness axis or ``metadata.Sample.thickness``.
    beam_energy
        Needed when the metadata has none (``"200 kV"`` or keV).
    batch_size, device, show_progressbar, models_dir
        As for :func:`generate`.

    Returns
    -------
    ProjectedPotential or LazyProjectedPotential
        ``(*stack, [thickness], P, P)`` in V·Å over one cell of edge ``a`` (navigation axes
        kept), with the strongest column on the centre pixel (the model's origin
        convention, ``metadata.ProjectedPotential.settings.origin``).

    Raises
    ------
    ValueError
        When the beam energy, calibration, lattice parameter or thickness is missing or
        outside the model's domain, the zone axis differs, a reflection is missing, the
        discs are smaller than the model's, or the intensities are infinite, negative,
        complex or NaN inside the disc.
    """
    from hyperspy_lacbed.signals.potential import ProjectedPotential

    sur = load_surrogate(model, "inverse", device, models_dir)
    dom = sur.domain
    plan = _plan_inverse(
        signal, dom, f"model {sur.name!r}", lattice_parameter, thickness, beam_energy
    )
    a, pp = plan.lattice_parameter, dom.potential_pixels

    def fn(items: np.ndarray, extras: list[np.ndarray], progress) -> np.ndarray:
        discs = plan.model_discs(items, dom.disc_pixels)
        return sur.inverse_potentials(
            discs, np.full(len(items), a), extras[0], batch_size, progress
        )

    out = _map_items(
        plan.data,
        [plan.thickness],
        3,
        (pp, pp),
        fn,
        batch_size,
        show_progressbar,
        1,
        "cGAN inverse",
    )
    settings = {
        "source": "cgan",
        "model": sur.info(),
        "origin": "strongest column on the centre pixel (n // 2, n // 2)",
        "lattice_parameter": a,
        "beam_energy": plan.beam_energy,
        "thickness": np.unique(plan.thickness).tolist(),
    }
    p = ProjectedPotential.from_array(
        out,
        extent=a,
        zone_axis=list(dom.zone_axis),
        x_direction=list(dom.x_direction),
        lattice_parameters=(a, a, a, 90.0, 90.0, 90.0),
        settings=settings,
    )
    _copy_axes(p.axes_manager._axes[: len(plan.lead_axes)], plan.lead_axes)
    p.metadata.General.title = "Projected potential (cGAN)"
    return p
