"""Training the cGAN surrogates: pix2pixHD losses, checkpoints, exact resume, export.

:func:`fit` trains a generator (``TrainConfig.architecture``: the paper's
:class:`~hyperspy_lacbed.nets.architectures.Pix2PixHDGenerator`, or a physics-informed one
of :mod:`hyperspy_lacbed.nets.physics_informed`) against a two-scale conditional PatchGAN
with the pix2pixHD losses: LSGAN adversarial loss, discriminator feature matching
(weight ``lambda_feat``) and an L1 loss to the target (weight ``lambda_l1``), with Adam,
mixed precision on CUDA, a checkpoint every ``checkpoint_every`` steps and at the end,
and a plain JSON-lines log.

Datasets are ``torch.utils.data.Dataset`` objects (anything with ``__len__`` and
``__getitem__``) whose items are dicts::

    {"potential": (1, P, P) or (P, P) float32 in V·Å,
     "discs": (n_thickness, R, D, D) or (R, D, D) float32 intensities,
     "thickness": float Å, or (n_thickness,) floats,
     "lattice_parameter": float Å,
     "space_group": int}

For each item of a batch one thickness is drawn. Randomness is a pure function of
``(seed, step)``: the samples of step ``k`` (an epoch-wise permutation of the dataset),
their thickness, and the global NumPy / ``random`` / torch seeds set while a dataset
item is read (so that a dataset's own random augmentation is reproducible too). With
the model, optimiser, scaler and torch RNG states in the checkpoint, a run interrupted
and resumed gives the same weights as an uninterrupted one (bit for bit on CPU).

:func:`export` writes ``models/<name>/model.safetensors`` (generator weights only) and
``card.json`` (see :mod:`hyperspy_lacbed.nets.registry`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.nets.normalisation import Encoding
from hyperspy_lacbed.parsing import dataclass_kwargs
from hyperspy_lacbed.train.recipe import fit_defaults

if TYPE_CHECKING:
    from hyperspy_lacbed.nets.surrogate import Surrogate

__all__ = [
    "ArrayDataset",
    "TrainConfig",
    "amplitude_loss",
    "as_surrogate",
    "checkpoint_surrogate",
    "export",
    "fit",
    "load_checkpoint",
    "validation_scores",
]

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CONFIG = "config.json"


@dataclass
class TrainConfig:
    """Settings of one training run.

    The settings left at ``None`` take the value of the shipped models' recipe for the
    run's direction (:func:`hyperspy_lacbed.train.recipe.fit_defaults`, the ``[fit]``
    tables of ``configs/v1.toml``): ``TrainConfig(direction="inverse")`` trains the
    shipped inverse model's architecture with its settings.

    Attributes
    ----------
    direction
        ``"forward"`` (potential → discs) or ``"inverse"`` (discs → potential).
    architecture
        A generator of :data:`~hyperspy_lacbed.nets.architectures.ARCHITECTURES`:
        ``"pix2pixhd"`` (the paper's, both directions), ``"fourier-forward"`` or
        ``"fourier-inverse"``; None: the recipe's (``fourier-<direction>``).
    generator
        Keyword arguments of the generator that override the defaults (for pix2pixhd
        ``ngf``, ``n_downsampling``, ``n_blocks_global``, ``n_blocks_local``,
        ``max_channels``, ``norm``); shapes come from the domain. None: the recipe's
        when the architecture is the recipe's (its keywords belong to that generator),
        else none.
    discriminator
        Overrides of the discriminator's (``ndf``, ``n_layers``, ``num_d``, ``norm``);
        None: the recipe's.
    domain
        ``Domain.to_dict()``; default the training dataset's (its ``recipe["domain"]`` or
        ``domain`` attribute), else :class:`~hyperspy_lacbed.nets.domain.Domain` ().
    normalisation
        Overrides of :class:`~hyperspy_lacbed.nets.normalisation.Encoding`.
    lr, betas
        Adam settings of both networks (pix2pixHD: 2e-4, (0.5, 0.999)).
    lr_decay_after
        Step after which the learning rate decays linearly to 0 at ``steps``; ``steps``
        or more: never. None: the recipe's.
    batch_size
        Samples per step; None: the recipe's.
    steps
        Total number of optimisation steps (a resumed run continues to it); None: the
        recipe's.
    checkpoint_every
        Steps between checkpoints (also written at the end and when ``hours`` runs out).
    hours
        Wall-clock budget of one call of :func:`fit`, in hours (None: unlimited), setup
        included; every call makes at least one step.
    seed
        Seed of the weights' initialisation and of every random draw.
    lambda_feat, lambda_l1
        Weights of the feature-matching and L1 losses (the LSGAN loss has weight 1).
    lambda_amplitude
        Weight of an origin-invariant loss of the inverse direction (0: off): the L1
        distance between the Fourier amplitudes of the predicted and target potentials
        (decoded to V·Å), divided by the target's mean potential. Amplitudes do not
        change when the crystal is translated, so this term does not depend on the
        origin the generator gives its crystal. None: the recipe's (10 for the inverse
        direction, 0 for the forward one).
    amp
        Mixed precision; None: on for CUDA, off on CPU.
    device
        None: CUDA when available, else CPU.
    out_dir
        Folder of the checkpoint, the log and the config.
    log_every
        Steps between log lines.
    val_items
        Validation samples scored at each checkpoint, at every thickness (when a
        validation set is given).
    """

    direction: str = "forward"
    architecture: str | None = None
    generator: dict[str, Any] | None = None
    discriminator: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None
    normalisation: dict[str, Any] = field(default_factory=dict)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_after: int | None = None
    batch_size: int | None = None
    steps: int | None = None
    checkpoint_every: int = 500
    hours: float | None = None
    seed: int = 0
    lambda_feat: float = 10.0
    lambda_l1: float = 100.0
    lambda_amplitude: float | None = None
    amp: bool | None = None
    device: str | None = None
    out_dir: str = "runs/cgan"
    log_every: int = 10
    val_items: int = 64

    def __post_init__(self) -> None:
        if self.direction not in ("forward", "inverse"):
            raise ValueError(f"direction must be 'forward' or 'inverse', not {self.direction!r}.")
        self._fill_from_recipe()
        from hyperspy_lacbed.nets.architectures import ARCHITECTURE_DIRECTION, ARCHITECTURES

        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown architecture {self.architecture!r}; choose one of "
                f"{sorted(ARCHITECTURES)}."
            )
        if ARCHITECTURE_DIRECTION.get(self.architecture, self.direction) != self.direction:
            raise ValueError(
                f"Architecture {self.architecture!r} cannot train a {self.direction} model; use "
                f"'fourier-{self.direction}' or 'pix2pixhd'."
            )
        if float(self.lambda_amplitude) < 0 or (
            self.lambda_amplitude and self.direction != "inverse"
        ):
            raise ValueError(
                "lambda_amplitude is a weight (≥ 0) of the inverse direction's loss on "
                f"potentials; got {self.lambda_amplitude} for a {self.direction} model."
            )
        for name in ("batch_size", "steps", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]

    def _fill_from_recipe(self) -> None:
        """Give the settings left at None the recipe's values for the direction."""
        recipe = fit_defaults(self.direction)
        if self.architecture is None:
            self.architecture = recipe["architecture"]
        if self.generator is None:
            own = self.architecture == recipe["architecture"]
            self.generator = dict(recipe.get("generator", {})) if own else {}
        if self.discriminator is None:
            self.discriminator = dict(recipe.get("discriminator", {}))
        if self.lambda_amplitude is None:
            self.lambda_amplitude = float(recipe.get("lambda_amplitude", 0.0))
        for name in ("batch_size", "steps", "lr_decay_after"):
            if getattr(self, name) is None:
                setattr(self, name, int(recipe[name]))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**dataclass_kwargs(cls, d, "training settings"))


class ArrayDataset:
    """An in-memory dataset of the item layout :func:`fit` reads.

    Parameters
    ----------
    potentials
        ``(N, P, P)`` in V·Å.
    discs
        ``(N, n_thickness, R, D, D)`` intensities.
    thicknesses
        ``(n_thickness,)`` Å, shared by every item.
    lattice_parameters
        ``(N,)`` Å.
    space_groups
        ``(N,)`` integers (default 0).
    domain
        The domain of the data (kept as ``recipe["domain"]``).
    """

    def __init__(
        self,
        potentials: np.ndarray,
        discs: np.ndarray,
        thicknesses: Sequence[float],
        lattice_parameters: Sequence[float],
        space_groups: Sequence[int] | None = None,
        domain: Domain | None = None,
    ):
        self.potentials = np.asarray(potentials, np.float32)
        self.discs = np.asarray(discs, np.float32)
        self.thicknesses = np.asarray(thicknesses, np.float32)
        self.lattice_parameters = np.asarray(lattice_parameters, np.float32)
        n = len(self.potentials)
        self.space_groups = np.zeros(n, int) if space_groups is None else np.asarray(space_groups)
        if not (len(self.discs) == len(self.lattice_parameters) == len(self.space_groups) == n):
            raise ValueError(
                "potentials, discs, lattice_parameters and space_groups differ in length."
            )
        if self.discs.ndim != 5 or self.discs.shape[1] != len(self.thicknesses):
            raise ValueError(
                "discs must be (N, n_thickness, R, D, D) with one thickness per index."
            )
        self.recipe = {"domain": (domain or Domain()).to_dict(), "kind": "in-memory"}

    def __len__(self) -> int:
        return len(self.potentials)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "potential": self.potentials[i][None],
            "discs": self.discs[i],
            "thickness": self.thicknesses,
            "lattice_parameter": float(self.lattice_parameters[i]),
            "space_group": int(self.space_groups[i]),
        }


def _domain_of(config: TrainConfig, dataset: Any) -> Domain:
    if config.domain is not None:
        return Domain.from_dict(config.domain)
    recipe = getattr(dataset, "recipe", None)
    if isinstance(recipe, dict) and isinstance(recipe.get("domain"), dict):
        return Domain.from_dict(recipe["domain"])
    dom = getattr(dataset, "domain", None)
    if isinstance(dom, Domain):
        return dom
    if isinstance(dom, dict):
        return Domain.from_dict(dom)
    return Domain()


# ----------------------------------------------------------------------------- data
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's, Python's and torch's global generators; restore them afterwards."""
    import torch

    # The global generators on purpose: a dataset's own augmentation may use them.
    np_state = np.random.get_state()  # noqa: NPY002
    py_state, t_state = random.getstate(), torch.get_rng_state()
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
        torch.set_rng_state(t_state)


def _item_arrays(
    item: dict[str, Any], pick: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(potential (P, P), discs (R, D, D), thickness, a) with one thickness chosen."""
    pot = np.asarray(item["potential"], np.float64)
    pot = pot.reshape(pot.shape[-2:])
    discs = np.asarray(item["discs"], np.float32)
    t = np.atleast_1d(np.asarray(item["thickness"], np.float64))
    if discs.ndim == 4:
        if t.size != discs.shape[0]:
            raise ValueError(
                f"An item has {discs.shape[0]} thicknesses of discs but {t.size} thickness values."
            )
        i = int(rng.integers(discs.shape[0])) if pick is None else pick % discs.shape[0]
        discs, thick = discs[i], float(t[i])
    elif discs.ndim == 3:
        thick = float(t[0])
    else:
        raise ValueError(
            f"discs of an item must be (n_t, R, D, D) or (R, D, D), got {discs.shape}."
        )
    return pot, discs, thick, float(item["lattice_parameter"])


def _encode(
    direction: str, enc: Encoding, pot: np.ndarray, discs: np.ndarray, t: float, a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cond = enc.encode_conditioning(a, t)[0]
    if direction == "forward":
        return enc.encode_potential(pot)[None], cond, enc.encode_discs(discs)
    return enc.encode_input_discs(discs), cond, enc.encode_potential(pot)[None]


class _Batches:
    """Batches as a pure function of the step (epoch-wise permutations of the dataset)."""

    def __init__(self, dataset: Any, config: TrainConfig, enc: Encoding):
        self.ds, self.cfg, self.enc = dataset, config, enc
        self.n = len(dataset)
        if self.n == 0:
            raise ValueError("The training dataset is empty.")
        self._perm: dict[int, np.ndarray] = {}

    def _index(self, position: int) -> int:
        epoch = position // self.n
        if epoch not in self._perm:
            self._perm = {
                epoch: np.random.default_rng([self.cfg.seed, 1, epoch]).permutation(self.n)
            }
        return int(self._perm[epoch][position % self.n])

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bs = self.cfg.batch_size
        rng = np.random.default_rng([self.cfg.seed, 2, step])
        xs, cs, ys = [], [], []
        for j in range(bs):
            idx = self._index(step * bs + j)
            seed = int(np.random.SeedSequence([self.cfg.seed, 3, step, j]).generate_state(1)[0])
            with _seeded(seed):
                item = self.ds[idx]
            x, c, y = _encode(self.cfg.direction, self.enc, *_item_arrays(item, None, rng))
            xs.append(x)
            cs.append(c)
            ys.append(y)
        return np.stack(xs), np.stack(cs), np.stack(ys)


# ----------------------------------------------------------------------------- checkpoints
def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint of a run folder, loaded with ``torch.load(weights_only=True)``."""
    import torch

    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"No {CHECKPOINT} in {out_dir}; train with fit() first.")
    return torch.load(path, map_location="cpu", weights_only=True)


def _compatible(saved: dict[str, Any], now: dict[str, Any]) -> None:
    saved = {"architecture": "pix2pixhd", **saved}  # checkpoints from before the field
    keys = ("direction", "architecture", "generator", "discriminator", "domain", "normalisation")
    for key in (*keys, "seed"):
        if saved.get(key) != now.get(key):
            raise ValueError(
                f"Cannot resume: the checkpoint was trained with {key}={saved.get(key)!r}, the "
                f"config now says {now.get(key)!r}. Use another out_dir or resume=False."
            )


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    path.write_text("".join(k + "\n" for k in keep), encoding="utf-8")


# ----------------------------------------------------------------------------- fit
def _lr(config: TrainConfig, step: int) -> float:
    start = config.lr_decay_after
    if start is None or step < start or config.steps <= start:
        return config.lr
    return config.lr * max(0.0, 1.0 - (step - start) / (config.steps - start))


def amplitude_loss(prediction: Any, target: Any, enc: Encoding) -> Any:
    """Origin-invariant loss of encoded potentials: L1 of their Fourier amplitudes.

    Parameters
    ----------
    prediction, target
        Encoded potentials (B, 1, P, P) (torch tensors).
    enc
        Their :class:`~hyperspy_lacbed.nets.normalisation.Encoding`.

    Returns
    -------
    torch.Tensor
        Mean over the batch of ``mean |A_pred − A_ref| / mean V_ref``, with A the moduli
        of the discrete Fourier transform divided by P² (the coefficients of the cell's
        Fourier series, V·Å), which a cyclic translation of either image leaves unchanged.
    """
    import torch

    def decode(y: Any) -> Any:
        y = torch.clamp(y, -1.5, 1.5)  # keeps sinh and its gradient finite
        return enc.potential_scale * torch.sinh((y + 1.0) * enc.potential_divisor)

    v_pred, v_ref = decode(prediction), decode(target)
    n = v_ref.shape[-1] * v_ref.shape[-2]
    a_pred = torch.fft.fft2(v_pred).abs() / n
    a_ref = torch.fft.fft2(v_ref).abs() / n
    scale = v_ref.mean(dim=(-3, -2, -1)).abs().clamp(min=1e-3)
    return ((a_pred - a_ref).abs().mean(dim=(-3, -2, -1)) / scale).mean()


# ----------------------------------------------------------------------------- one run
@dataclass
class _Run:
    """The settings, networks, optimisers and files of one training run."""

    cfg: TrainConfig
    enc: Encoding
    identity: dict[str, Any]
    device: Any
    amp: bool
    G: Any
    D: Any
    opt_g: Any
    opt_d: Any
    scaler: Any
    out: Path
    recipe: Any
    dataset_size: int

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    @property
    def log_path(self) -> Path:
        return self.out / LOG


def _set_up(train_dataset: Any, config: TrainConfig) -> _Run:
    """The run's settings with the dataset's domain, freshly initialised networks and files."""
    import torch

    from hyperspy_lacbed.nets.architectures import (
        ConditionalDiscriminator,
        build_generator,
        discriminator_kwargs,
        generator_kwargs,
    )
    from hyperspy_lacbed.nets.registry import choose_device

    cfg = copy.deepcopy(config)
    domain = _domain_of(cfg, train_dataset)
    cfg.domain = domain.to_dict()
    enc = Encoding.for_domain(domain, **cfg.normalisation)
    gkw = generator_kwargs(cfg.direction, domain, cfg.generator, cfg.architecture, enc)
    dkw = discriminator_kwargs(cfg.direction, domain, cfg.discriminator)
    device = choose_device(cfg.device)
    amp = (device.type == "cuda") if cfg.amp is None else bool(cfg.amp and device.type == "cuda")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # What shapes the model: a checkpoint resumes only under the same identity.
    identity = {
        "direction": cfg.direction,
        "architecture": cfg.architecture,
        "generator": gkw,
        "discriminator": dkw,
        "domain": cfg.domain,
        "normalisation": enc.to_dict(),
        "seed": cfg.seed,
    }
    torch.manual_seed(cfg.seed)
    G = build_generator(cfg.architecture, gkw).to(device)
    D = ConditionalDiscriminator(**dkw).to(device)
    return _Run(
        cfg=cfg,
        enc=enc,
        identity=identity,
        device=device,
        amp=amp,
        G=G,
        D=D,
        opt_g=torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
        opt_d=torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas),
        scaler=torch.amp.GradScaler(device.type, enabled=amp),
        out=out,
        recipe=getattr(train_dataset, "recipe", None),
        dataset_size=len(train_dataset),
    )


def _restore(run: _Run, resume: bool) -> tuple[int, float]:
    """(step, wall time so far) of the run's checkpoint when resuming, else (0, 0) afresh.

    Resuming loads the networks, optimisers, scaler and RNG states and drops the log
    lines after the checkpoint's step; starting afresh deletes an old log.
    """
    import torch

    if not (resume and run.checkpoint_path.is_file()):
        if run.log_path.exists():
            run.log_path.unlink()
        return 0, 0.0
    ck = load_checkpoint(run.out)
    _compatible(json.loads(ck["identity"]), run.identity)
    run.G.load_state_dict(ck["generator"])
    run.D.load_state_dict(ck["discriminator"])
    run.opt_g.load_state_dict(ck["opt_g"])
    run.opt_d.load_state_dict(ck["opt_d"])
    if ck.get("scaler"):
        run.scaler.load_state_dict(ck["scaler"])
    torch.set_rng_state(ck["rng_torch"])
    if run.device.type == "cuda" and ck.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(ck["rng_cuda"], run.device)
    step = int(ck["step"])
    _truncate_log(run.log_path, step)
    return step, float(ck["elapsed_s"])


def _save(run: _Run, step: int, elapsed_s: float) -> None:
    """Write the checkpoint: everything an exact resume needs, and what export reads."""
    import torch

    cuda = run.device.type == "cuda"
    recipe = run.recipe if isinstance(run.recipe, dict) else {}
    _atomic_save(
        {
            "step": step,
            "elapsed_s": elapsed_s,
            "generator": run.G.state_dict(),
            "discriminator": run.D.state_dict(),
            "opt_g": run.opt_g.state_dict(),
            "opt_d": run.opt_d.state_dict(),
            "scaler": run.scaler.state_dict() if run.amp else {},
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(run.device) if cuda else None,
            "identity": json.dumps(run.identity),
            "config": json.dumps(run.cfg.to_dict()),
            "recipe": json.dumps(recipe, default=str),
            "parameters": int(sum(p.numel() for p in run.G.parameters())),
            "dataset_size": run.dataset_size,
        },
        run.checkpoint_path,
    )


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _train_step(run: _Run, batch: tuple[np.ndarray, ...], lr: float) -> dict[str, Any]:
    """One discriminator and one generator update; the losses as (unsynchronised) tensors."""
    import torch

    from hyperspy_lacbed.nets.architectures import feature_matching_loss, lsgan_loss

    cfg, device, amp = run.cfg, run.device, run.amp
    for opt in (run.opt_g, run.opt_d):
        for group in opt.param_groups:
            group["lr"] = lr
    xb, cb, yb = (torch.from_numpy(a).to(device) for a in batch)
    with torch.autocast(device.type, enabled=amp):
        fake = run.G(xb, cb)
        pred_fake = run.D(xb, cb, fake.detach())
        pred_real = run.D(xb, cb, yb)
        loss_d = 0.5 * (lsgan_loss(pred_fake, False) + lsgan_loss(pred_real, True))
    run.opt_d.zero_grad(set_to_none=True)
    run.scaler.scale(loss_d).backward()
    run.scaler.step(run.opt_d)
    with torch.autocast(device.type, enabled=amp):
        pred = run.D(xb, cb, fake)
        losses = {
            "loss_d": loss_d,
            "loss_gan": lsgan_loss(pred, True),
            "loss_feat": feature_matching_loss(pred, pred_real, run.D.n_layers) * cfg.lambda_feat,
            "loss_l1": torch.nn.functional.l1_loss(fake.float(), yb) * cfg.lambda_l1,
        }
        loss_g = losses["loss_gan"] + losses["loss_feat"] + losses["loss_l1"]
        if cfg.lambda_amplitude:
            losses["loss_amp"] = amplitude_loss(fake.float(), yb, run.enc) * cfg.lambda_amplitude
            loss_g = loss_g + losses["loss_amp"]
    run.opt_g.zero_grad(set_to_none=True)
    run.scaler.scale(loss_g).backward()
    run.scaler.step(run.opt_g)
    run.scaler.update()
    return {**losses, "loss_g": loss_g}


#: Order of the losses in a log line.
_LOSSES = ("loss_d", "loss_g", "loss_gan", "loss_feat", "loss_l1", "loss_amp")


def _loss_record(step: int, time_s: float, lr: float, losses: dict[str, Any]) -> dict[str, Any]:
    """A log line: step, wall time, learning rate and the losses as numbers."""
    record = {"step": step, "time_s": round(time_s, 3), "lr": lr}
    record.update({k: losses[k].item() for k in _LOSSES if k in losses})
    return record


# ----------------------------------------------------------------------------- validation
def as_surrogate(module: Any, identity: dict[str, Any], name: str = "training run") -> Surrogate:
    """A generator of a run as a :class:`~hyperspy_lacbed.nets.surrogate.Surrogate`.

    Training, the ablation and inference all run a generator the same way
    (:meth:`~hyperspy_lacbed.nets.surrogate.Surrogate.run`: encode, generator, decode).

    Parameters
    ----------
    module
        The generator.
    identity
        The run's identity (``json.loads(checkpoint["identity"])``): direction,
        architecture, generator keywords, domain and normalisation.
    name
        The surrogate's name.

    Returns
    -------
    hyperspy_lacbed.nets.surrogate.Surrogate
        With a card of the run's identity (no weights file, no metrics).
    """
    from hyperspy_lacbed.nets.surrogate import Surrogate

    card = {
        "name": name,
        "direction": identity["direction"],
        "architecture": {
            "name": identity.get("architecture", "pix2pixhd"),
            "kwargs": identity["generator"],
        },
        "domain": identity["domain"],
        "normalisation": identity["normalisation"],
    }
    return Surrogate(module, card)


def checkpoint_surrogate(out_dir: str | os.PathLike) -> Surrogate:
    """The generator of a run's checkpoint as a :class:`~hyperspy_lacbed.nets.surrogate.Surrogate`.

    Parameters
    ----------
    out_dir
        The ``out_dir`` of :func:`fit`.

    Returns
    -------
    hyperspy_lacbed.nets.surrogate.Surrogate
        The checkpoint's generator in eval mode, on the CPU.
    """
    from hyperspy_lacbed.nets.architectures import build_generator

    ck = load_checkpoint(out_dir)
    identity = json.loads(ck["identity"])
    module = build_generator(identity.get("architecture", "pix2pixhd"), identity["generator"])
    module.load_state_dict(ck["generator"])
    module.eval()
    return as_surrogate(module, identity, Path(out_dir).name)


def validation_scores(result: Any) -> dict[str, float]:
    """The logged validation numbers of an evaluation: the card's metrics, mean and median.

    Parameters
    ----------
    result
        An :class:`~hyperspy_lacbed.train.evaluate.EvaluationResult`.

    Returns
    -------
    dict
        ``val_lmse`` and ``val_lmse_median`` (:func:`~hyperspy_lacbed.train.metrics.lmse`
        of each pattern or potential, over every sample and thickness) and, for an
        inverse model, ``val_lmse_origin_invariant`` and ``val_lmse_origin_invariant_median``
        (the inverse cards' headline metric).
    """
    out = {}
    for name in ("lmse", "lmse_origin_invariant"):
        if name in result.metrics:
            values = np.asarray(result.metrics[name], float)
            out[f"val_{name}"] = float(np.nanmean(values))
            out[f"val_{name}_median"] = float(np.nanmedian(values))
    return out


def _validate(run: _Run, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The card's metrics of the generator on the validation arrays (in eval mode)."""
    from hyperspy_lacbed.train.evaluate import evaluate_arrays

    run.G.eval()
    try:
        result = evaluate_arrays(as_surrogate(run.G, run.identity), arrays)
    finally:
        run.G.train()
    return validation_scores(result)


def _validation_arrays(dataset: Any, cfg: TrainConfig) -> dict[str, np.ndarray] | None:
    """The unaugmented arrays of the first ``val_items`` validation samples (None: none)."""
    from hyperspy_lacbed.train.evaluate import dataset_arrays

    if dataset is None or len(dataset) == 0:
        return None
    # A dataset without ``arrays`` reads items, which may draw from the global generators.
    with _seeded(cfg.seed):
        return dataset_arrays(dataset, cfg.val_items)


# ----------------------------------------------------------------------------- fit
def fit(
    train_dataset: Any,
    config: TrainConfig,
    val_dataset: Any = None,
    resume: bool = True,
    show_progressbar: bool | None = None,
) -> dict[str, Any]:
    """Train a surrogate generator with the pix2pixHD losses.

    Parameters
    ----------
    train_dataset
        Items as described in the module documentation. If it has a ``recipe`` dict, it
        is stored in the checkpoint (and exported to the card), and its ``"domain"`` is
        used when the config has none.
    config
        The settings (:class:`TrainConfig`).
    val_dataset
        Optional; its first ``config.val_items`` samples are scored at each checkpoint at
        every thickness, by the metrics of the model cards
        (:func:`~hyperspy_lacbed.train.evaluate.evaluate_arrays`, the same run of the
        generator as inference), and logged (:func:`validation_scores`).
    resume
        Continue from ``out_dir/checkpoint.pt`` when it exists (the settings that shape the
        model must be the same); otherwise start afresh (overwriting it).
    show_progressbar
        Default HyperSpy's preference.

    Returns
    -------
    dict
        ``step`` reached, ``stopped`` (``"steps"`` or ``"hours"``), ``wall_time_s`` of
        this call and ``total_wall_time_s`` of the run, the last logged losses
        (``last``), the last validation scores (``val``), and the paths of the
        ``checkpoint``, ``log`` and ``out_dir``.
    """
    from hyperspy_lacbed.progress import ProgressBar

    t_start = time.perf_counter()
    run = _set_up(train_dataset, config)
    cfg = run.cfg
    step, elapsed_before = _restore(run, resume)
    (run.out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
    batches = _Batches(train_dataset, cfg, run.enc)
    val = _validation_arrays(val_dataset, cfg)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    bar = ProgressBar(cfg.steps, show_progressbar, f"cGAN {cfg.direction}", "step", step)
    run.G.train()
    run.D.train()
    last: dict[str, Any] = {}
    val_scores: dict[str, float] = {}
    stopped = "steps"
    budget = None if cfg.hours is None else cfg.hours * 3600.0
    first = step
    try:
        while step < cfg.steps:
            # at least one step per call: a call that made no progress would be wasted
            if budget is not None and step > first and time.perf_counter() - t_start > budget:
                stopped = "hours"
                break
            lr = _lr(cfg, step)
            losses = _train_step(run, batches(step), lr)
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                last = _loss_record(step, elapsed(), lr, losses)
                if not all(math.isfinite(v) for k, v in last.items() if k.startswith("loss")):
                    _save(run, step, elapsed())
                    raise FloatingPointError(
                        f"Non-finite loss at step {step}: {last}; lower lr or disable amp."
                    )
                _log(run.log_path, last)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                if val is not None:
                    val_scores = _validate(run, val)
                    _log(run.log_path, {"step": step, **val_scores})
                _save(run, step, elapsed())
        if stopped == "hours":
            _save(run, step, elapsed())
    finally:
        bar.close()
    wall = time.perf_counter() - t_start
    return {
        "step": step,
        "steps": cfg.steps,
        "stopped": stopped,
        "wall_time_s": wall,
        "total_wall_time_s": elapsed_before + wall,
        "last": last,
        "val": val_scores,
        "checkpoint": str(run.checkpoint_path),
        "log": str(run.log_path),
        "out_dir": str(run.out),
    }


# ----------------------------------------------------------------------------- export
def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _last_val(log_path: Path) -> dict[str, Any]:
    if not log_path.is_file():
        return {}
    found: dict[str, Any] = {}
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "val_lmse" in rec:
            found = rec
    return found


def export(
    checkpoint_dir: str | os.PathLike,
    models_dir: str | os.PathLike,
    name: str,
    extra_card: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a run's generator as ``models_dir/name/`` (safetensors + card).

    Parameters
    ----------
    checkpoint_dir
        The ``out_dir`` of :func:`fit`.
    models_dir
        Where models live (the repository's ``models/`` for shipped weights).
    name
        Folder name of the model (``default-forward`` / ``default-inverse`` are what
        ``model="default"`` finds, or set ``extra_card={"default": True}``).
    extra_card
        Entries merged into the card (e.g. ``{"metrics": {...}, "default": True}``).
    overwrite
        Replace an existing model of that name.

    Returns
    -------
    pathlib.Path
        The model folder.
    """
    import safetensors.torch

    from hyperspy_lacbed import __version__
    from hyperspy_lacbed.nets.registry import MODEL_FILE, write_card

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"Invalid model name {name!r}; use letters, digits, '-' and '_'.")
    ck = load_checkpoint(checkpoint_dir)
    identity = json.loads(ck["identity"])
    config = json.loads(ck["config"])
    folder = Path(models_dir) / name
    if (folder / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{folder} already holds a model; pass overwrite=True to replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in ck["generator"].items()}
    safetensors.torch.save_file(
        state,
        str(folder / MODEL_FILE),
        metadata={"name": name, "direction": identity["direction"]},
    )
    log = _last_val(Path(checkpoint_dir) / LOG)
    card: dict[str, Any] = {
        "name": name,
        "direction": identity["direction"],
        "default": False,
        "architecture": {
            "name": identity.get("architecture", "pix2pixhd"),
            "kwargs": identity["generator"],
        },
        "parameters": int(ck.get("parameters", 0)),
        "domain": identity["domain"],
        "normalisation": identity["normalisation"],
        # The recipe and seed reproduce the dataset; where it lies is one machine's fact.
        "dataset": {k: v for k, v in json.loads(ck.get("recipe", "{}")).items() if k != "path"},
        "training": {
            **config,
            "discriminator_kwargs": identity["discriminator"],
            "steps_done": int(ck["step"]),
            "epochs": None,
            "wall_time_s": round(float(ck["elapsed_s"]), 1),
        },
        "metrics": {k: v for k, v in log.items() if k != "step"},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hyperspy_lacbed_version": __version__,
    }
    n_data = int(ck.get("dataset_size", 0))
    if n_data:
        card["training"]["epochs"] = round(int(ck["step"]) * config["batch_size"] / n_data, 2)
    if extra_card:
        card = _merge(card, extra_card)
    write_card(folder, card)
    return folder
