"""Pretrained surrogate models: model cards, sha256-checked safetensors loading, domains.

A model is a folder ``<name>/`` holding ``model.safetensors`` (the generator's weights,
nothing else) and ``card.json``::

    {
      "format_version": 1,
      "name": "default-forward",
      "direction": "forward" | "inverse",
      "default": true,                       # the model "default" resolves to
      "architecture": {"name": "pix2pixhd", "kwargs": {...}},
      "parameters": 4382985,
      "domain": {...},                       # nets.domain.Domain.to_dict()
      "normalisation": {...},                # nets.normalisation.Encoding.to_dict()
      "dataset": {...},                      # dataset recipe and seed
      "training": {...},                     # settings, steps, wall time
      "metrics": {...},                      # measured on held-out structures
      "sha256": "<hex digest of model.safetensors>"
    }

Models are looked up, in this order, in the folder given by the caller, the folders in
the ``HYPERSPY_LACBED_MODELS`` environment variable (``os.pathsep``-separated), the
``models/`` folder of a source checkout and the ``_models/`` folder inside an installed
wheel (``pyproject.toml`` force-includes ``models`` there). The first folder holding a
name wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hyperspy_lacbed.nets.domain import Domain

__all__ = [
    "CARD_FILE",
    "MODEL_FILE",
    "ModelList",
    "choose_device",
    "find_models",
    "list_models",
    "load_model",
    "model_dirs",
    "read_card",
    "resolve_model",
    "sha256_file",
]

MODEL_FILE = "model.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = 1
DIRECTIONS = ("forward", "inverse")
ENV_VAR = "HYPERSPY_LACBED_MODELS"

_HOW_TO_TRAIN = (
    "Train and export one with `python -m hyperspy_lacbed.train generate|fit|export ...` "
    "(see `python -m hyperspy_lacbed.train --help`), or pass model= the path of an exported "
    "model folder (with model.safetensors and card.json)."
)


# ----------------------------------------------------------------------------- discovery
def model_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for models, in order (existing ones only)."""
    dirs: list[Path] = []
    if models_dir is not None:
        dirs.append(Path(models_dir))
    for p in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if p:
            dirs.append(Path(p))
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file():
        dirs.append(checkout / "models")
    dirs.append(package / "_models")
    seen, out = set(), []
    for d in dirs:
        key = d.resolve() if d.exists() else d
        if d.is_dir() and key not in seen:
            seen.add(key)
            out.append(d)
    return out


def find_models(models_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Model name → folder, for every folder with a ``card.json`` (first found wins)."""
    found: dict[str, Path] = {}
    for root in model_dirs(models_dir):
        for card in sorted(root.glob(f"*/{CARD_FILE}")):
            found.setdefault(card.parent.name, card.parent)
    return found


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed and checked ``card.json`` of a model folder.

    Raises
    ------
    FileNotFoundError
        Without a card.
    ValueError
        For a malformed card.
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {CARD_FILE} in {Path(folder)}; it is not a model folder.")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("direction", "architecture", "domain", "sha256") if k not in card]
    if missing:
        raise ValueError(f"Model card {path} lacks {missing}; re-export the model.")
    if int(card.get("format_version", 1)) > CARD_FORMAT:
        raise ValueError(
            f"Model card {path} has format {card['format_version']}, newer than this version "
            f"of hyperspy-lacbed reads ({CARD_FORMAT}); upgrade the package."
        )
    if card["direction"] not in DIRECTIONS:
        raise ValueError(f"Model card {path}: direction must be one of {DIRECTIONS}.")
    card.setdefault("name", Path(folder).name)
    return card


def resolve_model(
    name_or_path: str | os.PathLike,
    direction: str | None = None,
    models_dir: str | os.PathLike | None = None,
) -> Path:
    """The folder of a model given by name, by ``"default"`` or by path.

    Parameters
    ----------
    name_or_path
        A model name, ``"default"`` (the model whose card says ``"default": true`` for
        ``direction``, else the one named ``default-<direction>``), or the path of a model
        folder, its ``card.json`` or its ``model.safetensors``.
    direction
        ``"forward"`` or ``"inverse"``: required to resolve ``"default"``, and checked
        against the card otherwise.
    models_dir
        A further folder to search first.

    Raises
    ------
    FileNotFoundError
        When no such model exists (the message says what ships and how to train one).
    ValueError
        When the model's direction is not the one asked for.
    """
    p = Path(name_or_path)
    if p.is_file() and p.name in (CARD_FILE, MODEL_FILE):
        p = p.parent
    if p.is_dir() and (p / CARD_FILE).is_file():
        folder = p
    else:
        name = str(name_or_path)
        models = find_models(models_dir)
        if name == "default":
            if direction is None:
                raise ValueError("model='default' needs a direction ('forward' or 'inverse').")
            folder = _default_for(models, direction)
        elif name in models:
            folder = models[name]
        else:
            shipped = ", ".join(sorted(models)) or "none"
            raise FileNotFoundError(
                f"No model named {name!r} (models found: {shipped}; searched "
                f"{[str(d) for d in model_dirs(models_dir)]}). {_HOW_TO_TRAIN}"
            )
    if direction is not None:
        card_dir = read_card(folder)["direction"]
        if card_dir != direction:
            raise ValueError(
                f"Model {folder.name!r} is a {card_dir} model, but a {direction} model is "
                f"needed here; give a {direction} model (list them with "
                "hyperspy_lacbed.list_models())."
            )
    return folder


def _default_for(models: dict[str, Path], direction: str) -> Path:
    flagged, named = [], None
    for name, folder in models.items():
        try:
            card = read_card(folder)
        except (OSError, ValueError):
            continue
        if card["direction"] != direction:
            continue
        if card.get("default"):
            flagged.append(folder)
        if name == f"default-{direction}":
            named = folder
    if flagged:
        return flagged[0]
    if named is not None:
        return named
    raise FileNotFoundError(
        f"No pretrained {direction} model ships with this installation yet (no card with "
        f'"direction": "{direction}" and "default": true, and no model named '
        f"'default-{direction}'). {_HOW_TO_TRAIN}"
    )


# ----------------------------------------------------------------------------- loading
def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def choose_device(device: Any = None) -> Any:
    """``None``/``"auto"`` → CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    name_or_path: str | os.PathLike,
    device: Any = None,
    direction: str | None = None,
    models_dir: str | os.PathLike | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Load a generator, verified against its card's SHA-256, in eval mode.

    The weights file is read once, hashed, and only then deserialised with
    ``safetensors.torch.load`` from the verified bytes (the safetensors format: no pickle,
    and no gap between checking the file and reading it).

    Parameters
    ----------
    name_or_path
        See :func:`resolve_model`.
    device
        torch device; ``None``: CUDA when available, else CPU.
    direction
        Require a ``"forward"`` or ``"inverse"`` model (needed for ``"default"``).
    models_dir
        A further folder to search first.

    Returns
    -------
    module, card
        The ``torch.nn.Module`` (eval mode, on ``device``) and the card (a dict, with
        ``"path"`` added).

    Raises
    ------
    ValueError
        If the file's SHA-256 differs from the card's, the architecture is unknown, or the
        weights do not fit the architecture.
    """
    import safetensors.torch

    from hyperspy_lacbed.nets.architectures import build_generator

    folder = resolve_model(name_or_path, direction, models_dir)
    card = read_card(folder)
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"Model {card['name']!r} has a card but no {MODEL_FILE} in {folder}; the weights "
            "may not have been downloaded (Git LFS?) or exported."
        )
    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != str(card["sha256"]).lower():
        raise ValueError(
            f"Refusing to load {weights}: its SHA-256 is {digest}, but the card says "
            f"{card['sha256']}. The file is corrupt, truncated or was replaced; restore it (or "
            "re-export the model so that card and weights match)."
        )
    arch = card["architecture"]
    module = build_generator(str(arch.get("name")), dict(arch.get("kwargs", {})))
    state = safetensors.torch.load(data)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"The weights of {card['name']!r} do not fit its architecture "
            f"{arch.get('name')!r}: {str(exc).splitlines()[0]}"
        ) from exc
    module.to(choose_device(device)).eval()
    card = dict(card)
    card["path"] = str(folder)
    return module, card


def write_card(folder: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Write ``card.json`` with the SHA-256 of the folder's ``model.safetensors`` filled in."""
    folder = Path(folder)
    card = dict(card)
    card["format_version"] = CARD_FORMAT
    card["sha256"] = sha256_file(folder / MODEL_FILE)
    path = folder / CARD_FILE
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- listing
class ModelList(list):
    """The models found (a list of dicts) that prints as a table."""

    def __repr__(self) -> str:
        if not self:
            return (
                "No pretrained surrogate models ship with this installation yet. " + _HOW_TO_TRAIN
            )
        rows = [("name", "direction", "default", "domain", "metrics")]
        for m in self:
            rows.append(
                (
                    m["name"],
                    m["direction"],
                    "yes" if m["default"] else "",
                    m["domain_summary"],
                    ", ".join(f"{k}={_fmt(v)}" for k, v in m["metrics"].items()) or "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    __str__ = __repr__


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def domain_summary(domain: Domain) -> str:
    """One line: crystal system, zone axis, kV, thicknesses, reflections, pixels."""
    t = ", ".join(f"{x / 10:g}" for x in domain.thicknesses)
    za = "".join(str(v) for v in domain.zone_axis)
    return (
        f"{domain.crystal_system} [{za}] {domain.voltage / 1e3:g} kV, t = {t} nm, "
        f"{len(domain.reflections)} discs {domain.disc_pixels}², potential "
        f"{domain.potential_pixels}², a = {domain.lattice_parameter_range[0]:g}–"
        f"{domain.lattice_parameter_range[1]:g} Å"
    )


def list_models(models_dir: str | os.PathLike | None = None) -> ModelList:
    """The surrogate models available (shipped, in a checkout, or in ``models_dir``).

    Returns
    -------
    ModelList
        One dict per model (``name``, ``direction``, ``default``, ``domain``,
        ``domain_summary``, ``metrics``, ``path``, ``sha256``); it prints as a table, and
        says so when no model ships yet.

    Examples
    --------
    >>> import hyperspy_lacbed as hl
    >>> models = hl.list_models()
    >>> sorted(m["name"] for m in models if m["default"])
    ['default-forward', 'default-inverse']
    """
    out = ModelList()
    for name, folder in sorted(find_models(models_dir).items()):
        try:
            card = read_card(folder)
            domain = Domain.from_dict(card["domain"])
        except (OSError, ValueError) as exc:
            out.append(
                {
                    "name": name,
                    "direction": "?",
                    "default": False,
                    "domain": {},
                    "domain_summary": f"unreadable card: {exc}",
                    "metrics": {},
                    "path": str(folder),
                    "sha256": "",
                }
            )
            continue
        out.append(
            {
                "name": name,
                "direction": card["direction"],
                "default": bool(card.get("default", False)),
                "domain": card["domain"],
                "domain_summary": domain_summary(domain),
                "metrics": _flat_metrics(card.get("metrics", {})),
                "path": str(folder),
                "sha256": card["sha256"],
            }
        )
    return out


def _flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
