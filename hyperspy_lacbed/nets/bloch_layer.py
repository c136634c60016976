"""A differentiable few-beam Bloch-wave layer for the surrogates (physics inside the generator).

:class:`FewBeamBloch` computes the LACBED discs of a batch of cubic [001] crystals from
their zero-order Fourier coefficients U_g (Å⁻²), lattice parameters a and thicknesses
t, on the engine's own core: the same beam selection
(:func:`~hyperspy_lacbed.bloch.solver.select_beams`), the same structure matrices
(:func:`~hyperspy_lacbed.bloch.matrix.structure_matrices`, with Bethe weak beams) and
the engine's differentiable propagator
(:func:`~hyperspy_lacbed.bloch.propagate.column_propagate`). At equal beams it
reproduces :func:`~hyperspy_lacbed.simulate` (``symmetry=False``), and gradients reach
U_g, so a network can *correct* the structure factors of the small beam set (learned
effective structure factors, a learned generalisation of Bethe potentials) and stay
physical by construction.

The crystals of a batch are solved in one call: every tilt of every crystal is a row of
one batch of matrices, each with its crystal's potential (the builder's ``crystal``
index), so a mini-batch of small crystals costs one eigen-decomposition call.

Conventions are the domain's: cubic, beam along [001], x along [100], no higher Laue
zones (U_g with l = 0 only), the tilt grid of
:func:`~hyperspy_lacbed.bloch.geometry.tilt_grid` with a disc radius of
``disc_radius_g200 · |g_200|``, ``|g_200| = 2 / a``. The coefficient table is indexed
``[k + H, h + H]`` for g = (h, k, 0), as
:class:`~hyperspy_lacbed.nets.fourier.FourierCoefficients` returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hyperspy_lacbed.bloch.geometry import excitation_errors, tilt_grid
from hyperspy_lacbed.bloch.matrix import (
    diagonal_mode,
    output_positions,
    structure_matrices,
    with_diagonal,
)
from hyperspy_lacbed.bloch.propagate import (
    PROPAGATORS,
    column_propagate,
    eigen_propagate,
    output_intensities,
)
from hyperspy_lacbed.bloch.solver import (
    BeamPool,
    BeamRule,
    connected_to_origin,
    padded_indices,
    select_beams,
)
from hyperspy_lacbed.units import electron_wavelength

__all__ = [
    "BeamChoice",
    "FewBeamBloch",
    "fold_orbits",
    "folded_intensities",
    "pool_h_max_for",
    "unfold",
]


def pool_h_max_for(n_beams: int) -> int:
    """Half-width H of the square (h, k) pool that holds ``n_beams`` coupled beams.

    The sparsest cubic [001] zone couples one (h, k) in eight (the diamond glide: h, k
    even and h + k a multiple of 4); the pool holds 1.5× that many for the weak beams'
    ranking, and at least the 3 × 3 square.
    """
    return max(2, math.ceil(math.sqrt(8 * 1.5 * max(n_beams, 1) / math.pi)) + 1)


@dataclass(frozen=True)
class BeamChoice:
    """The beams of every tilt of a batch, on a compact pool (no gradient: discrete).

    Attributes
    ----------
    hk
        (Q, 2) Miller indices (h, k) of the compact pool, 000 first.
    strong, weak
        Long tensors (B·T, M) and (B·T, W) of compact-pool indices, −1 for padding.
    pos, missing
        Row of each output disc in its tilt's strong beams (clipped), and whether it is
        not strong there, (B·T, R).
    """

    hk: np.ndarray
    strong: torch.Tensor
    weak: torch.Tensor | None
    pos: torch.Tensor
    missing: torch.Tensor


class FewBeamBloch(nn.Module):
    """Few-beam Bloch-wave discs of cubic [001] crystals from their U_g, differentiable in U_g.

    Parameters
    ----------
    reflections
        The discs (R, 3), l = 0.
    disc_pixels
        D, the side of each disc (even).
    disc_radius_g200
        Disc radius in units of ``|g_200|``.
    voltage
        Accelerating voltage in V.
    strong_beams, weak_beams
        Beams per tilt, as for :func:`~hyperspy_lacbed.simulate` (the rule of
        :class:`~hyperspy_lacbed.bloch.solver.BeamRule`: the nearest to the Ewald sphere,
        plus the strongly excited ones; the outputs are always strong).
    absorption_fraction
        Proportional absorption U'_g = fraction · U_g.
    mean_inner_potential, mean_absorption
        As the engine's settings of the same names: K refracted by U_0; i U'_0 on the
        diagonal.
    pool_h_max
        Half-width of the (h, k) pool (default :func:`pool_h_max_for` the beam count);
        the coefficient table must reach ``2 · pool_h_max``.
    propagator
        ``"eig"`` or ``"expm"`` (:func:`~hyperspy_lacbed.bloch.propagate.column_propagate`).
    """

    def __init__(
        self,
        reflections: Sequence[Sequence[int]],
        disc_pixels: int,
        disc_radius_g200: float,
        voltage: float = 200e3,
        strong_beams: int = 10,
        weak_beams: int = 0,
        *,
        absorption_fraction: float = 0.1,
        mean_inner_potential: bool = True,
        mean_absorption: bool = False,
        pool_h_max: int | None = None,
        propagator: str = "eig",
    ):
        super().__init__()
        refl = np.asarray(reflections, int).reshape(-1, 3)
        if (refl[:, 2] != 0).any():
            raise ValueError("The layer computes the zero-order Laue zone of [001]: l must be 0.")
        if propagator not in PROPAGATORS:
            raise ValueError(f"propagator must be one of {PROPAGATORS}, not {propagator!r}.")
        self.reflections = refl
        self.disc_pixels = int(disc_pixels)
        self.disc_radius_g200 = float(disc_radius_g200)
        self.k_vac = 1.0 / electron_wavelength(float(voltage))
        self.rule = BeamRule(strong_beams=int(strong_beams), weak_beams=int(weak_beams))
        self.absorption_fraction = float(absorption_fraction)
        self.mean_inner_potential = bool(mean_inner_potential)
        self.diagonal = diagonal_mode(self.mean_inner_potential, mean_absorption)
        self.pool_h_max = int(pool_h_max or pool_h_max_for(strong_beams + weak_beams))
        self.propagator = propagator
        h = self.pool_h_max
        r = range(-h, h + 1)
        hk = sorted(((a, b) for a in r for b in r), key=lambda p: (p[0] ** 2 + p[1] ** 2, p))
        self.pool_hk = np.array(hk, int)  # 000 first
        self.out_idx = np.array(
            [int(np.flatnonzero((self.pool_hk == q[:2]).all(1))[0]) for q in refl]
        )
        kx, ky = tilt_grid(self.disc_pixels // 2, 1.0)  # in units of dk
        self.tilt_units = np.stack([kx.ravel(), ky.ravel()], 1)  # row-major pixels

    @property
    def rule_counts(self) -> tuple[int, int]:
        """(strong, weak) beams per tilt."""
        return self.rule.strong_beams, self.rule.weak_beams

    @property
    def table_h_max(self) -> int:
        """The smallest half-width of the U_g table the layer needs (pool differences)."""
        return 2 * self.pool_h_max

    def wave_numbers(self, u: torch.Tensor) -> torch.Tensor:
        """K (1/Å) of each crystal, (B,): refracted by Re U_0 when the settings ask."""
        k = torch.full(u.shape[:1], self.k_vac, dtype=torch.float64, device=u.device)
        if not self.mean_inner_potential:
            return k
        c = u.shape[-1] // 2
        return torch.sqrt(k**2 + u[:, c, c].real.to(torch.float64))

    def incident_vectors(
        self, a: torch.Tensor, k0: torch.Tensor, pixels: Sequence[np.ndarray] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Incident wave vectors (N, 3) of the tilts solved, and each one's crystal (N,).

        ``pixels`` lists, per crystal, the flat (row-major) pixels to solve; default all.
        """
        n_pix = len(self.tilt_units)
        if pixels is None:
            pixels = [np.arange(n_pix)] * len(a)
        which = torch.as_tensor(np.repeat(np.arange(len(a)), [len(p) for p in pixels]))
        flat = torch.as_tensor(np.concatenate([np.asarray(p, int) for p in pixels]))
        dk = self.disc_radius_g200 * 2.0 / a.to(torch.float64) / (self.disc_pixels // 2)
        t2 = torch.as_tensor(self.tilt_units, device=a.device)[flat] * dk[which, None]
        kz = torch.sqrt(k0[which] ** 2 - (t2**2).sum(-1))
        return torch.cat([t2, kz[:, None]], -1), which.to(a.device)

    def _excitation_errors(self, k, which, hk, a, k0) -> torch.Tensor:
        """s_g (N, Q) of every solved tilt for the beams ``hk`` of its crystal."""
        g = self._g(torch.as_tensor(hk, device=a.device), a)  # (B, Q, 3)
        rows = [torch.nonzero(which == b)[:, 0] for b in range(len(a))]
        # one matrix product per crystal (its own g and K), then back in row order
        parts = [excitation_errors(k[r], g[b], k0[b]) for b, r in enumerate(rows)]
        order = torch.argsort(torch.cat(rows))
        return torch.cat(parts)[order]

    def choose_beams(
        self, u: torch.Tensor, a: torch.Tensor, pixels: Sequence[np.ndarray] | None = None
    ) -> BeamChoice:
        """Strong and weak beams of every solved tilt of every crystal (the engine's rule)."""
        self._check_table(u)
        with torch.no_grad():
            k0 = self.wave_numbers(u)
            k, which = self.incident_vectors(a, k0, pixels)
            s = self._excitation_errors(k, which, self.pool_hk, a, k0).cpu().numpy()
            table = np.abs(u.detach().cpu().numpy()) * math.hypot(1.0, self.absorption_fraction)
            g = self._g(torch.as_tensor(self.pool_hk), a).cpu().numpy()
        which_np = which.cpu().numpy()
        strong = np.zeros(s.shape, bool)
        weak = np.zeros(s.shape, bool)
        for b in range(len(table)):
            rows = which_np == b
            pool = self._pool(table[b], g[b], float(k0[b]))
            strong[rows], weak[rows] = select_beams(s[rows], pool, self.rule, self.out_idx)
        used = np.flatnonzero(strong.any(0) | weak.any(0) | (np.arange(strong.shape[1]) == 0))
        remap = np.full(strong.shape[1], -1)
        remap[used] = np.arange(len(used))
        st_idx = padded_indices(strong[:, used])[0]
        wk_idx = padded_indices(weak[:, used])[0] if weak.any() else None
        pos = output_positions(st_idx, remap[self.out_idx])
        dev = u.device
        return BeamChoice(
            self.pool_hk[used],
            torch.as_tensor(st_idx, device=dev),
            None if wk_idx is None else torch.as_tensor(wk_idx, device=dev),
            torch.as_tensor(np.where(pos < 0, 0, pos), device=dev),
            torch.as_tensor(pos < 0, device=dev),
        )

    def _check_table(self, u: torch.Tensor) -> None:
        if u.shape[-1] // 2 < self.table_h_max:
            raise ValueError(
                f"The U_g table reaches |h|, |k| ≤ {u.shape[-1] // 2}, the pool's differences "
                f"need {self.table_h_max}; give a larger table (FourierCoefficients h_max) or "
                "a smaller pool_h_max."
            )

    def _pool(self, table: np.ndarray, g: np.ndarray, k0: float) -> BeamPool:
        """The engine's pool description of one crystal (coupling, |U_g|, K)."""
        c = table.shape[-1] // 2
        hk = self.pool_hk
        amp = table[hk[:, None, 1] - hk[None, :, 1] + c, hk[:, None, 0] - hk[None, :, 0] + c]
        np.fill_diagonal(amp, 0.0)
        reached = connected_to_origin(amp > 1e-10 * amp.max())
        hkl = np.concatenate([hk, np.zeros((len(hk), 1), int)], 1)
        return BeamPool(hkl, g, amp, reached, amp[:, 0], k0, np.array([0.0, 0.0, 1.0]))

    @staticmethod
    def _g(hk: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reciprocal vectors (B, Q, 3) of (h, k, 0) for each lattice parameter (1/Å)."""
        g2 = hk.to(torch.float64)[None] / a.to(torch.float64)[:, None, None]
        return torch.cat([g2, torch.zeros_like(g2[..., :1])], -1)

    def potential_matrices(
        self, u: torch.Tensor, hk: np.ndarray, diagonal_correction: torch.Tensor | None = None
    ) -> torch.Tensor:
        """U_{g−h} + i U'_{g−h} on the compact pool, (B, Q, Q), with the diagonal convention.

        ``diagonal_correction`` (B, n, n), complex Å⁻², is added to the diagonal entry of
        each beam g = (h, k) (a learned, tilt-independent effective potential).
        """
        c = u.shape[-1] // 2
        if c < int(np.abs(hk).max()) * 2:
            raise ValueError(
                f"The U_g table reaches |h|, |k| ≤ {c}, the beams' differences need "
                f"{2 * int(np.abs(hk).max())}; give a larger table (FourierCoefficients h_max)."
            )
        dh = torch.as_tensor(hk[:, None, 0] - hk[None, :, 0] + c)
        dk = torch.as_tensor(hk[:, None, 1] - hk[None, :, 1] + c)
        ucx = u.to(torch.complex128)
        pot = ucx[:, dk, dh] * complex(1.0, self.absorption_fraction)
        pot = with_diagonal(pot, self.diagonal)
        if diagonal_correction is not None:
            # beams beyond the correction's table keep their plain diagonal
            cd = diagonal_correction.shape[-1] // 2
            inside = torch.as_tensor((np.abs(hk) <= cd).all(1))
            hh = torch.as_tensor(np.clip(hk, -cd, cd) + cd)
            d = diagonal_correction.to(torch.complex128)[:, hh[:, 1], hh[:, 0]]
            pot = pot + torch.diag_embed(torch.where(inside, d, torch.zeros_like(d)))
        return pot

    def forward(
        self,
        u: torch.Tensor,
        a: torch.Tensor,
        t: torch.Tensor,
        diagonal_correction: torch.Tensor | None = None,
        beams: BeamChoice | None = None,
    ) -> torch.Tensor:
        """Disc intensities (B, R, D, D) of crystals with coefficient tables ``u``.

        Parameters
        ----------
        u
            (B, n, n) complex U_g in Å⁻², ``[k + n//2, h + n//2]``, n ≥ 4 pool_h_max + 1.
        a, t
            (B,) lattice parameters and thicknesses, Å.
        diagonal_correction
            Optional (B, m, m) complex Å⁻² added to each beam's diagonal entry.
        beams
            A :class:`BeamChoice` to reuse (default: chosen from ``u`` and ``a``).
        """
        d = self.disc_pixels
        inten = self.intensities(u, a, t, None, diagonal_correction, beams)
        return inten.reshape(u.shape[0], d, d, -1).permute(0, 3, 1, 2)

    def intensities(
        self,
        u: torch.Tensor,
        a: torch.Tensor,
        t: torch.Tensor,
        pixels: Sequence[np.ndarray] | None = None,
        diagonal_correction: torch.Tensor | None = None,
        beams: BeamChoice | None = None,
    ) -> torch.Tensor:
        """Intensities (N, R) of the discs at the tilts ``pixels`` of each crystal.

        ``pixels`` lists, per crystal, the flat (row-major) pixels to solve (default
        all); the rows are those pixels, crystal after crystal. A symmetric crystal needs
        only one pixel of each orbit (the generator folds and unfolds). Without a
        gradient, crystals that differ only in thickness (a pattern's thickness series
        in one batch) share one eigen-solve, as in the engine.
        """
        grad = torch.is_grad_enabled() and (
            u.requires_grad
            or (diagonal_correction is not None and diagonal_correction.requires_grad)
        )
        same = (
            None
            if grad or beams is not None
            else _same_crystals(u, a, pixels, diagonal_correction)
        )
        if same is None:
            beams = beams or self.choose_beams(u, a, pixels)
            return self._solve(u, a, t[:, None], pixels, diagonal_correction, beams)[:, 0]
        first = [g[0] for g in same]
        pick = lambda v: None if v is None else v[first]  # noqa: E731
        sub_pixels = None if pixels is None else [pixels[i] for i in first]
        n_t = max(len(g) for g in same)
        thick = torch.stack([t[[*g, *[g[-1]] * (n_t - len(g))]] for g in same])
        sub_u, sub_a = u[first], a[first]
        beams = self.choose_beams(sub_u, sub_a, sub_pixels)
        inten = self._solve(sub_u, sub_a, thick, sub_pixels, pick(diagonal_correction), beams)
        n_rows = [
            len(self.tilt_units) if pixels is None else len(p)
            for p in (sub_pixels or [None] * len(first))
        ]
        starts = np.concatenate([[0], np.cumsum(n_rows)])
        where = {b: (j, m) for j, g in enumerate(same) for m, b in enumerate(g)}
        return torch.cat(
            [inten[starts[j] : starts[j + 1], m] for j, m in (where[b] for b in range(len(u)))]
        )

    def _solve(self, u, a, thick, pixels, diagonal_correction, beams) -> torch.Tensor:
        """Intensities (N, n_t, R): each crystal at its thicknesses ``thick`` (B, n_t)."""
        pot = self.potential_matrices(u, beams.hk, diagonal_correction)
        k0 = self.wave_numbers(u)
        k, which = self.incident_vectors(a, k0, pixels)
        s = self._excitation_errors(k, which, beams.hk, a, k0)
        gn = torch.zeros(len(beams.hk), dtype=torch.float64, device=u.device)
        mats, scale = structure_matrices(
            pot, s, k0[which][:, None], k[:, 2], gn, beams.strong, beams.weak, which
        )
        thick = thick.to(torch.float64)[which]  # (N, n_t)
        if torch.is_grad_enabled() and mats.requires_grad:
            psi = column_propagate(mats, thick[:, 0], self.propagator)
            rows = torch.arange(len(psi), device=u.device)[:, None]
            psi = psi[rows, beams.pos][:, None]
        else:  # no gradient wanted: one eigen-solve for every thickness, no inverse
            psi = eigen_propagate(mats, thick, beams.pos)
        return output_intensities(psi, scale, beams.pos, beams.missing)


def folded_intensities(
    layer: FewBeamBloch,
    symmetriser: torch.nn.Module,
    groups: torch.Tensor,
    u: torch.Tensor,
    a: torch.Tensor,
    t: torch.Tensor,
    diagonal_correction: torch.Tensor | None = None,
) -> torch.Tensor:
    """The layer's discs (B, R, D, D), one tilt of each symmetry orbit solved, then unfolded.

    The 4mm operations that leave each crystal invariant (``groups``, (B, K) from
    :meth:`~hyperspy_lacbed.nets.physics_informed.SquareSymmetriser.symmetries`) map
    tilts onto tilts: I_g(p) = I_{g'}(rep(p)), with rep(p) the first pixel of p's orbit
    and g' the reflection the operation takes g from. A 4mm crystal costs an eighth.
    Differentiable (the unfolding is a gather).
    """
    pixels, rows, cols = fold_orbits(symmetriser, groups)
    inten = layer.intensities(u, a, t, pixels, diagonal_correction)  # (N, R)
    return unfold(inten, rows, cols, layer.disc_pixels)


def fold_orbits(
    symmetriser: torch.nn.Module, groups: torch.Tensor
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Which tilts to solve for each crystal's symmetry, and how to unfold them.

    Returns
    -------
    pixels
        Per crystal, the flat pixels solved (the first of each orbit).
    rows, cols
        (B, D²) row of the solved intensities and (B, D², R) reflection that each pixel of
        each disc reads (:func:`unfold`).
    """
    index = symmetriser.disc_index.cpu().numpy()
    source = symmetriser.source.cpu().numpy()
    groups = groups.cpu().numpy()
    pixels, rows, cols = [], [], []
    offset = 0
    for b in range(len(groups)):
        ks = np.flatnonzero(groups[b])
        images = index[ks]  # (n_ops, D²): each pixel's image under each operation
        rep, kstar = images.min(0), ks[images.argmin(0)]
        reps = np.unique(rep)
        pixels.append(reps)
        rows.append(offset + np.searchsorted(reps, rep))
        cols.append(source[kstar])  # (D², R): the reflection each disc reads
        offset += len(reps)
    return pixels, np.stack(rows), np.stack(cols)


def unfold(inten: torch.Tensor, rows: np.ndarray, cols: np.ndarray, d: int) -> torch.Tensor:
    """Discs (B, R, D, D) from the solved intensities (N, R) of :func:`fold_orbits`."""
    out = inten[torch.as_tensor(rows)[..., None], torch.as_tensor(cols)]  # (B, D², R)
    return out.reshape(len(rows), d, d, -1).permute(0, 3, 1, 2)


def _same_crystals(u, a, pixels, diagonal_correction) -> list[list[int]] | None:
    """Groups of batch entries that are the same crystal (None when all differ)."""
    keys: dict[bytes, list[int]] = {}
    un = u.detach().cpu().numpy()
    an = a.detach().cpu().numpy()
    dn = None if diagonal_correction is None else diagonal_correction.detach().cpu().numpy()
    for b in range(len(un)):
        key = un[b].tobytes() + an[b].tobytes()
        key += b"" if pixels is None else np.asarray(pixels[b]).tobytes()
        key += b"" if dn is None else dn[b].tobytes()
        keys.setdefault(key, []).append(b)
    groups = list(keys.values())
    return groups if len(groups) < len(un) else None
