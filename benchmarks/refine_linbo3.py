"""``s.refine`` on the 63 recorded LiNbO3 [1-10] discs, as a user calls it.

Run: ``python benchmarks/refine_linbo3.py`` (``--step 7``: fit every 7th recorded pixel;
``--check-step 9``: the held-out grid; ``--strong-beams 80``; ``--max-iter 25``;
``--no-figure``). Needs ``../shared/experimental/LiNbO3_1-10``. Writes
``benchmarks/results/refine_linbo3.json`` (``--results PATH``, ``--no-results``) and the
figure ``docs/figures/refine_linbo3.png``; ``parameter_table``, ``disc_table`` and
``docs_sentences`` turn the results into the text of docs/user_guide/refinement.rst.

The user's workflow, as for GeSn (``bench_gesn.py``): ``hs.load`` each ``.dm3`` →
``set_signal_type("LACBED")`` → ``hs.stack`` → ``set_experimental_parameters`` (200 kV,
beam direction [1-10], x direction [00-1], the reflections read from the file names) →
``calibrate(disc_radius="0.725 1/Å")``; then ``s.refine(cif, parameters, thickness="122 nm",
orientation="auto", ...)`` with the README's physics (Kirkland factors, Bird–King
absorption, 80 strong beams). Refined: the thickness, B of each site, the free z of the Li
and Mg sites (6a), x, y, z of O (18b), the disc calibration (scale), the tilt-grid centre
(offset) and the blur.

The thickness fringes are about 4 recorded pixels apart, finer than the binned grids that
two cores can afford, and a binned grid computed at one tilt per binned pixel aliases them
(the default stages on the discs binned 3 × 3 fitted the binned data better and the discs
worse, and the check warned). So the fit compares every 7th recorded pixel
(``s.isig[3::7, 3::7]``, 24 × 24, centred like the full grid) with the model at exactly
those tilts, in one stage; a second grid, every 9th pixel (18 × 18), checks the start and
the result on pixels the fit did not see.

The image orientation is found by ``orientation="auto"`` (the best of the eight flips and
rotations in the seeding thickness scan). As a cross-check the benchmark scores the eight
maps itself with :func:`hyperspy_lacbed.analysis.compare.best_orientation` on a quick
simulation of the same pixels over a thickness series and records every score.

Reported: the mean ZNCC at the start and refined on the fitted pixels (the result's check)
and on the held-out ones, the ZNCC of every disc, the refined values ± σ, the correlation
matrix, the wall time and the machine's load (2 cores shared with other jobs).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "experimental" / "LiNbO3_1-10"
CIF = DATA / "LiNbO3.cif"
FIGURE = ROOT / "docs" / "figures" / "refine_linbo3.png"

#: The authors' settings (README of the data): beam direction, x direction, surface normal
#: and the physics of their simulation.
PHYSICS = dict(
    zone_axis=(1, -1, 0),
    x_direction=(0, 0, -1),
    surface_normal=(1, -1, 0),
    absorption="bird-king",
    scattering_factors="kirkland",
)
#: Thickness (the middle of the authors' search, 112–132 nm) and blur (their 1 pixel).
START = {"thickness": "122 nm", "blur": 1.0}
#: Every parameter the issue asks for: thickness; B per site; the free z of Li and Mg
#: (6a: 0, 0, z) and x, y, z of O (18b); scale, offset and blur.
PARAMETERS = [
    "thickness", "B[Li1]", "B[Mg1]", "B[Nb1]", "B[O1]", "xyz[Li1]", "xyz[Mg1]", "xyz[O1]",
    "scale", "offset", "blur",
]  # fmt: skip


def load_recorded(folder: Path = DATA):
    """The 63 recorded discs as one calibrated LACBED signal with a reflection axis.

    The ``.dm3`` images are 168 × 168 with the disc radius 0.725 1/Å over 84 pixels.
    """
    from hyperspy_lacbed.api.recorded import load_discs

    return load_discs(
        sorted(folder.glob("LiNbO3_*.dm3")),
        disc_radius="0.725 1/Å",
        title="LiNbO3 [1-10] recorded",
        beam_energy="200 kV",
        zone_axis=[1, -1, 0],
        x_direction=[0, 0, -1],
    )


def sampled(s, step: int):
    """Every ``step``-th pixel of the discs, on a grid centred like the disc (``step`` odd).

    The samples are recorded pixels at their own tilts, so a model computed at those tilts
    is compared point for point; binning instead (block means) would average fringes that
    a model point-sampled on the binned grid aliases (the fringe period of these discs is
    about 4 pixels at 168 px).
    """
    n = s.axes_manager.signal_shape[0]
    if step < 1 or step % 2 == 0 or (n // step) % 2:
        raise ValueError(f"step must be odd and leave an even number of samples, not {step}.")
    first = (n - 1 - step * (n // step - 1)) // 2
    return s.isig[first::step, first::step]


def orientation_scores(s, strong_beams: int) -> dict:
    """The eight flips/rotations scored on a quick simulation (the cross-check)."""
    import hyperspy_lacbed as hl
    from hyperspy_lacbed.analysis import compare
    from hyperspy_lacbed.refinement.fom import disc_mask

    measured = s.data.astype(float)
    radius = measured.shape[-1] / 2 * s.axes_manager.signal_axes[0].scale
    thickness = np.arange(1000.0, 1601.0, 20.0)
    sim = hl.simulate(
        str(CIF), thickness=thickness, reflections=s.reflections, pixels=measured.shape[-1],
        disc_radius=radius, voltage="200 kV", strong_beams=strong_beams,
        show_progressbar=False, **PHYSICS,
    )  # fmt: skip
    fit = compare.best_orientation(
        sim.data, measured, blur_sigma=0.0, mask=disc_mask(measured.shape[-1], "circle")
    )
    return {
        "pixels": int(measured.shape[-1]),
        "best": [fit.k, fit.transpose],
        "scores": {f"{k},{t}": v for (k, t), v in fit.scores.items()},
    }


def held_out_zncc(s, res, values: dict, step_ratio: float) -> np.ndarray:
    """ZNCC per disc of the parameters ``values`` on other recorded pixels ``s``.

    ``s`` is a sampled grid that the fit did not see (``sampled`` with another step);
    the blur σ, in the fit's sample pixels, is rescaled by ``step_ratio`` (fit step /
    this step) so that it is the same in recorded pixels.
    """
    import torch

    from hyperspy_lacbed.bloch.settings import SimulationSettings
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.refinement.driver import Problem
    from hyperspy_lacbed.refinement.fom import disc_mask, zncc_per_disc
    from hyperspy_lacbed.refinement.model import BlochModel
    from hyperspy_lacbed.refinement.parameters import resolve_parameters

    recipe = res.recipe
    crystal = load_structure(str(CIF))
    phys = SimulationSettings.from_user(**recipe["physics"])
    data = np.asarray(s.data, float)
    n = data.shape[-1]
    dk = s.axes_manager.signal_axes[0].scale
    blur = values["blur"] * step_ratio
    params = resolve_parameters(
        recipe["parameters"], crystal, thickness=values["thickness"],
        absorption=phys.absorption, absorption_fraction=phys.absorption_fraction,
        fom="zncc", blur=blur, disc_radius=dk * n / 2,
    )  # fmt: skip
    model = BlochModel(
        crystal, phys, np.asarray(recipe["reflections"]), n, dk, params,
        thickness=values["thickness"],
    )  # fmt: skip
    mask = disc_mask(n, "circle")[None] & np.isfinite(data)
    problem = Problem(model, data, mask, "zncc", tuple(recipe["orientation"]), blur, None)
    x = torch.tensor(
        [blur if p.name == "blur" else values[p.name] for p in params], dtype=torch.float64
    )
    with torch.no_grad():
        img = problem.images(model.intensities(x), x)
        return zncc_per_disc(img, problem.data, problem.mask).numpy()


def _simple_table(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = "  ".join("=" * w for w in widths)
    lines = [line, "  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), line]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join([*lines, line])


def parameter_table(results: dict) -> str:
    """The refined values ± σ as the RST table of docs/user_guide/refinement.rst."""
    body = []
    for name in results["names"]:
        unit = results["units"][name]
        scale, unit = (0.1, "nm") if unit == "Å" else (1.0, unit)
        sigma = results["uncertainties"][name] * scale
        digits = max(0, 1 - int(np.floor(np.log10(sigma)))) if sigma > 0 else 4
        body.append(
            [
                f"``{name}``",
                f"{results['start'][name] * scale:.{digits}f}",
                f"{results['values'][name] * scale:.{digits}f}",
                f"{sigma:.2g}",
                unit or "–",
            ]
        )
    return _simple_table(["parameter", "start", "refined", "σ", "unit"], body)


def disc_table(results: dict) -> str:
    """ZNCC of each disc, refined (start in brackets), by l (rows) and h = k (columns)."""
    cells = {tuple(d["reflection"]): d for d in results["per_disc"]}
    hs_ = sorted({h for h, _, _ in cells})
    ls_ = sorted({l for _, _, l in cells}, reverse=True)
    body = []
    for l_ in ls_:
        row = [f"{l_:+d}" if l_ else "0"]
        for h in hs_:
            d = cells.get((h, h, l_))
            row.append("" if d is None else f"{d['zncc']:.3f} ({d['zncc_start']:.3f})")
        body.append(row)
    head = ["l / h"] + [f"{h:+d}" if h else "0" for h in hs_]
    return _simple_table(head, body)


def docs_sentences(record: dict) -> str:
    """The measured numbers as docs/user_guide/refinement.rst says them (one line)."""
    r = record["results"]
    h = r["held_out"]
    load = record["machine"]["load_average_1_5_15_min"][1]
    pairs = ", ".join(f"``{a}``/``{b}`` {c:+.2f}" for a, b, c in r["correlated_pairs"])
    ranked = sorted(r["per_disc"], key=lambda d: d["zncc"])
    worst, third = ranked[:2], ranked[2]["zncc"]
    scores = r["orientation_check"]["scores"]
    best = "{},{}".format(*r["orientation_check"]["best"])
    others = max(v for key, v in scores.items() if key != best)
    k, transpose = r["orientation"]
    verdict = "finds the same" if r["orientation_agrees"] else f"prefers ({best})"
    names = " and ".join(
        "``" + "".join(str(v) for v in d["reflection"]) + f"`` ({d['zncc']:.2f})" for d in worst
    )
    return (
        f'``orientation="auto"`` chose ``({k}, {transpose})``; the benchmark\'s own scan of the '
        f"eight maps {verdict} (mean ZNCC {scores[best]:.2f}, at most {others:.2f} for the "
        f"seven others). The mean ZNCC of the {r['discs']} discs rose from "
        f"{r['mean_zncc_start']:.3f} to {r['mean_zncc']:.3f} on the {r['pixels']} × "
        f"{r['pixels']} fitted pixels, and from {h['mean_zncc_start']:.3f} to "
        f"{h['mean_zncc']:.3f} on {h['pixels']} × {h['pixels']} other recorded pixels (every "
        f"{h['step']}th), which the fit did not see. The fit took {r['wall_s']:.0f} s on two "
        f"cores shared with other jobs (load average {load:.1f}), its seeding scan of "
        f"thickness and orientation included. Strongly correlated (\\|r\\| > 0.8): {pairs}. "
        f"The worst discs are {names}; every other disc reaches {third:.2f} or more."
    )


def write_figure(res, path: Path) -> None:
    """Per-disc ZNCC at the start and refined, and the worst discs with their residuals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyperspy_lacbed.refinement.fom import zscore

    worst = np.argsort(np.nan_to_num(res.zncc, nan=-2))[:6]
    fig = plt.figure(figsize=(12, 6.4))
    grid = fig.add_gridspec(4, 6, height_ratios=[1.2, 1, 1, 1])
    ax = fig.add_subplot(grid[0, :])
    order = np.arange(len(res.reflections))
    ax.plot(order, res.zncc_start, "o", ms=3, color="0.6", label="start")
    ax.plot(order, res.zncc, "o", ms=3, color="C3", label="refined")
    ax.set_xticks(order)
    ax.set_xticklabels(["".join(str(int(v)) for v in h) for h in res.reflections], fontsize=5,
                       rotation=90)  # fmt: skip
    ax.set_ylabel("ZNCC")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(
        f"LiNbO3 [1-10], 63 discs at {res.experiment.shape[-1]} px: mean ZNCC "
        f"{res.mean_zncc_start:.3f} → {res.mean_zncc:.3f}",
        fontsize=10,
    )
    exp, sim = zscore(res.experiment, res.mask), zscore(res.simulated, res.mask)
    diff = res.difference
    for col, r in enumerate(worst):
        label = "".join(str(int(v)) for v in res.reflections[r])
        for row, (img, kw) in enumerate(
            (
                (exp[r], {"cmap": "gray", "vmin": -2, "vmax": 4}),
                (sim[r], {"cmap": "gray", "vmin": -2, "vmax": 4}),
                (diff[r], {"cmap": "RdBu_r", "vmin": -3, "vmax": 3}),
            ),
            start=1,
        ):
            a = fig.add_subplot(grid[row, col])
            a.imshow(img, **kw)
            a.set_xticks([])
            a.set_yticks([])
            if row == 1:
                a.set_title(f"{label}  {res.zncc[r]:.3f}", fontsize=8)
            if col == 0:
                a.set_ylabel(("experiment", "best fit", "difference (z)")[row - 1], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--step", type=int, default=7,
        help="compare every STEP-th pixel (odd; default 7: 24 × 24 exact-tilt samples; 1: all)",
    )  # fmt: skip
    parser.add_argument("--strong-beams", type=int, default=80)
    parser.add_argument("--max-iter", type=int, default=25, help="L-BFGS iterations")
    parser.add_argument(
        "--check-step", type=int, default=9,
        help="the held-out check's step (default 9: 18 × 18 other recorded pixels)",
    )  # fmt: skip
    parser.add_argument("--no-figure", action="store_true", help="do not write the figure")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="where the figure goes")
    add_results_argument(parser)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"The recorded data are missing: {DATA}")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    s = load_recorded()
    s = sampled(s, args.step)
    t0 = time.perf_counter()
    scores = orientation_scores(s, args.strong_beams)
    t_scores = time.perf_counter() - t0
    print("orientation scores:", scores)
    options = dict(
        thickness=START["thickness"], orientation="auto", blur=START["blur"] / args.step,
        strong_beams=args.strong_beams, stages=[{"bin": 1, "max_iter": args.max_iter}],
        progress=False, **PHYSICS,
    )  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = s.refine(str(CIF), PARAMETERS, **options)
    wall = time.perf_counter() - t0
    print(res.summary())
    # the same parameters on pixels the fit did not see: every 9th (18 × 18)
    t0 = time.perf_counter()
    other = sampled(load_recorded(), args.check_step)
    ratio = args.step / args.check_step
    held_out = {
        key: held_out_zncc(other, res, values, ratio)
        for key, values in (("start", res.start), ("refined", res.values))
    }
    t_held = time.perf_counter() - t0
    print({k: float(np.nanmean(v)) for k, v in held_out.items()}, f"{t_held:.0f} s")
    orientation = res.recipe["orientation"]
    per_disc = [
        {"reflection": [int(v) for v in h], "zncc_start": float(a), "zncc": float(b)}
        for h, a, b in zip(res.reflections, res.zncc_start, res.zncc)
    ]
    results = {
        "discs": len(res.reflections),
        "pixels": int(res.check["pixels"]),
        "max_beams": int(res.check["max_beams"]),
        "orientation": orientation,
        "orientation_check": scores,
        "orientation_agrees": list(scores["best"]) == list(orientation),
        "stages": res.stages,
        "mean_zncc_start": res.mean_zncc_start,
        "mean_zncc": res.mean_zncc,
        "fom_start": res.check["fom_start"],
        "fom_end": res.check["fom_end"],
        "start": res.start,
        "values": res.values,
        "uncertainties": res.uncertainties,
        "units": res.units,
        "names": res.names,
        "correlation": np.asarray(res.correlation),
        "correlated_pairs": res.correlated_pairs(),
        "per_disc": per_disc,
        "held_out": {
            "step": args.check_step,
            "pixels": int(other.axes_manager.signal_shape[0]),
            "mean_zncc_start": float(np.nanmean(held_out["start"])),
            "mean_zncc": float(np.nanmean(held_out["refined"])),
            "zncc_start": held_out["start"],
            "zncc": held_out["refined"],
            "wall_s": t_held,
        },
        "wall_s": wall,
        "orientation_check_s": t_scores,
        "message": res.message,
        "warnings": [str(w.message) for w in caught if "Refinement" in type(w.message).__name__],
    }
    if not args.no_figure:
        write_figure(res, args.figure)
    write_results(
        args, "refine_linbo3", results,
        settings={"step": args.step, "parameters": PARAMETERS, "options": options},
    )  # fmt: skip


if __name__ == "__main__":
    main()
