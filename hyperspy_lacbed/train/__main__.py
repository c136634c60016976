"""Training command line: ``python -m hyperspy_lacbed.train <command>``.

Commands: ``generate``, ``fit``, ``evaluate``, ``export`` and ``ablation``. Every run can
be reproduced from one TOML file (``--config run.toml``) whose tables ``[dataset]``,
``[fit]``, ``[evaluate]``, ``[export]`` and ``[ablation]`` hold the same options as the
command line (command-line options win). Without ``--config`` the settings are the
recipe of the shipped models (``configs/v1.toml``, :mod:`hyperspy_lacbed.train.recipe`)
but for the folders, cores and hours, which the command line gives. Example::

    [dataset]
    store = "data/lacbed-v1"
    seed = 0
    splits = {train = 2000, val = 32, test = 64, heldout = 64, random = 2000}
    domain = {strong_beams = 60}
    # realistic crystals (structure types); the held-out split has types never trained on
    structures = {kind = "realistic", random_fraction = 0.2, exclude_prototypes = ["garnet"]}

    [dataset.split_structures.heldout]  # only garnets, which training never sees
    prototypes = ["garnet"]
    exclude_prototypes = []
    random_fraction = 0.0

    [dataset.split_structures.random]   # random-Wyckoff crystals (the ablation's v0 data)
    kind = "random"

    [fit]
    store = "data/lacbed-v1"
    direction = "forward"
    out = "runs/forward"
    hours = 1.0
    batch_size = 8
    architecture = "fourier-forward"   # (default) or "pix2pixhd" (the paper's)

    [ablation]                        # python -m hyperspy_lacbed.train ablation
    store = "data/lacbed-v1"
    random_split = "random"           # random-Wyckoff crystals, the data of variant v0
    minutes = 20
    out = "runs/ablation-forward"
    variants = "v0,v0+realistic,fourier,fourier+geometry,fourier+geometry+phase+sym"
    config_fit = {batch_size = 8, lr = 2e-4}               # shared by every variant
    generator = {fourier-forward = {width = 64}}           # per architecture

Folders (``store``, ``out``, ``models_dir``) are relative to the working directory (run
the commands from the repository root; ``data/`` and ``runs/`` are ignored by git), and
may name environment variables: ``store = "$LACBED_DATA/lacbed-v2"``. Configs never
hold a machine's absolute paths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from hyperspy_lacbed.train import recipe

#: Config keys that name folders: ``$VARIABLES`` and ``~`` in them are expanded.
_FOLDERS = ("store", "out", "models_dir")


def _config(path: str | None, table: str) -> dict[str, Any]:
    """A table of the config file; without one, the shipped models' recipe's.

    The recipe (:mod:`hyperspy_lacbed.train.recipe`, ``configs/v1.toml``) leaves out the
    settings of one machine (folders, cores, hours), which the command line then gives.
    """
    if not path:
        return _without_machine_keys(recipe.table(table))
    data = tomllib.loads(Path(path).read_text())
    return _expand_folders(dict(data.get(table, {})))


def _without_machine_keys(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` without :data:`~hyperspy_lacbed.train.recipe.MACHINE_KEYS`, at every level."""
    return {
        k: _without_machine_keys(v) if isinstance(v, dict) else v
        for k, v in table.items()
        if k not in recipe.MACHINE_KEYS
    }


def _expand_folders(table: dict[str, Any]) -> dict[str, Any]:
    """``~`` and ``$VARIABLES`` expanded in a table's folder settings (in place)."""
    for key in _FOLDERS:
        if isinstance(table.get(key), str):
            table[key] = os.path.expanduser(os.path.expandvars(table[key]))
    return table


def _merge(args: argparse.Namespace, table: dict[str, Any], defaults: dict[str, Any]) -> dict:
    """Command-line values win over the config file, which wins over the defaults."""
    out = dict(defaults)
    out.update(table)
    for key, value in vars(args).items():
        if value is not None and key not in ("func", "config", "command"):
            out[key] = value
    return out


def _parse_splits(text: str | dict | None) -> dict[str, int]:
    if isinstance(text, dict):
        return {str(k): int(v) for k, v in text.items()}
    out = {}
    for part in (text or "").split(","):
        if part.strip():
            name, _, n = part.partition("=")
            if not n:
                raise ValueError(
                    f"--splits takes name=count pairs such as 'train=2000,val=32', not {part!r}."
                )
            out[name.strip()] = int(n)
    if not out:
        raise ValueError("No splits given: use --splits train=2000,val=32,test=64.")
    return out


def split_structures(common: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """The structure settings of one split: the common ones updated by the split's own.

    A split whose ``kind`` differs from the common one (e.g. ``{kind = "random"}``, the
    random-Wyckoff crystals of the ablation's ``v0`` variant, in a realistic store) takes
    its own settings alone: the other kind's settings do not apply to it.
    """
    common_kind = str(common.get("kind", "random"))
    if "kind" in split and str(split["kind"]) != common_kind:
        return dict(split)
    return {**common, **split}


def _generate(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.train.dataset import DatasetRecipe, generate_dataset

    opts = _merge(
        args,
        _config(args.config, "dataset"),
        {"seed": 0, "workers": 1, "device": "cpu", "domain": {}},
    )
    if "store" not in opts:
        raise ValueError("Give the dataset folder with --store (or store = ... in [dataset]).")
    domain = Domain.from_dict({**Domain().to_dict(), **opts["domain"]})
    if opts.get("strong_beams"):
        domain = Domain.from_dict({**domain.to_dict(), "strong_beams": opts["strong_beams"]})
    # structures = {kind = "realistic", ...} for all splits; split_structures = {name = {...}}
    # adds per-split settings (e.g. a split of held-out structure types).
    per_split = dict(opts.get("split_structures", {}))
    workers = int(opts["workers"])
    if workers > 1:  # one sample per core rather than every solve on every core
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    for split, n in _parse_splits(opts.get("splits")).items():
        structures = split_structures(opts.get("structures", {}), per_split.get(split, {}))
        recipe = DatasetRecipe(
            domain=domain.to_dict(),
            n_structures=n,
            seed=int(opts["seed"]),
            split=split,
            structures=structures,
        )
        report = generate_dataset(
            recipe,
            opts["store"],
            num_workers=workers,
            limit=opts.get("limit"),
            device=opts["device"],
            show_progressbar=not opts.get("quiet", False),
        )
        print(f"{split}: {report}")
    return 0


def fit_table(config: str | None, direction: str | None) -> dict[str, Any]:
    """The ``fit`` settings of a config file for one direction.

    ``[fit]`` holds the settings common to both directions and ``[fit.forward]`` /
    ``[fit.inverse]`` each direction's own (they win); the store defaults to
    ``[dataset]``'s, so one file describes the data and both trainings.

    Parameters
    ----------
    config
        The TOML file (None: no settings).
    direction
        ``"forward"`` or ``"inverse"``; None: ``[fit]``'s ``direction``, else forward.
    """
    table = _config(config, "fit")
    direction = direction or table.get("direction", "forward")
    own = table.get(direction, {})
    table = {k: v for k, v in table.items() if k not in ("forward", "inverse")}
    table.update(own)
    table["direction"] = direction
    _expand_folders(table)
    if "store" not in table:
        store = _config(config, "dataset").get("store")
        if store:
            table["store"] = store
    return table


def _fit(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.train.dataset import LACBEDDataset
    from hyperspy_lacbed.train.loop import TrainConfig, fit

    opts = _merge(args, fit_table(args.config, args.direction), {"direction": "forward"})
    if opts.get("threads"):
        import torch

        torch.set_num_threads(int(opts["threads"]))
    for key in ("store", "out"):
        if key not in opts:
            raise ValueError(f"Give --{key} (or {key} = ... in [fit]).")
    train = LACBEDDataset(
        opts["store"],
        split=opts.get("split", "train"),
        augment=True,
        max_convergence=opts.get("max_convergence"),
    )
    val = LACBEDDataset(opts["store"], split=opts["val_split"]) if opts.get("val_split") else None
    fields = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(
        **{k: v for k, v in opts.items() if k in fields and k != "out_dir"},
        out_dir=opts["out"],
    )
    summary = fit(
        train, config, val_dataset=val, resume=True, show_progressbar=not opts.get("quiet", False)
    )
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _export(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.train.loop import export

    opts = _merge(args, _config(args.config, "export"), {"models_dir": "models"})
    extra = json.loads(Path(opts["card"]).read_text()) if opts.get("card") else None
    path = export(
        opts["checkpoint"],
        opts["models_dir"],
        opts["name"],
        extra_card=extra,
        overwrite=bool(opts.get("overwrite")),
    )
    print(f"exported {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.nets.registry import read_card, resolve_model
    from hyperspy_lacbed.train.evaluate import evaluate_model

    opts = _merge(args, _config(args.config, "evaluate"), {"split": "test", "model": "default"})
    model = opts["model"]
    if opts.get("direction"):
        directions = [opts["direction"]]
    elif model == "default":
        # Both shipped defaults: the command that reproduces both cards.
        directions = ["forward", "inverse"]
    else:
        directions = [str(read_card(resolve_model(model, None))["direction"])]
    results = {}
    for direction in directions:
        card = read_card(resolve_model(model, direction))
        store = opts.get("store") or card.get("dataset", {}).get("path")
        if not store:
            raise ValueError(f"The card of {card['name']} names no dataset folder; give --store.")
        figure = opts.get("figure")
        if figure and len(directions) > 1:
            stem = Path(figure)
            figure = str(stem.with_name(f"{stem.stem}-{direction}{stem.suffix}"))
        result = evaluate_model(
            model,
            store,
            split=opts["split"],
            direction=direction,
            limit=opts.get("limit"),
            figure=figure,
        )
        print(f"## {card['name']} on {store} [{opts['split']}]\n")
        print(result.markdown())
        results[direction] = result.to_dict()
    if opts.get("json"):
        out = results if len(results) > 1 else next(iter(results.values()))
        Path(opts["json"]).write_text(json.dumps(out, indent=1))
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.train.ablation import run_ablation
    from hyperspy_lacbed.train.dataset import LACBEDDataset

    opts = _merge(
        args,
        _config(args.config, "ablation"),
        {"direction": "forward", "split": "train", "test_split": "test", "minutes": 20.0},
    )
    for key in ("store", "out"):
        if key not in opts:
            raise ValueError(f"Give --{key} (or {key} = ... in [ablation]).")
    if opts.get("threads"):
        import torch

        torch.set_num_threads(int(opts["threads"]))
    store = opts["store"]
    train = LACBEDDataset(
        store, split=opts["split"], augment=True, max_convergence=opts.get("max_convergence")
    )
    random_train = (
        LACBEDDataset(store, split=opts["random_split"], augment=True)
        if opts.get("random_split")
        else None
    )
    test = LACBEDDataset(store, split=opts["test_split"])
    variants = opts.get("variants")
    if isinstance(variants, str):
        variants = [v for v in variants.split(",") if v.strip()]
    config = dict(opts.get("config_fit", {}))
    for key in ("batch_size", "seed", "lr"):
        if opts.get(key) is not None:
            config[key] = opts[key]
    report = run_ablation(
        train,
        test,
        opts["out"],
        direction=opts["direction"],
        variants=variants,
        minutes=float(opts["minutes"]),
        random_train=random_train,
        config=config,
        generator=opts.get("generator"),
        test_limit=opts.get("test_limit"),
        fresh=bool(opts.get("fresh")),
        show_progressbar=not opts.get("quiet", False),
    )
    print((Path(opts["out"]) / "ablation.rst").read_text())
    print(f"wrote {Path(opts['out']) / 'ablation.json'} ({len(report['results'])} variants)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hyperspy_lacbed.train``."""
    p = argparse.ArgumentParser(
        prog="python -m hyperspy_lacbed.train",
        description="Train the LACBED cGAN surrogates: generate a dataset with the Bloch-wave "
        "engine, fit a model, evaluate it, export it to models/.",
    )
    p.add_argument("--config", help="TOML file with [dataset], [fit], [evaluate], [export]")
    sub = p.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_fit(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_ablation(sub)
    return p


def _add_generate(sub: Any) -> None:
    """The ``generate`` command: simulate a dataset into a zarr store."""
    g = sub.add_parser(
        "generate",
        help="simulate synthetic cubic crystals into a zarr store (resumes where it stopped)",
    )
    g.add_argument("--store", help="dataset folder (zarr), e.g. data/lacbed-v1")
    g.add_argument("--splits", help="name=count pairs, e.g. train=2000,val=32,test=64")
    g.add_argument("--seed", type=int, help="seed of the synthetic structures")
    g.add_argument(
        "--strong-beams",
        type=int,
        dest="strong_beams",
        help="strong beams of the Bloch-wave solves (default: the domain's)",
    )
    g.add_argument("--limit", type=int, help="stop after this many new samples per split")
    g.add_argument(
        "--workers", type=int, help="samples computed at once, one core each (default 1)"
    )
    g.add_argument("--device", help="cpu, cuda or auto (default cpu)")
    g.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    g.set_defaults(func=_generate)


def _add_fit(sub: Any) -> None:
    """The ``fit`` command: train or resume a model."""
    f = sub.add_parser("fit", help="train (or resume training) a forward or inverse model")
    f.add_argument("--store", help="dataset folder made by 'generate'")
    f.add_argument("--split", help="training split (default train)")
    f.add_argument("--val-split", dest="val_split", help="validation split, e.g. val")
    f.add_argument(
        "--direction",
        choices=["forward", "inverse"],
        help="forward: potential → discs; inverse: discs → potential",
    )
    f.add_argument(
        "--architecture",
        choices=["pix2pixhd", "fourier-forward", "fourier-inverse", "physics-forward"],
        help="generator (default fourier-<direction>: physics-informed; or the paper's)",
    )
    f.add_argument(
        "--lambda-amplitude",
        type=float,
        dest="lambda_amplitude",
        help="inverse: weight of the origin-invariant Fourier-amplitude loss (0: off)",
    )
    f.add_argument("--out", help="checkpoint folder; an existing one is resumed")
    f.add_argument("--steps", type=int, help="total optimiser steps")
    f.add_argument("--hours", type=float, help="wall-clock budget; stops with a checkpoint")
    f.add_argument(
        "--lr-decay-after",
        type=int,
        dest="lr_decay_after",
        help="step after which the learning rate decays linearly to 0 at --steps",
    )
    f.add_argument("--batch-size", type=int, dest="batch_size", help="samples per step")
    f.add_argument(
        "--checkpoint-every", type=int, dest="checkpoint_every", help="steps between checkpoints"
    )
    f.add_argument("--seed", type=int, help="training seed")
    f.add_argument("--device", help="cpu or cuda")
    f.add_argument(
        "--threads", type=int, help="CPU threads of this run (1 when two runs share 2 cores)"
    )
    f.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    f.set_defaults(func=_fit)


def _add_evaluate(sub: Any) -> None:
    """The ``evaluate`` command: metrics and figures of a model on a split."""
    e = sub.add_parser("evaluate", help="ℓMSE tables and figures of a model on a split")
    e.add_argument(
        "--model",
        help="model name in models/ or a folder (default: 'default', both directions)",
    )
    e.add_argument(
        "--direction",
        choices=["forward", "inverse"],
        help="which default to evaluate (default: both for --model default)",
    )
    e.add_argument("--store", help="dataset folder (default: the one named in the model card)")
    e.add_argument("--split", help="split to evaluate (default test)")
    e.add_argument("--limit", type=int, help="first N samples only")
    e.add_argument("--figure", help="write best/median/worst cases to this PNG")
    e.add_argument("--json", help="write the metrics to this JSON file")
    e.set_defaults(func=_evaluate)


def _add_export(sub: Any) -> None:
    """The ``export`` command: a checkpoint as a model folder."""
    x = sub.add_parser("export", help="write a checkpoint as models/<name>/ (safetensors + card)")
    x.add_argument("--checkpoint", help="checkpoint folder of 'fit'")
    x.add_argument("--name", help="model name, e.g. default-forward")
    x.add_argument("--models-dir", dest="models_dir", help="models folder (default models)")
    x.add_argument("--card", help="JSON file of extra card entries (metrics, notes)")
    x.add_argument("--overwrite", action="store_true", default=None, help="replace a model")
    x.set_defaults(func=_export)


def _add_ablation(sub: Any) -> None:
    """The ``ablation`` command: formulation variants on the same budget."""
    b = sub.add_parser(
        "ablation",
        help="train formulation variants for the same wall-clock budget on the same data and "
        "tabulate their test scores (JSON + RST)",
    )
    b.add_argument("--store", help="dataset folder made by 'generate'")
    b.add_argument("--split", help="realistic training split (default train)")
    b.add_argument(
        "--random-split",
        dest="random_split",
        help="split of random-Wyckoff crystals, the training data of variant v0",
    )
    b.add_argument("--test-split", dest="test_split", help="test split (default test)")
    b.add_argument("--direction", choices=["forward", "inverse"], help="default forward")
    b.add_argument(
        "--variants",
        help="comma-separated variants, e.g. v0,v0+realistic,fourier,fourier+geometry,"
        "fourier+geometry+sym (tokens: v0, realistic, fourier, geometry, phase, sym, scale)",
    )
    b.add_argument("--minutes", type=float, help="training wall-clock budget per variant")
    b.add_argument("--out", help="folder of the runs, ablation.json and ablation.rst")
    b.add_argument(
        "--max-convergence",
        type=float,
        dest="max_convergence",
        help="leave out training samples whose convergence estimate exceeds this",
    )
    b.add_argument("--test-limit", type=int, dest="test_limit", help="score the first N only")
    b.add_argument("--batch-size", type=int, dest="batch_size", help="samples per step")
    b.add_argument("--seed", type=int, help="training seed (the same for every variant)")
    b.add_argument("--threads", type=int, help="CPU threads")
    b.add_argument(
        "--fresh", action="store_true", default=None, help="retrain variants already done"
    )
    b.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    b.set_defaults(func=_ablation)


def main(argv: list[str] | None = None) -> int:
    """Run the training command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        print(f"python -m hyperspy_lacbed.train {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
