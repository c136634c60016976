"""Evaluation of the cGAN surrogates on held-out structures: runs, tables, figures.

The metrics themselves (ℓMSE and the origin-invariant ℓMSE) are in
:mod:`hyperspy_lacbed.train.metrics`; this module runs a model over a dataset or a list
of structures (:func:`evaluate_forward`, :func:`evaluate_inverse`,
:func:`evaluate_dataset`, :func:`evaluate_model`, :func:`evaluate_structures`), groups
the values by space group and thickness, writes Markdown tables and draws the cases
(:func:`plot_cases`).

Everything works on numpy arrays and a model-agnostic ``predict`` callable (or
precomputed predictions), so the evaluation itself does not depend on the networks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hyperspy_lacbed.analysis.montage import grid_montage
from hyperspy_lacbed.nets.domain import DEFAULT_REFLECTIONS
from hyperspy_lacbed.train.metrics import (
    align_potential,
    disc_families,
    family_metrics,
    lmse,
    origin_invariant_lmse,
    paper_mse,
    zmcc,
)
from hyperspy_lacbed.train.structures import space_group_symbol

if TYPE_CHECKING:
    from hyperspy_lacbed.nets.surrogate import Surrogate

__all__ = [
    "EvaluationResult",
    "dataset_arrays",
    "evaluate_arrays",
    "evaluate_dataset",
    "evaluate_forward",
    "evaluate_inverse",
    "evaluate_structures",
    "markdown_table",
    "plot_cases",
    "space_group_table",
    "thickness_table",
]

#: ``predict(inputs, lattice_parameters, thickness) -> outputs`` for a batch: forward
#: inputs (B, P, P) V·Å → (B, R, D, D) intensities; inverse (B, R, D, D) → (B, P, P).
Predictor = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


# ----------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------


def _stats(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, "mean": float("nan"), "median": float("nan"), "max": float("nan")}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "max": float(v.max()),
    }


def space_group_table(
    values: np.ndarray, space_groups: Sequence[int], thicknesses: Sequence[float] | None = None
) -> dict[int, dict[str, Any]]:
    """Statistics of a metric per space group.

    Parameters
    ----------
    values
        (n,) or (n, n_t) metric values (one row per structure).
    space_groups
        (n,) space-group numbers.
    thicknesses
        (n_t,) Å; when given, the mean at each thickness is listed too.

    Returns
    -------
    dict
        ``{sg: {"symbol", "n", "mean", "median", "max"[, "mean_per_thickness"]}}``, sorted by
        space group; ``n`` counts structures.
    """
    v = np.asarray(values, float)
    sg = np.asarray(space_groups, int)
    out: dict[int, dict[str, Any]] = {}
    for g in np.unique(sg):
        rows = v[sg == g]
        entry: dict[str, Any] = {"symbol": space_group_symbol(int(g)), **_stats(rows)}
        entry["n"] = int(rows.shape[0])
        if thicknesses is not None and rows.ndim == 2:
            entry["mean_per_thickness"] = [float(x) for x in np.nanmean(rows, axis=0)]
        out[int(g)] = entry
    return out


def thickness_table(values: np.ndarray, thicknesses: Sequence[float]) -> dict[float, dict]:
    """Statistics of a metric (n, n_t) per thickness: ``{t_Å: {"n", "mean", "median", "max"}}``."""
    v = np.asarray(values, float)
    return {float(t): _stats(v[:, k]) for k, t in enumerate(thicknesses)}


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` (dicts) with the given columns; floats as ``%.3g``."""

    def fmt(x: Any) -> str:
        if isinstance(x, (float, np.floating)):
            return f"{x:.3g}"
        return str(x)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class EvaluationResult:
    """Per-sample metrics of one model on one set of structures.

    Attributes
    ----------
    direction
        ``"forward"`` or ``"inverse"``.
    metrics
        Name → (n, n_t) array: ``"lmse"``, ``"paper_mse"`` and ``"zmcc"`` (the method
        paper's metrics, :mod:`hyperspy_lacbed.train.metrics`) always; forward:
        ``"lmse_per_disc_mean"`` (the mean over the R discs of each disc's own ℓMSE) and
        per disc family ``lmse_<f>``, ``paper_mse_<f>``, ``zmcc_<f>``
        (:func:`~hyperspy_lacbed.train.metrics.family_metrics`); inverse:
        ``"lmse_origin_invariant"`` (and the paper's metrics of the aligned potential).
    space_groups
        (n,) space groups.
    thicknesses
        (n_t,) Å.
    indices
        (n,) sample indices in the source dataset.
    extra
        Free-form information (model name, dataset path, ...).
    """

    direction: str
    metrics: dict[str, np.ndarray]
    space_groups: np.ndarray
    thicknesses: np.ndarray
    indices: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    families: list[str] = field(default_factory=list)

    @property
    def main_metrics(self) -> list[str]:
        """The metrics that are not per disc family."""
        tails = tuple(f"_{f}" for f in self.families)
        return [k for k in self.metrics if not (tails and k.endswith(tails))]

    def by_family(self) -> list[dict[str, Any]]:
        """Rows (thickness, family) with our ℓMSE and the paper's MSE and ZMCC.

        Each row: ``thickness`` (Å), ``family``, ``n`` and the median and mean of ``lmse``,
        ``paper_mse`` and ``zmcc`` (``lmse_median``, ``lmse_mean``, ...) and, for an
        inverse model, of ``lmse_origin_invariant``; family ``"all"`` is the whole pattern
        (ℓMSE over the pattern, paper's values averaged over the discs) or potential.
        """
        rows = []
        for i, t in enumerate(self.thicknesses):
            for fam in ["all", *self.families]:
                tail = "" if fam == "all" else f"_{fam}"
                if f"lmse{tail}" not in self.metrics:
                    continue
                row: dict[str, Any] = {"thickness": float(t), "family": fam}
                for name in ("lmse", "lmse_origin_invariant", "paper_mse", "zmcc"):
                    v = self.metrics.get(f"{name}{tail}")
                    if v is None:
                        continue
                    col = np.asarray(v, float)[:, i]
                    row["n"] = int(np.isfinite(col).sum())
                    row[f"{name}_median"] = float(np.nanmedian(col))
                    row[f"{name}_mean"] = float(np.nanmean(col))
                rows.append(row)
        return rows

    @property
    def lmse(self) -> np.ndarray:
        """The ℓMSE, (n, n_t)."""
        return self.metrics["lmse"]

    def by_thickness(self) -> dict[str, dict[float, dict]]:
        """Per-thickness tables of every metric."""
        return {k: thickness_table(v, self.thicknesses) for k, v in self.metrics.items()}

    def by_space_group(self) -> dict[str, dict[int, dict]]:
        """Per-space-group tables of every metric."""
        return {
            k: space_group_table(v, self.space_groups, self.thicknesses)
            for k, v in self.metrics.items()
        }

    def summary(self) -> dict[str, Any]:
        """Mean of each metric overall and at each thickness (what a model card holds)."""
        return {
            k: {
                "mean": float(np.nanmean(v)),
                "median": float(np.nanmedian(v)),
                "max": float(np.nanmax(v)),
                "mean_per_thickness": {
                    f"{t:g}": float(np.nanmean(v[:, i])) for i, t in enumerate(self.thicknesses)
                },
            }
            for k, v in self.metrics.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: summary, both tables and the per-sample values."""
        return {
            "direction": self.direction,
            "n": len(self.space_groups),
            "thicknesses": [float(t) for t in self.thicknesses],
            "summary": self.summary(),
            "by_thickness": {
                k: {f"{t:g}": s for t, s in tab.items()} for k, tab in self.by_thickness().items()
            },
            "by_space_group": {
                k: {str(g): s for g, s in tab.items()} for k, tab in self.by_space_group().items()
            },
            "by_family": self.by_family(),
            "per_sample": {
                "indices": self.indices.tolist(),
                "space_groups": self.space_groups.tolist(),
                **{k: v.tolist() for k, v in self.metrics.items()},
            },
            "extra": self.extra,
        }

    def markdown(self) -> str:
        """Per-thickness, per-disc-family and per-space-group tables as markdown."""
        names = self.main_metrics
        rows = []
        for i, t in enumerate(self.thicknesses):
            row: dict[str, Any] = {"thickness (nm)": f"{t / 10:g}", "n": len(self.space_groups)}
            for k in names:
                row[f"mean {k}"] = float(np.nanmean(self.metrics[k][:, i]))
                row[f"max {k}"] = float(np.nanmax(self.metrics[k][:, i]))
            rows.append(row)
        cols = ["thickness (nm)", "n"] + [f"{s} {k}" for k in names for s in ("mean", "max")]
        out = [f"### {self.direction}: per thickness", "", markdown_table(rows, cols), ""]
        fam_rows = self.by_family()
        for r in fam_rows:
            r["thickness (nm)"] = f"{r['thickness'] / 10:g}"
        cols = ["thickness (nm)", "family", "n", "lmse_median", "lmse_mean"]
        cols += ["paper_mse_median", "paper_mse_mean", "zmcc_median"]
        out += [
            f"### {self.direction}: per thickness and disc family (ours and the paper's metric)",
            "",
            markdown_table(fam_rows, cols),
            "",
        ]
        tabs = self.by_space_group()
        rows = []
        for g, entry in tabs["lmse"].items():
            row = {"space group": g, "symbol": entry["symbol"], "n": entry["n"]}
            for k in names:
                row[f"mean {k}"] = tabs[k][g]["mean"]
            row["max lmse"] = entry["max"]
            rows.append(row)
        cols = ["space group", "symbol", "n"] + [f"mean {k}" for k in names] + ["max lmse"]
        out += [f"### {self.direction}: per space group", "", markdown_table(rows, cols), ""]
        return "\n".join(out)

    def cases(
        self, thickness_index: int | None = None, metric: str | None = None
    ) -> dict[str, int]:
        """Positions (rows) of the best, median and worst samples by a metric.

        By the mean over thicknesses, or at one thickness. ``metric`` defaults to the
        origin-invariant ℓMSE for an inverse model (a potential has no preferred origin)
        and to the ℓMSE otherwise.
        """
        if metric is None:
            metric = "lmse_origin_invariant" if "lmse_origin_invariant" in self.metrics else "lmse"
        if metric not in self.metrics:
            raise ValueError(f"No metric {metric!r}; this result has {sorted(self.metrics)}.")
        values = np.asarray(self.metrics[metric], float)
        v = values.mean(axis=1) if thickness_index is None else values[:, thickness_index]
        order = np.argsort(v, kind="stable")
        return {
            "best": int(order[0]),
            "median": int(order[len(order) // 2]),
            "worst": int(order[-1]),
        }


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


def _batched(predict: Predictor, x: np.ndarray, a: np.ndarray, t: float, batch: int) -> np.ndarray:
    out = [
        np.asarray(predict(x[i : i + batch], a[i : i + batch], float(t)))
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out, axis=0)


def _check_inputs(potentials, discs, thicknesses, lattice_parameters, space_groups):
    pot = np.asarray(potentials)
    if pot.ndim == 4 and pot.shape[1] == 1:
        pot = pot[:, 0]
    d = np.asarray(discs)
    t = np.asarray(thicknesses, float).ravel()
    if d.ndim == 4:
        d = d[:, None]
    if pot.ndim != 3 or d.ndim != 5 or d.shape[1] != t.size or len(pot) != len(d):
        raise ValueError(
            "Expected potentials (n, P, P), discs (n, n_t, R, D, D) and n_t thicknesses; got "
            f"{pot.shape}, {d.shape} and {t.size}."
        )
    a = np.asarray(lattice_parameters, float).ravel()
    sg = np.zeros(len(pot), int) if space_groups is None else np.asarray(space_groups, int)
    return pot, d, t, a, sg


def evaluate_forward(
    potentials: np.ndarray,
    discs: np.ndarray,
    thicknesses: Sequence[float],
    lattice_parameters: Sequence[float],
    space_groups: Sequence[int] | None = None,
    *,
    predict: Predictor | None = None,
    predictions: np.ndarray | None = None,
    batch_size: int = 16,
    indices: Sequence[int] | None = None,
    reflections: Sequence[Sequence[int]] | None = None,
) -> EvaluationResult:
    """ℓMSE and the paper's metrics of a forward model (potential → discs).

    Parameters
    ----------
    potentials
        (n, P, P) V·Å (or (n, 1, P, P)).
    discs
        (n, n_t, R, D, D) reference intensities.
    thicknesses
        (n_t,) Å.
    lattice_parameters
        (n,) Å.
    space_groups
        (n,) for the per-space-group table.
    predict
        ``predict(potentials (B, P, P), a (B,), thickness) -> (B, R, D, D)``.
    predictions
        Or the predictions themselves, (n, n_t, R, D, D).
    batch_size
        Samples per call of ``predict``.
    indices
        Sample indices to record (default 0 … n−1).
    reflections
        hkl of the R disc channels, for the per-family metrics (default the default
        domain's nine when R = 9; otherwise no families).

    Returns
    -------
    EvaluationResult
        ``"lmse"`` over each whole pattern, ``"lmse_per_disc_mean"``, the paper's
        ``"paper_mse"`` and ``"zmcc"`` (means over the discs) and the per-family metrics.
    """
    pot, ref, t, a, sg = _check_inputs(
        potentials, discs, thicknesses, lattice_parameters, space_groups
    )
    if predictions is None:
        if predict is None:
            raise ValueError("Give predict= or predictions=.")
        pred = np.stack([_batched(predict, pot, a, tk, batch_size) for tk in t], axis=1)
    else:
        pred = np.asarray(predictions)
        if pred.ndim == 4:
            pred = pred[:, None]
    if pred.shape != ref.shape:
        raise ValueError(f"predictions {pred.shape} and references {ref.shape} differ in shape.")
    metrics = {
        "lmse": lmse(pred, ref, axes=(-3, -2, -1)),
        "lmse_per_disc_mean": lmse(pred, ref, axes=(-2, -1)).mean(axis=-1),
        "paper_mse": paper_mse(pred, ref).mean(axis=-1),
        "zmcc": zmcc(pred, ref).mean(axis=-1),
    }
    if reflections is None and ref.shape[-3] == len(DEFAULT_REFLECTIONS):
        reflections = DEFAULT_REFLECTIONS
    families: list[str] = []
    if reflections is not None:
        metrics.update(family_metrics(pred, ref, reflections))
        families = list(disc_families(reflections))
    idx = np.arange(len(pot)) if indices is None else np.asarray(indices, int)
    return EvaluationResult("forward", metrics, sg, t, idx, families=families)


def evaluate_inverse(
    potentials: np.ndarray,
    discs: np.ndarray,
    thicknesses: Sequence[float],
    lattice_parameters: Sequence[float],
    space_groups: Sequence[int] | None = None,
    *,
    predict: Predictor | None = None,
    predictions: np.ndarray | None = None,
    batch_size: int = 16,
    operations: Any = None,
    indices: Sequence[int] | None = None,
) -> EvaluationResult:
    """ℓMSE and origin-invariant ℓMSE of an inverse model (discs → potential).

    Parameters
    ----------
    potentials
        (n, P, P) reference potentials, V·Å.
    discs
        (n, n_t, R, D, D) input intensities.
    thicknesses, lattice_parameters, space_groups
        As for :func:`evaluate_forward`.
    predict
        ``predict(discs (B, R, D, D), a (B,), thickness) -> (B, P, P)`` in V·Å.
    predictions
        Or the predicted potentials, (n, n_t, P, P).
    batch_size
        Samples per call of ``predict``.
    operations
        Operations of :func:`~hyperspy_lacbed.train.metrics.origin_invariant_lmse` (default 4mm).
    indices
        Sample indices to record.

    Returns
    -------
    EvaluationResult
        ``"lmse"``, ``"lmse_origin_invariant"`` and the paper's ``"paper_mse"`` and
        ``"zmcc"`` of the prediction aligned to the reference (the operation and cyclic
        shift of the origin-invariant fit), (n, n_t).
    """
    ref, d, t, a, sg = _check_inputs(
        potentials, discs, thicknesses, lattice_parameters, space_groups
    )
    if predictions is None:
        if predict is None:
            raise ValueError("Give predict= or predictions=.")
        pred = np.stack(
            [_batched(predict, d[:, k], a, tk, batch_size) for k, tk in enumerate(t)], axis=1
        )
    else:
        pred = np.asarray(predictions)
        if pred.ndim == 3:
            pred = pred[:, None]
    pred = pred.reshape(len(ref), len(t), *ref.shape[-2:])
    ref_t = np.broadcast_to(ref[:, None], pred.shape)
    aligned = align_potential(pred, ref_t, operations)
    metrics = {
        "lmse": lmse(pred, ref_t),
        "lmse_origin_invariant": origin_invariant_lmse(pred, ref_t, operations),
        # the paper's metrics of the prediction moved to the reference's origin
        "paper_mse": paper_mse(aligned, ref_t),
        "zmcc": zmcc(aligned, ref_t),
    }
    idx = np.arange(len(ref)) if indices is None else np.asarray(indices, int)
    return EvaluationResult("inverse", metrics, sg, t, idx)


def evaluate_dataset(
    dataset: Any,
    direction: str,
    predict: Predictor,
    *,
    batch_size: int = 16,
    limit: int | None = None,
) -> tuple[EvaluationResult, dict[str, np.ndarray]]:
    """Evaluate a model on a :class:`~hyperspy_lacbed.train.dataset.LACBEDDataset`.

    The unaugmented arrays are read (all thicknesses); ``limit`` keeps the first samples.

    Returns
    -------
    result, arrays
        The :class:`EvaluationResult` and the arrays read (``potentials``, ``discs``,
        ``lattice_parameters``), e.g. for :func:`plot_cases`.
    """
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    pots, discs = zip(*(dataset.arrays(i) for i in range(n)))
    arrays = {
        "potentials": np.stack(pots),
        "discs": np.stack(discs),
        "lattice_parameters": np.asarray(dataset.lattice_parameters[:n], float),
    }
    fn = {"forward": evaluate_forward, "inverse": evaluate_inverse}.get(direction)
    if fn is None:
        raise ValueError(f"direction must be 'forward' or 'inverse', not {direction!r}.")
    kw: dict[str, Any] = {}
    if direction == "forward":
        dom = getattr(dataset, "domain", None)
        kw["reflections"] = getattr(dom, "reflections", None) or dataset.recipe["domain"].get(
            "reflections"
        )
    result = fn(
        arrays["potentials"],
        arrays["discs"],
        dataset.thicknesses,
        arrays["lattice_parameters"],
        dataset.space_groups[:n],
        predict=predict,
        batch_size=batch_size,
        indices=dataset.indices[:n],
        **kw,
    )
    result.extra["dataset"] = getattr(dataset, "path", "")
    return result, arrays


# ----------------------------------------------------------------------------------------
# Figure
# ----------------------------------------------------------------------------------------


def plot_cases(
    result: EvaluationResult,
    potentials: np.ndarray,
    discs: np.ndarray,
    *,
    predict: Predictor | None = None,
    predictions: np.ndarray | None = None,
    lattice_parameters: Sequence[float] | None = None,
    thickness_index: int = 0,
    reflections: Sequence[Sequence[int]] | None = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
):
    """Figure of the best, median and worst samples (rows) at one thickness.

    Columns: forward — potential, Bloch-wave discs, cGAN discs, difference; inverse —
    input discs, reference potential, predicted potential (aligned to the reference by
    the origin-invariant fit), difference. Images are drawn with x (kx) to the right and
    y (ky) upwards. Uses matplotlib's Agg canvas (no display).

    Parameters
    ----------
    result
        From :func:`evaluate_forward` / :func:`evaluate_inverse` on the same arrays (rows
        of the arrays are the rows of ``result``).
    potentials, discs
        (n, P, P) and (n, n_t, R, D, D).
    predict, predictions
        The model, or its predictions ((n, n_t, R, D, D) forward, (n, n_t, P, P) inverse);
        with ``predict`` only the three cases are recomputed.
    lattice_parameters
        (n,) Å, needed with ``predict``.
    thickness_index
        Thickness of the figure (and of the case selection).
    reflections
        hkl of the disc channels (for the montage layout).
    path
        Save the figure there (PNG, PDF, ...).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    pot = np.asarray(potentials)
    if pot.ndim == 4:
        pot = pot[:, 0]
    dsc = np.asarray(discs)
    k = int(thickness_index)
    t = float(result.thicknesses[k])
    cases = result.cases(k)

    def prediction(row: int) -> np.ndarray:
        if predictions is not None:
            return np.asarray(predictions)[row, k]
        if predict is None or lattice_parameters is None:
            raise ValueError("Give predictions=, or predict= with lattice_parameters=.")
        a = np.asarray(lattice_parameters, float)[row : row + 1]
        x = pot[row : row + 1] if result.direction == "forward" else dsc[row : row + 1, k]
        return np.asarray(predict(x, a, t))[0]

    fig = Figure(figsize=(13, 3.3 * len(cases)), layout="constrained")
    axes = fig.subplots(len(cases), 4, squeeze=False)
    for r, (label, row) in enumerate(cases.items()):
        name = f"{label}: #{int(result.indices[row])}, SG {int(result.space_groups[row])}"
        panels = _case_panels(result, row, k, prediction(row), pot, dsc, reflections)
        for c, (img, ttl, cmap, lim) in enumerate(panels):
            _draw_panel(fig, axes[r, c], img, ttl if c else f"{name}\n{ttl}", cmap, lim)
    fig.suptitle(title or f"{result.direction} model, thickness {t / 10:g} nm")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


#: A panel of the case figure: image, title, colour map and (vmin, vmax) or None.
_Panel = tuple[np.ndarray, str, str, tuple[float, float] | None]


def _case_panels(
    result: EvaluationResult,
    row: int,
    k: int,
    pred: np.ndarray,
    pot: np.ndarray,
    dsc: np.ndarray,
    reflections: Sequence[Sequence[int]] | None,
) -> list[_Panel]:
    """The four panels of one case: input, reference, prediction and their difference."""
    value = result.lmse[row, k]
    if result.direction == "forward":
        ref = dsc[row, k]
        vmax = float(np.nanmax(ref))
        return [
            (pot[row], "projected potential (V·Å)", "viridis", None),
            (grid_montage(ref, reflections), "Bloch waves", "gray", (0, vmax)),
            (grid_montage(pred, reflections), "cGAN", "gray", (0, vmax)),
            (
                grid_montage(pred - ref, reflections),
                f"difference, ℓMSE {value:.2e}",
                "RdBu_r",
                None,
            ),
        ]
    ref = pot[row]
    aligned = align_potential(pred, ref)
    oi = result.metrics["lmse_origin_invariant"][row, k]
    lo, hi = float(ref.min()), float(ref.max())
    return [
        (grid_montage(dsc[row, k], reflections), "input discs", "gray", None),
        (ref, "reference potential (V·Å)", "viridis", (lo, hi)),
        (aligned, "cGAN (aligned)", "viridis", (lo, hi)),
        (aligned - ref, f"difference, ℓMSE {value:.2e} / o.-i. {oi:.2e}", "RdBu_r", None),
    ]


def _draw_panel(
    fig: Any, ax: Any, img: np.ndarray, title: str, cmap: str, lim: tuple[float, float] | None
) -> None:
    """One image with its colour bar; a difference (RdBu_r) symmetric about zero."""
    if cmap == "RdBu_r":
        span = float(np.nanmax(np.abs(img))) or 1.0
        lim = (-span, span)
    im = ax.imshow(
        img,
        cmap=cmap,
        vmin=None if lim is None else lim[0],
        vmax=None if lim is None else lim[1],
        origin="lower",
    )
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


# ----------------------------------------------------------------------------------------
# A shipped or exported model on a dataset split
# ----------------------------------------------------------------------------------------


def surrogate_predictor(surrogate: Any) -> Predictor:
    """A :data:`Predictor` calling a loaded :class:`~hyperspy_lacbed.nets.surrogate.Surrogate`."""

    def predict(x: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
        if surrogate.direction == "forward":
            return surrogate.forward_discs(x, a, [t])[:, 0]
        return surrogate.inverse_potentials(x, a, np.full(len(x), t))

    return predict


def dataset_arrays(dataset: Any, limit: int | None = None) -> dict[str, np.ndarray]:
    """The unaugmented arrays of a dataset's first items, as the evaluation reads them.

    Parameters
    ----------
    dataset
        A :class:`~hyperspy_lacbed.train.dataset.LACBEDDataset` (its ``arrays`` are read,
        without augmentation) or any dataset of the items
        :func:`~hyperspy_lacbed.train.loop.fit` reads.
    limit
        Read only the first items.

    Returns
    -------
    dict
        ``potentials`` (n, P, P), ``discs`` (n, n_t, R, D, D), ``lattice_parameters`` (n,),
        ``space_groups`` (n,) and ``thicknesses`` (n_t,).
    """
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    pots, discs, a, sg = [], [], [], []
    thick = None
    for i in range(n):
        if hasattr(dataset, "arrays"):
            p, d = dataset.arrays(i)
            a.append(float(dataset.lattice_parameters[i]))
            sg.append(int(dataset.space_groups[i]))
            thick = dataset.thicknesses
        else:
            item = dataset[i]
            p, d = item["potential"], item["discs"]
            a.append(float(item["lattice_parameter"]))
            sg.append(int(item.get("space_group", 0)))
            thick = item["thickness"]
        pots.append(np.asarray(p, np.float32).reshape(np.shape(p)[-2:]))
        discs.append(np.asarray(d, np.float32))
    return {
        "potentials": np.stack(pots),
        "discs": np.stack(discs),
        "lattice_parameters": np.asarray(a),
        "space_groups": np.asarray(sg, int),
        "thicknesses": np.atleast_1d(np.asarray(thick, float)),
    }


def evaluate_arrays(
    surrogate: Surrogate, arrays: dict[str, np.ndarray], batch_size: int = 16
) -> EvaluationResult:
    """The card's metrics of a surrogate on arrays of :func:`dataset_arrays`.

    Parameters
    ----------
    surrogate
        A :class:`~hyperspy_lacbed.nets.surrogate.Surrogate` (a shipped model, or the
        generator of a training run).
    arrays
        From :func:`dataset_arrays`.
    batch_size
        Samples per call of the surrogate.

    Returns
    -------
    EvaluationResult
        Of :func:`evaluate_forward` or :func:`evaluate_inverse`, by the surrogate's
        direction, at every thickness of ``arrays``.
    """
    forward = surrogate.direction == "forward"
    fn = evaluate_forward if forward else evaluate_inverse
    kw = {"reflections": surrogate.domain.reflections} if forward else {}
    return fn(
        arrays["potentials"],
        arrays["discs"],
        arrays["thicknesses"],
        arrays["lattice_parameters"],
        arrays["space_groups"],
        predict=surrogate_predictor(surrogate),
        batch_size=batch_size,
        **kw,
    )


def evaluate_model(
    model: Any,
    store: str | os.PathLike,
    split: str = "test",
    *,
    direction: str | None = None,
    limit: int | None = None,
    figure: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
) -> EvaluationResult:
    """Evaluate a model (name, folder or ``"default"``) on a split of a dataset store.

    ``"default"`` without a ``direction`` takes the card's direction of the forward default.
    The figure of best, median and worst cases is written when ``figure`` is a path.
    """
    from hyperspy_lacbed.nets.registry import read_card, resolve_model
    from hyperspy_lacbed.nets.surrogate import load_surrogate
    from hyperspy_lacbed.train.dataset import LACBEDDataset

    if direction is None:
        folder = resolve_model(model, "forward", models_dir) if model == "default" else None
        if folder is None:
            folder = resolve_model(model, None, models_dir)
        direction = str(read_card(folder)["direction"])
    surrogate = load_surrogate(model, direction, models_dir=models_dir)
    dataset = LACBEDDataset(store, split=split)
    result, arrays = evaluate_dataset(
        dataset, direction, surrogate_predictor(surrogate), batch_size=batch_size, limit=limit
    )
    result.extra["model"] = surrogate.info()
    if figure is not None:
        plot_cases(
            result,
            arrays["potentials"],
            arrays["discs"],
            predict=surrogate_predictor(surrogate),
            lattice_parameters=arrays["lattice_parameters"],
            reflections=dataset.recipe["domain"]["reflections"],
            path=figure,
            title=f"{surrogate.name} on {split}",
        )
    return result


def evaluate_structures(
    structures: Sequence[Any],
    forward: Any = "default",
    inverse: Any = "default",
    *,
    models_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Both surrogates on given crystals (e.g. real ones never trained on).

    For each crystal: the Bloch-wave discs at the forward model's domain settings (the
    reference, with the mean absorption as :func:`hyperspy_lacbed.generate` returns it),
    the forward model's discs, and the inverse model's potential retrieved from the
    reference discs at each thickness, against the crystal's projected potential.

    Parameters
    ----------
    structures
        CIF paths, ``diffpy.structure.Structure`` objects or example names.
    forward, inverse
        Models (``"default"``, a name, a folder or a loaded surrogate).
    models_dir
        A further folder of models to search first.

    Returns
    -------
    list of dict
        One per crystal: ``name``, ``a`` (Å), ``in_domain`` and, when in the domain,
        ``forward`` (ℓMSE per thickness), ``forward_paper_mse`` and ``forward_zmcc`` (the
        paper's metrics, means over the discs), ``forward_families`` (per-family ℓMSE,
        paper's MSE and ZMCC per thickness), ``inverse`` and ``inverse_origin_invariant``
        (ℓMSE per thickness), ``inverse_paper_mse`` and ``inverse_zmcc`` (of the aligned
        potential), ``bloch_s`` and ``cgan_s`` (wall times of the four-thickness pattern by
        each path) and ``reference_convergence`` (the engine's convergence estimate of the
        reference discs, a fraction of each image's maximum; None when not reported).
    """
    import time
    from pathlib import Path

    import hyperspy_lacbed as hl
    from hyperspy_lacbed.nets.surrogate import load_surrogate

    fwd = load_surrogate(forward, "forward", models_dir=models_dir)
    inv = load_surrogate(inverse, "inverse", models_dir=models_dir)
    domain = fwd.domain
    lo, hi = domain.lattice_parameter_range
    thick = list(domain.thicknesses)
    rows = []
    for item in structures:
        crystal = hl.load_structure(item)
        name = Path(item).stem if isinstance(item, str | os.PathLike) else crystal.name
        a = float(crystal.lattice_parameters[0])
        row: dict[str, Any] = {"name": name, "a": a, "in_domain": bool(lo <= a <= hi)}
        rows.append(row)
        if not row["in_domain"]:
            continue
        t0 = time.perf_counter()
        gen = hl.generate(crystal, thickness=thick, model=fwd, show_progressbar=False)
        row["cgan_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = hl.simulate(**gen.metadata.LACBED.settings.as_dictionary(), show_progressbar=False)
        row["bloch_s"] = time.perf_counter() - t0
        # how converged the reference itself is (the network is scored against it)
        report = ref.metadata.LACBED.as_dictionary().get("convergence") or {}
        estimate = report.get("estimate")
        row["reference_convergence"] = None if estimate is None else float(estimate)
        pred_d, ref_d = np.asarray(gen.data), np.asarray(ref.data)
        row["forward"] = lmse(pred_d, ref_d, (-3, -2, -1)).tolist()
        # the paper's metrics and the per-family values, per thickness
        row["forward_paper_mse"] = paper_mse(pred_d, ref_d).mean(axis=-1).tolist()
        row["forward_zmcc"] = zmcc(pred_d, ref_d).mean(axis=-1).tolist()
        row["forward_families"] = {
            k: v.tolist() for k, v in family_metrics(pred_d, ref_d, domain.reflections).items()
        }
        truth = hl.projected_potential(crystal, shape=(domain.potential_pixels,) * 2).data
        plain, invariant, paper, corr = [], [], [], []
        for i, t in enumerate(thick):
            pot = (
                ref.inav[:, i]
                .retrieve_potential(model=inv, thickness=t, show_progressbar=False)
                .data
            )
            plain.append(float(lmse(pot, truth)))
            invariant.append(float(origin_invariant_lmse(pot, truth)))
            aligned = align_potential(pot, truth)
            paper.append(float(paper_mse(aligned, truth)))
            corr.append(float(zmcc(aligned, truth)))
        row["inverse"], row["inverse_origin_invariant"] = plain, invariant
        row["inverse_paper_mse"], row["inverse_zmcc"] = paper, corr
    return rows
