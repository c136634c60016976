"""Running a surrogate over stacks of arrays: batching, resampling, the inverse plan.

Arrays only (NumPy or dask; no HyperSpy). :func:`map_items` applies a network to the
items of a stack in batches of ``batch_size`` passes: in-memory arrays at once (with a
progress bar), dask arrays lazily as a ``dask.array.map_blocks`` graph whose blocks hold
at most ``batch_size`` patterns, so memory stays bounded, and each block is exactly one
batch of the eager path when the stack is one-dimensional.

:class:`InversePlan` is what the signal layer hands the inverse network: the disc
array, the order of its reflections, its calibration and the numbers (lattice
parameter, thicknesses, beam energy) read from the signal;
:func:`run_inverse` turns it into potentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from hyperspy_lacbed.nets.surrogate import Surrogate
from hyperspy_lacbed.progress import ProgressBar

__all__ = [
    "InversePlan",
    "cubic_g_vectors",
    "inverse_inputs",
    "lead_chunks",
    "map_items",
    "resample_discs",
    "resample_potential",
    "run_forward",
    "run_inverse",
]


def lead_chunks(lead: tuple[int, ...], items_per_block: int) -> tuple[int, ...]:
    """Chunk sizes of the leading axes so that a block holds at most ``items_per_block``."""
    remaining, out = max(int(items_per_block), 1), []
    for d in reversed(lead):
        c = max(1, min(int(d), remaining))
        out.append(c)
        remaining = max(1, remaining // c)
    return tuple(reversed(out))


def map_items(
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
        bar = ProgressBar(n * patterns_per_item, show_progressbar, desc, "pattern")
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
    chunks_lead = lead_chunks(lead, items_per_block)
    x = x.rechunk(chunks_lead + (1,) * (width - m) + item_in)
    ex_da = [
        da.from_array(
            np.ascontiguousarray(np.broadcast_to(e, lead)).reshape(lead + (1,) * width),
            chunks=chunks_lead + (1,) * width,
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


def cubic_g_vectors(
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


def resample_potential(v: np.ndarray, n: int) -> np.ndarray:
    """Periodic (Fourier) resampling of ``(..., m, m)`` images to ``n × n``."""
    if v.shape[-1] == n and v.shape[-2] == n:
        return v
    from scipy.signal import resample

    v = resample(v, n, axis=-1)
    return resample(v, n, axis=-2)


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
        The discs, NaN (e.g. outside the disc of a montage) counting as 0.
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
    d = np.nan_to_num(d)
    if np.array_equal(wx, np.eye(size)) and np.array_equal(wy, np.eye(size)):
        return d.astype(np.float32)
    return np.einsum("yi,...ij,xj->...yx", wy, d, wx, optimize=True).astype(np.float32)


@dataclass
class InversePlan:
    """What the inverse network needs of a LACBED pattern: arrays and numbers.

    Built by the signal layer (:func:`hyperspy_lacbed.signals.surrogates.inverse_plan`)
    after checking the pattern against the model's domain.

    Attributes
    ----------
    data
        NumPy or dask array ``(*lead, n_reflection, ny, nx)`` (reflection axis at -3).
    order
        Index along the reflection axis of each of the model's reflections.
    calibration
        ``((scale_x, offset_x), (scale_y, offset_y))`` of the disc axes in 1/Å.
    dk
        Model pixel size in 1/Å.
    lattice_parameter
        Cubic lattice parameter a in Å.
    thickness
        ``(*lead,)`` thickness of each pattern in Å.
    beam_energy
        keV.
    """

    data: Any  # (*lead, R_signal, ny, nx), reflection axis moved to -3
    order: list[int]
    calibration: tuple[tuple[float, float], tuple[float, float]]
    dk: float
    lattice_parameter: float
    thickness: np.ndarray  # (*lead,)
    beam_energy: float

    def model_discs(self, items: np.ndarray, size: int) -> np.ndarray:
        """Items ``(n, R_signal, ny, nx)`` → ``(n, n_disc, size, size)`` on the model grid."""
        return resample_discs(np.asarray(items)[:, self.order], self.calibration, self.dk, size)


def run_forward(
    surrogate: Surrogate,
    potentials: Any,
    lattice_parameter: float,
    thicknesses: Sequence[float],
    batch_size: int = 32,
    show_progressbar: bool | None = None,
) -> Any:
    """Discs ``(*lead, n_thickness, n_disc, D, D)`` of potentials ``(*lead, P', P')`` (V·Å).

    The potentials (any square grid, resampled periodically to the model's) all belong
    to a cubic crystal of lattice parameter ``lattice_parameter`` (Å). NumPy in, NumPy
    out; dask in, dask out.
    """
    dom = surrogate.domain
    t_list = [float(t) for t in thicknesses]
    n_t, pp = len(t_list), dom.potential_pixels

    def fn(items: np.ndarray, extras: list[np.ndarray], progress) -> np.ndarray:
        v = resample_potential(np.asarray(items, np.float64), pp)
        return surrogate.forward_discs(v, extras[0], t_list, batch_size, progress)

    lead = tuple(potentials.shape[:-2])
    return map_items(
        potentials,
        [np.full(lead, float(lattice_parameter))],
        2,
        (n_t, len(dom.reflections), dom.disc_pixels, dom.disc_pixels),
        fn,
        max(1, batch_size // n_t),
        show_progressbar,
        n_t,
        "cGAN forward",
    )


def run_inverse(
    surrogate: Surrogate,
    plan: InversePlan,
    batch_size: int = 32,
    show_progressbar: bool | None = None,
) -> Any:
    """Potentials ``(*lead, P, P)`` in V·Å of the patterns of ``plan``.

    NumPy in, NumPy out; a dask ``plan.data`` gives a lazy result.
    """
    dom = surrogate.domain
    a, pp = plan.lattice_parameter, dom.potential_pixels

    def fn(items: np.ndarray, extras: list[np.ndarray], progress) -> np.ndarray:
        discs = plan.model_discs(items, dom.disc_pixels)
        return surrogate.inverse_potentials(
            discs, np.full(len(items), a), extras[0], batch_size, progress
        )

    return map_items(
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


def inverse_inputs(surrogate: Surrogate, plan: InversePlan) -> tuple[np.ndarray, np.ndarray]:
    """The exact encoded inputs of the inverse network for ``plan`` (computed in memory).

    Returns
    -------
    discs, conditioning
        ``(*lead, n_disc, D, D)`` encoded discs on the model grid and ``(*lead, 2)``
        encoded (lattice parameter, thickness).
    """
    data = np.asarray(plan.data.compute() if isinstance(plan.data, da.Array) else plan.data)
    lead = data.shape[:-3]
    items = data.reshape(-1, *data.shape[-3:])
    enc = surrogate.encoding
    x = enc.encode_input_discs(plan.model_discs(items, surrogate.domain.disc_pixels))
    cond = enc.encode_conditioning(plan.lattice_parameter, plan.thickness.reshape(-1))
    return x.reshape(*lead, *x.shape[1:]), cond.reshape(*lead, 2)
