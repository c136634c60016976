"""The Bloch-wave engine against 27 recorded GeSn [1-10] LACBED discs (a real experiment).

Run: ``python benchmarks/bench_gesn.py`` (all beam settings; ``--quick`` for the recommended
one only). Needs ``../shared/experimental/GeSn_1-10`` next to the repository. Writes
``benchmarks/results/bench_gesn.json`` (``bench_gesn-quick.json`` with ``--quick``;
``--results PATH``, ``--no-results``).

The recorded discs are loaded as a user would (``hs.load`` → ``set_signal_type("LACBED")``
→ ``hs.stack`` → ``set_experimental_parameters`` → ``calibrate``), every setting of the table
is simulated in a fresh process (so that its peak memory is its own) over a thickness series,
the thickness is fitted on the mean zero-normalised cross-correlation (NCC) of the 27 discs,
and the table gives wall time, peak resident memory, best thickness and mean NCC with a
Gaussian blur of σ = 1 pixel of the simulation and without. The figure
``docs/figures/gesn_comparison.png`` shows recorded, simulated and difference images of a few
discs for the recommended setting.

Reference (``shared/experimental/GeSn_1-10/README.md``): Felix, ≥ 200 strong beams from a
609-reflection pool, 132.5 nm, mean NCC 0.895 (σ = 1) / 0.853 (σ = 0), 800 s on 2 cores.

Measured (2 shared cores): 200 strong beams converge on Felix's figures (132.35 nm, 0.8955 /
0.8535) in 121 s; with Bethe weak beams 120 strong + 120 weak reach the same images (1.2 %
of the disc maximum at most, NCC 0.99998 with the 200-beam images) and 0.8955 / 0.8534 at
132.3 nm in 54 s, 15× faster than Felix. Fewer beams score higher (0.904 with 80 strong
beams) but are not converged (errors up to 50 % of a disc's maximum): a better fit from a
truncated calculation is luck, not physics, hence the convergence block of the output.
Settings whose matrices may exceed 150 beams run on one thread (see :func:`threads_for`).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path
from queue import Empty

import numpy as np
from _results import add_results_argument, write_results

from hyperspy_lacbed.analysis import compare

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "experimental" / "GeSn_1-10"
FIGURE = ROOT / "docs" / "figures" / "gesn_comparison.png"

#: Felix's figures for this data set (README of the data).
FELIX = {"thickness_nm": 132.5, "ncc_blur1": 0.895, "ncc_blur0": 0.853, "wall_s": 800.0}

#: The README's conditions. The simulated array sim[i, j] (k_x along x_direction, k_y along
#: z × x) maps onto the recorded image by np.rot90(sim, 1), i.e. compare.orient(sim, 1).
CONDITIONS = dict(
    zone_axis=(1, -1, 0),
    x_direction=(0, 0, -1),
    surface_normal=(1, -1, 0),
    voltage="200 kV",
    absorption="bird-king",
    scattering_factors="kirkland",
    disc_radius="0.673 1/Å",
)
ROT90 = 1
#: Thickness series in Å (one solve serves them all).
THICKNESS = np.arange(1200.0, 1450.1, 5.0)
#: Settings explored: (strong beams, weak (Bethe) beams, solver).
CONFIGS = [
    (60, 0, "fast"),
    (80, 0, "fast"),
    (100, 0, "fast"),
    (100, 0, "exact"),
    (150, 0, "fast"),
    (200, 0, "fast"),
    (60, 60, "fast"),
    (80, 80, "fast"),
    (100, 100, "fast"),
    (120, 120, "fast"),
]
RECOMMENDED = (120, 120, "fast")
FIGURE_DISCS = [(0, 0, 0), (0, 0, 4), (1, 1, 1), (2, 2, 0), (1, 1, 3)]


def load_recorded(folder: Path = DATA):
    """The 27 recorded discs as one calibrated LACBED signal with a reflection axis.

    The dm3 images are 150 × 150 with the disc radius 0.673 1/Å over 75 pixels; their
    columns run along [110] and their rows along [001], which is the engine's frame for
    x_direction [110] (y = z × x = [001] for z = [1-10]).
    """
    from hyperspy_lacbed.api.recorded import load_discs

    return load_discs(
        sorted(folder.glob("GeSn_*.dm3")),
        disc_radius="0.673 1/Å",
        title="GeSn [1-10] recorded",
        beam_energy="200 kV",
        zone_axis=[1, -1, 0],
        x_direction=[1, 1, 0],
    )


def _run(args, queue) -> None:
    """Simulate one setting and fit it (in a fresh process)."""
    strong, weak, solver, measured, reflections, pixels, threads = args
    # On shared cores, OpenMP threads that spin while waiting for a descheduled partner make
    # the batched eigen-solves many times slower; passive waiting costs nothing otherwise.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    import hyperspy.api as hs

    import hyperspy_lacbed as hl

    hs.preferences.General.show_progressbar = False
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    sim = hl.simulate(
        str(DATA / "GeSn.cif"),
        thickness=THICKNESS,
        reflections=reflections,
        pixels=pixels,
        strong_beams=strong,
        weak_beams=weak,
        solver=solver,
        device="cpu",
        **CONDITIONS,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    md = sim.metadata
    timing = md.get_item("LACBED.timing") or md.get_item("LACBED.settings.timing")
    timing = timing.as_dictionary() if hasattr(timing, "as_dictionary") else dict(timing)
    discs = compare.orient(sim.data, ROT90)  # (n_t, R, ny, nx), recorded orientation
    bad = int((~np.isfinite(discs)).sum())
    if bad:
        print(f"  warning: {bad} non-finite simulated pixels (strong={strong}, {solver})")
    fits = {sigma: compare.fit_thickness(discs, measured, THICKNESS, sigma) for sigma in (1, 0)}
    best = compare.gaussian_blur(discs[fits[1].index], 1.0)
    fixed = discs[int(np.argmin(np.abs(THICKNESS - 10 * FELIX["thickness_nm"])))]
    queue.put((wall, cpu, rss0, peak, timing, fits, best, fixed))


def threads_for(strong: int, threads: int) -> int:
    """Torch threads for a setting: 1 where a matrix may exceed 150 beams.

    Batched LU factorisations (``torch.linalg.solve``, used by the engine after each
    eigen-solve) of matrices larger than 150 × 150 fail with "Intel oneMKL ERROR: Parameter
    6 was incorrect on entry to ZLASWP" and then hang when torch runs more than one thread
    (pytorch/pytorch#142815, #141358; torch 2.13 CPU with MKL 2024.2). A strong-beam count
    grows by up to ~7 forced and perturbation-strong beams, hence the margin.
    """
    return 1 if strong > 140 else threads


def run_isolated(config, measured, reflections, pixels=150, threads=2):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    args = (*config, measured, reflections, pixels, threads_for(config[0], threads))
    proc = ctx.Process(target=_run, args=(args, queue))
    proc.start()
    while True:  # a child that dies (e.g. killed for memory) must not hang the parent
        try:
            out = queue.get(timeout=5)
            break
        except Empty:
            if not proc.is_alive() and queue.empty():
                raise RuntimeError(
                    f"The run {config} failed (exit code {proc.exitcode})."
                ) from None
    proc.join()
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def write_figure(recorded, simulated, reflections, fit, label, path=FIGURE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [reflections.index(h) for h in FIGURE_DISCS if h in reflections]
    fig, axes = plt.subplots(3, len(picks), figsize=(2.2 * len(picks), 7.0))
    for col, i in enumerate(picks):
        rec, sim = _zscore(recorded[i]), _zscore(simulated[i])
        name = "".join(f"{v:d}" for v in reflections[i])
        for row, (img, kw) in enumerate(
            (
                (rec, {"cmap": "gray", "vmin": -1.5, "vmax": 4}),
                (sim, {"cmap": "gray", "vmin": -1.5, "vmax": 4}),
                (sim - rec, {"cmap": "RdBu_r", "vmin": -3, "vmax": 3}),
            )
        ):
            ax = axes[row, col]
            ax.imshow(img, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{name}  NCC {fit.per_disc[i]:.3f}", fontsize=9)
    for row, text in enumerate(("recorded", "simulated (σ = 1 px)", "difference (z-scores)")):
        axes[row, 0].set_ylabel(text, fontsize=9)
    fig.suptitle(
        f"GeSn [1-10], 200 kV: {label}; t = {fit.thickness / 10:.1f} nm, "
        f"mean NCC of 27 discs {fit.mean_ncc:.3f}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the recommended setting only")
    parser.add_argument("--no-figure", action="store_true", help="do not write the figure")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--config",
        action="append",
        metavar="STRONG,WEAK,SOLVER",
        help="run these settings instead (repeatable), e.g. --config 120,60,fast",
    )
    add_results_argument(parser)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"The recorded data are missing: {DATA}")

    recorded = load_recorded()
    measured = recorded.data.astype(float)
    reflections = recorded.reflections
    configs = [RECOMMENDED] if args.quick else CONFIGS
    if args.config:
        configs = [(int(a), int(b), c) for a, b, c in (x.split(",") for x in args.config)]
    print(
        f"GeSn [1-10], 200 kV, Bird–King, Kirkland, 150 × 150 px, {len(reflections)} discs, "
        f"{len(THICKNESS)} thicknesses {THICKNESS[0] / 10:g}–{THICKNESS[-1] / 10:g} nm, "
        f"{args.threads} torch threads, CPU"
    )
    header = (
        f"{'strong':>6} {'weak':>5} {'solver':>6} {'thr':>3} {'wall s':>7} {'cpu s':>7} {'x Felix':>7} {'peak MB':>8} "
        f"{'beams':>6} {'eig %':>6} {'t nm':>7} {'NCC σ=1':>8} {'t nm σ=0':>9} {'NCC σ=0':>8}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    rows = []
    for config in configs:
        wall, cpu, rss0, peak, timing, fits, best, fixed = run_isolated(
            config, measured, reflections, threads=args.threads
        )
        results[config] = (wall, peak, fits, best, fixed)
        f1, f0 = fits[1], fits[0]
        rows.append(
            {
                "strong": config[0],
                "weak": config[1],
                "solver": config[2],
                "recommended": config == RECOMMENDED,
                "threads": threads_for(config[0], args.threads),
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_mb": peak,
                "max_beams": timing["max_beams"],
                "eig_share": timing["eig_seconds"] / wall,
                "thickness_nm_blur1": f1.thickness / 10,
                "mean_ncc_blur1": f1.mean_ncc,
                "thickness_nm_blur0": f0.thickness / 10,
                "mean_ncc_blur0": f0.mean_ncc,
                "per_disc_ncc_blur1": list(f1.per_disc),
            }
        )
        print(
            f"{config[0]:>6} {config[1]:>5} {config[2]:>6} "
            f"{threads_for(config[0], args.threads):>3} {wall:7.1f} {cpu:7.1f} "
            f"{FELIX['wall_s'] / wall:7.1f} {peak:8.0f} {timing['max_beams']:>6} "
            f"{100 * timing['eig_seconds'] / wall:6.0f} {f1.thickness / 10:7.2f} "
            f"{f1.mean_ncc:8.4f} {f0.thickness / 10:9.2f} {f0.mean_ncc:8.4f}",
            flush=True,
        )
    print(
        f"{'Felix':>6} {'':>5} {'':>6} {'2p':>3} {FELIX['wall_s']:7.0f} {'':>7} {1:7.1f} {309:8.0f} "
        f"{'≥200':>6} {'':>6} {FELIX['thickness_nm']:7.2f} {FELIX['ncc_blur1']:8.4f} "
        f"{132.0:9.2f} {FELIX['ncc_blur0']:8.4f}"
    )
    print(f"(peak MB: resident set of the process, of which ≈{rss0:.0f} MB imports)")

    if len(configs) > 1:
        ref = max(configs, key=lambda c: (c[0], c[1]))
        print(
            f"\nConvergence at {FELIX['thickness_nm']} nm against {ref[0]} strong + {ref[1]} weak "
            "beams: mean NCC between the simulations (no blur) and largest difference in units "
            "of each reference disc's maximum"
        )
        for config in configs:
            sim, want = results[config][4], results[ref][4]
            r = compare.zero_normalised_cross_correlation(sim, want)
            err = np.max(np.abs(sim - want).max(axis=(-2, -1)) / want.max(axis=(-2, -1)))
            print(
                f"  {config[0]:>4} + {config[1]:<3} {config[2]:<5}  NCC {np.mean(r):.5f}  max err {err:.3f}"
            )
    print("\nPer-disc NCC at the best thickness (σ = 1 px)")
    print(f"{'hkl':>10} " + " ".join(f"{c[0]:>4}+{c[1]:<3}{c[2][0]}" for c in configs))
    for i, h in enumerate(reflections):
        row = " ".join(f"{results[c][2][1].per_disc[i]:10.3f}" for c in configs)
        print(f"{'{:+d}{:+d}{:+d}'.format(*h):>10} {row}")

    write_results(
        args,
        "bench_gesn-quick" if args.quick else "bench_gesn",
        rows,
        # Felix's figures for this data set, from the data's README (not measured here)
        felix=FELIX,
        blur_sigma_px=[1, 0],
        reflections=[list(map(int, h)) for h in reflections],
        threads=args.threads,
    )
    if not args.no_figure:
        _, _, fits, best, _ = results[RECOMMENDED if RECOMMENDED in results else configs[0]]
        label = "{} strong + {} weak beams, {}".format(*RECOMMENDED)
        write_figure(measured, best, reflections, fits[1], label)
        print(f"\nFigure: {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
