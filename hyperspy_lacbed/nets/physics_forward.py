"""Forward generators with physics inside: a few-beam Bloch calculation in the cGAN's graph.

The v1 forward generator learns the whole map potential → discs and sits on a floor
(ℓMSE 3e-3 – 2e-2 on every real crystal), while a Bloch-wave calculation with a handful
of beams is nearly exact for light crystals and poor for heavy ones. These generators
put a :class:`~hyperspy_lacbed.nets.bloch_layer.FewBeamBloch` layer (the engine's core,
batched over the mini-batch) inside :class:`~hyperspy_lacbed.nets.physics_informed.FourierForwardGenerator`
and let the network learn only what the few beams miss. Two ways (``physics=``):

``"residual"``
    (a) The layer's discs, encoded as the targets are (``y = 2 √I − 1``), are extra
    per-pixel input channels of the network, and its output is added to them through a
    learned gate: ``y = y_phys + γ(z) ⊙ tanh(h)``, with ``γ = sigmoid(·)`` per disc from
    the structure-factor code z (it starts near 0.05: the physics alone). The layer
    needs no gradient here.
``"effective"``
    (b) Learned effective structure factors: a head on the code z corrects U_g of the
    beams up to ``correction_h_max`` (``U ← U (1 + ρ) + σ c``, ρ and c complex and
    bounded, Friedel-symmetrised so the potential stays real) and adds a tilt-independent
    diagonal potential per beam; the few-beam calculation then produces the discs, so
    the output is a Bloch-wave pattern by construction. A learned generalisation of
    Bethe potentials; gradients pass through the layer's eigen-decomposition.

Both start as the physics alone (zero-initialised corrections) and keep the cGAN
interface (encoded potential and conditioning in, encoded discs out), so the training
loop, the paper's adversarial and feature-matching losses, the cards and
:class:`~hyperspy_lacbed.nets.surrogate.Surrogate` use them unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hyperspy_lacbed.nets.bloch_layer import FewBeamBloch, folded_intensities, pool_h_max_for
from hyperspy_lacbed.nets.fourier import FourierCoefficients
from hyperspy_lacbed.nets.physics_informed import FourierForwardGenerator

__all__ = ["PHYSICS_MODES", "PhysicsForwardGenerator", "physics_generator_kwargs"]

#: The ways the network and the Bloch layer combine.
PHYSICS_MODES = ("residual", "effective")


class PhysicsForwardGenerator(FourierForwardGenerator):
    """:class:`~hyperspy_lacbed.nets.physics_informed.FourierForwardGenerator` with a few-beam Bloch layer inside.

    Parameters
    ----------
    physics
        ``"residual"`` or ``"effective"`` (module docstring).
    strong_beams, weak_beams
        The layer's beams per tilt (:class:`~hyperspy_lacbed.nets.bloch_layer.FewBeamBloch`).
    absorption_fraction, mean_inner_potential, mean_absorption
        The domain's physics (as the engine's settings).
    correction_h_max
        ``"effective"``: largest ``|h|``, ``|k|`` of the corrected U_g and diagonal.
    correction_scale
        ``"effective"``: σ, the scale of the absolute corrections, Å⁻².
    disc_transform
        The encoding of the discs, ``"sqrt"`` (``y = 2 √I − 1``) or ``"linear"``.
    **kwargs
        Those of :class:`~hyperspy_lacbed.nets.physics_informed.FourierForwardGenerator`.
    """

    def __init__(
        self,
        *args: Any,
        physics: str = "residual",
        strong_beams: int = 10,
        weak_beams: int = 0,
        absorption_fraction: float = 0.1,
        mean_inner_potential: bool = True,
        mean_absorption: bool = False,
        correction_h_max: int = 4,
        correction_scale: float = 1e-3,
        disc_transform: str = "sqrt",
        **kwargs: Any,
    ):
        if physics not in PHYSICS_MODES:
            raise ValueError(f"physics must be one of {PHYSICS_MODES}, not {physics!r}.")
        if disc_transform not in ("sqrt", "linear"):
            raise ValueError(f"disc_transform must be 'sqrt' or 'linear', not {disc_transform!r}.")
        from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS

        self.physics = physics
        self.disc_transform = disc_transform
        reflections = [list(r) for r in (kwargs.get("reflections") or DEFAULT_REFLECTIONS)]
        # the residual mode feeds the layer's discs to the pixel network as R channels
        self._extra_channels = len(reflections) if physics == "residual" else 0
        super().__init__(*args, **kwargs)
        self.bloch = FewBeamBloch(
            reflections,
            self.out_size,
            kwargs.get("disc_radius_g200", 0.75),
            kwargs.get("voltage", 200e3),
            strong_beams,
            weak_beams,
            absorption_fraction=absorption_fraction,
            mean_inner_potential=mean_inner_potential,
            mean_absorption=mean_absorption,
            # the pool's differences must be resolved by the potential image (2 H < P / 2)
            pool_h_max=min(pool_h_max_for(strong_beams + weak_beams), (self.in_size - 1) // 4),
        )
        voltage = float(kwargs.get("voltage", 200e3))
        self.table = FourierCoefficients(
            min(self.bloch.table_h_max, (self.in_size - 1) // 2), self.in_size, origin="none",
            units="structure_factor", voltage=voltage,
        )  # fmt: skip
        latent = self.encoder[-2].out_features
        r = self.out_channels
        if physics == "residual":
            self.gate = nn.Linear(latent, r)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, -3.0)  # γ ≈ 0.05: start from the physics
        else:
            m = 2 * int(correction_h_max) + 1
            self.correction_h_max = int(correction_h_max)
            self.correction_scale = float(correction_scale)
            # relative (2) and absolute (2) complex corrections of U_g, diagonal (2)
            self.correction = nn.Linear(latent, 6 * m * m)
            nn.init.zeros_(self.correction.weight)
            nn.init.zeros_(self.correction.bias)

    def n_pixel_features(self) -> int:
        """Channels of the pixel features, plus the layer's discs in the residual mode."""
        return super().n_pixel_features() + getattr(self, "_extra_channels", 0)

    def structure_factors(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """U_g table (B, n, n) in Å⁻² of canonical potentials ``v`` (V·Å)."""
        return self.table(v.to(torch.float64), a.to(torch.float64))

    def encode(self, intensity: torch.Tensor) -> torch.Tensor:
        """Intensities → the encoded discs (the targets' encoding)."""
        i = intensity.clamp(min=0.0)
        return (
            2.0 * torch.sqrt(i + 1e-30) - 1.0 if self.disc_transform == "sqrt" else 2.0 * i - 1.0
        )

    def physics_discs(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The layer's discs alone (B, R, D, D), encoded: the generator at zero correction."""
        _, v, a, t = self.code(x, cond)
        groups = None if self.symmetriser is None else self.symmetriser.symmetries(v)
        u = self.structure_factors(v, a)
        return self.encode(self.layer(u, a, t, groups)).to(torch.float32)

    def layer(self, u, a, t, groups=None, diagonal_correction=None) -> torch.Tensor:
        """The Bloch layer's intensities (B, R, D, D), one tilt of each symmetry orbit solved.

        The 4mm operations that leave each potential invariant (``groups``, (B, K) from
        the symmetriser; None: solve every tilt) map tilts onto tilts
        (:func:`~hyperspy_lacbed.nets.bloch_layer.folded_intensities`): a 4mm crystal
        costs an eighth.
        """
        sym = self.symmetriser
        if sym is None or groups is None:
            return self.bloch(u, a, t, diagonal_correction)
        return folded_intensities(self.bloch, sym, groups, u, a, t, diagonal_correction)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Encoded discs (B, R, D, D) of encoded potentials ``x`` (B, 1, P, P)."""
        z, v, a, t = self.code(x, cond)
        u = self.structure_factors(v, a)
        groups = None if self.symmetriser is None else self.symmetriser.symmetries(v)
        if self.physics == "residual":
            out = self._residual(z, u, a, t, groups)
        else:
            out = self._effective(z, u, a, t, groups)
        if groups is not None:
            out = self.symmetriser(out, groups)
        return out

    def _residual(self, z, u, a, t, groups) -> torch.Tensor:
        b, d = z.shape[0], self.out_size
        with torch.no_grad():  # the physics is fixed; only the network learns
            y_phys = self.encode(self.layer(u, a, t, groups)).to(torch.float32)
        h = self.pixel_features_last(b, a, t)
        h = torch.cat([h, y_phys.flatten(2).transpose(1, 2)], dim=-1)
        for layer in self.pixel_net:
            h = layer(h, z)
        h = self.head(h).transpose(1, 2).reshape(b, -1, d, d)
        if self.smooth is not None:
            h = h + self.smooth(h)
        gate = torch.sigmoid(self.gate(z))[:, :, None, None]
        return y_phys + gate * torch.tanh(h)

    def _effective(self, z, u, a, t, groups) -> torch.Tensor:
        m = 2 * self.correction_h_max + 1
        w = self.correction(z).view(-1, 3, 2, m, m).to(torch.float64)
        rel, ab, diag = (torch.complex(w[:, i, 0], w[:, i, 1]) for i in range(3))
        rel = 0.5 * torch.tanh(rel.real) + 0.5j * torch.tanh(rel.imag)
        ab = self.correction_scale * ab
        # Friedel: the correction of −g is the conjugate of that of g (a real potential)
        rel = 0.5 * (rel + torch.flip(rel, (-2, -1)).conj())
        ab = 0.5 * (ab + torch.flip(ab, (-2, -1)).conj())
        c = u.shape[-1] // 2
        sl = slice(c - self.correction_h_max, c + self.correction_h_max + 1)
        pad_rel = torch.zeros_like(u)
        pad_abs = torch.zeros_like(u)
        pad_rel[:, sl, sl] = rel
        pad_abs[:, sl, sl] = ab
        pad_abs[:, c, c] = 0.0  # U_0 (refraction) is the potential's own
        u_eff = u * (1 + pad_rel) + pad_abs
        inten = self.layer(u_eff, a, t, groups, self.correction_scale * diag)
        return self.encode(inten).to(torch.float32)


def physics_generator_kwargs(
    domain: Any, physics: str, strong_beams: int, weak_beams: int
) -> dict[str, Any]:
    """The :class:`PhysicsForwardGenerator` keywords that follow from a domain's physics."""
    return {
        "physics": physics,
        "strong_beams": int(strong_beams),
        "weak_beams": int(weak_beams),
        "absorption_fraction": float(domain.absorption_fraction),
        "mean_absorption": bool(domain.mean_absorption),
    }
