"""A differentiable Bloch-wave LACBED forward model (torch autograd).

The model *is* the engine made differentiable: the same beam pool
(:func:`~hyperspy_lacbed.bloch.pool.prepare_pool`), the same strong/weak selection per
tilt (:func:`~hyperspy_lacbed.bloch.solver.select_beams`), the same structure matrices
(:func:`~hyperspy_lacbed.bloch.matrix.structure_matrices`: exact excitation errors,
Bethe weak beams, surface-normal scaling, diagonal conventions) and the engine's
differentiable propagator (:func:`~hyperspy_lacbed.bloch.propagate.column_propagate`).
What it adds is that the Fourier coefficients U_g + i U'_g are computed in torch from
the crystal's occupancies, Debye–Waller factors and positions, so that every parameter
of :mod:`hyperspy_lacbed.refinement.parameters` reaches the intensities through autograd.

There is no symmetry folding (a tilt offset breaks the symmetry of the grid). The strong
and weak beams of every tilt are chosen once, at the start geometry, so the model is a
smooth function of the parameters.

Plain arrays and torch; no HyperSpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from hyperspy_lacbed.bloch.discs import converged_beam_counts
from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors
from hyperspy_lacbed.bloch.matrix import output_positions, structure_matrices, with_diagonal
from hyperspy_lacbed.bloch.pool import is_explicit, normal_in_frame, prepare_pool
from hyperspy_lacbed.bloch.propagate import (
    PROPAGATORS,
    column_propagate,
    eigen_propagate,
    output_intensities,
)
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.bloch.solver import padded_indices, select_beams
from hyperspy_lacbed.crystal.scattering import absorptive_scattering_factor, scattering_factor
from hyperspy_lacbed.crystal.structure import Crystal, zone_frame
from hyperspy_lacbed.crystal.structure_factors import debye_waller_factors
from hyperspy_lacbed.refinement.parameters import Parameter
from hyperspy_lacbed.units import electron_wavelength, relativistic_gamma


def _zolz_reflections(reflections: np.ndarray, zone_axis) -> np.ndarray:
    """The discs as (R, 3) integers, refused unless they lie in the zero-order Laue zone."""
    reflections = np.asarray(reflections, int).reshape(-1, 3)
    off = reflections @ np.asarray(zone_axis) != 0
    if off.any():
        raise ValueError(
            f"Reflection {reflections[off][0].tolist()} is not in the zero-order Laue zone "
            f"of zone axis {list(zone_axis)} (h·u + k·v + l·w must be 0); give "
            "reflections of the zone."
        )
    return reflections


def fixed_beam_settings(
    crystal: Crystal,
    settings: SimulationSettings,
    reflections: np.ndarray,
    radius: float,
    thickness: float,
) -> SimulationSettings:
    """Settings whose beam counts are fixed: the engine's converged choice where none is given.

    Parameters
    ----------
    crystal
        The crystal.
    settings
        Settings with explicit counts (returned as they are) or ``strong_beams=None``.
    reflections
        The discs (R, 3).
    radius
        Disc radius in 1/Å.
    thickness
        The thickness (Å) at which the choice is verified.

    Returns
    -------
    SimulationSettings
    """
    if is_explicit(settings):
        return settings
    strong, weak = converged_beam_counts(
        crystal,
        replace(
            settings,
            reflections=tuple(map(tuple, reflections.tolist())),
            disc_radius=radius,
            thickness=(thickness,),
        ),
    )
    return replace(settings, strong_beams=strong, weak_beams=weak)


class _BirdKing:
    """Bird–King absorptive form factors f'(q; B) with a derivative in B for autograd.

    The form factor is a 2-D integral evaluated by the crystal package; its derivative in
    B comes from a central difference of that integral (smooth in B; step 1e-4 Å² gives
    ~1e-8 relative accuracy). Values are cached per (element, B).
    """

    def __init__(self, q: np.ndarray, voltage: float, table: str):
        self.q = q
        self.voltage = voltage
        self.table = table
        self._cache: dict[tuple[str, float], np.ndarray] = {}

    def values(self, element: str, b: float) -> np.ndarray:
        key = (element, round(float(b), 12))
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = absorptive_scattering_factor(
                element, self.q, max(float(b), 0.0), self.voltage, table=self.table
            )
        return self._cache[key]

    def __call__(self, element: str, b):
        import torch

        owner = self

        class _F(torch.autograd.Function):
            @staticmethod
            def forward(ctx, bb):
                ctx.save_for_backward(bb)
                return torch.as_tensor(owner.values(element, float(bb)), dtype=torch.float64)

            @staticmethod
            def backward(ctx, grad):
                (bb,) = ctx.saved_tensors
                h = 1e-4
                b0 = float(bb)
                lo = max(b0 - h, 0.0)
                deriv = (owner.values(element, b0 + h) - owner.values(element, lo)) / (b0 + h - lo)
                return (grad * torch.as_tensor(deriv, dtype=torch.float64)).sum()

        return _F.apply(b)


def _scattering_factors_at(elements: Sequence[str], q, table: str):
    """f_j(q) (n_atoms, n_q) of each atom's element at the tensor ``q`` (1/Å), with dq.

    The tables are numpy; the derivative in q comes from a central difference of the
    analytic parameterisation (step 1e-6 1/Å), so lattice parameters reach the form factors.
    """
    import torch

    class _F(torch.autograd.Function):
        @staticmethod
        def forward(ctx, qq):
            qn = qq.detach().numpy()
            vals, ders = {}, {}
            for e in set(elements):
                vals[e] = scattering_factor(e, qn, table=table)
                ders[e] = (
                    scattering_factor(e, qn + 1e-6, table=table)
                    - scattering_factor(e, np.maximum(qn - 1e-6, 0.0), table=table)
                ) / (qn + 1e-6 - np.maximum(qn - 1e-6, 0.0))
            ctx.save_for_backward(torch.as_tensor(np.stack([ders[e] for e in elements])))
            return torch.as_tensor(np.stack([vals[e] for e in elements]))

        @staticmethod
        def backward(ctx, grad):
            (der,) = ctx.saved_tensors
            return (grad * der).sum(0)

    return _F.apply(q)


class BlochModel:
    """LACBED disc intensities as a differentiable function of the refinable parameters.

    Parameters
    ----------
    crystal
        The start crystal.
    settings
        The engine's :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings` (its
        physics and beam counts; thickness, pixels and disc radius come from the
        arguments below). Beam counts left to the tolerance (``strong_beams=None``) are
        chosen by the engine at the start geometry, as :func:`~hyperspy_lacbed.simulate`
        chooses them (:func:`~hyperspy_lacbed.bloch.discs.converged_beam_counts`).
    reflections
        The discs, (R, 3) Miller indices of the zero-order Laue zone.
    pixels
        Disc size 2N (square, even).
    dk
        Pixel size in 1/Å at scale 1 (the disc radius is N·dk).
    parameters
        The refined parameters (:func:`~hyperspy_lacbed.refinement.parameters.resolve_parameters`).
    thickness
        Thickness in Å when it is not refined.
    chunk
        Tilts per batched matrix exponential (bounds the working memory).
    propagator
        ``"eig"`` (default) or ``"expm"``
        (:func:`~hyperspy_lacbed.bloch.propagate.column_propagate`).

    Notes
    -----
    ``intensities(x)`` returns ``|ψ_g|²`` in the engine's frame, pixel ``[i, j]`` at
    k_x = scale (j − N + ½) dk + offset_x, k_y = scale (i − N + ½) dk + offset_y. The
    matrices are the engine's (:func:`~hyperspy_lacbed.bloch.matrix.structure_matrices`),
    so at equal beams the model reproduces :func:`~hyperspy_lacbed.simulate` without
    symmetry folding.
    """

    def __init__(
        self,
        crystal: Crystal,
        settings: SimulationSettings,
        reflections: np.ndarray,
        pixels: int,
        dk: float,
        parameters: Sequence[Parameter] = (),
        *,
        thickness: float = 1000.0,
        chunk: int = 256,
        propagator: str = "eig",
    ):
        if not isinstance(settings, SimulationSettings):
            raise TypeError(
                f"settings must be a SimulationSettings, not {type(settings).__name__}; build "
                "one with SimulationSettings.from_user(**physics)."
            )
        self.crystal = crystal
        self.parameters = list(parameters)
        self.names = [p.name for p in self.parameters]
        self.pixels = int(pixels)
        if self.pixels < 2 or self.pixels % 2:
            raise ValueError(f"pixels must be an even number ≥ 2, got {pixels}.")
        self.dk = float(dk)
        self.thickness0 = float(thickness)
        self.chunk = int(chunk)
        if propagator not in PROPAGATORS:
            raise ValueError(f"propagator must be one of {PROPAGATORS}, not {propagator!r}.")
        self.propagator = propagator
        self.frame = zone_frame(crystal, settings.zone_axis, settings.x_direction)
        self.reflections = _zolz_reflections(reflections, self.frame.zone_axis)
        self.settings = settings = fixed_beam_settings(
            crystal, settings, self.reflections, self.pixels * self.dk / 2, self.thickness0
        )
        self.normal = normal_in_frame(crystal, self.frame, settings.surface_normal)
        self.k_vac = 1.0 / electron_wavelength(settings.voltage)
        required = np.concatenate([np.zeros((1, 3), int), self.reflections])
        # HOLZ reflections for tilts out to the largest scale (1.15) and offset (0.3 of the
        # radius) that the parameters allow
        self.pool, self.rule = prepare_pool(
            crystal, self.frame, settings, self.normal, required,
            tilt_radius=1.5 * self.pixels * self.dk / 2,
        )  # fmt: skip
        self.out_idx = np.array(
            [int(np.flatnonzero((self.pool.hkl == h).all(1))[0]) for h in self.reflections]
        )
        self._structure_factor_tables()
        self.choose_beams(self.start_vector())

    @property
    def physics(self) -> SimulationSettings:
        """The settings (the name the refinement's records use)."""
        return self.settings

    def _structure_factor_tables(self) -> None:
        """Tables of the unique beam differences g_i − g_j, whose U_g the model computes."""
        import torch

        crystal, settings = self.crystal, self.settings
        hkl = self.pool.hkl
        diff = hkl[:, None, :] - hkl[None, :, :]
        uniq, inverse = np.unique(diff.reshape(-1, 3), axis=0, return_inverse=True)
        self.uniq = uniq
        self._inverse = torch.as_tensor(inverse.reshape(len(hkl), len(hkl)))
        self._zero = int(np.flatnonzero((uniq == 0).all(1))[0])
        q = np.linalg.norm(crystal.g_vectors(uniq), axis=1)
        self._q = q
        self._s2 = torch.as_tensor((q / 2) ** 2)
        f = np.empty((len(crystal), len(q)))
        for element in set(crystal.elements):
            rows = [i for i, e in enumerate(crystal.elements) if e == element]
            f[rows] = scattering_factor(element, q, table=settings.scattering_factors)
        self._f = torch.as_tensor(f)
        self._hkl_u = torch.as_tensor(uniq.astype(float))
        # exp(−2π² gᵀUg) of anisotropic atoms, as the engine's structure factors
        self._dw_aniso = (
            None
            if crystal.u_aniso is None
            else torch.as_tensor(debye_waller_factors(crystal, uniq).T)
        )
        self._prefactor = relativistic_gamma(settings.voltage) / (math.pi * crystal.volume)
        self._bird_king = (
            _BirdKing(q, settings.voltage, settings.scattering_factors)
            if settings.absorption == "bird-king"
            else None
        )
        self._g = torch.as_tensor(self.pool.g)
        self._normal = torch.as_tensor(self.normal)
        self._lattice = [(i, p) for i, p in enumerate(self.parameters) if p.kind == "lattice"]
        if self._lattice and crystal.u_aniso is not None:
            raise ValueError(
                "Lattice parameters cannot yet be refined with anisotropic displacement "
                "tensors (their Debye–Waller factors are fixed at the start cell); use "
                "isotropic B or fix the lattice."
            )
        self._basis0 = torch.as_tensor(crystal.direct_basis)
        self._pool_hkl = torch.as_tensor(self.pool.hkl.astype(float))
        # U_g parameters: which unique differences each one scales (and which conjugates).
        lookup = {tuple(h): i for i, h in enumerate(uniq.tolist())}
        self._ug_index = []
        for p in self.parameters:
            if p.kind in ("Ug", "Ug_phase"):
                hits = [
                    (lookup[tuple(h)], s)
                    for h, s in zip(p.hkl.tolist(), p.signs)
                    if tuple(h) in lookup
                ]
                self._ug_index.append((p.name, p.kind, hits))

    # ------------------------------------------------------------------ parameters
    def start_vector(self):
        """The parameters' start values as a float64 tensor."""
        import torch

        return torch.tensor([p.value for p in self.parameters], dtype=torch.float64)

    def _get(self, x, kind: str, default: float):
        for i, p in enumerate(self.parameters):
            if p.kind == kind:
                return x[i]
        import torch

        return torch.tensor(default, dtype=torch.float64)

    def get(self, x, name: str, default: float):
        """Value of the parameter ``name`` in ``x`` (``default`` when it is not refined)."""
        import torch

        if name in self.names:
            return x[self.names.index(name)]
        return torch.tensor(default, dtype=torch.float64)

    def atom_values(self, x):
        """Occupancies (n,), B (n,) and fractional positions (n, 3) of every atom at ``x``."""
        import torch

        c = self.crystal
        occ = torch.as_tensor(c.occupancies.copy())
        b = torch.as_tensor(c.b_iso.copy())
        pos = torch.as_tensor(c.positions.copy())
        for i, p in enumerate(self.parameters):
            w = None if p.atoms is None else torch.as_tensor(p.atoms)
            if p.kind == "B":
                b = b + (x[i] - p.reference) * w
            elif p.kind == "occupancy":
                occ = occ + (x[i] - p.reference) * w
            elif p.kind == "xyz":
                pos = pos + (x[i] - p.reference) * w
        return occ, b, pos

    # ------------------------------------------------------------------ geometry
    def direct_basis(self, x):
        """The cell's lattice vectors (rows, Å) at ``x``: lengths scaled, angles kept."""
        import torch

        ratio = torch.ones(3, dtype=torch.float64)
        for i, p in self._lattice:
            ratio = ratio * (x[i] / p.reference) ** torch.as_tensor(p.axes)
        return ratio[:, None] * self._basis0

    def geometry(self, x):
        """Pool vectors g (P, 3) in the zone-axis frame and the unit surface normal at ``x``.

        Fixed at the start unless a lattice parameter is refined; then the frame follows
        the cell: z along [uvw], x along the x-direction made perpendicular to it.
        """
        import torch

        if not self._lattice:
            return self._g, self._normal
        basis = self.direct_basis(x)
        recip = torch.linalg.inv(basis).T
        unit = lambda v: v / torch.linalg.norm(v)  # noqa: E731
        ez = unit(torch.as_tensor(np.asarray(self.frame.zone_axis, float)) @ basis)
        ex = torch.as_tensor(np.asarray(self.frame.x_direction, float)) @ basis
        ex = unit(ex - (ex @ ez) * ez)
        rot = torch.stack([ex, torch.linalg.cross(ez, ex), ez])
        g = self._pool_hkl @ recip @ rot.T
        surface = self.settings.surface_normal
        if surface is None:
            return g, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        return g, rot @ unit(torch.as_tensor(np.asarray(surface, float)) @ basis)

    def _form_factor_tables(self, x):
        """(f (n_atoms, n_u), s² (n_u,), γ/(πΩ)) at ``x``: the start's unless the cell changes."""
        import torch

        if not self._lattice:
            return self._f, self._s2, self._prefactor
        basis = self.direct_basis(x)
        q = torch.linalg.norm(self._hkl_u @ torch.linalg.inv(basis).T, dim=1)
        f = _scattering_factors_at(self.crystal.elements, q, self.settings.scattering_factors)
        volume = torch.abs(torch.linalg.det(basis))
        prefactor = relativistic_gamma(self.settings.voltage) / (math.pi * volume)
        return f, (q / 2) ** 2, prefactor

    # ------------------------------------------------------------------ physics
    def fourier_coefficients(self, x):
        """U_g + i U'_g of every unique beam difference (Å⁻²), complex tensor (n_u,)."""
        import torch

        occ, b, pos = self.atom_values(x)
        f, s2, prefactor = self._form_factor_tables(x)
        phase = torch.exp(-2j * math.pi * (self._hkl_u @ pos.T))  # (n_u, n_atoms)
        weight = occ[:, None] * f
        if self.settings.debye_waller and self._dw_aniso is None:
            weight = weight * torch.exp(-b[:, None] * s2[None, :])
        elif self.settings.debye_waller:
            # anisotropic tensors at the start; a refined B adds an isotropic change
            db = b - torch.as_tensor(self.crystal.b_iso)
            weight = weight * self._dw_aniso * torch.exp(-db[:, None] * s2[None, :])
        u = prefactor * (phase * weight.T).sum(1)
        factor = torch.ones(len(self.uniq), dtype=torch.complex128)
        for name, kind, hits in self._ug_index:
            v = x[self.names.index(name)]
            js = torch.as_tensor([j for j, _ in hits], dtype=torch.long)
            if kind == "Ug":
                c = (1 + v).to(torch.complex128).expand(len(hits))
            else:
                signs = torch.as_tensor([s for _, s in hits], dtype=torch.float64)
                c = torch.exp(1j * signs * v)
            ones = torch.ones(len(self.uniq), dtype=torch.complex128)
            factor = factor * ones.index_put((js,), c)
        u = u * factor
        absorption = self.settings.absorption
        if absorption == "none":
            u_abs = torch.zeros_like(u)
        elif absorption == "proportional":
            u_abs = self._get(x, "absorption", self.settings.absorption_fraction) * u
        else:
            fp = torch.stack(
                [self._bird_king(e, b[a]) * occ[a] for a, e in enumerate(self.crystal.elements)]
            )  # (n_atoms, n_u)
            u_abs = prefactor * (phase * fp.T).sum(1)
        return u + 1j * u_abs

    def wave_number(self, x, coefficients=None):
        """K inside the crystal (1/Å): refracted by U_0 when the settings ask for it."""
        import torch

        k = torch.tensor(self.k_vac, dtype=torch.float64)
        if not self.settings.mean_inner_potential:
            return k
        u = self.fourier_coefficients(x) if coefficients is None else coefficients
        return torch.sqrt(k**2 + u[self._zero].real)

    def tilts(self, x, index: np.ndarray | None = None):
        """Transverse incident wave vectors (T, 2) of the pixels (flat row-major ``index``)."""
        import torch

        n = self.pixels
        flat = np.arange(n * n) if index is None else np.asarray(index)
        i, j = np.divmod(flat, n)
        scale = self.get(x, "scale", 1.0)
        cx = torch.as_tensor((j - n / 2 + 0.5) * self.dk)
        cy = torch.as_tensor((i - n / 2 + 0.5) * self.dk)
        kx = scale * cx + self.get(x, "offset_x", 0.0)
        ky = scale * cy + self.get(x, "offset_y", 0.0)
        return torch.stack([kx, ky], dim=1)

    def choose_beams(self, x) -> None:
        """Choose the strong beams of every tilt at ``x`` (they stay fixed until called again)."""
        import torch

        with torch.no_grad():
            t = self.tilts(x).numpy()
            g = self.geometry(x)[0].numpy()
        k = incident_vectors(t[:, 0], t[:, 1], self.pool.k0)
        s = excitation_errors(k, g, self.pool.k0)
        strong, weak = select_beams(s, self.pool, self.rule, self.out_idx)
        self._weak = padded_indices(weak)[0] if weak.any() else None
        self._strong, counts = padded_indices(strong)
        self._pos = output_positions(self._strong, self.out_idx)
        self.max_beams = self._strong.shape[1]
        self.mean_beams = float(counts.mean())

    def intensities(self, x, index: np.ndarray | None = None):
        """``|ψ_g(t)|²`` of the discs at the pixels ``index`` (all by default), tensor (T, R)."""
        import torch

        n_pix = self.pixels**2
        index = np.arange(n_pix) if index is None else np.asarray(index)
        pot, k0 = self._potential(x)
        thickness = self.get(x, "thickness", self.thickness0)
        out = []
        for start in range(0, len(index), self.chunk):
            sub = index[start : start + self.chunk]
            out.append(self._chunk(x, pot, k0, thickness, sub))
        return torch.cat(out)

    def _matrices(self, x, pot, k0, sub):
        """Structure matrices A (T, M, M) of the tilts ``sub`` and the row scales (the engine's)."""
        import torch

        t2 = self.tilts(x, sub)
        kz = torch.sqrt(k0**2 - (t2**2).sum(1))
        k = torch.cat([t2, kz[:, None]], dim=1)  # (T, 3)
        g, normal = self.geometry(x)
        s = excitation_errors(k, g, k0)
        weak = None if self._weak is None else torch.as_tensor(self._weak[sub])
        return structure_matrices(
            pot, s, k0, k @ normal, g @ normal,
            torch.as_tensor(self._strong[sub]), weak,
        )  # fmt: skip

    def _output_rows(self, sub):
        import torch

        pos = self._pos[sub]
        return torch.as_tensor(np.where(pos < 0, 0, pos)), torch.as_tensor(pos < 0)

    def _chunk(self, x, pot, k0, thickness, sub):
        import torch

        a, scale = self._matrices(x, pot, k0, sub)
        psi = column_propagate(a, thickness, self.propagator)
        pos, missing = self._output_rows(sub)
        rows = torch.arange(len(sub))[:, None]
        return output_intensities(psi[rows, pos], scale, pos, missing)

    def _potential(self, x):
        full = self.fourier_coefficients(x)
        k0 = self.wave_number(x, full)
        return with_diagonal(full[self._inverse], self.settings.diagonal), k0

    def intensity_series(self, x, thicknesses: Sequence[float]):
        """``|ψ_g|²`` at many thicknesses from one eigen-solve per tilt (no gradient), (n_t, T, R).

        For the coarse thickness scan that seeds a fit; the eigen-decomposition serves every
        thickness, as in the engine.
        """
        import torch

        with torch.no_grad():
            pot, k0 = self._potential(x)
            th = torch.as_tensor(np.asarray(thicknesses, float))
            index = np.arange(self.pixels**2)
            out = []
            for start in range(0, len(index), self.chunk):
                sub = index[start : start + self.chunk]
                a, scale = self._matrices(x, pot, k0, sub)
                pos, missing = self._output_rows(sub)
                psi = eigen_propagate(a, th, pos)  # (T, nt, R)
                out.append(output_intensities(psi, scale, pos, missing).transpose(0, 1))
            return torch.cat(out, dim=1)

    def discs(self, x):
        """Intensities as images (R, 2N, 2N) in the engine's frame."""
        n = self.pixels
        return self.intensities(x).T.reshape(len(self.reflections), n, n)

    def crystal_at(self, x) -> Crystal:
        """The crystal with the parameters ``x`` applied (U_g factors are not a crystal property)."""
        occ, b, pos = (v.detach().numpy() for v in self.atom_values(x))
        lengths = np.asarray(self.crystal.lattice_parameters[:3], float)
        for i, p in self._lattice:
            lengths = lengths * (float(x[i]) / p.reference) ** p.axes
        return Crystal.from_dict(
            {
                **self.crystal.to_dict(),
                "lattice_parameters": [*lengths.tolist(), *self.crystal.lattice_parameters[3:]],
                "positions": np.mod(pos, 1.0).tolist(),
                "occupancies": np.clip(occ, 1e-6, 1.0).tolist(),
                "b_iso": np.clip(b, 0.0, None).tolist(),
            }
        )
