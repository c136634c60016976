"""The ablation of the surrogates' formulation: same data, same wall-clock budget, one table.

A *variant* is a name made of ``+``-joined tokens:

``v0``
    The paper's pix2pixHD generator, trained on the *random* crystals (the v0 recipe:
    space groups round-robin, Wyckoff sites filled at random).
``realistic``
    Train on the realistic crystals (common structure types) instead; ``v0+realistic``.
    Every ``fourier`` variant trains on them.
``fourier``
    The physics-informed generator of the direction (``fourier-forward`` /
    ``fourier-inverse``, :mod:`hyperspy_lacbed.nets.physics_informed`) with only the
    tilt coordinates as pixel features (no geometry, no symmetrisation).
``geometry``
    Add the excitation-error channels σ_g.
``phase``
    Add the Pendellösung phases sin/cos(π s_g t) (forward).
``sym``
    Symmetrise the output over the input potential's 4mm operations (forward).
``scale``
    The scale-free output: pattern shape / its maximum × a predicted peak (forward).
``blochS`` / ``blochSwW``
    Put a few-beam Bloch-wave layer of S strong (and W Bethe weak) beams inside the
    forward generator (``physics-forward``, :mod:`hyperspy_lacbed.nets.physics_forward`;
    issue 21): ``bloch10``, ``bloch20w40``, ``bloch40w80``.
``residual`` / ``effective``
    How the network and that layer combine: a gated residual on the layer's discs (the
    default), or learned effective structure factors that the layer turns into discs.
``amp``
    Add the origin-invariant Fourier-amplitude loss
    (:func:`~hyperspy_lacbed.train.loop.amplitude_loss`, weight :data:`AMPLITUDE_WEIGHT`;
    inverse).

Every variant gets the same training set (but for ``v0``, its random counterpart), the
same seed, batch size and learning rate, and the same wall-clock budget (minutes); each
is then scored on the same test set with
:func:`~hyperspy_lacbed.train.evaluate.evaluate_forward` /
:func:`~hyperspy_lacbed.train.evaluate.evaluate_inverse`: our ℓMSE
and the method paper's 8-bit MSE and ZMCC, per thickness and per disc family.
:func:`run_ablation` writes ``ablation.json`` and ``ablation.rst`` (tables for the docs);
the command line is ``python -m hyperspy_lacbed.train ablation``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperspy_lacbed.train.evaluate import dataset_arrays, evaluate_arrays
from hyperspy_lacbed.train.loop import TrainConfig, checkpoint_surrogate, fit

__all__ = [
    "DEFAULT_VARIANTS",
    "TOKENS",
    "AblationVariant",
    "parse_variant",
    "rst_tables",
    "run_ablation",
]

#: What each token of a variant name means (see the module docstring).
TOKENS = (
    "v0", "realistic", "fourier", "geometry", "phase", "sym", "scale", "amp", "bloch<S>w<W>",
    "residual", "effective",
)  # fmt: skip
#: A physics-layer token: ``bloch10`` or ``bloch20w40`` (strong, weak beams).
_BLOCH = re.compile(r"^bloch(\d+)(?:w(\d+))?$")
#: ``lambda_amplitude`` of the ``amp`` token.
AMPLITUDE_WEIGHT = 10.0
#: The variants of issue 13's ablation, in order.
DEFAULT_VARIANTS = {
    "forward": (
        "v0",
        "v0+realistic",
        "fourier",
        "fourier+geometry",
        "fourier+geometry+phase",
        "fourier+geometry+phase+sym",
        "fourier+geometry+phase+sym+scale",
    ),
    # issue 21: physics size 0 (v1's generator), 10, 20 + 40 and 40 + 80 beams, × (a), (b)
    "physics": (
        "fourier+geometry+phase+sym",
        "fourier+geometry+phase+sym+bloch10+residual",
        "fourier+geometry+phase+sym+bloch20w40+residual",
        "fourier+geometry+phase+sym+bloch40w80+residual",
        "fourier+geometry+phase+sym+bloch10+effective",
        "fourier+geometry+phase+sym+bloch20w40+effective",
        "fourier+geometry+phase+sym+bloch40w80+effective",
    ),
    "inverse": ("v0", "v0+realistic", "fourier", "fourier+geometry", "fourier+geometry+amp"),
}
_FORWARD_ONLY = ("phase", "sym", "scale")
_INVERSE_ONLY = ("amp",)


@dataclass(frozen=True)
class AblationVariant:
    """One ablation variant: its name, generator and training data.

    Attributes
    ----------
    name
        The ``+``-joined tokens.
    architecture
        ``"pix2pixhd"``, ``"fourier-forward"`` or ``"fourier-inverse"``.
    generator
        Generator keyword arguments that the tokens set.
    data
        ``"random"`` or ``"realistic"``.
    training
        :class:`~hyperspy_lacbed.train.loop.TrainConfig` settings that the tokens set.
    """

    name: str
    architecture: str
    generator: dict[str, Any]
    data: str
    training: dict[str, Any] = field(default_factory=dict)


def parse_variant(name: str, direction: str) -> AblationVariant:
    """The :class:`AblationVariant` of a name such as ``"fourier+geometry+sym"``.

    Raises
    ------
    ValueError
        For unknown tokens, a name that starts with neither ``v0`` nor ``fourier``, or
        forward-only tokens in an inverse ablation.
    """
    tokens = [t.strip() for t in str(name).split("+") if t.strip()]
    bad = [t for t in tokens if t not in TOKENS and not _BLOCH.match(t)]
    if bad or not tokens or tokens[0] not in ("v0", "fourier"):
        raise ValueError(
            f"Invalid variant {name!r}: write 'v0' or 'fourier' followed by +tokens from "
            f"{', '.join(TOKENS[1:])} (e.g. 'fourier+geometry+sym')."
        )
    if tokens[0] == "v0":
        extra = [t for t in tokens[1:] if t != "realistic"]
        if extra:
            raise ValueError(
                f"Variant {name!r}: v0 takes only '+realistic' ({extra} belong to 'fourier')."
            )
        data = "realistic" if "realistic" in tokens else "random"
        return AblationVariant(name, "pix2pixhd", {}, data)
    if direction == "inverse":
        fwd = [t for t in tokens if t in _FORWARD_ONLY]
        if fwd:
            raise ValueError(f"Variant {name!r}: {fwd} only exist for the forward generator.")
        training = {"lambda_amplitude": AMPLITUDE_WEIGHT} if "amp" in tokens else {}
        gen = {"geometry": "geometry" in tokens}
        return AblationVariant(name, "fourier-inverse", gen, "realistic", training)
    inv = [t for t in tokens if t in _INVERSE_ONLY]
    if inv:
        raise ValueError(f"Variant {name!r}: {inv} only exist for the inverse direction.")
    if "phase" in tokens and "geometry" not in tokens:
        raise ValueError(f"Variant {name!r}: 'phase' needs 'geometry' (the phases are of σ_g).")
    gen = {
        "geometry": "geometry" in tokens,
        "phase_features": "phase" in tokens,
        "symmetrise": "sym" in tokens,
        "output": "scale_free" if "scale" in tokens else "tanh",
    }
    return _with_physics(name, tokens, gen)


def _with_physics(name: str, tokens: list[str], gen: dict[str, Any]) -> AblationVariant:
    """A forward variant, with the Bloch layer of its ``bloch…`` token when it has one."""
    bloch = [m for m in map(_BLOCH.match, tokens) if m]
    modes = [t for t in tokens if t in ("residual", "effective")]
    if not bloch:
        if modes:
            raise ValueError(f"Variant {name!r}: {modes[0]!r} needs a 'bloch<S>' token.")
        return AblationVariant(name, "fourier-forward", gen, "realistic")
    if len(bloch) > 1 or len(modes) > 1:
        raise ValueError(f"Variant {name!r}: give one 'bloch…' token and at most one mode.")
    if "scale" in tokens:
        raise ValueError(f"Variant {name!r}: the Bloch layer makes the scale; drop 'scale'.")
    gen.pop("output")
    gen.update(
        physics=modes[0] if modes else "residual",
        strong_beams=int(bloch[0].group(1)),
        weak_beams=int(bloch[0].group(2) or 0),
    )
    return AblationVariant(name, "physics-forward", gen, "realistic")


def _summary(result: Any) -> dict[str, Any]:
    """The headline numbers: medians and means over all samples and thicknesses."""
    m = result.metrics
    out = {
        "lmse_median": float(np.nanmedian(m["lmse"])),
        "lmse_mean": float(np.nanmean(m["lmse"])),
        "paper_mse_median": float(np.nanmedian(m["paper_mse"])),
        "paper_mse_mean": float(np.nanmean(m["paper_mse"])),
        "zmcc_median": float(np.nanmedian(m["zmcc"])),
    }
    if "lmse_origin_invariant" in m:
        out["lmse_oi_median"] = float(np.nanmedian(m["lmse_origin_invariant"]))
        out["lmse_oi_mean"] = float(np.nanmean(m["lmse_origin_invariant"]))
    if "paper_mse_000" in m:  # the paper scored the 000 disc only
        out["paper_mse_000_median"] = float(np.nanmedian(m["paper_mse_000"]))
        out["paper_mse_000_mean"] = float(np.nanmean(m["paper_mse_000"]))
    return out


def run_ablation(
    train: Any,
    test: Any,
    out_dir: str | os.PathLike,
    *,
    direction: str = "forward",
    variants: Sequence[str] | None = None,
    minutes: float = 20.0,
    random_train: Any = None,
    config: dict[str, Any] | None = None,
    generator: dict[str, dict[str, Any]] | None = None,
    test_limit: int | None = None,
    fresh: bool = False,
    show_progressbar: bool | None = False,
) -> dict[str, Any]:
    """Train every variant for the same wall-clock budget on the same data; score and tabulate.

    Parameters
    ----------
    train
        Training dataset of realistic crystals (items as
        :func:`~hyperspy_lacbed.train.loop.fit` reads them).
    test
        Test dataset (every variant is scored on its first ``test_limit`` items).
    out_dir
        Folder of the runs (``<out_dir>/<variant>/``), ``ablation.json`` and
        ``ablation.rst``.
    direction
        ``"forward"`` or ``"inverse"``.
    variants
        Variant names (:func:`parse_variant`), or the name of a set of
        :data:`DEFAULT_VARIANTS` (``["physics"]``: issue 21's); default the direction's set.
    minutes
        Wall-clock training budget of each variant.
    random_train
        Training dataset of random crystals, for ``v0`` (required when ``v0`` is asked for).
    config
        :class:`~hyperspy_lacbed.train.loop.TrainConfig` settings shared by all variants
        (batch size, lr, seed, discriminator, ...; not ``architecture``, ``generator``,
        ``hours``, ``steps`` or ``out_dir``, which the harness sets). Those not given are
        :class:`~hyperspy_lacbed.train.loop.TrainConfig`'s (the recipe's for the
        direction), but for a constant learning rate (runs end by the clock, not at a
        step) and no amplitude loss but in ``amp`` variants.
    generator
        Generator overrides per architecture name (e.g. smaller networks for a quick
        run), merged under the variant's own settings.
    test_limit
        Score only the first items of ``test``.
    fresh
        Retrain variants that already have a result in ``out_dir`` (default: reuse those
        run with the same budget, shared settings, generator and test set).
    show_progressbar
        Progress bar of each training run.

    Returns
    -------
    dict
        What ``ablation.json`` holds: settings, and per variant the training summary
        (steps, wall time, parameters, weight size), the headline numbers and the rows per
        thickness and disc family.
    """
    import torch

    names = list(variants or DEFAULT_VARIANTS[direction])
    if len(names) == 1 and names[0] in DEFAULT_VARIANTS:  # a named set, e.g. "physics"
        names = list(DEFAULT_VARIANTS[names[0]])
    parsed = [parse_variant(n, direction) for n in names]
    _check_request(parsed, random_train, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = dataset_arrays(test, test_limit)
    rows: dict[str, Any] = {}
    warm = False
    for v in parsed:
        run_dir = out / v.name.replace("+", "_")
        gen = {**(generator or {}).get(v.architecture, {}), **v.generator}
        # a finished variant is reused only if it was run with the same settings
        settings = {
            "minutes": float(minutes),
            "config": json.loads(json.dumps(config or {})),
            "generator": json.loads(json.dumps(gen)),
            "test_samples": len(arrays["potentials"]),
        }
        done = None if fresh else _finished(run_dir, settings)
        if done is not None:
            rows[v.name] = done
            continue
        cfg = _variant_config(v, direction, gen, config, minutes, run_dir)
        data = random_train if v.data == "random" else train
        if not warm:
            _warm_up(data, cfg, out / "_warmup")
            warm = True
        rows[v.name] = _train_and_score(v, cfg, data, arrays, settings, show_progressbar)
    report = {
        "direction": direction,
        "minutes": float(minutes),
        "variants": names,
        "config": config or {},
        "torch_threads": torch.get_num_threads(),
        "results": rows,
    }
    (out / "ablation.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (out / "ablation.rst").write_text(rst_tables(report), encoding="utf-8")
    return report


def _check_request(
    parsed: Sequence[AblationVariant], random_train: Any, config: dict[str, Any] | None
) -> None:
    """Refuse a ``v0`` variant without random crystals and shared settings the harness sets."""
    if any(v.data == "random" for v in parsed) and random_train is None:
        raise ValueError(
            "Variant 'v0' trains on random crystals: give random_train (on the command line "
            "--random-split, a split of random-Wyckoff crystals), or use 'v0+realistic'."
        )
    fixed = {"architecture", "generator", "hours", "steps", "out_dir", "direction"}
    clash = fixed & set(config or {})
    if clash:
        raise ValueError(f"config may not set {sorted(clash)}: the harness sets them.")


def _finished(run_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result of a variant run with the same settings, else None."""
    result_path = run_dir / "result.json"
    if not result_path.is_file():
        return None
    done = json.loads(result_path.read_text(encoding="utf-8"))
    return done if done.get("settings") == settings else None


#: Steps of a run that only the clock ends.
_UNLIMITED = 10**9


def _variant_config(
    v: AblationVariant,
    direction: str,
    gen: dict[str, Any],
    config: dict[str, Any] | None,
    minutes: float,
    run_dir: Path,
) -> TrainConfig:
    """The training settings of one variant: shared ones, then the variant's, then the clock's."""
    return TrainConfig(
        **{
            "log_every": 10,
            "checkpoint_every": _UNLIMITED,
            # a run ends by the clock, so a decay towards a final step would never start;
            # only the amp token adds the amplitude loss
            "lr_decay_after": _UNLIMITED,
            "lambda_amplitude": 0.0,
            **(config or {}),
            **v.training,
            "direction": direction,
            "architecture": v.architecture,
            "generator": gen,
            "hours": float(minutes) / 60.0,
            "steps": _UNLIMITED,
            "out_dir": str(run_dir),
        }
    )


def _warm_up(data: Any, cfg: TrainConfig, folder: Path) -> None:
    """One untimed step, so that lazy imports and first reads are charged to no variant."""
    warm_cfg = TrainConfig(**{**cfg.to_dict(), "hours": None, "steps": 1})
    warm_cfg.out_dir = str(folder)
    fit(data, warm_cfg, resume=False, show_progressbar=False)
    shutil.rmtree(folder, ignore_errors=True)


def _train_and_score(
    v: AblationVariant,
    cfg: TrainConfig,
    data: Any,
    arrays: dict[str, np.ndarray],
    settings: dict[str, Any],
    show_progressbar: bool | None,
) -> dict[str, Any]:
    """Train one variant on the clock, score it on the test arrays, write its result."""
    summary = fit(data, cfg, resume=False, show_progressbar=show_progressbar)
    surrogate = checkpoint_surrogate(cfg.out_dir)
    t0 = time.perf_counter()
    res = evaluate_arrays(surrogate, arrays)
    n_par = int(sum(p.numel() for p in surrogate.module.parameters()))
    row = {
        "variant": v.name,
        "architecture": v.architecture,
        "generator": cfg.generator,
        "training": v.training,
        "data": v.data,
        "training_samples": len(data),
        "steps": int(summary["step"]),
        "train_wall_s": round(float(summary["wall_time_s"]), 2),
        "eval_wall_s": round(time.perf_counter() - t0, 2),
        "parameters": n_par,
        "weights_mb": round(4 * n_par / 1e6, 2),
        "summary": _summary(res),
        "by_family": res.by_family(),
        "test_samples": len(arrays["potentials"]),
        "settings": settings,
    }
    result_path = Path(cfg.out_dir) / "result.json"
    result_path.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return row


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _list_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for r in [header, *rows]:
        lines.append(f"   * - {_fmt(r[0])}")
        lines += [f"     - {_fmt(c)}" for c in r[1:]]
    return "\n".join(lines) + "\n"


def rst_tables(report: dict[str, Any]) -> str:
    """Two reStructuredText tables of an ablation report (headline; thickness × family)."""
    d, minutes = report["direction"], report["minutes"]
    res = report["results"]
    oi = d == "inverse"
    head = ["variant", "data", "parameters", "steps", "ℓMSE median", "ℓMSE mean"]
    head += ["o.-i. ℓMSE median", "o.-i. ℓMSE mean"] if oi else []
    head += ["paper MSE median", "paper MSE mean", "ZMCC median"]
    rows = []
    for name in report["variants"]:
        r = res[name]
        s = r["summary"]
        row = [name, r["data"], r["parameters"], r["steps"], s["lmse_median"], s["lmse_mean"]]
        row += [s["lmse_oi_median"], s["lmse_oi_mean"]] if oi else []
        row += [s["paper_mse_median"], s["paper_mse_mean"], s["zmcc_median"]]
        rows.append(row)
    text = _list_table(
        f"{d.capitalize()} ablation: {minutes:g} minutes of training each, same data and "
        f"test set (paper's metric: each image min-max stretched to 8 bits)",
        head,
        rows,
    )
    head = ["variant", "thickness (nm)", "family", "ℓMSE median", "ℓMSE mean"]
    head += ["paper MSE median", "ZMCC median"]
    rows = []
    for name in report["variants"]:
        for fr in res[name]["by_family"]:
            rows.append(
                [
                    name,
                    f"{fr['thickness'] / 10:g}",
                    fr["family"],
                    fr["lmse_median"],
                    fr["lmse_mean"],
                    fr.get("paper_mse_median", float("nan")),
                    fr.get("zmcc_median", float("nan")),
                ]
            )
    text += "\n" + _list_table(
        f"{d.capitalize()} ablation per thickness and disc family", head, rows
    )
    return text
