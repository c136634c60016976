"""The signal side of the cGAN surrogates on signals: ``LACBED.retrieve_potential`` and
``ProjectedPotential.generate_lacbed``.

Each function reads the signal (axes, calibration, metadata), checks it against the
model's :class:`~hyperspy_lacbed.nets.domain.Domain`, hands the network plain arrays
and numbers (:class:`~hyperspy_lacbed.nets.runner.InversePlan`,
:func:`~hyperspy_lacbed.nets.runner.run_inverse`,
:func:`~hyperspy_lacbed.nets.runner.run_forward`) and wraps the result in the other
signal type, found by its ``signal_type`` (as ``set_signal_type`` does) rather than by
importing its class. Lazy signals stay lazy.
"""

from __future__ import annotations

import math
import os
from typing import Any

import dask.array as da
import numpy as np

from hyperspy_lacbed.nets.domain import Domain, cubic_lattice_parameter
from hyperspy_lacbed.nets.runner import (
    InversePlan,
    cubic_g_vectors,
    run_forward,
    run_inverse,
)
from hyperspy_lacbed.nets.runner import inverse_inputs as run_inverse_inputs
from hyperspy_lacbed.nets.surrogate import load_surrogate
from hyperspy_lacbed.parsing import as_thickness, parse_beam_energy
from hyperspy_lacbed.signals.metadata import array_order_axes, copy_axes, signal_class
from hyperspy_lacbed.units import electron_wavelength, to_magnitude

__all__ = [
    "inverse_inputs",
    "inverse_plan",
    "lattice_parameter_of",
    "potential_to_lacbed",
    "retrieve_potential",
]


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
        As for :func:`hyperspy_lacbed.generate`.

    Returns
    -------
    LACBED or LazyLACBED
        Shape ``(*stack, [n_thickness], n_disc, D, D)``; the stack axes keep their names
        and calibration; lazy if the potential is. Unlike :func:`hyperspy_lacbed.generate`,
        the discs lack the mean absorption exp(−2π U'_0 t / K) (a factor per thickness,
        :func:`~hyperspy_lacbed.bloch.discs.mean_absorption_factor`), which the potential
        alone does not determine; ``metadata.LACBED.settings.mean_absorption`` is False.
    """
    sur = load_surrogate(model, "forward", device, models_dir)
    dom, label = sur.domain, f"model {sur.name!r}"
    a = cubic_lattice_parameter(potential.lattice_parameters, "The potential", label)
    dom.check_lattice_parameter(a, label)
    dom.check_zone_axis(potential.zone_axis, label)
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
    t_list, multi = dom.resolve_thickness(thickness)
    dom.check_thickness(t_list, label)
    dpx = dom.disc_pixels
    lead = tuple(potential.data.shape[:-2])
    out = run_forward(sur, potential.data, a, t_list, batch_size, show_progressbar)
    if not multi:
        out = out[..., 0, :, :, :]
    settings = dom.simulation_settings(a, t_list, dom.reflections).to_dict()
    settings.update(
        potential=potential.metadata.get_item("ProjectedPotential.settings", {}),
        model=sur.info(),
    )
    if hasattr(settings["potential"], "as_dictionary"):
        settings["potential"] = settings["potential"].as_dictionary()
    s = signal_class("LACBED").from_discs(
        out,
        reflections=[list(r) for r in dom.reflections],
        g_vectors=cubic_g_vectors(a, dom.reflections, dom.zone_axis, dom.x_direction),
        thickness=t_list if multi else t_list[0],
        dk=dom.disc_radius(a) / (dpx / 2),
        voltage=dom.voltage,
        zone_axis=list(dom.zone_axis),
        x_direction=list(dom.x_direction),
        source="cgan",
        settings=settings,
    )
    copy_axes(array_order_axes(s)[: len(lead)], array_order_axes(potential)[: len(lead)])
    return s


def lattice_parameter_of(s: Any, dom: Domain, label: str) -> float:
    """The cubic lattice parameter (Å) of a LACBED signal, for a cubic-only ``label``.

    From the simulated structure, ``metadata.Sample``, or the g vectors (a = |hkl| / |g|).
    """
    sg = s.metadata.get_item("LACBED.settings.structure.space_group")
    if sg is not None and not 195 <= int(sg) <= 230:
        raise ValueError(
            f"The pattern's structure has space group {sg}, which is not cubic; {label} was "
            "trained on cubic crystals only."
        )
    for key in ("LACBED.settings.structure.lattice_parameters", "Sample.lattice_parameters"):
        lp = s.metadata.get_item(key)
        if lp is not None:
            return cubic_lattice_parameter(list(lp), "The pattern's crystal", label)
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


def inverse_plan(
    signal: Any,
    dom: Domain,
    label: str = "the model",
    lattice_parameter: Any = None,
    thickness: Any = None,
    beam_energy: Any = None,
) -> tuple[InversePlan, list[Any]]:
    """What the inverse network needs of a LACBED signal, checked against a domain.

    Parameters
    ----------
    signal
        A LACBED stack of discs or a montage.
    dom
        The model's domain; ``label`` names the model in messages.
    lattice_parameter, thickness, beam_energy
        As for :func:`retrieve_potential`.

    Returns
    -------
    plan, lead_axes
        The :class:`~hyperspy_lacbed.nets.runner.InversePlan` (arrays and numbers) and
        the signal's navigation axes other than the reflection axis, in array order.
    """
    s = signal
    if getattr(s, "_signal_type", None) != "LACBED":
        raise TypeError(f"Expected a LACBED signal, got {type(s).__name__}.")
    if s.navigation_axis("reflection") is None:
        s = type(s).from_montage(s)
    # The crystal first: a non-cubic one is refused whatever else is wrong with the pattern.
    if lattice_parameter is not None:
        a = float(to_magnitude(lattice_parameter, "angstrom", "lattice_parameter"))
    else:
        a = lattice_parameter_of(s, dom, label)
    dom.check_lattice_parameter(a, label)
    kev = parse_beam_energy(beam_energy) if beam_energy is not None else s.beam_energy
    dom.check_beam_energy(kev, label)
    dom.check_zone_axis(s.zone_axis, label)
    ax = s.reflection_axis("retrieve_potential")
    try:
        order = [int(i) for i in dom.check_reflections(s.reflections)]
    except ValueError as exc:
        raise ValueError(f"{exc} {_how_to_match(s)}") from None

    data = s.data
    xp = da if isinstance(data, da.Array) else np
    data = xp.moveaxis(data, ax.index_in_array, -3)
    lead_axes = [x for x in array_order_axes(s)[: data.ndim - 2] if x is not ax]
    lead = tuple(data.shape[:-3])

    t_ax = s.navigation_axis("thickness")
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
    dom.check_thickness(np.unique(t_arr), label)

    cal = s.k_calibration(kev)  # through the signal's own unit conversion (mrad or 1/Å)
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
        wav = 1000.0 * electron_wavelength(kev * 1e3)
        raise ValueError(
            f"The discs cover |k| ≤ {reach:.4g} 1/Å, less than the model's disc radius {radius:.4g} 1/Å ({radius * wav:.3g} mrad "
            f"= {dom.disc_radius_g200:g} |g_200| for a = {a:g} Å); the model needs patterns "
            "recorded with at least that convergence angle. Check the calibration "
            f"(s.calibrate) and the lattice parameter. {_how_to_match(s)}"
        )
    return InversePlan(data, order, cal, dk, a, t_arr, kev), lead_axes


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
    plan, _ = inverse_plan(
        signal, sur.domain, f"model {sur.name!r}", lattice_parameter, thickness, beam_energy
    )
    return run_inverse_inputs(sur, plan)


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
    refine: bool = False,
    refine_options: dict[str, Any] | None = None,
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
        :class:`~hyperspy_lacbed.nets.surrogate.Surrogate`.
    lattice_parameter
        Cubic lattice parameter (Å, or a quantity); default from the metadata (the
        simulated structure) or from the g vectors (a = |hkl| / |g|).
    thickness
        One thickness for every pattern or one per index of the thickness axis; default
        the thickness axis or ``metadata.Sample.thickness``.
    beam_energy
        Needed when the metadata has none (``"200 kV"`` or keV).
    batch_size, device, show_progressbar, models_dir
        As for :func:`hyperspy_lacbed.generate`.
    refine
        Refine the network's potential against the pattern with the Bloch-wave engine
        (:func:`hyperspy_lacbed.refinement.potential.refine_potential`): a common scale
        and the lowest-order symmetry classes of its ZOLZ Fourier coefficients (4mm and
        Friedel tied) are fitted to the discs through the engine's core (40 strong + 80
        Bethe beams, full resolution, the thickness too, a prior at the network's values),
        and the image is rebuilt with them; the fit never ends worse than the network's
        start. About ten seconds per pattern; each pattern of a stack is refined in turn. Needs an in-memory signal. The figures of merit
        before and after, ``improved``, the refined factors and their σ are in
        ``metadata.ProjectedPotential.settings.refinement`` (one entry per pattern). A
        better pattern fit is not always a better potential
        (:doc:`/user_guide/refinement`): check it against the network's.
    refine_options
        Keywords of :func:`~hyperspy_lacbed.refinement.potential.refine_potential`
        (``n_classes``, ``max_iter``, ``strong_beams``, ``weak_beams``, ``fom``, ...).

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
    sur = load_surrogate(model, "inverse", device, models_dir)
    dom = sur.domain
    plan, lead_axes = inverse_plan(
        signal, dom, f"model {sur.name!r}", lattice_parameter, thickness, beam_energy
    )
    a = plan.lattice_parameter
    if refine and isinstance(plan.data, da.Array):
        raise ValueError(
            "refine=True needs the pattern in memory (the Bloch refinement is not lazy); call "
            "s.compute() first, or refine a few patterns of the stack: s.inav[...]."
        )
    out = run_inverse(sur, plan, batch_size, show_progressbar)
    refinement = _refine(out, plan, dom, refine_options) if refine else None
    if refine:
        out = refinement[0]
    settings = {
        "source": "cgan",
        "model": sur.info(),
        "origin": "strongest column on the centre pixel (n // 2, n // 2)",
        "lattice_parameter": a,
        "beam_energy": plan.beam_energy,
        "thickness": np.unique(plan.thickness).tolist(),
    }
    if refine:
        settings["refinement"] = refinement[1]
    p = signal_class("ProjectedPotential").from_array(
        out,
        extent=a,
        zone_axis=list(dom.zone_axis),
        x_direction=list(dom.x_direction),
        lattice_parameters=(a, a, a, 90.0, 90.0, 90.0),
        settings=settings,
    )
    copy_axes(array_order_axes(p)[: len(lead_axes)], lead_axes)
    p.metadata.General.title = (
        "Projected potential (cGAN, Bloch-refined)" if refine else "Projected potential (cGAN)"
    )
    return p


def _refine(
    potentials: np.ndarray, plan: InversePlan, dom: Domain, options: dict[str, Any] | None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Bloch-refine each network potential of a stack against its pattern (in memory)."""
    from hyperspy_lacbed.refinement.potential import refine_potential

    if dom.absorption not in ("proportional", "none"):
        # a potential fixes U_g but not an atom-based absorption (Bird–King needs atoms)
        raise ValueError(
            f"refine=True models absorption from the potential alone, but the model's domain "
            f"uses absorption={dom.absorption!r}; use refine=False, or a model trained with "
            "proportional absorption."
        )
    opts = {
        "voltage": dom.voltage,
        "zone_axis": tuple(dom.zone_axis),
        "x_direction": tuple(dom.x_direction),
        "absorption": dom.absorption,
        "absorption_fraction": dom.absorption_fraction,
        **(options or {}),
    }
    data = np.asarray(plan.data)
    lead = data.shape[:-3]
    out = np.array(potentials, dtype=float, copy=True)
    records = []
    for idx in np.ndindex(*lead):
        discs = plan.model_discs(data[idx][None], dom.disc_pixels)[0]
        r = refine_potential(
            out[idx], plan.lattice_parameter, discs, np.asarray(dom.reflections, int),
            plan.dk, float(plan.thickness[idx]), **opts,
        )  # fmt: skip
        out[idx] = r["potential"]
        keys = (
            "fom", "fom_before", "fom_after", "improved", "gain", "factors", "sigma",
            "thickness", "iterations", "message", "beams",
        )  # fmt: skip
        records.append({k: r[k] for k in keys})
    return out.astype(potentials.dtype), records
