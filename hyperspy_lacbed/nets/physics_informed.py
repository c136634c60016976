"""Physics-informed cGAN generators: fixed Fourier layers, disc geometry, 4mm symmetry.

What the physics says a LACBED pattern depends on, and how these generators use it
(issue 13, :doc:`/user_guide/surrogates`):

Structure factors, not pixels
    The Bloch-wave engine sees the potential only through its zero-order Laue zone
    (ZOLZ) Fourier coefficients U_g, the lattice parameter a and the thickness t. The
    forward generator (:class:`FourierForwardGenerator`) therefore takes its input
    potential to its coefficients with a *fixed* layer
    (:class:`~hyperspy_lacbed.nets.fourier.FourierCoefficients`) after a whole-pixel
    shift to the canonical origin
    (:func:`~hyperspy_lacbed.nets.normalisation.canonical_origin`), so that any cyclic
    shift of the input potential gives bit for bit the same coefficients and the same
    discs. The inverse generator (:class:`FourierInverseGenerator`) predicts
    coefficients and a fixed inverse FFT
    (:class:`~hyperspy_lacbed.nets.fourier.InverseFourier`) makes the image.
Geometry as fixed input channels
    Every disc of the domain is sampled on the same tilt grid (pixel [i, j] at
    k = ((j − N + ½), (i − N + ½)) · dk, ``dk = disc_radius_g200 · |g_200| / N``,
    :func:`~hyperspy_lacbed.bloch.geometry.tilt_grid`), and the disc radius is a fixed
    fraction of ``|g_200| = 2 / a``. In units of ``|g_200|`` the tilt
    ``u = k / |g_200|`` and every ZOLZ reciprocal vector ``ĝ = g / |g_200|`` are
    therefore independent of a, and so is the dimensionless excitation error
    (:func:`excitation_geometry`)

        ``σ_g(u) = 2 u·ĝ + |ĝ|²``,   with   ``s_g ≈ −σ_g |g_200|² / (2K)``.

    σ_g is zero on the Bragg line of g. The approximation is the engine's own
    small-angle form ``s_g ≈ (K² − |k + g|²) / 2K``
    (:func:`~hyperspy_lacbed.bloch.geometry.excitation_errors` solves the exact
    Ewald-sphere equation): the neglected terms are of relative order ``|k + g| / K``
    ≲ 2 · 10⁻² at 200 kV and a ≥ 3 Å, and they alone would make the geometry depend on
    a (the test puts σ_g within 2 % of the engine's s_g for a = 3 and 12 Å). The a
    dependence of the *scale* of s_g is not neglected: with ``phase_features`` the
    generator adds sin and cos of ``π s_g t = −π σ_g t |g_200|² / (2K)`` for each
    sample's a and t — the phase of the two-beam Pendellösung — so that the fringes need
    not be learned from σ alone. At a fixed tilt the Bloch-wave intensities depend on the
    tilt only through the s_g, so the forward generator maps these per-pixel features
    with a per-pixel network modulated (FiLM) by a code of the structure factors, a and
    t.
Symmetry
    If the projected potential is invariant under a 4mm operation R up to a translation,
    so are the discs: I_g(k) = I_{R⁻¹g}(R⁻¹k) (a translation only changes the phases of
    the U_g, a unitary similarity of the structure matrix). :class:`SquareSymmetriser`
    finds those operations of each input potential (up to any whole-pixel translation,
    so the origin does not matter), closes them into a group and averages the output
    over it, so the output has at least the symmetry of the input.
Bounded decodes
    The inverse generator's amplitudes are ``|V_0| = V_max · sigmoid(·)`` and
    ``|V_g| = |V_0| · sigmoid(·)`` (a positive potential has ``|V_g| ≤ V_0``), its
    phases are unit vectors, and its inputs are cleaned of NaN and clamped, so any input,
    however large, gives a finite potential below ``a_max · V_max · (2 h_max + 1)²`` V·Å.

Inputs and outputs are those of
:class:`~hyperspy_lacbed.nets.architectures.Pix2PixHDGenerator` (encoded as
:class:`~hyperspy_lacbed.nets.normalisation.Encoding` says, conditioning (a, t) mapped
to [-1, 1]), so the training loop, the model cards and
:class:`~hyperspy_lacbed.nets.surrogate.Surrogate` use them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hyperspy_lacbed.analysis.square import SQUARE_OPERATIONS
from hyperspy_lacbed.nets.fourier import FourierCoefficients, InverseFourier
from hyperspy_lacbed.nets.normalisation import MAX_CANDIDATES, TIE_TOLERANCE
from hyperspy_lacbed.units import electron_wavelength

__all__ = [
    "DomainConditioning",
    "FourierForwardGenerator",
    "FourierInverseGenerator",
    "SquareSymmetriser",
    "excitation_geometry",
    "geometry_reflections",
]


def geometry_reflections(g_max: float = 1.5) -> np.ndarray:
    """ZOLZ reflections (h, k) of [001] with ``0 < |ĝ| ≤ g_max`` (ĝ in units of ``|g_200|``).

    Sorted by ``|ĝ|``, then h, then k: shape (G, 2). For g_max = 1.5 these are the 28
    reflections 100 … 300 of a primitive cubic lattice (the centred lattices' extinctions
    are left to the structure factors, which are zero there).
    """
    n = math.floor(2 * g_max)
    r = range(-n, n + 1)
    hk = [(h, k) for h in r for k in r if 0 < (h * h + k * k) / 4 <= g_max**2 + 1e-12]
    hk.sort(key=lambda p: (p[0] ** 2 + p[1] ** 2, p[0], p[1]))
    return np.array(hk, int).reshape(-1, 2)


def excitation_geometry(
    disc_pixels: int, disc_radius_g200: float, g_max: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Dimensionless excitation errors ``σ_g = 2 u·ĝ + |ĝ|²`` over the tilt grid of a disc.

    Parameters
    ----------
    disc_pixels
        D, the disc side in pixels (even; N = D / 2).
    disc_radius_g200
        Disc radius in units of ``|g_200|`` (the domain's ``disc_radius_g200``).
    g_max
        Largest ``|ĝ|`` of the reflections (see :func:`geometry_reflections`).

    Returns
    -------
    hk, sigma
        (G, 2) Miller indices (h, k) of reflections (h, k, 0) and (G, D, D) σ_g, with
        ``s_g ≈ −σ_g |g_200|² / (2K)`` (1/Å) for the cubic [001] zone with x along [100].

    Examples
    --------
    The Bragg line of 200 (σ = 0 at u_x = −½) crosses a 64-pixel disc of radius
    0.75 ``|g_200|`` between columns 10 and 11:

    >>> from hyperspy_lacbed.nets.physics_informed import excitation_geometry
    >>> hk, sigma = excitation_geometry(64, 0.75)
    >>> sigma.shape
    (28, 64, 64)
    >>> row = sigma[hk.tolist().index([2, 0]), 0]
    >>> bool(row[10] < 0 < row[11])
    True
    """
    d = int(disc_pixels)
    if d < 2 or d % 2:
        raise ValueError(f"disc_pixels must be even and at least 2, got {disc_pixels}.")
    n = d // 2
    du = float(disc_radius_g200) / n
    ax = (np.arange(d) - n + 0.5) * du
    uy, ux = np.meshgrid(ax, ax, indexing="ij")
    hk = geometry_reflections(g_max)
    g = hk.astype(float) / 2.0  # (h, k)/a in units of |g_200| = 2/a
    sigma = (
        2 * (g[:, 0, None, None] * ux + g[:, 1, None, None] * uy) + (g**2).sum(1)[:, None, None]
    )
    return hk, sigma


def _decode_unit(c: torch.Tensor, bounds: Sequence[float]) -> torch.Tensor:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (c + 1.0) * 0.5 * (hi - lo)


def _clean(x: torch.Tensor, bound: float) -> torch.Tensor:
    """NaN → 0, ±inf and huge values clamped: adversarial inputs stay finite."""
    return torch.clamp(torch.nan_to_num(x, nan=0.0, posinf=bound, neginf=-bound), -bound, bound)


def _roll_each(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll each image (B, P, P) by its own (dy, dx)."""
    return torch.stack(
        [torch.roll(img, (int(s[0]), int(s[1])), dims=(-2, -1)) for img, s in zip(images, shifts)]
    )


class SquareSymmetriser(nn.Module):
    """Average disc outputs over the 4mm operations that leave the input potential invariant.

    Parameters
    ----------
    reflections
        The domain's reflections (output channels); operations that do not map this list
        onto itself are never used.
    disc_pixels
        D of the discs (a tilt grid centred on the zone axis).
    potential_pixels
        P of the potentials.
    tolerance
        An operation R is a symmetry of a potential V when
        ``min_τ ‖R V − V(· − τ)‖² ≤ tolerance · ‖V − mean V‖²``
        (τ: cyclic whole-pixel translations; see :meth:`symmetries`).
    """

    def __init__(
        self,
        reflections: Sequence[Sequence[int]],
        disc_pixels: int,
        potential_pixels: int,
        tolerance: float = 1e-4,
    ):
        super().__init__()
        refl = np.asarray(reflections, int)
        lookup = {tuple(h): i for i, h in enumerate(refl.tolist())}
        d, p = int(disc_pixels), int(potential_pixels)
        self.tolerance = float(tolerance)
        mats, sources, disc_idx, pot_idx = [], [], [], []
        ii, jj = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
        u, v = 2 * jj - d + 1, 2 * ii - d + 1  # doubled pixel-centre coordinates
        py, px = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        for _, m in SQUARE_OPERATIONS:
            m = np.array(m, int)
            inv = np.round(np.linalg.inv(m)).astype(int)
            w = np.eye(3, dtype=int)
            w[:2, :2] = m
            # reciprocal vectors of a cubic lattice transform like direct ones (orthogonal)
            pre = refl @ np.linalg.inv(w).T
            try:
                src = [lookup[tuple(round(float(x)) for x in h)] for h in pre]
            except KeyError:
                continue
            u0, v0 = inv[0, 0] * u + inv[0, 1] * v, inv[1, 0] * u + inv[1, 1] * v
            disc_idx.append(((v0 + d - 1) // 2) * d + (u0 + d - 1) // 2)
            sx, sy = (inv[0, 0] * px + inv[0, 1] * py) % p, (inv[1, 0] * px + inv[1, 1] * py) % p
            pot_idx.append(sy * p + sx)
            mats.append(m)
            sources.append(src)
        self.matrices = [m.copy() for m in mats]
        self.register_buffer("source", torch.tensor(np.array(sources), dtype=torch.long), False)
        self.register_buffer("disc_index", torch.tensor(np.array(disc_idx)).long(), False)
        # numpy copies for the symmetry test: the gather and where each pixel goes
        self._pot_index = [np.asarray(i).ravel() for i in pot_idx]
        self._pot_where = [np.argsort(i) for i in self._pot_index]
        # composition table: product[i, j] = index of M_i M_j (or -1 if not in the list)
        key = {m.tobytes(): i for i, m in enumerate(mats)}
        self.product = np.array(
            [[key.get((a @ b).astype(int).tobytes(), -1) for b in mats] for a in mats]
        )

    @property
    def n_operations(self) -> int:
        """Number of operations kept (those that map the reflection list onto itself)."""
        return len(self.matrices)

    def transform_discs(self, discs: torch.Tensor, k: int) -> torch.Tensor:
        """Discs (B, R, D, D) of the crystal transformed by operation k."""
        b, r, d, _ = discs.shape
        flat = discs[:, self.source[k]].reshape(b, r, d * d)
        return flat[..., self.disc_index[k].reshape(-1)].reshape(b, r, d, d)

    @torch.no_grad()
    def symmetries(self, potential: torch.Tensor) -> torch.Tensor:
        """(B, n_operations) bool: the operations (closed into a group) of each potential.

        R is a symmetry when R V, translated so that the image of V's maximum lands on one
        of V's (tied) maxima, matches V within the tolerance: a symmetry maps the
        maximum onto a maximum, so those translations are the only candidates (far fewer
        than all P² of a cross-correlation).
        """
        v = potential.detach().to(torch.float64).cpu().numpy()
        p = v.shape[-1]
        rows = []
        for img in v.reshape(-1, p, p):
            flat = img.ravel()
            vmax, vmin = float(flat.max()), float(flat.min())
            if not vmax > vmin:  # a constant image has every symmetry
                rows.append(np.ones(self.n_operations, bool))
                continue
            cand = np.flatnonzero(flat >= vmax - TIE_TOLERANCE * (vmax - vmin))
            cand = cand[np.argsort(-flat[cand], kind="stable")][:MAX_CANDIDATES]
            top = int(cand[0])
            dev = img - img.mean()
            limit = self.tolerance * float(np.sum(dev * dev))
            row = np.zeros(self.n_operations, bool)
            for k in range(self.n_operations):
                w = flat[self._pot_index[k]].reshape(p, p)
                moved = int(self._pot_where[k][top])  # where the maximum went
                for c in cand:
                    dy, dx = int(c) // p - moved // p, int(c) % p - moved % p
                    diff = np.roll(w, (dy, dx), axis=(0, 1)) - img
                    if float(np.sum(diff * diff)) <= limit:
                        row[k] = True
                        break
            rows.append(self._close(row))
        return torch.from_numpy(np.array(rows))

    def _close(self, row: np.ndarray) -> np.ndarray:
        """The group generated by the operations in ``row`` (and the identity)."""
        have = set(np.flatnonzero(row).tolist()) | {0}
        while True:
            new = {int(self.product[i, j]) for i in have for j in have} - have - {-1}
            if not new:
                break
            have |= new
        out = np.zeros(self.n_operations, bool)
        out[sorted(have)] = True
        return out

    def forward(self, discs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mean of the discs over each sample's group of operations (``mask``)."""
        b, r, d, _ = discs.shape
        used = torch.flatten(torch.nonzero(mask.any(dim=0))).tolist()
        m = mask[:, used].to(discs.device, discs.dtype)
        weights = (m / m.sum(dim=1, keepdim=True))[:, None, :]  # (B, 1, K)
        index = self._flat_index(r, d)[used].reshape(-1)
        moved = discs.reshape(b, r * d * d)[:, index].reshape(b, len(used), r * d * d)
        return torch.bmm(weights, moved).reshape(b, r, d, d)

    def _flat_index(self, r: int, d: int) -> torch.Tensor:
        """(n_operations, R·D²) gather index of each operation on flattened discs."""
        src = self.source[:, :, None] * (d * d)
        return (src + self.disc_index.reshape(-1, 1, d * d)).reshape(-1, r * d * d)


class _FiLMLayer(nn.Module):
    """A per-pixel linear map on channels-last features, FiLM-modulated by a code z.

    ``leaky_relu((W h + b)(1 + γ(z)) + β(z))``, computed as one batched matrix product
    with the modulation folded into per-sample weights (the elementwise passes over the
    B × H × W × C activations are what a CPU spends its time on otherwise).
    """

    def __init__(self, cin: int, cout: int, latent: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.film = nn.Linear(latent, 2 * cout)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``h`` (B, N, C) per-pixel features, ``z`` (B, latent)."""
        gamma, beta = self.film(z).chunk(2, dim=-1)
        scale = 1 + gamma  # (B, cout)
        weight = scale[:, None, :] * self.linear.weight.t()[None]  # (B, cin, cout)
        bias = scale * self.linear.bias + beta
        return F.leaky_relu(torch.baddbmm(bias[:, None, :], h, weight), 0.1)


class DomainConditioning:
    """Shared geometry and decoding of the conditioning of both generators."""

    def _setup_domain(
        self,
        disc_pixels: int,
        disc_radius_g200: float,
        voltage: float,
        lattice_parameter_range: Sequence[float],
        thickness_range: Sequence[float],
        geometry_g_max: float,
    ) -> None:
        hk, sigma = excitation_geometry(disc_pixels, disc_radius_g200, geometry_g_max)
        self.geometry_hk = hk
        self.register_buffer("sigma", torch.tensor(sigma, dtype=torch.float32), False)
        d = int(disc_pixels)
        ax = (torch.arange(d, dtype=torch.float32) - d // 2 + 0.5) / (d // 2)
        uy, ux = torch.meshgrid(ax, ax, indexing="ij")
        self.register_buffer("coords", torch.stack([ux, uy]), False)  # in disc radii
        self.k0 = 1.0 / electron_wavelength(float(voltage))
        self.a_range = tuple(float(x) for x in lattice_parameter_range)
        self.t_range = tuple(float(x) for x in thickness_range)
        self.geometry_scale = 2.0 * float(geometry_g_max) * (1.0 + float(disc_radius_g200))

    def _a_t(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lattice parameters and thicknesses (Å) of encoded conditioning (clamped)."""
        c = _clean(cond.to(torch.float32), 1.5)
        a = _decode_unit(c[:, 0], self.a_range).clamp(min=0.5)
        t = _decode_unit(c[:, 1], self.t_range).clamp(min=0.0)
        return a, t

    def pixel_features(self, b: int, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-pixel features (B, C, D, D): tilt coordinates, σ_g, Pendellösung phases.

        Parameters
        ----------
        b
            Batch size.
        a, t
            (B,) lattice parameters (Å) and thicknesses (Å).

        Returns
        -------
        torch.Tensor
            Channels: u_x and u_y in disc radii; then, with ``geometry``, σ_g scaled to
            about [-1, 1] for each reflection of ``geometry_hk``; then, with
            ``phase_features``, sin(π s_g t) and cos(π s_g t).
        """
        return (
            self.pixel_features_last(b, a, t)
            .transpose(1, 2)
            .reshape(b, -1, *self.coords.shape[-2:])
        )

    def pixel_features_last(self, b: int, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """:meth:`pixel_features` channels last, flattened: (B, D², C)."""
        n = self.coords.shape[-1] * self.coords.shape[-2]
        feats = [self.coords.reshape(2, n).t().expand(b, -1, -1)]
        if self.geometry:
            sig = self.sigma.reshape(len(self.geometry_hk), n).t()  # (D², G)
            feats.append((sig / self.geometry_scale).expand(b, -1, -1))
            if self.phase_features:
                # π s_g t with s_g = −σ_g |g_200|² / 2K, |g_200| = 2 / a
                alpha = math.pi * t * (2.0 / a) ** 2 / (2.0 * self.k0)
                phase = -sig[None] * alpha[:, None, None]  # π s_g t
                feats += [torch.sin(phase), torch.cos(phase)]
        return torch.cat(feats, dim=-1)

    def n_pixel_features(self) -> int:
        """Number of channels of :meth:`pixel_features`."""
        g = len(self.geometry_hk)
        return 2 + (g * (3 if self.phase_features else 1) if self.geometry else 0)


class FourierForwardGenerator(DomainConditioning, nn.Module):
    """Potential → discs through fixed ZOLZ Fourier coefficients and fixed disc geometry.

    Input and output as :class:`~hyperspy_lacbed.nets.architectures.Pix2PixHDGenerator`
    (forward): an encoded potential (B, 1, P, P) and conditioning (B, 2) → encoded discs
    (B, R, D, D) in [-1, 1]. Steps: decode the potential to V·Å; roll it to the canonical
    origin; coefficients ``V_g = C_g / a`` (volts) for ``|h|, |k| ≤ h_max``, compressed
    by ``asinh(V_g / coefficient_scale)``; an MLP of those, a and t gives a code z; a
    per-pixel network (1 × 1 convolutions, FiLM-modulated by z, a linear head and a
    residual ``final_kernel`` convolution) maps the pixel features (tilt coordinates,
    σ_g, Pendellösung phases) to the R discs; the output is averaged over the input's
    4mm symmetry.

    Parameters
    ----------
    in_channels, out_channels, in_size, out_size, cond_channels
        1, R, P, D and 2 (kept for the model card and the surrogate runner).
    reflections
        The domain's reflections (output channels).
    disc_radius_g200, voltage
        The domain's disc radius (units of ``|g_200|``) and voltage (V).
    lattice_parameter_range, thickness_range
        The encoding's conditioning ranges (Å), to decode a and t.
    potential_scale, potential_divisor
        The encoding's potential constants s and k (``y = asinh(V / s) / k − 1``).
    h_max
        Largest ``|h|``, ``|k|`` of the coefficients.
    coefficient_scale
        Volts; the coefficients enter as ``asinh(V_g / coefficient_scale)``.
    width, latent, n_layers
        Channels of the per-pixel network, size of the code z, FiLM layers.
    final_kernel
        Kernel of a residual R → R convolution after the per-pixel head (3: a little
        coupling of neighbouring tilts; 1: none, purely per pixel).
    geometry, phase_features, geometry_g_max
        Add σ_g channels (else only tilt coordinates), the sin/cos Pendellösung phases, and
        the reflections with ``|ĝ|`` ≤ ``geometry_g_max``.
    symmetrise, symmetry_tolerance
        Average the output over the input's symmetry (:class:`SquareSymmetriser`).
    output
        ``"tanh"``, or ``"scale_free"``: a pattern shape divided by its own maximum times a
        predicted peak (in the square-root encoding ``y = 2 sqrt(I) − 1``, the peak
        amplitude is ``sigmoid(·)``), so the shape does not have to carry the scale that
        the ℓMSE divides out. Needs the ``"sqrt"`` disc encoding.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 9,
        in_size: int = 128,
        out_size: int = 64,
        cond_channels: int = 2,
        reflections: Sequence[Sequence[int]] | None = None,
        disc_radius_g200: float = 0.75,
        voltage: float = 200e3,
        lattice_parameter_range: Sequence[float] = (3.0, 12.0),
        thickness_range: Sequence[float] = (500.0, 2000.0),
        potential_scale: float = 50.0,
        potential_divisor: float = 3.0,
        h_max: int = 8,
        coefficient_scale: float = 1.0,
        width: int = 64,
        latent: int = 256,
        n_layers: int = 4,
        final_kernel: int = 3,
        geometry: bool = True,
        phase_features: bool = True,
        geometry_g_max: float = 1.5,
        symmetrise: bool = True,
        symmetry_tolerance: float = 1e-4,
        output: str = "tanh",
    ):
        super().__init__()
        from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS

        if in_channels != 1 or cond_channels != 2:
            raise ValueError(
                "FourierForwardGenerator takes one potential channel and (a, t) conditioning "
                f"(in_channels=1, cond_channels=2); got {in_channels} and {cond_channels}."
            )
        if output not in ("tanh", "scale_free"):
            raise ValueError(f"Unknown output {output!r}; choose 'tanh' or 'scale_free'.")
        refl = [list(r) for r in (reflections or DEFAULT_REFLECTIONS)]
        if len(refl) != out_channels:
            raise ValueError(f"{len(refl)} reflections for {out_channels} output channels.")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size, self.cond_channels = in_size, out_size, cond_channels
        self.s, self.k = float(potential_scale), float(potential_divisor)
        self.coefficient_scale = float(coefficient_scale)
        self.geometry, self.phase_features = bool(geometry), bool(phase_features)
        self.output = output
        self._setup_domain(
            out_size,
            disc_radius_g200,
            voltage,
            lattice_parameter_range,
            thickness_range,
            geometry_g_max,
        )
        # canonical origin by a whole-pixel roll first, then the FFT: bit-exact invariance
        self.origin = FourierCoefficients(h_max, in_size, origin="max_at_centre")
        self.fourier = FourierCoefficients(h_max, in_size, origin="none")
        self._build_networks(int(h_max), width, latent, n_layers, final_kernel)
        self.peak = nn.Linear(latent, 1) if output == "scale_free" else None
        self.symmetriser = (
            SquareSymmetriser(refl, out_size, in_size, symmetry_tolerance) if symmetrise else None
        )

    def _build_networks(
        self, h_max: int, width: int, latent: int, n_layers: int, final_kernel: int
    ) -> None:
        """The coefficient encoder, the FiLM pixel network, its head and the smoothing.

        Built in this order, which fixes the initial weights of a seed.
        """
        n = 2 * h_max + 1
        self.encoder = nn.Sequential(
            nn.Linear(2 * n * n + 2, latent),
            nn.LeakyReLU(0.1),
            nn.Linear(latent, latent),
            nn.LeakyReLU(0.1),
            nn.Linear(latent, latent),
            nn.LeakyReLU(0.1),
        )
        cin = self.n_pixel_features()
        layers = [_FiLMLayer(cin, width, latent)]
        layers += [_FiLMLayer(width, width, latent) for _ in range(n_layers - 1)]
        self.pixel_net = nn.ModuleList(layers)
        self.head = nn.Linear(width, self.out_channels)
        # a small residual convolution across neighbouring tilts (cheap: R → R channels)
        r = self.out_channels
        self.smooth = (
            nn.Conv2d(r, r, final_kernel, padding=final_kernel // 2, padding_mode="reflect")
            if final_kernel > 1
            else None
        )

    def coefficients(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(canonical potential (B, P, P) in V·Å, V_g (B, n, n) complex volts, a, t)."""
        y = _clean(x.to(torch.float32), 1.5)[:, 0]
        v = self.s * torch.sinh((y + 1.0) * self.k)
        v = _roll_each(v, self.origin.shifts(v))
        a, t = self._a_t(cond)
        return v, self.fourier(v) / a[:, None, None], a, t

    def code(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(code z (B, latent), canonical potential (B, P, P) in V·Å, a, t)."""
        v, vg, a, t = self.coefficients(x, cond)
        f = torch.asinh(torch.view_as_real(vg) / self.coefficient_scale).flatten(1)
        c = _clean(cond.to(torch.float32), 1.5)
        return self.encoder(torch.cat([f, c], dim=1)), v, a, t

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Encoded discs (B, R, D, D) of encoded potentials ``x`` (B, 1, P, P)."""
        z, v, a, t = self.code(x, cond)
        b = x.shape[0]
        d = self.out_size
        h = self.pixel_features_last(b, a, t)  # (B, D², C): a per-pixel network
        for layer in self.pixel_net:
            h = layer(h, z)
        h = self.head(h).transpose(1, 2).reshape(b, -1, d, d)
        if self.smooth is not None:
            h = h + self.smooth(h)
        if self.output == "tanh":
            out = torch.tanh(h)
        else:
            shape = torch.sigmoid(h)
            shape = shape / shape.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
            out = 2.0 * torch.sigmoid(self.peak(z))[:, :, None, None] * shape - 1.0
        if self.symmetriser is not None:
            out = self.symmetriser(out, self.symmetriser.symmetries(v))
        return out


def _strided_encoder(
    cin: int, ngf: int, n_downsampling: int, max_channels: int
) -> tuple[nn.Sequential, int]:
    """(CNN of ``n_downsampling`` stride-2 stages, its output channels)."""
    layers: list[nn.Module] = []
    c = cin
    for i in range(n_downsampling):
        nxt = min(ngf * 2**i, max_channels)
        layers += [
            nn.Conv2d(c, nxt, 3, 1, 1, padding_mode="reflect"),
            nn.LeakyReLU(0.1),
            nn.Conv2d(nxt, nxt, 3, 2, 1, padding_mode="reflect"),
            nn.LeakyReLU(0.1),
        ]
        c = nxt
    return nn.Sequential(*layers), c


class FourierInverseGenerator(DomainConditioning, nn.Module):
    """Discs → ZOLZ coefficients (bounded) → fixed inverse FFT → potential.

    Input and output as :class:`~hyperspy_lacbed.nets.architectures.Pix2PixHDGenerator`
    (inverse): encoded discs (B, R, D, D) and conditioning (B, 2) → encoded potential
    (B, 1, P, P). A strided CNN of the discs (with the σ_g geometry channels and the
    conditioning as constant channels) and an MLP give, for each (h, k) of one half
    plane with ``|h|, |k| ≤ h_max``, an amplitude logit and a 2-vector of phase (the other
    half are their conjugates, V_0 is real and positive); the decode is bounded
    (module docstring), a fixed Hermitian inverse FFT makes the image and, with
    ``canonical_output``, the image is rolled by whole pixels to the canonical origin, the
    origin of the training targets — so the loss does not depend on the origin the
    network happens to put its crystal at.

    Parameters
    ----------
    in_channels, out_channels, in_size, out_size, cond_channels
        R, 1, D, P and 2.
    disc_radius_g200, voltage, lattice_parameter_range, thickness_range
        As for :class:`FourierForwardGenerator`.
    potential_scale, potential_divisor
        The encoding's potential constants.
    h_max
        Largest ``|h|``, ``|k|`` of the predicted coefficients.
    max_potential
        V_max in volts, the bound on the mean inner potential V_0 (cubic crystals:
        ~10–35 V).
    ngf, n_downsampling, max_channels, hidden
        CNN width, stride-2 stages, channel cap and MLP width.
    geometry, geometry_g_max
        Add the σ_g channels of :func:`excitation_geometry` to the input.
    canonical_output
        Roll the output to the canonical origin.
    """

    def __init__(
        self,
        in_channels: int = 9,
        out_channels: int = 1,
        in_size: int = 64,
        out_size: int = 128,
        cond_channels: int = 2,
        reflections: Sequence[Sequence[int]] | None = None,
        disc_radius_g200: float = 0.75,
        voltage: float = 200e3,
        lattice_parameter_range: Sequence[float] = (3.0, 12.0),
        thickness_range: Sequence[float] = (500.0, 2000.0),
        potential_scale: float = 50.0,
        potential_divisor: float = 3.0,
        h_max: int = 8,
        max_potential: float = 60.0,
        ngf: int = 32,
        n_downsampling: int = 4,
        max_channels: int = 128,
        hidden: int = 512,
        geometry: bool = True,
        geometry_g_max: float = 1.5,
        canonical_output: bool = True,
    ):
        super().__init__()
        if out_channels != 1 or cond_channels != 2:
            raise ValueError(
                "FourierInverseGenerator makes one potential channel from (a, t) conditioning "
                f"(out_channels=1, cond_channels=2); got {out_channels} and {cond_channels}."
            )
        if in_size % 2**n_downsampling:
            raise ValueError(
                f"in_size {in_size} is not divisible by 2**n_downsampling = {2**n_downsampling}."
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size, self.cond_channels = in_size, out_size, cond_channels
        self.s, self.k = float(potential_scale), float(potential_divisor)
        self.geometry, self.phase_features = bool(geometry), False
        self.max_potential = float(max_potential)
        self.canonical_output = bool(canonical_output)
        self.h_max = int(h_max)
        self._setup_domain(
            in_size,
            disc_radius_g200,
            voltage,
            lattice_parameter_range,
            thickness_range,
            geometry_g_max,
        )
        cin = in_channels + cond_channels + self.n_pixel_features()
        self.encoder, c = _strided_encoder(cin, ngf, n_downsampling, max_channels)
        side = in_size // 2**n_downsampling
        n = 2 * self.h_max + 1
        self.n_coefficients = n * n
        # one half plane of (h, k) (row k + h_max, column h + h_max) and its mirror −g
        kk, hh = np.meshgrid(np.arange(n) - self.h_max, np.arange(n) - self.h_max, indexing="ij")
        half = np.flatnonzero(((kk > 0) | ((kk == 0) & (hh > 0))).ravel())
        self.n_half = len(half)
        self.register_buffer("half_index", torch.from_numpy(half), False)
        self.register_buffer("mirror_index", torch.from_numpy(n * n - 1 - half), False)
        self.head = self._coefficient_head(c * side * side + cond_channels, hidden)
        self.inverse = InverseFourier(self.h_max, out_size)
        self.origin = FourierCoefficients(self.h_max, out_size, origin="max_at_centre")

    def _coefficient_head(self, n_in: int, hidden: int) -> nn.Sequential:
        """The MLP from the encoded discs and (a, t) to V_0 and the half plane's V_g."""
        head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in, hidden),
            nn.LeakyReLU(0.1),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.1),
            nn.Linear(hidden, 1 + 3 * self.n_half),
        )
        # Start near a plausible potential: V_0 ≈ 0.4 V_max and every other amplitude
        # ≈ 1 % of V_0. From sigmoid(0) = ½ everywhere, ~n² coefficients of V_0 / 2 with
        # random phases would make a huge, partly negative image, and the quickest way
        # down the loss would be V_0 → 0, where the decode saturates (a dead network).
        last = head[-1]
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.zero_()
            last.bias[0] = math.log(0.4 / 0.6)
            last.bias[1 : 1 + self.n_half] = math.log(0.01 / 0.99)
        return head

    def bound(self) -> float:
        """Largest ``|V|`` (V·Å) any output can reach: a_max · V_max · (2 h_max + 1)².

        a_max is the lattice parameter of the largest conditioning value accepted (1.5,
        past which it is clamped).
        """
        a_max = _decode_unit(torch.tensor(1.5), self.a_range).item()
        return a_max * self.max_potential * self.n_coefficients

    def coefficients(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(V_g (B, n, n) complex volts, a (B,)) predicted for discs ``x``.

        The network predicts one half plane (k > 0, or k = 0 and h > 0) and V_0; the
        other half are the complex conjugates (V_{−g} = V_g* for a real potential).
        """
        b = x.shape[0]
        x = _clean(x.to(torch.float32), 1.0)
        c = _clean(cond.to(torch.float32), 1.5)
        a, t = self._a_t(cond)
        planes = c[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        inp = torch.cat([x, planes, self.pixel_features(b, a, t)], dim=1)
        h = self.encoder(inp)
        raw = self.head(torch.cat([h.flatten(1), c], dim=1))
        raw = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).clamp(-50.0, 50.0)
        m = self.n_half
        v0 = self.max_potential * torch.sigmoid(raw[:, 0])
        amp = v0[:, None] * torch.sigmoid(raw[:, 1 : 1 + m])
        px, py = raw[:, 1 + m : 1 + 2 * m], raw[:, 1 + 2 * m :]
        norm = torch.sqrt(px * px + py * py + 1e-12) + 1e-6
        re, im = amp * px / norm, amp * py / norm
        n = 2 * self.h_max + 1
        real = torch.zeros(b, n * n, dtype=re.dtype, device=re.device)
        imag = torch.zeros_like(real)
        real[:, self.half_index], imag[:, self.half_index] = re, im
        real[:, self.mirror_index], imag[:, self.mirror_index] = re, -im
        real[:, (n * n) // 2] = v0  # V_0: real and positive
        return torch.complex(real, imag).reshape(b, n, n), a

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Encoded potentials (B, 1, P, P) of encoded discs ``x`` (B, R, D, D)."""
        vg, a = self.coefficients(x, cond)
        v = self.inverse(vg * a[:, None, None])  # projected: c V_g with c = a (cubic [001])
        if self.canonical_output:
            v = _roll_each(v, self.origin.shifts(v))
        y = torch.asinh(v / self.s) / self.k - 1.0
        return y[:, None]
