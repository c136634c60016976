"""Maps: a synthetic Si wedge of 64 patterns refined pattern by pattern, and 1 → 2 dask workers.

Run: ``python benchmarks/refine_map_wedge.py`` (``--quick``: 16 patterns, no cluster).
Writes ``benchmarks/results/refine_map_wedge.json`` (``--results PATH``, ``--no-results``).

An 8 × 8 map of Si [001] patterns (7 discs of 12 × 12 px, 12 strong beams) whose
thickness rises along x from 50 to 200 nm (a wedge; the rows differ only by their noise),
Poisson noise with 10⁴ counts in the brightest pixel, is refined with
``s.refine("Si", ["thickness"], thickness=(40 nm, 220 nm), fom="lsq")``: every pattern
starts from a scan of the range and is fitted by maximum Poisson likelihood. The goal:
every thickness comes back within 3 σ of its truth. The same map is then computed on a
``dask.distributed`` ``LocalCluster`` of 1 and of 2 single-threaded worker processes
(the cores are shared with other jobs: the load average is recorded with the results).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import add_results_argument, write_results

DISCS = [(0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0), (0, 4, 0)]
PIXELS, DK, BEAMS, COUNTS = 12, 0.025, 12, 1e4
OPTIONS = dict(thickness=(400.0, 2200.0), fom="lsq", strong_beams=BEAMS)


def wedge(rows: int, cols: int, seed: int = 0):
    """The wedge as a calibrated LACBED signal (x, y scan axes) and its true thicknesses."""
    import torch

    from hyperspy_lacbed.bloch.settings import SimulationSettings
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.refinement.model import BlochModel
    from hyperspy_lacbed.signals.lacbed import LACBED

    crystal = load_structure("Si")
    phys = SimulationSettings.from_user(strong_beams=BEAMS)
    ts = np.linspace(500.0, 2000.0, cols)
    clean = []
    for t in ts:
        model = BlochModel(crystal, phys, np.array(DISCS), PIXELS, DK, thickness=t)
        img = model.discs(torch.zeros(0, dtype=torch.float64)).numpy()
        clean.append(COUNTS * img / img.max())
    rng = np.random.default_rng(seed)
    data = rng.poisson(np.broadcast_to(np.array(clean), (rows, cols, *clean[0].shape)))
    g = np.array(DISCS, float)[:, :2] / crystal.lattice_parameters[0]
    s = LACBED.from_discs(
        data.astype(float), DISCS, g, thickness=1000.0, dk=DK, voltage=200e3,
        zone_axis=[0, 0, 1], source="experiment",
    )  # fmt: skip
    for ax, name in zip(s.axes_manager.navigation_axes[1:], ("x", "y")):
        ax.name = name
    return s, np.broadcast_to(ts, (rows, cols))


def timed_map(s, workers: int | None):
    """Refine the map (threaded scheduler, or a LocalCluster of ``workers`` processes)."""
    if workers is None:
        t0 = time.perf_counter()
        res = s.refine("Si", ["thickness"], progress=False, **OPTIONS)
        return res, time.perf_counter() - t0
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster):
            t0 = time.perf_counter()
            res = s.refine("Si", ["thickness"], progress=False, **OPTIONS)
            return res, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 patterns, no cluster")
    add_results_argument(parser)
    args = parser.parse_args()
    rows, cols = (2, 8) if args.quick else (8, 8)
    s, truth = wedge(rows, cols)
    res, wall = timed_map(s, None)
    t = res.values["thickness"].data
    sigma = res.uncertainties["thickness"].data
    z = (t - truth) / sigma
    results = {
        "patterns": int(truth.size),
        "thickness_range_nm": [float(truth.min()) / 10, float(truth.max()) / 10],
        "within_3_sigma": int((np.abs(z) <= 3).sum()),
        "max_abs_error_over_sigma": float(np.abs(z).max()),
        "std_error_over_sigma": float(z.std()),
        "max_abs_error_A": float(np.abs(t - truth).max()),
        "mean_sigma_A": float(sigma.mean()),
        "mean_zncc_start": float(res.zncc_start.data.mean()),
        "mean_zncc": float(res.zncc.data.mean()),
        "threaded_wall_s": wall,
    }
    print(res.summary())
    print(f"{results['within_3_sigma']}/{results['patterns']} within 3σ; threaded {wall:.1f} s")
    if not args.quick:
        walls = {}
        for n in (1, 2):
            again, walls[n] = timed_map(s, n)
            assert np.allclose(again.values["thickness"].data, t, rtol=1e-9)
            print(f"LocalCluster, {n} worker(s): {walls[n]:.1f} s")
        results["local_cluster_wall_s"] = {str(k): v for k, v in walls.items()}
        results["speedup_2_workers"] = walls[1] / walls[2]
    write_results(
        args, "refine_map_wedge", results,
        settings={"discs": DISCS, "pixels": PIXELS, "dk": DK, "strong_beams": BEAMS,
                  "counts": COUNTS, "map": [rows, cols], "options": OPTIONS},
    )  # fmt: skip


if __name__ == "__main__":
    main()
