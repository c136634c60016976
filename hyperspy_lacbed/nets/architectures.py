"""pix2pixHD-style networks for the LACBED surrogates (torch).

The generator follows pix2pixHD (Wang et al., CVPR 2018): a *global generator* works on
the input downsampled by two, a *local enhancer* works at the input's full resolution,
and the two meet by adding the global generator's last feature map to the enhancer's
downsampled features. Discriminators are PatchGANs at two scales that return their
intermediate features for the feature-matching loss; the adversarial loss is LSGAN.

Differences from pix2pixHD, all forced by LACBED:

* Input and output differ in shape (a 1 × 128 × 128 potential and 9 × 64 × 64 discs).
  The enhancer's output end has as many ×2 up- (or stride-2 down-) sampling stages as
  take half the input size to the output size: none for 128 → 64, two for 64 → 128.
* Scalar conditioning (lattice parameter, thickness) enters as constant input channels.
* Each side has its own padding: ``circular`` on the potential side (the projected
  potential is periodic), ``reflect`` on the disc side. Upsampling is nearest-neighbour
  resize + convolution (rather than a transposed convolution) so that the padding mode
  applies to every layer and no checkerboard appears.
* Default normalisation is batch norm (running statistics at inference): instance norm
  would erase the constant conditioning channels and the absolute strength of the
  potential, both of which the physics depends on.

Nothing here imports HyperSpy; the modules are built from plain keyword arguments, so
that a model card can store them as JSON and :mod:`hyperspy_lacbed.nets.registry`
rebuild them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "ARCHITECTURE_DIRECTION",
    "ConditionalDiscriminator",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "Pix2PixHDGenerator",
    "build_generator",
    "count_parameters",
    "discriminator_kwargs",
    "feature_matching_loss",
    "generator_kwargs",
    "lsgan_loss",
]

_PADDING = {
    "circular": "circular",
    "reflect": "reflect",
    "zeros": "zeros",
    "replicate": "replicate",
}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; choose 'batch', 'instance' or 'none'.")


def _pad_mode(mode: str) -> str:
    if mode not in _PADDING:
        raise ValueError(f"Unknown padding {mode!r}; choose one of {sorted(_PADDING)}.")
    return _PADDING[mode]


def _conv(cin: int, cout: int, k: int, stride: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode=_pad_mode(padding))


def _block(cin: int, cout: int, k: int, stride: int, padding: str, norm: str) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, k, stride, padding), _norm(norm, cout), nn.ReLU(True))


class _Up(nn.Sequential):
    """×2 nearest-neighbour resize, 3 × 3 convolution, norm, ReLU."""

    def __init__(self, cin: int, cout: int, padding: str, norm: str):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), *_block(cin, cout, 3, 1, padding, norm)
        )


class ResnetBlock(nn.Module):
    """Two 3 × 3 convolutions with a skip connection (pix2pixHD's ResnetBlock)."""

    def __init__(self, channels: int, padding: str, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, 1, padding),
            _norm(norm, channels),
            nn.ReLU(True),
            _conv(channels, channels, 3, 1, padding),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _log2_ratio(a: int, b: int, what: str) -> int:
    r = math.log2(a / b)
    if abs(r - round(r)) > 1e-9:
        raise ValueError(f"{what}: sizes {a} and {b} must differ by a power of two.")
    return round(r)


class Pix2PixHDGenerator(nn.Module):
    """Global generator (half resolution) + local enhancer (full resolution).

    Parameters
    ----------
    in_channels, out_channels
        Image channels in and out (1 for a potential, 9 for nine discs).
    in_size, out_size
        Square image sizes in and out (powers of two apart, e.g. 128 → 64).
    cond_channels
        Number of scalar conditioning values, broadcast as constant channels.
    ngf
        Width of the global generator's first layer; the enhancer uses ``ngf // 2``
        at full resolution.
    n_downsampling
        Stride-2 stages of the global generator (its bottleneck is
        ``in_size / 2 ** (n_downsampling + 1)`` pixels wide).
    n_blocks_global, n_blocks_local
        Residual blocks at the global bottleneck and in the enhancer.
    max_channels
        Cap on the number of channels of any layer.
    norm
        ``"batch"`` (default), ``"instance"`` or ``"none"``.
    padding_in, padding_out
        Padding of the layers that see the input side (front and encoder) and the output
        side (decoders and head): ``"circular"`` for a periodic potential, ``"reflect"``
        for discs.
    output_activation
        ``"tanh"`` (outputs in [-1, 1]) or ``"none"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 9,
        in_size: int = 128,
        out_size: int = 64,
        cond_channels: int = 2,
        ngf: int = 32,
        n_downsampling: int = 3,
        n_blocks_global: int = 3,
        n_blocks_local: int = 2,
        max_channels: int = 256,
        norm: str = "batch",
        padding_in: str = "circular",
        padding_out: str = "reflect",
        output_activation: str = "tanh",
    ):
        super().__init__()
        if in_size % 2 or in_size // 2 < 2**n_downsampling:
            raise ValueError(
                f"in_size {in_size} is too small for n_downsampling={n_downsampling}: the "
                f"global generator runs at {in_size // 2} pixels and halves it "
                f"{n_downsampling} times."
            )
        if ngf < 2:
            raise ValueError(f"ngf must be at least 2, got {ngf}.")
        if output_activation not in ("tanh", "none"):
            raise ValueError(
                f"Unknown output_activation {output_activation!r}; choose 'tanh' or 'none'."
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size, self.cond_channels = in_size, out_size, cond_channels
        cin = in_channels + cond_channels
        ch = [min(ngf * 2**i, max_channels) for i in range(n_downsampling + 1)]

        # global generator, on the input downsampled by two
        layers: list[nn.Module] = [_block(cin, ch[0], 7, 1, padding_in, norm)]
        for i in range(n_downsampling):
            layers.append(_block(ch[i], ch[i + 1], 3, 2, padding_in, norm))
        layers += [ResnetBlock(ch[-1], padding_in, norm) for _ in range(n_blocks_global)]
        for i in reversed(range(n_downsampling)):
            layers.append(_Up(ch[i + 1], ch[i], padding_out, norm))
        self.global_generator = nn.Sequential(*layers)

        # local enhancer: full-resolution front end, down to the global resolution
        half = max(ngf // 2, 1)
        self.local_front = nn.Sequential(
            _block(cin, half, 7, 1, padding_in, norm),
            _block(half, ch[0], 3, 2, padding_in, norm),
        )
        back: list[nn.Module] = [
            ResnetBlock(ch[0], padding_out, norm) for _ in range(n_blocks_local)
        ]
        steps = _log2_ratio(out_size, in_size // 2, "Generator output")
        c = ch[0]
        for _ in range(max(steps, 0)):
            nxt = max(c // 2, 8)
            back.append(_Up(c, nxt, padding_out, norm))
            c = nxt
        for _ in range(max(-steps, 0)):
            back.append(_block(c, c, 3, 2, padding_out, norm))
        back.append(_conv(c, out_channels, 7, 1, padding_out))
        if output_activation == "tanh":
            back.append(nn.Tanh())
        self.local_back = nn.Sequential(*back)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``x`` (B, in_channels, in_size, in_size) and ``cond`` (B, cond_channels)."""
        x = _with_conditioning(x, cond, self.cond_channels)
        g = self.global_generator(F.avg_pool2d(x, 2))
        return self.local_back(self.local_front(x) + g)


def _with_conditioning(x: torch.Tensor, cond: torch.Tensor | None, n: int) -> torch.Tensor:
    if n == 0:
        return x
    if cond is None or cond.shape != (x.shape[0], n):
        got = None if cond is None else tuple(cond.shape)
        raise ValueError(f"Expected conditioning of shape ({x.shape[0]}, {n}), got {got}.")
    c = cond.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
    return torch.cat([x, c], dim=1)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator returning every stage's output (pix2pixHD's getIntermFeat)."""

    def __init__(
        self,
        in_channels: int,
        ndf: int = 32,
        n_layers: int = 3,
        norm: str = "instance",
        padding: str = "reflect",
    ):
        super().__init__()
        kw, pw, mode = 4, 2, _pad_mode(padding)
        stages: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, ndf, kw, 2, pw, padding_mode=mode), nn.LeakyReLU(0.2, True)
            )
        ]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            stages.append(
                nn.Sequential(
                    nn.Conv2d(prev, nf, kw, stride, pw, padding_mode=mode),
                    _norm(norm, nf),
                    nn.LeakyReLU(0.2, True),
                )
            )
        stages.append(nn.Conv2d(nf, 1, kw, 1, pw, padding_mode=mode))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on the input at full, half, quarter... resolution."""

    def __init__(
        self,
        in_channels: int,
        ndf: int = 32,
        n_layers: int = 3,
        num_d: int = 2,
        norm: str = "instance",
        padding: str = "reflect",
    ):
        super().__init__()
        self.n_layers = n_layers
        self.scales = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers, norm, padding) for _ in range(num_d)
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 2)
            out.append(d(x))
        return out


class ConditionalDiscriminator(nn.Module):
    """Multi-scale discriminator of (input, output) pairs of different shapes.

    The generator's input is resized to the output's size (area average down,
    nearest-neighbour up) and stacked with the output and the constant conditioning
    channels, as pix2pixHD stacks the label map with the image.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int = 2,
        ndf: int = 32,
        n_layers: int = 3,
        num_d: int = 2,
        norm: str = "instance",
        padding: str = "reflect",
    ):
        super().__init__()
        self.cond_channels = cond_channels
        self.net = MultiscaleDiscriminator(
            in_channels + out_channels + cond_channels, ndf, n_layers, num_d, norm, padding
        )

    @property
    def n_layers(self) -> int:
        return self.net.n_layers

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None, y: torch.Tensor
    ) -> list[list[torch.Tensor]]:
        size = y.shape[-2:]
        if x.shape[-2:] != size:
            if x.shape[-1] > size[-1]:
                x = F.adaptive_avg_pool2d(x, size)
            else:
                x = F.interpolate(x, size=size, mode="nearest")
        return self.net(_with_conditioning(torch.cat([y, x], dim=1), cond, self.cond_channels))


def lsgan_loss(predictions: list[list[torch.Tensor]], target_is_real: bool) -> torch.Tensor:
    """LSGAN loss summed over the discriminator scales (last output of each scale)."""
    target = 1.0 if target_is_real else 0.0
    loss = 0.0
    for scale in predictions:
        p = scale[-1].float()
        loss = loss + F.mse_loss(p, torch.full_like(p, target))
    return loss  # type: ignore[return-value]


def feature_matching_loss(
    fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int
) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching: L1 between intermediate features.

    Weighted by ``4 / (n_layers + 1)`` per layer and ``1 / num_d`` per scale, with the
    real features detached.
    """
    w_feat, w_d = 4.0 / (n_layers + 1), 1.0 / len(fake)
    loss = 0.0
    for f_scale, r_scale in zip(fake, real, strict=True):
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            loss = loss + w_d * w_feat * F.l1_loss(f.float(), r.detach().float())
    return loss  # type: ignore[return-value]


from hyperspy_lacbed.nets.physics_forward import PhysicsForwardGenerator  # noqa: E402
from hyperspy_lacbed.nets.physics_informed import (  # noqa: E402 (they import nothing from here)
    FourierForwardGenerator,
    FourierInverseGenerator,
)

#: Generator classes a model card may name.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "pix2pixhd": Pix2PixHDGenerator,
    "fourier-forward": FourierForwardGenerator,
    "fourier-inverse": FourierInverseGenerator,
    "physics-forward": PhysicsForwardGenerator,
}
#: The direction of each architecture that serves only one (pix2pixhd serves both).
ARCHITECTURE_DIRECTION = {
    "fourier-forward": "forward",
    "fourier-inverse": "inverse",
    "physics-forward": "forward",
}


def build_generator(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The generator ``name`` built with ``kwargs`` (as stored in a model card).

    Raises
    ------
    ValueError
        For an architecture this version does not know, or arguments it does not take.
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {name!r}; this version of hyperspy-lacbed knows "
            f"{sorted(ARCHITECTURES)}. Upgrade the package, or retrain and export the model "
            "with this version."
        )
    try:
        return ARCHITECTURES[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"Invalid arguments for architecture {name!r}: {exc}") from exc


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- defaults
def generator_kwargs(
    direction: str,
    domain: Any,
    overrides: dict[str, Any] | None = None,
    architecture: str = "pix2pixhd",
    encoding: Any = None,
) -> dict[str, Any]:
    """Full keyword arguments of the generator of a direction and domain.

    Parameters
    ----------
    direction
        ``"forward"`` (potential → discs) or ``"inverse"`` (discs → potential).
    domain
        A :class:`~hyperspy_lacbed.nets.domain.Domain` (its reflections and pixel sizes
        fix the channels and sizes).
    overrides
        Keyword arguments that replace the defaults.
    architecture
        A name of :data:`ARCHITECTURES`; the physics-informed ones also take the domain's
        geometry and the encoding's constants.
    encoding
        The :class:`~hyperspy_lacbed.nets.normalisation.Encoding` of the model (default:
        the domain's default encoding).

    Raises
    ------
    ValueError
        For an unknown architecture, or one that does not serve ``direction``.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}."
        )
    want = ARCHITECTURE_DIRECTION.get(architecture, direction)
    if want != direction:
        raise ValueError(
            f"Architecture {architecture!r} is a {want} generator, not a {direction} one; use "
            f"'fourier-{direction}' or 'pix2pixhd'."
        )
    r, d, p = len(domain.reflections), domain.disc_pixels, domain.potential_pixels
    if architecture != "pix2pixhd":
        return _physics_kwargs(direction, domain, overrides, encoding, architecture)
    if direction == "forward":
        kw: dict[str, Any] = {
            "in_channels": 1,
            "out_channels": r,
            "in_size": p,
            "out_size": d,
            "padding_in": "circular",
            "padding_out": "reflect",
            "output_activation": "tanh",
        }
    else:
        kw = {
            "in_channels": r,
            "out_channels": 1,
            "in_size": d,
            "out_size": p,
            "padding_in": "reflect",
            "padding_out": "circular",
            "output_activation": "none",
        }
    base = {
        "cond_channels": 2,
        "ngf": 32,
        "n_downsampling": 3,
        "n_blocks_global": 3,
        "n_blocks_local": 2,
        "max_channels": 256,
        "norm": "batch",
    }
    base.update(kw)
    base.update(overrides or {})
    return base


def _physics_kwargs(
    direction: str,
    domain: Any,
    overrides: dict[str, Any] | None,
    encoding: Any,
    architecture: str = "",
) -> dict[str, Any]:
    from hyperspy_lacbed.nets.normalisation import Encoding

    if tuple(domain.zone_axis) != (0, 0, 1) or tuple(domain.x_direction) != (1, 0, 0):
        raise ValueError(
            "The physics-informed generators know the cubic [001] zone with x along [100] "
            f"(their geometry and 4mm symmetry); this domain has zone axis "
            f"{list(domain.zone_axis)} and x {list(domain.x_direction)}. Use 'pix2pixhd'."
        )
    enc = encoding if encoding is not None else Encoding.for_domain(domain)
    if enc.disc_transform != "sqrt" and (overrides or {}).get("output") == "scale_free":
        raise ValueError("output='scale_free' needs the 'sqrt' disc encoding.")
    r, d, p = len(domain.reflections), domain.disc_pixels, domain.potential_pixels
    kw: dict[str, Any] = {
        "in_channels": 1 if direction == "forward" else r,
        "out_channels": r if direction == "forward" else 1,
        "in_size": p if direction == "forward" else d,
        "out_size": d if direction == "forward" else p,
        "cond_channels": 2,
        "reflections": [list(x) for x in domain.reflections],
        "disc_radius_g200": float(domain.disc_radius_g200),
        "voltage": float(domain.voltage),
        "lattice_parameter_range": list(enc.lattice_parameter_range),
        "thickness_range": list(enc.thickness_range),
        "potential_scale": float(enc.potential_scale),
        "potential_divisor": float(enc.potential_divisor),
        # forward: the engine's strong beams (~80) couple U_{g−h} up to |h| ≈ 10; inverse:
        # a 24-order band reproduces real potentials to ℓMSE ≲ 5e-5 even for a ≈ 12 Å.
        # Small test grids get what they hold (2 h_max < P).
        "h_max": min(12 if direction == "forward" else 24, (p - 1) // 2),
    }
    if architecture == "physics-forward":
        # the Bloch layer simulates the domain's own physics, encoded as the targets are
        kw.update(
            absorption_fraction=float(domain.absorption_fraction),
            mean_absorption=bool(domain.mean_absorption),
            disc_transform=enc.disc_transform,
        )
    kw.update(overrides or {})
    return kw


def discriminator_kwargs(
    direction: str, domain: Any, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Full keyword arguments of the conditional two-scale discriminator.

    Parameters are those of :func:`generator_kwargs`.
    """
    r = len(domain.reflections)
    kw: dict[str, Any] = {
        "in_channels": 1 if direction == "forward" else r,
        "out_channels": r if direction == "forward" else 1,
        "cond_channels": 2,
        "ndf": 32,
        "n_layers": 3,
        "num_d": 2,
        "norm": "instance",
        "padding": "reflect" if direction == "forward" else "circular",
    }
    kw.update(overrides or {})
    return kw
