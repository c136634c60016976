"""``hyperspy_lacbed.simulate``: a structure in, a calibrated LACBED signal out.

The user-facing side of the Bloch-wave engine: the keywords are validated once by
:meth:`~hyperspy_lacbed.bloch.settings.SimulationSettings.from_user`, the arrays come
from :func:`~hyperspy_lacbed.bloch.discs.compute_discs` (or
:func:`~hyperspy_lacbed.bloch.discs.compute_many` for a list of structures), and
:func:`to_signal` wraps them in a
:class:`~hyperspy_lacbed.signals.lacbed.LACBED` signal whose metadata holds every
setting, so that ``simulate(**signal.metadata.LACBED.settings)`` reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.discs import DiscResult, compute_discs, compute_many
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.parsing import parse_memory

__all__ = ["is_many", "simulate", "to_signal"]


def simulate(
    structure: Any,
    zone_axis: Sequence[int] | None = None,
    x_direction: Sequence[int] | None = None,
    voltage: Any = None,
    thickness: Any = None,
    reflections: Sequence[Sequence[int]] | None = None,
    pixels: int | None = None,
    disc_radius: Any = None,
    absorption: str | None = None,
    absorption_fraction: float | None = None,
    scattering_factors: str | None = None,
    debye_waller: bool | None = None,
    strong_beams: int | None = None,
    weak_beams: int | None = None,
    *,
    tolerance: float | None = None,
    max_beams: int | None = None,
    surface_normal: Sequence[int] | None = None,
    beam_pool: int | None = None,
    laue_zones: Sequence[int] | None = None,
    holz: bool | None = None,
    solver: str | None = None,
    symmetry: bool | None = None,
    preset: str | None = None,
    device: str = "auto",
    max_memory: Any = "1 GiB",
    show_progressbar: bool | None = None,
    client: Any = None,
    strong_beam_step: float | None = None,
    mean_inner_potential: bool | None = None,
    mean_absorption: bool | None = None,
):
    """Simulate LACBED discs of a crystal with the Bloch-wave method.

    Every physics keyword left at ``None`` takes the preset's value when a ``preset`` is
    given, else the default written below: **explicit keyword > preset > default**
    (:meth:`~hyperspy_lacbed.bloch.settings.SimulationSettings.from_user`).

    Parameters
    ----------
    structure
        A CIF path, a ``diffpy.structure.Structure``, a
        :class:`~hyperspy_lacbed.crystal.structure.Crystal` or the name of a
        shipped example (``"Si"``, ``"GaAs"``, ...).
    zone_axis
        Beam direction [uvw] (direct-lattice indices); default [0, 0, 1].
    x_direction
        Direct-lattice direction perpendicular to the beam that fixes kx; default the
        shortest one ([100] for [001]).
    voltage
        Accelerating voltage: ``"200 kV"``, a pint quantity, or a number in V; default 200 kV.
    thickness
        One or more thicknesses: ``"100 nm"``, quantities, or numbers in Å; default
        500, 1000, 1500 and 2000 Å.
    reflections
        The discs to return, as [h, k, l]; 000 is always included. Default: 000 and the
        first two shells of ZOLZ reflections with non-zero structure factor.
    pixels
        Disc size 2N × 2N (even); default 64.
    disc_radius
        Disc radius as ``"0.25 1/Å"``, ``"6 mrad"``, a quantity or a number in 1/Å;
        default half the smallest |g| of the requested reflections.
    absorption
        ``"none"``, ``"proportional"`` (U' = κU, the default) or ``"bird-king"``.
    absorption_fraction
        κ for proportional absorption; default 0.1 (10 %).
    scattering_factors
        ``"kirkland"`` (default) or ``"lobato"``.
    debye_waller
        Apply the atoms' Debye–Waller factors (default ``True``).
    strong_beams
        Minimum number of strong beams per tilt (Felix's IMinStrongBeams). Default (with
        ``weak_beams`` not given either, and no preset): chosen by ``tolerance``. Given,
        it is used exactly (with 0 weak beams unless ``weak_beams`` is given); the Felix
        preset uses 100.
    weak_beams
        Number of further beams folded in as Bethe potentials. Default: chosen by
        ``tolerance``; given alone, with 100 strong beams.
    tolerance
        Convergence tolerance as a fraction of each image's maximum; default 0.01 (1 %).
        Without explicit beam counts the strong and weak beams are chosen from the
        physics (the phase that left-out beams would add, from |U_g| with its
        Debye–Waller decay and the excitation errors), verified on up to 16 tilts of the
        grid (spread over the irreducible wedge) against a set larger by half, and
        enlarged until the estimate is within the tolerance or the budget (600 strong,
        ``max_beams`` strong + weak) is reached, which raises a
        :class:`~hyperspy_lacbed.bloch.convergence.ConvergenceWarning`.
        With explicit counts the same estimate is measured on 5 tilts and reported only;
        ``float("inf")`` skips it. The beam counts, the estimate and the verdict go to
        ``metadata.LACBED.convergence``.
    max_beams
        Budget of strong + weak beams of the automatic choice; default 1800 (at most
        ``max(400, max_beams // 3)`` of them strong).
    surface_normal
        Direct-lattice direction of the surface normal; default the beam direction.
    beam_pool
        Number of reflections in the pool from which beams are chosen; default about
        three times ``strong_beams``.
    laue_zones
        Laue zones of the pool, each filled by |g| like the zero-order zone; default
        (0,), the zero-order zone only. For HOLZ lines use ``holz`` instead.
    holz
        Put the reflections of the higher-order Laue zones in the beam pool, so that
        their deficiency lines cross the discs (:mod:`hyperspy_lacbed.bloch.holz`): each
        upper-zone reflection that comes, somewhere in the disc, as near the Ewald sphere
        as the zero-order pool's farthest beam, and whose kinematic line depth
        (π t |U_g| / K)² at the largest thickness reaches a tenth of ``tolerance``. They
        are ranked with the zero-order beams by their exact excitation errors, so the
        tolerance-driven strong/weak choice covers them. Default ``False``: the lines
        are about a pixel wide, so the convergence check on 9 probe tilts cannot tell
        whether they matter, and the extra beams cost time (on Si [111] about 40 strong
        beams more); with ``holz=False`` the results are exactly those of a zero-order
        calculation. Incompatible with ``laue_zones`` other than (0,).
    solver
        ``"exact"`` (complex128 eigen-solve), ``"fast"`` (complex64 eigen-solve, within 1e-3
        of the image maximum of the exact one) or ``"auto"`` (the default: fast, or exact
        for presets and for a tolerance below 0.005).
    symmetry
        Solve tilts related by the zone-axis point group once and map them (default
        ``True``).
    preset
        ``"felix"`` adopts Felix's conventions for like-for-like comparison
        (:func:`~hyperspy_lacbed.bloch.settings.felix_settings`); keywords given
        explicitly still win.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    max_memory
        Working memory of the batched eigen-solves (``"1 GiB"``, bytes as a number).
    show_progressbar
        Show a progress bar; default HyperSpy's preference.
    client
        With a list of structures: a ``dask.distributed.Client`` that runs one task per
        structure on its workers; without one, the structures run through dask's local
        threaded scheduler.
    strong_beam_step
        Raise the strong-beam threshold on |s_g| in steps of this size (Felix: 0.005 1/Å);
        0 (the default) takes exactly ``strong_beams`` (ties included).
    mean_inner_potential
        Refract the beam by the mean inner potential (K² = K_vac² + U_0; default
        ``True``); Felix does not.
    mean_absorption
        Put the mean absorptive potential i U'_0 on the diagonal, so that intensity decays
        with thickness (default ``True``); Felix leaves it out.

    Notes
    -----
    ``metadata.LACBED.settings`` holds every argument above and the structure, so that
    ``simulate(**s.metadata.LACBED.settings.as_dictionary())`` computes ``s`` again (with the
    chosen beam counts, now explicit). ``metadata.LACBED.convergence`` holds the beam
    counts, the convergence ``estimate`` (largest change of any disc at any thickness, in
    units of its image's maximum, when the beam set grows by half, measured on
    ``verified_tilts`` tilts), the ``tolerance`` and ``converged``.

    Returns
    -------
    LACBED or list of LACBED
        Navigation axes (thickness, reflection), signal axes (ky, kx) in 1/Å, with all
        settings in ``metadata.LACBED.settings`` and ``metadata.LACBED.source == "bloch"``.
        A list of structures gives a list of signals, in the same order.

    Examples
    --------
    >>> import hyperspy_lacbed as hl
    >>> s = hl.simulate("Si", thickness="100 nm", pixels=16, strong_beams=30)
    >>> s.data.shape
    (9, 16, 16)
    """
    memory = parse_memory(max_memory)
    settings = SimulationSettings.from_user(
        preset=preset,
        zone_axis=zone_axis,
        x_direction=x_direction,
        voltage=voltage,
        thickness=thickness,
        reflections=reflections,
        pixels=pixels,
        disc_radius=disc_radius,
        absorption=absorption,
        absorption_fraction=absorption_fraction,
        scattering_factors=scattering_factors,
        debye_waller=debye_waller,
        strong_beams=strong_beams,
        weak_beams=weak_beams,
        tolerance=tolerance,
        max_beams=max_beams,
        surface_normal=surface_normal,
        beam_pool=beam_pool,
        laue_zones=laue_zones,
        holz=holz,
        solver=solver,
        symmetry=symmetry,
        strong_beam_step=strong_beam_step,
        mean_inner_potential=mean_inner_potential,
        mean_absorption=mean_absorption,
    )
    if is_many(structure):
        results = compute_many(
            structure,
            settings,
            device=device,
            max_memory=memory,
            client=client,
            show_progressbar=show_progressbar,
        )
        return [to_signal(r) for r in results]
    result = compute_discs(
        structure, settings, device=device, max_memory=memory, show_progressbar=show_progressbar
    )
    return to_signal(result)


def is_many(structure: Any) -> bool:
    """Whether ``structure`` is a list of structures (a diffpy Structure is one)."""
    # A diffpy Structure is itself a list (of atoms): it is one structure.
    if not isinstance(structure, (list, tuple)):
        return False
    try:
        from diffpy.structure import Structure
    except ImportError:  # pragma: no cover - diffpy is a core dependency
        return True
    return not isinstance(structure, Structure)


def to_signal(result: DiscResult):
    """Wrap a :class:`~hyperspy_lacbed.bloch.discs.DiscResult` in a LACBED signal."""
    from hyperspy_lacbed.signals.lacbed import LACBED

    settings = result.settings.to_dict()
    settings["structure"] = result.crystal.to_dict()
    signal = LACBED.from_discs(
        np.squeeze(result.discs, axis=0) if result.discs.shape[0] == 1 else result.discs,
        reflections=result.reflections.tolist(),
        g_vectors=result.g_vectors.tolist(),
        thickness=list(result.settings.thickness),
        dk=result.dk,
        voltage=result.settings.voltage,
        zone_axis=list(result.settings.zone_axis),
        x_direction=list(result.settings.x_direction),
        source="bloch",
        settings=settings,
    )
    signal.metadata.set_item("LACBED.timing", asdict(result.stats))
    if result.convergence is not None:
        signal.metadata.set_item("LACBED.convergence", result.convergence.to_dict())
    return signal
