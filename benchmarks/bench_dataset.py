"""Dataset-generation throughput at the shipped domain (docs/user_guide/conventions.rst).

Run: ``python benchmarks/bench_dataset.py`` (``--n 3`` for a quicker look, ``--device cuda``
on a GPU machine).

Generates a small dataset with :func:`hyperspy_lacbed.train.dataset.generate_dataset` at
``Domain()`` defaults (200 kV, [001], 4 thicknesses, 9 reflections, 64×64 discs, 128×128
potentials, 80 strong beams) into a temporary zarr store, through the same dask graph as a
real run (local threaded scheduler, one task at a time, each solve using the machine's
torch threads), and prints one row per structure and the samples per minute. The space
groups are spread over the point groups, because the cost of a sample depends mostly on
how many tilts its zone-axis symmetry folds away (4mm: 1/8 of the disc; 2mm: 1/4; 2: 1/2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile

import numpy as np
from _results import add_results_argument, write_results

#: Point groups 23, m-3, 432, -43m, m-3m (P, F, I lattices).
DEFAULT_GROUPS = (195, 205, 212, 216, 225, 230)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the numbers printed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=len(DEFAULT_GROUPS), help="structures")
    parser.add_argument(
        "--groups", type=int, nargs="+", default=list(DEFAULT_GROUPS), help="space groups"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--workers", type=int, default=1, help="local scheduler threads")
    parser.add_argument("--seed", type=int, default=0)
    add_results_argument(parser)
    args = parser.parse_args(argv)

    import torch

    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.train.dataset import DatasetRecipe, generate_dataset, open_dataset

    domain = Domain()
    recipe = DatasetRecipe(
        domain=domain.to_dict(),
        n_structures=args.n,
        seed=args.seed,
        structures={"space_groups": args.groups},
        split="bench",
    )
    # Warm-up (imports, torch initialisation) on a tiny domain, not timed.
    tiny = Domain(disc_pixels=4, potential_pixels=8, strong_beams=10, thicknesses=(500.0,))
    with tempfile.TemporaryDirectory() as tmp:
        warm = DatasetRecipe(domain=tiny.to_dict(), n_structures=1, split="warm")
        generate_dataset(warm, tmp, device=args.device, show_progressbar=False)
        report = generate_dataset(
            recipe, os.path.join(tmp, "bench.zarr"), device=args.device,
            num_workers=args.workers, show_progressbar=False,
        )  # fmt: skip
        group = open_dataset(os.path.join(tmp, "bench.zarr"), "bench")
        rows = []
        for i in range(args.n):
            s = json.loads(group["structure"][i])
            rows.append(
                {
                    "index": i,
                    "formula": s["recipe"]["formula"],
                    "space_group": int(group["space_group"][i]),
                    "atoms": int(group["n_atoms"][i]),
                    "a": float(group["lattice_parameter"][i]),
                    "seconds": float(group["seconds"][i]),
                }
            )
    print(
        f"Domain(): {domain.voltage / 1e3:g} kV, zone {list(domain.zone_axis)}, "
        f"{len(domain.thicknesses)} thicknesses, {len(domain.reflections)} reflections, "
        f"discs {domain.disc_pixels}², potentials {domain.potential_pixels}², "
        f"{domain.strong_beams} strong beams; device {args.device}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs ({platform.machine()})"
    )
    print(f"| {'#':>2} | {'structure':<14} | {'SG':>3} | {'atoms':>5} | {'a (Å)':>6} | {'s':>6} |")
    print(f"|{'-' * 4}|{'-' * 16}|{'-' * 5}|{'-' * 7}|{'-' * 8}|{'-' * 8}|")
    for r in rows:
        print(
            f"| {r['index']:>2} | {r['formula']:<14} | {r['space_group']:>3} | {r['atoms']:>5} | "
            f"{r['a']:>6.3f} | {r['seconds']:>6.1f} |"
        )
    per_min = report.samples_per_minute
    mean_s = float(np.mean([r["seconds"] for r in rows]))
    print(
        f"\n{report.n_new} samples in {report.seconds:.1f} s wall: {per_min:.2f} samples/min "
        f"(mean {mean_s:.1f} s per sample inside its task); structure acceptance rate "
        f"{report.structure_stats.acceptance_rate:.1%}"
    )
    out = {"rows": rows, "samples_per_minute": per_min, "wall_s": report.seconds}
    settings = {k: getattr(args, k) for k in ("n", "groups", "device", "workers", "seed")}
    write_results(args, "bench_dataset", out, settings=settings, domain=domain.to_dict())
    return out


if __name__ == "__main__":
    main()
