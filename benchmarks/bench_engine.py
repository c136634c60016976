"""Speed, memory and accuracy of the Bloch-wave engine on the Felix Si [001] case.

Run: ``python benchmarks/bench_engine.py`` (add ``--quick`` for N = 32 only). It writes
``benchmarks/results/bench_engine.json`` (``--results PATH``; ``--no-results``), which the
README's engine rows are read from.

Each configuration runs in a fresh process so that its peak resident memory is its own.
Felix's wall times on 2 cores of this machine kind (``timing`` of
``../shared/reference/felix_si001/case.json``) are the baseline; the table gives the
speed-up over them, the share of time spent in the eigen-solver, and the error of each
solver against the exact one and against Felix's images.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASE = SHARED / "reference" / "felix_si001"


def felix_wall_times() -> dict[int, float]:
    """Felix's wall time (s) per N on 2 cores: ``timing.wall_s_N<N>`` of the reference case."""
    timing = json.loads((CASE / "case.json").read_text())["timing"]
    return {
        int(k[len("wall_s_N") :]): float(v) for k, v in timing.items() if k.startswith("wall_s_N")
    }


def _felix_inputs(n_half: int) -> dict:
    inputs = json.loads((CASE / "case.json").read_text())["inputs"]
    return dict(
        preset="felix",
        zone_axis=inputs["zone"],
        voltage=inputs["kV"] * 1e3,
        thickness=inputs["thicknesses_A"],
        reflections=inputs["reflections"],
        pixels=2 * n_half,
        disc_radius=inputs["ROuterConvergenceAngle_invA"],
        strong_beams=inputs["IMinStrongBeams"],
        beam_pool=inputs["IMinReflectionPool"],
        absorption_fraction=inputs["RAbsorptionPer"] / 100,
    )


def _run(args: tuple[str, str, int, dict, str], queue) -> None:
    label, structure, n_half, extra, kind = args
    import torch

    torch.set_num_threads(2)
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.bloch.settings import SimulationSettings

    kwargs = (
        _felix_inputs(n_half)
        if kind == "felix"
        else dict(pixels=2 * n_half, thickness=[500.0, 1000.0, 1500.0, 2000.0])
    )
    kwargs.update(extra)
    settings = SimulationSettings.from_user(**kwargs)
    compute_discs(
        structure, SimulationSettings.from_user(**{**kwargs, "pixels": 2}), show_progressbar=False
    )
    t0 = time.perf_counter()
    result = compute_discs(structure, settings, device="cpu", show_progressbar=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((label, wall, peak, result.stats, result.discs))


def run_isolated(label, structure, n_half, extra, kind="felix"):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=((label, structure, n_half, extra, kind), queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def felix_error(discs: np.ndarray, n_half: int) -> float | None:
    if n_half != 32:
        return None
    inputs = json.loads((CASE / "case.json").read_text())["inputs"]
    images = np.load(CASE / "felix_si001_n32.npz")
    worst = 0.0
    for ti, t in enumerate(inputs["thicknesses_A"]):
        for ri, hkl in enumerate(inputs["reflections"]):
            ref = images["{:+d}{:+d}{:+d}_{}A".format(*hkl, t)]
            worst = max(worst, np.abs(discs[ti, ri] - ref).max() / ref.max())
    return worst


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference of two disc stacks, in units of each reference image's maximum."""
    peak = b.max(axis=(-2, -1), keepdims=True)
    return float((np.abs(a - b) / peak).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 32 only")
    add_results_argument(parser)
    args = parser.parse_args()
    felix_wall = felix_wall_times()
    sizes = [32] if args.quick else [32, 64]
    rows = []
    print("Felix Si [001] case, ~100 strong beams (Felix's count), 4 thicknesses, 2 cores")
    for n in sizes:
        exact = run_isolated("felix preset, exact", str(CASE / "Si.cif"), n, {"solver": "exact"})
        fast = run_isolated("felix preset, fast", str(CASE / "Si.cif"), n, {"solver": "fast"})
        for label, wall, peak, stats, discs in (exact, fast):
            rows.append(
                (
                    n,
                    label,
                    wall,
                    peak,
                    stats,
                    discs,
                    felix_wall[n] / wall,
                    rel_error(discs, exact[4]),
                    felix_error(discs, n),
                )
            )
    print("Default physics (mean absorption, MIP-corrected K), Si [001], 100 coupled strong beams")
    for n in sizes:
        exact = run_isolated("default, exact", "Si", n, {"solver": "exact"}, kind="default")
        fast = run_isolated("default, fast (auto)", "Si", n, {}, kind="default")
        for label, wall, peak, stats, discs in (exact, fast):
            rows.append(
                (
                    n,
                    label,
                    wall,
                    peak,
                    stats,
                    discs,
                    felix_wall[n] / wall,
                    rel_error(discs, exact[4]),
                    None,
                )
            )
    header = (
        f"{'N':>3} {'configuration':24} {'wall s':>7} {'x Felix':>8} {'peak MB':>8} "
        f"{'tilts/s':>8} {'eig %':>6} {'beams':>6} {'err/exact':>10} {'err/Felix':>10}"
    )
    print(header)
    print("-" * len(header))
    for n, label, wall, peak, stats, _, speedup, err, ferr in rows:
        fe = f"{ferr:10.2e}" if ferr is not None else f"{'-':>10}"
        print(
            f"{n:>3} {label:24} {wall:7.2f} {speedup:8.1f} {peak:8.0f} "
            f"{stats.tilts / wall:8.0f} {100 * stats.eig_seconds / wall:6.0f} "
            f"{stats.max_beams:>6} {err:10.2e} {fe}"
        )

    print("\nFast vs exact on other crystals (default physics, N = 16, 100 strong beams)")
    others = []
    for name, zone in (
        ("GaAs", (0, 0, 1)),
        ("SrTiO3", (0, 1, 1)),
        ("Si", (1, 1, 1)),
        ("Cu", (0, 0, 1)),
    ):
        extra = {"zone_axis": zone}
        e = run_isolated("exact", name, 8, {**extra, "solver": "exact"}, kind="default")
        f = run_isolated("fast", name, 8, {**extra, "solver": "fast"}, kind="default")
        err = rel_error(f[4], e[4])
        others.append(
            {"structure": name, "zone_axis": zone, "exact_s": e[1], "fast_s": f[1], "error": err}
        )
        print(
            f"  {name:7} {zone!s:10} exact {e[1]:5.2f} s  fast {f[1]:5.2f} s  "
            f"max error {err:.2e} of the image maximum"
        )
    table = [
        {
            "N": n,
            "configuration": label,
            "wall_s": wall,
            "speedup_over_felix": speedup,
            "peak_mb": peak,
            "tilts_per_s": stats.tilts / wall,
            "eig_share": stats.eig_seconds / wall,
            "max_beams": stats.max_beams,
            "error_vs_exact": err,
            "error_vs_felix": ferr,
        }
        for n, label, wall, peak, stats, _, speedup, err, ferr in rows
    ]
    fast_errors = [r["error_vs_exact"] for r in table if "fast" in r["configuration"]]
    write_results(
        args,
        "bench_engine-quick" if args.quick else "bench_engine",
        {
            "engine": table,
            "fast_vs_exact": others,
            # the fast solver's worst error over every crystal above, Si [001] included
            "fast_vs_exact_worst": max(fast_errors + [r["error"] for r in others]),
        },
        felix_wall_s={str(n): felix_wall[n] for n in sizes},
        threads=2,
    )


if __name__ == "__main__":
    main()
