"""Export two training runs as the shipped default models, measured, with their cards.

Run (after ``python -m hyperspy_lacbed.train --config configs/v1.toml fit`` of both
directions)::

    python benchmarks/bench_generators.py --domain-from runs/v1-forward runs/v1-inverse --simulate \\
        --threads 2 --json out/speed.json
    python tools/finalise_models.py --forward runs/v1-forward --inverse runs/v1-inverse \\
        --store data/lacbed-v1 --speed out/speed.json

For each direction the checkpoint is exported to ``models/default-<direction>``
(``default: true``) and evaluated on four sets (:data:`SETS`): the realistic ``test``
split, the ``heldout`` split (structure types never trained on), the ``random`` split
(random-Wyckoff crystals) and the real crystals (every CIF of ``../shared/structures``
and the package's example crystals, never trained on; those outside the domain are
listed as outside). Per set: our ℓMSE and the method paper's metrics (8-bit MSE, ZMCC),
per thickness and per disc family (forward) or with the origin-invariant ℓMSE (inverse),
medians and means. The card gets these numbers, the issue's targets measured against
them (:data:`TARGETS`), the training data's convergence (``data_convergence``), the
samples trained on, the training hardware and the speed against ``simulate``
(``--speed``). The figures (best, median and worst test cases at 50 nm, learning curves)
go to ``docs/figures`` and the tables to ``docs/user_guide/models_tables.inc``.
``python -m hyperspy_lacbed.train evaluate --model default --split test --store ...``
(and ``--split heldout`` / ``random``) reproduces each split's numbers.

While developing: ``--limit 4`` (first samples of each split), ``--real Si,Fe*`` (only
those crystals, ``fnmatch`` patterns) or ``--no-real``, ``--models-dir``, ``--figures`` and
``--tables`` pointing to a scratch folder.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "structures"

#: The evaluation splits of the v1 store (configs/v1.toml) and what they hold.
SETS = {
    "test": "realistic test split (random draws of the training distribution)",
    "heldout": "realistic crystals of structure types never trained on (pyrite, A15)",
    "random": "random-Wyckoff synthetic crystals (the v0 generator)",
}

#: The issue's targets (issue 13): (name, set, metric, statistic, target, description).
TARGETS = {
    "forward": [
        ("lmse_median", "test", "lmse", "median", 1e-3, "median ℓMSE, all discs and thicknesses"),
        ("lmse_mean", "test", "lmse", "mean", 5e-3, "mean ℓMSE, all discs and thicknesses"),
        (
            "paper_mse_median",
            "test",
            "paper_mse",
            "median",
            1.7e-3,
            "median 8-bit MSE (the paper's metric; per pattern the mean over its discs)",
        ),
        (
            "paper_mse_mean",
            "test",
            "paper_mse",
            "mean",
            1.9e-2,
            "mean 8-bit MSE (the paper's metric; per pattern the mean over its discs)",
        ),
        (
            "real_crystals_lmse",
            "real_crystals",
            "lmse",
            "worst in-domain crystal",
            3e-3,
            "every in-domain real crystal: ℓMSE (mean over thicknesses)",
        ),
    ],
    "inverse": [
        (
            "origin_invariant_lmse_median",
            "test",
            "lmse_origin_invariant",
            "median",
            5e-4,
            "median origin-invariant ℓMSE, all thicknesses",
        ),
        (
            "origin_invariant_lmse_mean",
            "test",
            "lmse_origin_invariant",
            "mean",
            3e-3,
            "mean origin-invariant ℓMSE, all thicknesses",
        ),
    ],
}

#: The issue's speed target: patterns per second of the network over ``simulate``'s.
SPEED_TARGET = 100.0


# ------------------------------------------------------------------------------ helpers
def _hardware() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": None, "torch": torch.__version__}


def no_machine_paths(obj: Any) -> Any:
    """Absolute paths in a card made relative to the repository (or reduced to a name)."""
    if isinstance(obj, dict):
        return {k: no_machine_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [no_machine_paths(v) for v in obj]
    if isinstance(obj, str) and os.path.isabs(obj) and "\n" not in obj:
        p = Path(obj)
        try:
            return str(p.resolve().relative_to(ROOT))
        except ValueError:
            return p.name
    return obj


def real_crystals(patterns: list[str] | None = None) -> list[dict[str, Any]]:
    """The real crystals: ``../shared/structures`` and the package's examples, once each.

    An example that is the same crystal as a shared CIF (composition, space group and a
    to 0.01 Å) is listed once, under the shared name. ``patterns`` (``fnmatch``,
    case-insensitive) keep only the crystals whose name matches one.
    """
    from collections import Counter

    import hyperspy_lacbed as hl
    from hyperspy_lacbed.data import example_path, example_structures

    items = [(p, "shared") for p in sorted(SHARED.glob("*.cif"))]
    items += [(example_path(n), "example") for n in example_structures()]
    out: list[dict[str, Any]] = []
    seen: dict[tuple, dict[str, Any]] = {}
    for path, source in items:
        crystal = hl.load_structure(path)
        key = (
            tuple(sorted(Counter(crystal.elements).items())),
            crystal.space_group_number,
            round(float(crystal.lattice_parameters[0]), 2),
        )
        if key in seen:
            seen[key].setdefault("same_as", []).append(f"{source}:{path.stem}")
            continue
        entry = {"name": path.stem, "path": path, "source": source}
        seen[key] = entry
        out.append(entry)
    if patterns:
        pats = [p.lower() for p in patterns]
        out = [e for e in out if any(fnmatch.fnmatch(e["name"].lower(), p) for p in pats)]
    return out


def _curves(runs: dict[str, Path], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (direction, run) in zip(axes, runs.items(), strict=True):
        recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x]
        train = [r for r in recs if "loss_l1" in r]
        val = [r for r in recs if "val_lmse" in r]
        steps = np.array([r["step"] for r in train])
        l1 = np.array([r["loss_l1"] for r in train])
        k = max(1, len(l1) // 50)
        smooth = np.convolve(l1, np.ones(k) / k, mode="valid")
        ax.semilogy(steps[k - 1 :], smooth, label="train L1 × λ (smoothed)")
        ax.set_xlabel("step")
        ax.set_ylabel("training L1 loss")
        if val:
            ax2 = ax.twinx()
            ax2.semilogy([r["step"] for r in val], [r["val_lmse"] for r in val], "o-", color="C3")
            ax2.set_ylabel("validation ℓMSE", color="C3")
        ax.set_title(f"{direction}")
    fig.savefig(path, dpi=110)


def _statistic(values: np.ndarray, statistic: str) -> float:
    v = np.asarray(values, float)
    return float(np.nanmedian(v) if statistic == "median" else np.nanmean(v))


def targets(
    direction: str, results: dict[str, Any], real: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Each target of :data:`TARGETS` with the measured value, met and factor over it."""
    out = []
    for name, where, metric, statistic, target, text in TARGETS[direction]:
        entry: dict[str, Any] = {
            "name": name,
            "description": text,
            "set": where,
            "metric": metric,
            "statistic": statistic,
            "target": target,
        }
        if where == "real_crystals":
            inside = [r for r in (real or []) if r["in_domain"]]
            per = {r["name"]: float(np.mean(r["forward"])) for r in inside}
            entry["per_crystal"] = per
            entry["outside_domain"] = [r["name"] for r in (real or []) if not r["in_domain"]]
            measured = max(per.values()) if per else None
        elif where in results:
            res = results[where]
            entry["n"] = int(res.metrics[metric].size)
            measured = _statistic(res.metrics[metric], statistic)
        else:
            measured = None
        entry["measured"] = measured
        entry["met"] = None if measured is None else bool(measured <= target)
        entry["factor_over_target"] = None if measured is None else measured / target
        out.append(entry)
    return out


def speed_block(speed: Any, direction: str, card: dict) -> dict[str, Any]:
    """The benchmark's numbers for one direction: patterns per second and the ratio.

    ``speed`` is the JSON of ``benchmarks/bench_generators.py --simulate`` (a dict with
    ``rows`` and ``simulate_patterns_per_s``: network and ``simulate`` timed in one
    process) or of ``benchmarks/bench_surrogate.py`` (a list of rows).
    """
    if isinstance(speed, dict) and "rows" in speed:
        arch = card["architecture"]["name"]
        rows = [
            r for r in speed["rows"] if (r["direction"], r["architecture"]) == (direction, arch)
        ]
        if not rows:
            raise ValueError(
                f"The speed JSON has no row of the {direction} {arch!r} generator; rerun "
                "benchmarks/bench_generators.py (it times every architecture)."
            )
        row = rows[0]
        sim = speed.get("simulate_patterns_per_s")
        ratio = row.get("ratio_to_simulate")
        out = {
            "benchmark": "benchmarks/bench_generators.py --simulate",
            "what": "generator network patterns (one thickness, all discs) per second against "
            "simulate() at the domain's Bloch-wave settings, per pattern, in one process",
            **{k: speed.get(k) for k in ("threads", "device", "batch", "repeats", "structure")},
            "torch": speed.get("torch"),
            "network_patterns_per_s": row["patterns_per_s"],
            "simulate_patterns_per_s": sim,
            "ratio_to_simulate": ratio,
            "target_ratio": SPEED_TARGET,
            "met": None if ratio is None else bool(ratio >= SPEED_TARGET),
            # the benchmark's generator is the shipped one when their sizes and domains agree
            "parameters_match": row.get("parameters") == card.get("parameters"),
            "domain_match": speed.get("domain") == card.get("domain")
            if "domain" in speed
            else None,
        }
        if not out["parameters_match"] or out["domain_match"] is False:
            warnings.warn(
                f"The speed benchmark's {direction} generator differs from the exported "
                "model (parameters or domain); run it with --domain-from the run folder.",
                stacklevel=2,
            )
        return out
    rows = list(speed)
    sim = [r for r in rows if r["what"].startswith("simulate")]
    net = [r for r in rows if r["what"] == f"cGAN {direction} network"]
    out = {"benchmark": "benchmarks/bench_surrogate.py", "rows": rows}
    if sim and net:
        best = max(r["patterns_per_s"] for r in net)
        out["ratio_to_simulate"] = best / sim[0]["patterns_per_s"]
        out["target_ratio"] = SPEED_TARGET
        out["met"] = bool(out["ratio_to_simulate"] >= SPEED_TARGET)
    return out


def data_convergence(store: str, split: str) -> dict[str, Any]:
    """The training split's convergence (:func:`~hyperspy_lacbed.train.dataset.dataset_summary`)."""
    from hyperspy_lacbed.train.dataset import dataset_summary

    s = dataset_summary(store, split)
    conv = s["convergence"] or [None, None]
    return {
        "split": split,
        "n_done": s["n_done"],
        "n_total": s["n_total"],
        "metric": "the engine's convergence estimate of each sample: the largest difference "
        "of any disc at any thickness, on a few tilts, between the sample's beam set and one "
        "grown by about half, as a fraction of that image's maximum "
        "(hyperspy_lacbed.bloch.convergence)",
        "median": conv[0],
        "max": conv[1],
        "tolerance": s["tolerance"],
        "above_tolerance": s["above_tolerance"],
        "beams": s["beams"],
        "lattice_parameter_range": s["lattice_parameter_range"],
        "per_prototype": s["per_prototype"],
        "command": 'python -c "from hyperspy_lacbed.train.dataset import dataset_summary; '
        f"print(dataset_summary('data/{Path(store).name}', '{split}'))\"",
    }


# ------------------------------------------------------------------------------- tables
def _rst_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = " ".join("=" * w for w in widths)
    out = [line, " ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)), line]
    out += [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows[1:]]
    return "\n".join([*out, line, ""])


def _e(x: Any) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.2e}"


def _z(x: Any) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _title(text: str, char: str = "-") -> list[str]:
    return [text, char * len(text), ""]


def tables(
    results: dict[str, dict[str, Any]],
    real: list[dict[str, Any]] | None,
    card_targets: dict[str, list[dict[str, Any]]],
    speed: dict[str, dict[str, Any]],
) -> str:
    """The RST of ``docs/user_guide/models_tables.inc``."""
    text = _title("Targets")
    text += [
        "The issue's targets, measured by ``tools/finalise_models.py`` (the cards hold the "
        "same numbers). ℓMSE: our metric (each pattern divided by its maximum); 8-bit MSE "
        "and ZMCC = 0.5 + 0.5 r: the method paper's (each image min–max stretched, 8-bit).",
        "",
    ]
    rows = [["model", "target", "set", "target value", "measured", "met", "factor (>1: missed)"]]
    for direction, tgs in card_targets.items():
        for t in tgs:
            rows.append(
                [
                    direction,
                    t["description"],
                    t["set"],
                    f"{t['target']:.1e}",
                    _e(t["measured"]),
                    {True: "yes", False: "no", None: "–"}[t["met"]],
                    "–" if t["factor_over_target"] is None else f"{t['factor_over_target']:.2g}",
                ]
            )
        sp = speed.get(direction)
        if sp and sp.get("ratio_to_simulate") is not None:
            rows.append(
                [
                    direction,
                    "patterns per second over simulate()",
                    "speed",
                    f"≥ {SPEED_TARGET:g}×",
                    f"{sp['ratio_to_simulate']:.3g}×",
                    "yes" if sp["met"] else "no",
                    f"{SPEED_TARGET / sp['ratio_to_simulate']:.2g}",
                ]
            )
    text.append(_rst_table(rows))

    first = results["forward"]
    for split, res_f in first.items():
        res_i = results["inverse"][split]
        text += _title(f"{split.capitalize()} set: {SETS.get(split, split)}")
        text += [
            f"{len(res_f.indices)} structures, four thicknesses. Forward, per thickness and "
            "disc family (*all*: the whole pattern of nine discs); medians and means over "
            "the structures:",
            "",
        ]
        rows = [
            ["t (nm)", "family", "ℓMSE median", "ℓMSE mean"]
            + ["8-bit MSE median", "8-bit MSE mean", "ZMCC median", "ZMCC mean"]
        ]
        for r in res_f.by_family():
            rows.append(
                [f"{r['thickness'] / 10:g}", r["family"]]
                + [
                    _e(r.get(f"{m}_{s}"))
                    for m in ("lmse", "paper_mse")
                    for s in ("median", "mean")
                ]
                + [_z(r.get(f"zmcc_{s}")) for s in ("median", "mean")]
            )
        s = res_f.summary()
        rows.append(
            ["all", "all"]
            + [_e(s[m][st]) for m in ("lmse", "paper_mse") for st in ("median", "mean")]
            + [_z(s["zmcc"]["median"]), _z(s["zmcc"]["mean"])]
        )
        text.append(_rst_table(rows))
        text += [
            "Inverse, per thickness (o.-i.: origin-invariant; the paper's metrics of the "
            "potential moved to the reference's origin):",
            "",
        ]
        rows = [
            ["t (nm)", "ℓMSE median", "ℓMSE mean", "o.-i. ℓMSE median", "o.-i. ℓMSE mean"]
            + ["8-bit MSE median", "8-bit MSE mean", "ZMCC median", "ZMCC mean"]
        ]
        metrics = ("lmse", "lmse_origin_invariant", "paper_mse")
        for r in res_i.by_family():
            rows.append(
                [f"{r['thickness'] / 10:g}"]
                + [_e(r.get(f"{m}_{st}")) for m in metrics for st in ("median", "mean")]
                + [_z(r.get(f"zmcc_{st}")) for st in ("median", "mean")]
            )
        s = res_i.summary()
        rows.append(
            ["all"]
            + [_e(s[m][st]) for m in metrics for st in ("median", "mean")]
            + [_z(s["zmcc"]["median"]), _z(s["zmcc"]["mean"])]
        )
        text.append(_rst_table(rows))
        rows = [["space group", "n", "forward ℓMSE mean", "inverse o.-i. ℓMSE mean"]]
        fs, is_ = res_f.by_space_group(), res_i.by_space_group()
        for g, entry in fs["lmse"].items():
            rows.append(
                [
                    f"{g} {entry['symbol']}",
                    str(entry["n"]),
                    _e(entry["mean"]),
                    _e(is_["lmse_origin_invariant"][g]["mean"]),
                ]
            )
        text += ["Per space group (means over structures and thicknesses):", "", _rst_table(rows)]

    if real is not None:
        text += _title("Real crystals (never trained on)")
        text += [
            "The CIFs of ``../shared/structures`` and the package's example crystals, "
            "simulated by the Bloch-wave engine at the domain's settings (the reference) "
            "and by the forward model; the inverse model retrieves the potential from the "
            "reference discs. Means over the four thicknesses; forward ℓMSE per family in "
            "the cards. *conv.*: the reference's own convergence estimate (fraction of the "
            "image maximum).",
            "",
        ]
        rows = [
            ["crystal", "a (Å)", "conv.", "fwd ℓMSE", "fwd 8-bit MSE", "fwd ZMCC"]
            + ["inv ℓMSE", "inv o.-i. ℓMSE", "inv 8-bit MSE", "inv ZMCC"]
        ]
        for r in real:
            if not r["in_domain"]:
                rows.append([r["name"], f"{r['a']:.3f}", "outside the domain"] + ["–"] * 7)
                continue
            rows.append(
                [r["name"], f"{r['a']:.3f}", _e(r.get("reference_convergence"))]
                + [_e(np.mean(r["forward"])), _e(np.mean(r["forward_paper_mse"]))]
                + [_z(np.mean(r["forward_zmcc"]))]
                + [_e(np.mean(r[k])) for k in ("inverse", "inverse_origin_invariant")]
                + [_e(np.mean(r["inverse_paper_mse"])), _z(np.mean(r["inverse_zmcc"]))]
            )
        text.append(_rst_table(rows))
    return "\n".join(text)


# --------------------------------------------------------------------------------- main
def _seconds(store: str, split: str, result) -> list[float]:
    """Simulation time (s) of each evaluated sample, read from the store."""
    from hyperspy_lacbed.train.dataset import open_dataset

    group = open_dataset(store, split)
    seconds = np.asarray(group["seconds"][:], float)
    return [round(float(seconds[i]), 2) for i in result.indices]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward", type=Path, required=True, help="forward run folder")
    parser.add_argument("--inverse", type=Path, required=True, help="inverse run folder")
    parser.add_argument("--store", required=True, help="the dataset store of the runs")
    parser.add_argument(
        "--speed",
        type=Path,
        help="JSON of benchmarks/bench_generators.py --simulate (or bench_surrogate.py)",
    )
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument(
        "--tables", type=Path, default=ROOT / "docs" / "user_guide" / "models_tables.inc"
    )
    parser.add_argument(
        "--splits", default=",".join(SETS), help="evaluation splits (default test,heldout,random)"
    )
    parser.add_argument("--limit", type=int, help="first N samples of each split (testing)")
    parser.add_argument("--real", help="only these real crystals: comma-separated patterns")
    parser.add_argument("--no-real", action="store_true", help="skip the real crystals")
    args = parser.parse_args()
    t_start = time.perf_counter()

    from hyperspy_lacbed.nets.registry import read_card, write_card
    from hyperspy_lacbed.train.dataset import LACBEDDataset, open_dataset
    from hyperspy_lacbed.train.evaluate import evaluate_model, evaluate_structures
    from hyperspy_lacbed.train.loop import export, load_checkpoint

    runs = {"forward": args.forward, "inverse": args.inverse}
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    # Fail before the long work: every split to evaluate and the training split must exist.
    train_splits = {
        json.loads(load_checkpoint(run).get("recipe", "{}")).get("split", "train")
        for run in runs.values()
    }
    for split in [*splits, *sorted(train_splits)]:
        try:
            open_dataset(args.store, split)
        except Exception as exc:
            parser.error(
                f"the store {args.store} has no usable split {split!r} ({exc}); generate it, "
                "or leave it out of --splits."
            )
    crystals = None
    if not args.no_real:
        crystals = real_crystals(args.real.split(",") if args.real else None)
        if not crystals:
            parser.error(f"--real {args.real!r} matches no real crystal.")
    args.figures.mkdir(parents=True, exist_ok=True)
    folders = {}
    for direction, run in runs.items():
        folders[direction] = export(
            run,
            args.models_dir,
            f"default-{direction}",
            extra_card={"default": True, "training": {"hardware": _hardware()}},
            overwrite=True,
        )

    results: dict[str, dict[str, Any]] = {"forward": {}, "inverse": {}}
    for split in splits:
        for direction, folder in folders.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*not done yet")
                results[direction][split] = evaluate_model(
                    folder,
                    args.store,
                    split=split,
                    direction=direction,
                    limit=args.limit,
                    figure=args.figures / f"{direction}_cases.png" if split == "test" else None,
                )
            print(f"{direction} on {split}: {time.perf_counter() - t0:.0f} s", flush=True)

    real = None
    if crystals is not None:
        t0 = time.perf_counter()
        real = evaluate_structures(
            [c["path"] for c in crystals], folders["forward"], folders["inverse"]
        )
        for row, c in zip(real, crystals, strict=True):
            row["source"] = c["source"]
            if "same_as" in c:
                row["same_as"] = c["same_as"]
            if row["in_domain"]:
                row["forward_mean"] = float(np.mean(row["forward"]))
        print(f"real crystals ({len(real)}): {time.perf_counter() - t0:.0f} s", flush=True)
    _curves(runs, args.figures / "learning_curves.png")
    speed = json.loads(args.speed.read_text()) if args.speed else None

    split_recipes = {
        split: {
            k: v
            for k, v in dict(open_dataset(args.store, split).attrs["recipe"]).items()
            if k not in ("domain", "path")  # the domain is the card's
        }
        for split in splits
    }
    card_targets, card_speed = {}, {}
    for direction, folder in folders.items():
        card = read_card(folder)
        card.pop("path", None)
        card["dataset"].pop("path", None)  # the recipe and seed reproduce it, not a folder
        train_split = card["dataset"].get("split", "train")
        # The samples trained on: the done ones of the split when the fit started. Valid
        # while the store has not been extended since; else the count alone is known.
        n_fit = int(load_checkpoint(runs[direction]).get("dataset_size", 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a part-generated train split is the point here
            indices = LACBEDDataset(
                args.store, train_split, max_convergence=card["dataset"].get("max_convergence")
            ).indices.tolist()
        card["dataset"]["n_train"] = n_fit
        if len(indices) == n_fit:
            card["dataset"]["train_indices"] = indices
        else:
            card["dataset"]["train_indices"] = None
            card["dataset"]["train_indices_note"] = (
                f"The store's {train_split} split held {len(indices)} done samples at export, "
                f"the fit read {n_fit}: it was extended after the fit started, so which "
                "samples were trained on is not recorded."
            )
            warnings.warn(card["dataset"]["train_indices_note"], stacklevel=1)
        card["data_convergence"] = data_convergence(args.store, train_split)
        metrics: dict[str, Any] = {}
        for split, res in results[direction].items():
            d = res.to_dict()
            main = res.main_metrics  # the per-family values are in by_family
            metrics[split] = {
                "split": split,
                "description": SETS.get(split, split),
                # the split's own recipe (its structure settings differ from training's)
                "recipe": split_recipes[split],
                "n": d["n"],
                "limit": args.limit,
                "thicknesses": d["thicknesses"],
                "summary": d["summary"],
                "by_thickness": {k: v for k, v in d["by_thickness"].items() if k in main},
                "by_family": d["by_family"],
                "by_space_group": {k: v for k, v in d["by_space_group"].items() if k in main},
                # with each sample's simulation time, so a test can regenerate cheap ones
                "per_sample": {**d["per_sample"], "seconds": _seconds(args.store, split, res)},
                "command": (
                    f"python -m hyperspy_lacbed.train evaluate --model default --direction "
                    f"{direction} --split {split} --store data/{Path(args.store).name}"
                    + (f" --limit {args.limit}" if args.limit else "")
                ),
            }
        keys = (
            ["forward", "forward_mean", "forward_paper_mse", "forward_zmcc", "forward_families"]
            if direction == "forward"
            else ["inverse", "inverse_origin_invariant", "inverse_paper_mse", "inverse_zmcc"]
        )
        common = ("name", "source", "same_as", "a", "in_domain", "reference_convergence")
        common += ("bloch_s", "cgan_s")
        if real is not None:
            metrics["real_crystals"] = [
                {k: r[k] for k in (*common, *keys) if k in r} for r in real
            ]
        metrics["validation_last"] = card.get("metrics", {})
        # The headline scalars at the top, for hyperspy_lacbed.list_models().
        if "test" in results[direction]:
            name = "lmse" if direction == "forward" else "lmse_origin_invariant"
            summary = results[direction]["test"].summary()[name]
            metrics[f"test_{name}_median"] = summary["median"]
            metrics[f"test_{name}_mean"] = summary["mean"]
        card["metrics"] = metrics
        card["targets"] = card_targets[direction] = targets(direction, results[direction], real)
        card.pop("speed", None)
        if speed:
            card["speed"] = card_speed[direction] = speed_block(speed, direction, card)
        write_card(folder, no_machine_paths(card))

    text = tables(results, real, card_targets, card_speed)
    args.tables.parent.mkdir(parents=True, exist_ok=True)
    args.tables.write_text(text, encoding="utf-8")
    print(text)
    for direction in folders:
        for t in card_targets[direction]:
            print(
                f"{direction} {t['name']}: measured {_e(t['measured'])}, target "
                f"{t['target']:.1e}, met {t['met']}"
            )
    print(f"finalised in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
