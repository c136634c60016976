"""The structure matrix: the one place where a Bloch-wave matrix is assembled.

For an incident wave vector k, the strong beams g of a tilt couple through

    A_gh = [2K s_g δ_gh + U_{g−h} − Σ_w U_{g−w} U_{w−h} / (2K s_w)] / (2 k·n √(d_g d_h)),

with s_g the exact excitation error, U_{g−h} + i U'_{g−h} the Fourier coefficients of
the optical potential (Å⁻²), the sum over the weak beams w of the tilt (Bethe potentials,
second order in U/2Ks), and d_g = 1 + g·n / k·n the surface-normal scaling that makes
the matrix symmetric in form (Spence & Zuo; Palatinus et al. 2015). Then
ψ(t) = exp(2πi t A) e_000, propagated by :mod:`hyperspy_lacbed.bloch.propagate`.

Every consumer builds its matrices here: :func:`~hyperspy_lacbed.bloch.solver.solve_tilts`
(the simulation engine), the refinement's differentiable
:class:`~hyperspy_lacbed.refinement.model.BlochModel`, and the surrogates' physics
layer. The builder is plain torch, so gradients reach the potential, the excitation
errors and the geometry whenever the inputs carry them; and it is batched over tilts
and, through ``crystal``, over crystals (many small crystals cost one call).

Beam *selection* (which beams are strong or weak per tilt) is discrete and lives in
:func:`~hyperspy_lacbed.bloch.solver.select_beams`; this module takes its result as
padded index arrays (:func:`~hyperspy_lacbed.bloch.solver.padded_indices`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "DIAGONAL_MODES",
    "diagonal_mode",
    "output_positions",
    "structure_matrices",
    "with_diagonal",
]

#: What the diagonal of the potential matrix holds: ``"absorptive"`` (i U'_0; U_0 is in
#: K through refraction), ``"full"`` (U_0 + i U'_0, vacuum K) or ``"none"`` (Felix).
DIAGONAL_MODES = ("absorptive", "full", "none")

#: Diagonal entries of padding beams (rows beyond a tilt's strong-beam count): isolated,
#: distinct, far-off-resonance eigenvalues that are never excited.
PAD_EIGENVALUE = 1e3


def diagonal_mode(mean_inner_potential: bool, mean_absorption: bool) -> str:
    """The diagonal convention of a calculation's settings (:data:`DIAGONAL_MODES`).

    ``"none"`` without mean absorption (Felix); otherwise ``"absorptive"`` (i U'_0, with
    U_0 in K through refraction) or, without the mean-inner-potential correction,
    ``"full"`` (U_0 + i U'_0 on the diagonal, vacuum K).
    """
    if not mean_absorption:
        return "none"
    return "absorptive" if mean_inner_potential else "full"


def with_diagonal(potential: Any, mode: str) -> Any:
    """The potential matrix (…, P, P) with its diagonal set by ``mode``.

    Parameters
    ----------
    potential
        U_{g−h} + i U'_{g−h} (Å⁻²), a complex torch tensor (…, P, P) whose diagonal holds
        U_0 + i U'_0.
    mode
        One of :data:`DIAGONAL_MODES`.

    Returns
    -------
    torch.Tensor
        A new tensor (gradients flow through the kept entries).
    """
    import torch

    if mode not in DIAGONAL_MODES:
        raise ValueError(f"diagonal must be one of {DIAGONAL_MODES}, not {mode!r}.")
    if mode == "full":
        return potential
    eye = torch.eye(potential.shape[-1], dtype=torch.bool, device=potential.device)
    keep = torch.zeros((), dtype=potential.dtype, device=potential.device)
    if mode == "absorptive":
        keep = 1j * potential.imag
    return torch.where(eye, keep, potential)


def output_positions(strong: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Row of each output beam in each tilt's strong-beam list (−1 where it is not strong).

    Parameters
    ----------
    strong
        Padded strong-beam indices (T, M), −1 past each row's count.
    outputs
        Pool indices of the beams to return, (R,).

    Returns
    -------
    numpy.ndarray
        (T, R) integer positions.
    """
    pos = np.full((len(strong), len(outputs)), -1)
    for r, o in enumerate(np.asarray(outputs)):
        hit = strong == o
        pos[:, r] = np.where(hit.any(1), hit.argmax(1), -1)
    return pos


def structure_matrices(
    potential: Any,
    s: Any,
    k0: Any,
    kn: Any,
    gn: Any,
    strong: Any,
    weak: Any = None,
    crystal: Any = None,
) -> tuple[Any, Any]:
    """Scaled structure matrices of a batch of tilts (and crystals), with Bethe weak beams.

    Parameters
    ----------
    potential
        Complex tensor (P, P) of U_{g−h} + i U'_{g−h} in Å⁻², its diagonal already set
        (:func:`with_diagonal`); or (C, P, P) for C crystals sharing the pool's indexing.
    s
        Excitation errors (T, P), 1/Å (:func:`~hyperspy_lacbed.bloch.geometry.excitation_errors`).
    k0
        Wave number K inside the crystal, a number or a tensor broadcasting to (T, 1).
    kn
        k·n of each tilt, (T,).
    gn
        g·n of each pool beam, (P,) or (T, P).
    strong
        Long tensor (T, M) of pool indices of each tilt's strong beams, −1 for padding.
    weak
        Long tensor (T, W) of the weak (Bethe) beams, −1 for padding; None for none.
    crystal
        Long tensor (T,) choosing each tilt's crystal when ``potential`` is (C, P, P).

    Returns
    -------
    a
        Structure matrices (T, M, M), complex; padding rows and columns hold only the
        distinct diagonal :data:`PAD_EIGENVALUE` + m.
    scale
        √d_g of each strong beam, (T, M): ψ_g of the scaled problem divided by it is the
        physical amplitude.
    """
    import torch

    t, m = strong.shape
    dev = strong.device
    rows = torch.arange(t, device=dev)[:, None]
    pad = strong < 0
    idx = torch.where(pad, torch.zeros_like(strong), strong)
    if potential.dim() == 2:
        a = potential[idx[:, :, None], idx[:, None, :]]
    else:
        c = crystal[:, None, None]
        a = potential[c, idx[:, :, None], idx[:, None, :]]
    two_ks = 2 * k0 * s  # (T, P)
    a = a + torch.diag_embed(two_ks[rows, idx].to(a.dtype))
    if weak is not None and weak.shape[1]:
        a = a - _bethe_correction(potential, two_ks, idx, weak, crystal)
    gn = gn if gn.dim() == 2 else gn[None, :].expand(t, -1)
    scale = torch.sqrt(1.0 + gn[rows, idx] / kn[:, None])  # (T, M)
    a = a / (2 * kn[:, None, None] * scale[:, :, None] * scale[:, None, :]).to(a.dtype)
    if bool(pad.any()):
        zero = torch.zeros((), dtype=a.dtype, device=dev)
        a = torch.where(pad[:, :, None] | pad[:, None, :], zero, a)
        fill = torch.where(pad, PAD_EIGENVALUE + torch.arange(m, device=dev)[None, :], 0.0)
        a = a + torch.diag_embed(fill.to(a.dtype))
    return a, scale


def _bethe_correction(potential, two_ks, idx, weak, crystal):
    """Σ_w U(g, w) U(w, h) / (2K s_w) over each tilt's weak beams, (T, M, M)."""
    import torch

    t = idx.shape[0]
    rows = torch.arange(t, device=idx.device)[:, None]
    wpad = weak < 0
    wi = torch.where(wpad, torch.zeros_like(weak), weak)
    # Padding entries point at 000, where s = 0: keep 1/s finite there, or the gradient
    # through the discarded branch of the where() is NaN.
    s_w = torch.where(wpad, torch.ones_like(two_ks[rows, wi]), two_ks[rows, wi])
    inv = torch.where(wpad, torch.zeros_like(s_w), 1.0 / s_w)
    if potential.dim() == 2:
        u_sw = potential[idx[:, :, None], wi[:, None, :]]  # (T, M, W)
        u_ws = potential[wi[:, :, None], idx[:, None, :]]  # (T, W, M)
    else:
        c = crystal[:, None, None]
        u_sw = potential[c, idx[:, :, None], wi[:, None, :]]
        u_ws = potential[c, wi[:, :, None], idx[:, None, :]]
    return torch.matmul(u_sw * inv.to(u_sw.dtype)[:, None, :], u_ws)
