"""Peak memory of a lazy stack of patterns larger than memory allows, through the inverse cGAN.

Run: ``python benchmarks/bench_lazy_memory.py`` (``--patterns 4096``, ``--budget-mb 256``,
``--model default``; ``--model random`` uses the default architecture with random weights,
which costs the same).

A ``LazyLACBED`` stack of ``--patterns`` noisy patterns (9 discs of 64², float32) is made
lazily with dask (nothing of its size exists in memory), given to
``retrieve_potential`` and the lazy result written to a ``.zspy`` store block by block.
Each run is a fresh process whose peak resident memory (ru_maxrss) is its own; the table
gives the stack's and the result's sizes, the memory budget they exceed, the peak
memory and its rise over the same process just before the computation (the baseline:
Python, torch, HyperSpy and the model loaded), and the throughput.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from _fresh_process import run_in_fresh_process
from _results import add_results_argument, write_results


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(job: dict, queue) -> None:
    import dask.array as da
    import numpy as np
    import torch

    import hyperspy_lacbed as hl
    from hyperspy_lacbed.nets.surrogate import load_surrogate
    from hyperspy_lacbed.signals.lacbed import LACBED

    torch.set_num_threads(job["threads"])
    sur = load_surrogate(job["model"], "inverse")
    dom = sur.domain
    crystal = hl.load_structure("Si")
    a = crystal.lattice_parameters[0]
    s = hl.simulate(crystal, **{**dom.simulation_kwargs(a), "thickness": 1000.0})
    n, chunk = job["patterns"], job["batch"]
    expected = da.broadcast_to(
        (s.data / s.data.max() * 300.0).astype("float32"),
        (n, *s.data.shape),
        chunks=(chunk, *s.data.shape),
    )
    noise = da.random.default_rng(0).poisson(expected, chunks=expected.chunks)
    stack = LACBED.from_discs(
        (noise / 300.0).astype("float32"),
        reflections=s.reflections,
        g_vectors=s.g_vectors,
        thickness=1000.0,
        dk=s.axes_manager["kx"].scale,
        voltage=dom.voltage,
        zone_axis=dom.zone_axis,
        source="experiment",
    )
    base = _rss_mb()
    t0 = time.perf_counter()
    pot = stack.retrieve_potential(model=sur, batch_size=chunk, show_progressbar=False)
    with tempfile.TemporaryDirectory() as tmp:
        pot.save(Path(tmp) / "potentials.zspy", show_progressbar=False)
        wall = time.perf_counter() - t0
        check = float(np.asarray(pot.data[-1]).mean())
    queue.put(
        {
            "stack_mb": stack.data.nbytes / 2**20,
            "result_mb": pot.data.nbytes / 2**20,
            "base_mb": base,
            "peak_mb": _rss_mb(),
            "wall_s": wall,
            "patterns_per_s": n / wall,
            "finite": bool(np.isfinite(check)),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=32, help="patterns per dask block")
    parser.add_argument("--budget-mb", type=float, default=256.0, help="the memory budget")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    add_results_argument(parser)
    args = parser.parse_args()
    r = run_in_fresh_process(_worker, vars(args))
    print(
        f"lazy retrieve_potential: {args.patterns} patterns, blocks of {args.batch}, "
        f"{args.threads} threads, model {args.model}"
    )
    rows = [
        ("input stack (lazy)", f"{r['stack_mb']:.0f} MB"),
        ("result (written to .zspy)", f"{r['result_mb']:.0f} MB"),
        ("memory budget", f"{args.budget_mb:.0f} MB"),
        ("stack + result / budget", f"{(r['stack_mb'] + r['result_mb']) / args.budget_mb:.1f}×"),
        ("process before computing", f"{r['base_mb']:.0f} MB"),
        ("peak resident memory", f"{r['peak_mb']:.0f} MB"),
        ("rise during the computation", f"{r['peak_mb'] - r['base_mb']:.0f} MB"),
        ("rise / budget", f"{(r['peak_mb'] - r['base_mb']) / args.budget_mb:.2f}"),
        ("throughput", f"{r['patterns_per_s']:.1f} patterns/s ({r['wall_s']:.0f} s)"),
    ]
    for what, value in rows:
        print(f"  {what:<30}{value:>22}")
    settings = {
        k: getattr(args, k) for k in ("patterns", "batch", "budget_mb", "model", "threads")
    }
    write_results(
        args,
        "bench_lazy_memory",
        {
            **r,
            "rise_mb": r["peak_mb"] - r["base_mb"],
            "size_over_budget": (r["stack_mb"] + r["result_mb"]) / args.budget_mb,
        },
        settings=settings,
    )


if __name__ == "__main__":
    main()
