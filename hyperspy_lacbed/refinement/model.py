"""A differentiable Bloch-wave LACBED forward model (torch autograd).

The model follows the engine (:mod:`hyperspy_lacbed.bloch.solver`) step for step: the same
beam pool (:func:`~hyperspy_lacbed.bloch.solver.build_pool`), the same strong-beam
selection per tilt (:func:`~hyperspy_lacbed.bloch.solver.select_beams`), exact excitation
errors, the surface-normal scaling and the diagonal conventions. What differs is that

- the Fourier coefficients U_g + i U'_g are computed in torch from the crystal's
  occupancies, Debye–Waller factors and positions, so that every parameter of
  :mod:`hyperspy_lacbed.refinement.parameters` reaches the intensities through autograd;
- the wave function is ψ(t) = exp(2πi t A) e_000 with ``torch.linalg.matrix_exp``
  (as diffBloch does) instead of an eigen-decomposition: its backward is well defined
  when eigenvalues are degenerate (exactly symmetric tilts), where the eigenvector
  backward divides by γ_i − γ_j.

Weak beams enter as Bethe potentials as in the engine. There is no symmetry folding (a
tilt offset breaks the symmetry of the grid). The strong and weak beams of every tilt
are chosen once, at the start geometry, so the model is a smooth function of the
parameters.

Plain arrays and torch; no HyperSpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors
from hyperspy_lacbed.bloch.solver import (
    BeamRule,
    build_pool,
    map_per_core,
    padded_indices,
    refracted_wavenumber,
    select_beams,
)
from hyperspy_lacbed.crystal.scattering import absorptive_scattering_factor, scattering_factor
from hyperspy_lacbed.crystal.structure import Crystal, zone_frame
from hyperspy_lacbed.refinement.parameters import Parameter
from hyperspy_lacbed.units import electron_wavelength, relativistic_gamma, to_magnitude


@dataclass(frozen=True)
class Physics:
    """The physics settings of the forward model (the engine's names and meanings).

    Lengths in Å, voltage in V. ``preset="felix"`` in :meth:`from_kwargs` gives Felix's
    conventions, as for :func:`hyperspy_lacbed.simulate`.
    """

    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] | None = None
    surface_normal: tuple[int, int, int] | None = None
    voltage: float = 200e3
    absorption: str = "proportional"
    absorption_fraction: float = 0.1
    scattering_factors: str = "kirkland"
    debye_waller: bool = True
    strong_beams: int = 60
    weak_beams: int = 0
    beam_pool: int | None = None
    strong_beam_step: float = 0.0
    mean_inner_potential: bool = True
    mean_absorption: bool = True

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Physics:
        """Settings from :func:`~hyperspy_lacbed.simulate`-style keywords (units allowed)."""
        preset = kwargs.pop("preset", None)
        if preset is not None:
            if preset != "felix":
                raise ValueError(f"Unknown preset {preset!r}; available: felix.")
            from hyperspy_lacbed.bloch.settings import felix_settings

            kwargs = felix_settings(**{k: v for k, v in kwargs.items() if v is not None})
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(
                f"Unknown physics setting(s) {sorted(unknown)}; the model takes {sorted(known)}."
            )
        if "voltage" in kwargs:
            kwargs["voltage"] = float(to_magnitude(kwargs["voltage"], "V", "voltage"))
        for key in ("zone_axis", "x_direction", "surface_normal"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        if int(kwargs.get("weak_beams") or 0) < 0:
            raise ValueError(f"weak_beams must be ≥ 0, got {kwargs['weak_beams']}.")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for metadata)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def diagonal(self) -> str:
        """The engine's diagonal mode of the potential matrix."""
        if not self.mean_absorption:
            return "none"
        return "absorptive" if self.mean_inner_potential else "full"


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


def _phi(lam):
    """Divided differences of exp: Φ_ij = (e^λi − e^λj)/(λi − λj), e^λi where λi = λj.

    Written as e^λj · (e^δ − 1)/δ with δ = λi − λj and a series for small |δ|, so that it
    is exact at (and smooth through) degenerate eigenvalues.
    """
    import torch

    d = lam[..., :, None] - lam[..., None, :]
    small = d.abs() < 1e-5
    safe = torch.where(small, torch.ones_like(d), d)
    ratio = torch.where(small, 1 + d / 2 + d * d / 6 + d * d * d / 24, torch.expm1(safe) / safe)
    return torch.exp(lam)[..., None, :] * ratio


def _make_expm_column():
    import torch

    class ExpmColumn(torch.autograd.Function):
        """ψ = exp(X) e_0 (first column) by eigen-decomposition, with an exact backward.

        The backward is the adjoint of the Fréchet derivative of the matrix exponential in
        the eigenbasis (Daleckii–Krein): for X = V Λ V⁻¹,
        dψ = V [Φ ∘ (V⁻¹ dX V)] V⁻¹ e_0 with Φ the divided differences of exp, which stay
        finite when eigenvalues coincide, unlike the eigenvector backward of
        ``torch.linalg.eig`` (1/(λi − λj)). It needs X diagonalisable, as the engine does.
        """

        @staticmethod
        def forward(ctx, x):
            lam, vec = map_per_core(torch.linalg.eig, x)
            vinv = map_per_core(torch.linalg.inv, vec)
            alpha = vinv[..., :, 0]
            psi = (vec * (torch.exp(lam) * alpha)[..., None, :]).sum(-1)
            ctx.save_for_backward(lam, vec, vinv)
            return psi

        @staticmethod
        def backward(ctx, grad):
            lam, vec, vinv = ctx.saved_tensors
            p = (vec.conj().transpose(-2, -1) @ grad[..., None])[..., 0]  # V^H g
            alpha = vinv[..., :, 0]
            w = p[..., :, None] * alpha.conj()[..., None, :] * _phi(lam).conj()
            return vinv.conj().transpose(-2, -1) @ w @ vec.conj().transpose(-2, -1)

    return ExpmColumn


_EXPM_COLUMN = None


def expm_column(x):
    """exp(X)[..., :, 0] for a batch of square complex matrices, differentiable.

    Eigen-decomposition forward, degeneracy-safe Fréchet-derivative backward (see
    ``ExpmColumn``); about 3× cheaper than ``torch.linalg.matrix_exp`` with its backward.
    """
    global _EXPM_COLUMN
    if _EXPM_COLUMN is None:
        _EXPM_COLUMN = _make_expm_column()
    return _EXPM_COLUMN.apply(x)


class BlochModel:
    """LACBED disc intensities as a differentiable function of the refinable parameters.

    Parameters
    ----------
    crystal
        The start crystal.
    physics
        Physics settings (:class:`Physics`).
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
        ``"eig"`` (default): eigen-decomposition with the degeneracy-safe Fréchet backward
        (:func:`expm_column`); ``"expm"``: ``torch.linalg.matrix_exp`` (as diffBloch).

    Notes
    -----
    ``intensities(x)`` returns ``|ψ_g|²`` in the engine's frame, pixel ``[i, j]`` at
    k_x = scale (j − N + ½) dk + offset_x, k_y = scale (i − N + ½) dk + offset_y.
    """

    def __init__(
        self,
        crystal: Crystal,
        physics: Physics,
        reflections: np.ndarray,
        pixels: int,
        dk: float,
        parameters: Sequence[Parameter] = (),
        *,
        thickness: float = 1000.0,
        chunk: int = 256,
        propagator: str = "eig",
    ):
        import torch

        self.crystal = crystal
        self.physics = physics
        self.parameters = list(parameters)
        self.names = [p.name for p in self.parameters]
        self.pixels = int(pixels)
        if self.pixels < 2 or self.pixels % 2:
            raise ValueError(f"pixels must be an even number ≥ 2, got {pixels}.")
        self.dk = float(dk)
        self.thickness0 = float(thickness)
        self.chunk = int(chunk)
        if propagator not in ("eig", "expm"):
            raise ValueError(f"propagator must be 'eig' or 'expm', not {propagator!r}.")
        self.propagator = propagator
        frame = zone_frame(crystal, physics.zone_axis, physics.x_direction)
        self.frame = frame
        uvw = np.asarray(frame.zone_axis)
        reflections = np.asarray(reflections, int).reshape(-1, 3)
        off = reflections @ uvw != 0
        if off.any():
            raise ValueError(
                f"Reflection {reflections[off][0].tolist()} is not in the zero-order Laue zone "
                f"of zone axis {list(frame.zone_axis)} (h·u + k·v + l·w must be 0); give "
                "reflections of the zone."
            )
        self.reflections = reflections
        if physics.surface_normal is None:
            normal = np.array([0.0, 0.0, 1.0])
        else:
            n_cart = np.asarray(physics.surface_normal, float) @ crystal.direct_basis
            normal = frame.rotation @ (n_cart / np.linalg.norm(n_cart))
        self.normal = normal
        voltage = physics.voltage
        self.k_vac = 1.0 / electron_wavelength(voltage)
        required = np.concatenate([np.zeros((1, 3), int), reflections])
        pool = build_pool(
            crystal,
            frame,
            self.k_vac,
            voltage,
            physics.beam_pool or max(3 * physics.strong_beams + 30, 60),
            scattering_factors=physics.scattering_factors,
            debye_waller=physics.debye_waller,
            absorption=physics.absorption,
            absorption_fraction=physics.absorption_fraction,
            diagonal=physics.diagonal,
            normal=normal,
            required=required,
        )
        if physics.mean_inner_potential:
            k_in = refracted_wavenumber(
                crystal, self.k_vac, voltage, physics.scattering_factors, physics.debye_waller
            )
            pool = replace(pool, k0=k_in)
        self.pool = pool
        self.out_idx = np.array(
            [int(np.flatnonzero((pool.hkl == h).all(1))[0]) for h in reflections]
        )
        self.rule = BeamRule(
            strong_beams=physics.strong_beams,
            weak_beams=physics.weak_beams,
            s_step=physics.strong_beam_step,
            count_uncoupled=physics.strong_beam_step > 0,
        )

        # Unique differences g_i − g_j: their U_g are the model's structure factors.
        hkl = pool.hkl
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
            f[rows] = scattering_factor(element, q, table=physics.scattering_factors)
        self._f = torch.as_tensor(f)
        self._hkl_u = torch.as_tensor(uniq.astype(float))
        self._prefactor = relativistic_gamma(voltage) / (math.pi * crystal.volume)
        self._bird_king = (
            _BirdKing(q, voltage, physics.scattering_factors)
            if physics.absorption == "bird-king"
            else None
        )
        self._g = torch.as_tensor(pool.g)
        self._normal = torch.as_tensor(normal)
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
        self.choose_beams(self.start_vector())

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

    # ------------------------------------------------------------------ physics
    def fourier_coefficients(self, x):
        """U_g + i U'_g of every unique beam difference (Å⁻²), complex tensor (n_u,)."""
        import torch

        occ, b, pos = self.atom_values(x)
        phase = torch.exp(-2j * math.pi * (self._hkl_u @ pos.T))  # (n_u, n_atoms)
        weight = occ[:, None] * self._f
        if self.physics.debye_waller:
            weight = weight * torch.exp(-b[:, None] * self._s2[None, :])
        u = self._prefactor * (phase * weight.T).sum(1)
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
        absorption = self.physics.absorption
        if absorption == "none":
            u_abs = torch.zeros_like(u)
        elif absorption == "proportional":
            u_abs = self._get(x, "absorption", self.physics.absorption_fraction) * u
        else:
            fp = torch.stack(
                [self._bird_king(e, b[a]) * occ[a] for a, e in enumerate(self.crystal.elements)]
            )  # (n_atoms, n_u)
            u_abs = self._prefactor * (phase * fp.T).sum(1)
        return u + 1j * u_abs

    def wave_number(self, x):
        """K inside the crystal (1/Å): refracted by U_0 when the physics asks for it."""
        import torch

        k = torch.tensor(self.k_vac, dtype=torch.float64)
        if not self.physics.mean_inner_potential:
            return k
        u = self.fourier_coefficients(x)
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
        k = incident_vectors(t[:, 0], t[:, 1], self.pool.k0)
        s = excitation_errors(k, self.pool.g, self.pool.k0)
        strong, weak = select_beams(s, self.pool, self.rule, self.out_idx)
        self._widx = None
        if weak.any():
            widx, _ = padded_indices(weak)
            self._wpad = widx < 0
            self._widx = np.where(self._wpad, 0, widx)  # 0: safe to gather, masked later
        order, counts = padded_indices(strong)
        valid = order >= 0
        m = order.shape[1]
        self._idx = np.where(valid, order, 0)
        self._pad = ~valid
        pos = np.full((len(t), len(self.out_idx)), -1)
        for r, o in enumerate(self.out_idx):
            hit = (order == o) & valid
            pos[:, r] = np.where(hit.any(1), hit.argmax(1), -1)
        self._pos = pos
        self.max_beams = m
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
        """Scaled structure matrices A (T, M, M) of the tilts ``sub`` and the row scales."""
        import torch

        t2 = self.tilts(x, sub)
        kz = torch.sqrt(k0**2 - (t2**2).sum(1))
        k = torch.cat([t2, kz[:, None]], dim=1)  # (T, 3)
        g = self._g
        gk = k @ g.T  # (T, P)
        b = k0 + gk / k0
        c = (g**2).sum(1)[None, :] + 2 * gk
        # exact excitation error, written without cancellation (bloch.geometry)
        s = -c / (b + torch.sqrt(b**2 - c))
        kn = k @ self._normal
        d = 1.0 + (g @ self._normal)[None, :] / kn[:, None]
        idx = torch.as_tensor(self._idx[sub])
        pad = torch.as_tensor(self._pad[sub])
        rows = torch.arange(len(sub))[:, None]
        a = pot[idx[:, :, None], idx[:, None, :]]
        a = a + torch.diag_embed((2 * k0 * s[rows, idx]).to(a.dtype))
        if self._widx is not None:
            # weak beams as Bethe potentials, as the engine (bloch.solver):
            # U_eff(g, h) = U(g, h) − Σ_w U(g, w) U(w, h) / (2K s_w)
            wi = torch.as_tensor(self._widx[sub])
            wpad = torch.as_tensor(self._wpad[sub])
            # padding entries point at 000 (s = 0): keep 1/s finite there, or its gradient
            # through the discarded branch of the where() is NaN
            s_w = torch.where(wpad, torch.ones_like(s[rows, wi]), s[rows, wi])
            inv = torch.where(wpad, torch.zeros_like(s_w), 1.0 / (2 * k0 * s_w))
            u_sw = pot[idx[:, :, None], wi[:, None, :]]
            u_ws = pot[wi[:, :, None], idx[:, None, :]]
            a = a - torch.einsum("tmw,tw,twn->tmn", u_sw, inv.to(a.dtype), u_ws)
        # padding beams are uncoupled and never excited: zero rows and columns
        a = torch.where(pad[:, :, None] | pad[:, None, :], torch.zeros((), dtype=a.dtype), a)
        scale = torch.sqrt(d[rows, idx])
        a = a / (2 * kn[:, None, None] * scale[:, :, None] * scale[:, None, :])
        return a, scale

    def _outputs(self, psi, scale, sub):
        import torch

        rows = torch.arange(len(sub))[:, None]
        pos = self._pos[sub]
        pos_t = torch.as_tensor(np.where(pos < 0, 0, pos))
        psi_out = psi[..., rows, pos_t] / scale[rows, pos_t]
        inten = psi_out.real**2 + psi_out.imag**2
        return torch.where(torch.as_tensor(pos < 0), torch.zeros((), dtype=inten.dtype), inten)

    def _chunk(self, x, pot, k0, thickness, sub):
        import torch

        a, scale = self._matrices(x, pot, k0, sub)
        # ψ(t) = exp(2πi t A) e_000; both propagators have exact backwards at degeneracies.
        x_mat = 2j * math.pi * thickness * a
        if self.propagator == "expm":
            psi = torch.linalg.matrix_exp(x_mat)[:, :, 0]
        else:
            psi = expm_column(x_mat)
        return self._outputs(psi, scale, sub)

    def _potential(self, x):
        import torch

        full = self.fourier_coefficients(x)
        k0 = torch.tensor(self.k_vac, dtype=torch.float64)
        if self.physics.mean_inner_potential:
            k0 = torch.sqrt(k0**2 + full[self._zero].real)
        pot = full[self._inverse]  # (P, P)
        mode = self.physics.diagonal
        eye = torch.eye(len(pot), dtype=torch.bool)
        if mode == "none":
            pot = torch.where(eye, torch.zeros((), dtype=pot.dtype), pot)
        elif mode == "absorptive":
            pot = torch.where(eye, 1j * pot.imag, pot)
        return pot, k0

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
                gamma, vec = map_per_core(torch.linalg.eig, a)
                e0 = torch.zeros(a.shape[:2] + (1,), dtype=a.dtype)
                e0[:, 0, 0] = 1.0
                alpha = torch.linalg.solve(vec, e0)[..., 0]  # (T, M)
                phase = torch.exp(2j * math.pi * gamma[None] * th[:, None, None])  # (nt, T, M)
                psi = torch.einsum("tmj,ntj->ntm", vec * alpha[:, None, :], phase)
                out.append(self._outputs(psi, scale, sub))
            return torch.cat(out, dim=1)

    def discs(self, x):
        """Intensities as images (R, 2N, 2N) in the engine's frame."""
        n = self.pixels
        return self.intensities(x).T.reshape(len(self.reflections), n, n)

    def crystal_at(self, x) -> Crystal:
        """The crystal with the parameters ``x`` applied (U_g factors are not a crystal property)."""
        occ, b, pos = (v.detach().numpy() for v in self.atom_values(x))
        return Crystal.from_dict(
            {
                **self.crystal.to_dict(),
                "positions": np.mod(pos, 1.0).tolist(),
                "occupancies": np.clip(occ, 1e-6, 1.0).tolist(),
                "b_iso": np.clip(b, 0.0, None).tolist(),
            }
        )
