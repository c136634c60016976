"""Propagating the incident wave through structure matrices: ψ(t) = exp(2πi t A) e_000.

Two ways, one matrix (:mod:`hyperspy_lacbed.bloch.matrix`):

- :func:`eigen_propagate`: the eigen-decomposition A = C Γ C⁻¹, one solve for every
  thickness; the engine's path (:func:`~hyperspy_lacbed.bloch.solver.solve_tilts`),
  without gradients.
- :func:`column_propagate`: differentiable, for refinement and the surrogates' physics
  layer. ``method="eig"`` is an eigen-decomposition whose backward is the Fréchet
  derivative of the matrix exponential (finite where eigenvalues coincide, at exactly
  symmetric tilts, unlike the eigenvector backward of ``torch.linalg.eig``);
  ``method="expm"`` is ``torch.linalg.matrix_exp``, as diffBloch does.

:func:`output_intensities` turns the amplitudes of the scaled problem into ``|ψ_g|²``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = [
    "PROPAGATORS",
    "column_propagate",
    "eigen_propagate",
    "expm_column",
    "map_per_core",
    "output_intensities",
]

#: Methods of :func:`column_propagate`.
PROPAGATORS = ("eig", "expm")


def map_per_core(fn: Callable, x: Any, *rest: Any) -> Any:
    """Apply a batched torch linear-algebra function chunk by chunk on single-threaded workers.

    LAPACK gains nothing from threads on matrices of ~100 beams, torch's own intra-op
    threads spin-wait (on a loaded 2-core machine they made the eigen-solve 30–40× slower),
    and the multi-threaded batched LU of torch 2.13 + MKL fails and hangs above 150 × 150
    (oneMKL ZLASWP "parameter 6", pytorch/pytorch#142815). Python threads each running a
    single-threaded solve (torch releases the GIL) keep every core busy instead. Results
    are concatenated along the batch axis (tuples element by element); on a GPU ``fn``
    runs once on the whole batch.
    """
    import torch

    if x.device.type != "cpu":
        return fn(x, *rest)
    workers = min(torch.get_num_threads(), len(x))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers <= 1:
            return fn(x, *rest)
        n_chunks = min(len(x), 4 * workers)
        chunks = [c.chunk(n_chunks) for c in (x, *rest)]
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda args: fn(*args), zip(*chunks, strict=True)))
    finally:
        torch.set_num_threads(previous)
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))
    return torch.cat(parts)


def _eig(x):
    """``torch.linalg.eig`` (a named function, so that it can be mapped over chunks)."""
    import torch

    return torch.linalg.eig(x)


def _solve(a, b):
    import torch

    return torch.linalg.solve(a, b)


def eigen_propagate(a: Any, thickness: Any, pos: Any, single: bool = False) -> Any:
    """Amplitudes of the output beams at every thickness from one eigen-solve per tilt.

    Parameters
    ----------
    a
        Structure matrices (T, M, M) with 000 as row 0.
    thickness
        Thicknesses in Å, real tensor (n_t,), or (T, n_t) for each tilt its own.
    pos
        Long tensor (T, R): row of each output beam (clipped to ≥ 0; mask the missing
        ones with :func:`output_intensities`).
    single
        Solve the eigenproblem in complex64 (1.6–2× faster on a CPU; 1–4e-4 of the image
        maximum from the double-precision solve in ``benchmarks/bench_engine.py``); the
        propagation is then in complex128, whatever the matrices' precision.

    Returns
    -------
    torch.Tensor
        ψ of the scaled problem, (T, n_t, R).
    """
    import torch

    x = a.to(torch.complex64) if single else a
    gamma, vec = map_per_core(_eig, x)
    # A single-precision solve propagates in complex128 (phases 2πγt reach 10³ rad).
    wide = torch.complex128 if single else a.dtype
    gamma, vec = gamma.to(wide), vec.to(wide)
    t, m = a.shape[:2]
    # ψ(0) = e_000: the excitations α = C⁻¹ e_000.
    e0 = torch.zeros((t, m, 1), dtype=vec.dtype, device=a.device)
    e0[:, 0, 0] = 1.0
    alpha = map_per_core(_solve, vec, e0)[..., 0]  # (T, M)
    rows = torch.arange(t, device=a.device)[:, None]
    c_out = vec[rows, pos]  # (T, R, M)
    th = thickness[None, :, None] if thickness.dim() == 1 else thickness[:, :, None]
    phase = torch.exp(2j * math.pi * gamma[:, None, :] * th)
    # ψ_g(t) = Σ_j C_gj exp(2πi γ_j t) α_j as one batched matmul (einsum without
    # opt_einsum was a quarter of the run time).
    return torch.matmul(phase, (c_out * alpha[:, None, :]).transpose(1, 2))


def output_intensities(psi: Any, scale: Any, pos: Any, missing: Any) -> Any:
    """``|ψ_g|²`` of the output beams from the scaled problem's amplitudes.

    Parameters
    ----------
    psi
        Amplitudes at the output rows, (T, R) or (T, n_t, R).
    scale
        √d of every strong beam, (T, M) (:func:`~hyperspy_lacbed.bloch.matrix.structure_matrices`).
    pos
        Long tensor (T, R) of the output rows (clipped to ≥ 0).
    missing
        Bool tensor (T, R): output beams that are not among the tilt's strong beams
        (their intensity is 0).

    Returns
    -------
    torch.Tensor
        Intensities of ``psi``'s shape, real.
    """
    import torch

    rows = torch.arange(len(pos), device=pos.device)[:, None]
    s = scale[rows, pos]
    out = psi / (s if psi.dim() == 2 else s[:, None, :])
    inten = out.real**2 + out.imag**2
    m = missing if psi.dim() == 2 else missing[:, None, :]
    return torch.where(m, torch.zeros((), dtype=inten.dtype, device=inten.device), inten)


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


def _inv(x):
    import torch

    return torch.linalg.inv(x)


def _make_expm_column():
    import torch

    class ExpmColumn(torch.autograd.Function):
        """ψ = exp(X) e_0 (first column) by eigen-decomposition, with an exact backward.

        The backward is the adjoint of the Fréchet derivative of the matrix exponential in
        the eigenbasis (Daleckii–Krein): for X = V Λ V⁻¹,
        dψ = V [Φ ∘ (V⁻¹ dX V)] V⁻¹ e_0 with Φ the divided differences of exp, which stay
        finite when eigenvalues coincide. It needs X diagonalisable, as the engine does.
        """

        @staticmethod
        def forward(ctx, x):
            lam, vec = map_per_core(_eig, x)
            vinv = map_per_core(_inv, vec)
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


def expm_column(x: Any) -> Any:
    """exp(X)[..., :, 0] for a batch of square complex matrices, differentiable.

    Eigen-decomposition forward, degeneracy-safe Fréchet-derivative backward (see
    ``ExpmColumn``); about 3× cheaper than ``torch.linalg.matrix_exp`` with its backward.
    """
    global _EXPM_COLUMN
    if _EXPM_COLUMN is None:
        _EXPM_COLUMN = _make_expm_column()
    return _EXPM_COLUMN.apply(x)


def column_propagate(a: Any, thickness: Any, method: str = "eig") -> Any:
    """ψ(t) = exp(2πi t A) e_000 of every tilt, differentiable in A and t.

    Parameters
    ----------
    a
        Structure matrices (T, M, M) (:func:`~hyperspy_lacbed.bloch.matrix.structure_matrices`).
    thickness
        Thickness in Å: a scalar tensor, or (T,) for one per tilt.
    method
        ``"eig"`` (:func:`expm_column`) or ``"expm"`` (``torch.linalg.matrix_exp``).

    Returns
    -------
    torch.Tensor
        ψ of the scaled problem, (T, M).
    """
    import torch

    if method not in PROPAGATORS:
        raise ValueError(f"propagator must be one of {PROPAGATORS}, not {method!r}.")
    t = thickness if thickness.dim() == 0 else thickness[:, None, None]
    x = 2j * math.pi * t * a
    if method == "expm":
        return torch.linalg.matrix_exp(x)[:, :, 0]
    return expm_column(x)
