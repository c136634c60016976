"""Speed of the physics-forward generator against simulate at the domain's converged settings.

Timing only (the accuracy of the physics rows is ``physics_layer_accuracy.py``). The
first ``--limit`` crystals of a store's split are generated in one batch (four
thicknesses each: batch 64 for 16 crystals) by ``physics-forward`` generators with
random weights (the time does not depend on them) at each beam count, and simulated by
:func:`hyperspy_lacbed.bloch.discs.compute_discs` at the store's domain settings (its
converged beam choice), in the same process. The figure is each crystal's simulate time
over its share of the generator's batch time; the median and the cheapest crystal are
reported.

    python benchmarks/bench_physics_forward.py --store data/lacbed-v1 --split test --limit 16

Writes ``benchmarks/results/bench_physics_forward.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _results import add_results_argument, write_results


def _batch(group, n: int, enc, thicknesses):
    """Encoded potentials and conditioning of n crystals × their thicknesses."""
    import torch

    pots, conds = [], []
    for k in range(n):
        a = float(group["lattice_parameter"][k])
        y = enc.encode_potential(np.asarray(group["potential"][k]))
        for t in thicknesses:
            pots.append(y)
            conds.append(enc.encode_conditioning(np.array([a]), np.array([t])).reshape(2))
    return torch.as_tensor(np.stack(pots))[:, None], torch.as_tensor(np.stack(conds))


def time_generators(domain, x, cond, sizes, repeats: int) -> dict[str, float]:
    """Best wall time of one batch of each generator (physics-forward, residual)."""
    import torch

    from hyperspy_lacbed.nets.architectures import build_generator, generator_kwargs

    out = {}
    for size in sizes:
        strong, weak = (int(v) for v in size.split("+"))
        over = {"physics": "residual", "strong_beams": strong, "weak_beams": weak}
        g = build_generator(
            "physics-forward", generator_kwargs("forward", domain, over, "physics-forward")
        ).eval()
        best = np.inf
        with torch.no_grad():
            g(x[:2], cond[:2])  # warm-up
            for _ in range(repeats):
                t = time.perf_counter()
                g(x, cond)
                best = min(best, time.perf_counter() - t)
        out[size] = best
        print(f"physics-forward {size}: {best:.2f} s for {len(x)} patterns", flush=True)
    return out


def time_simulate(group, n: int, domain, thicknesses) -> list[float]:
    """Seconds of compute_discs at the domain's settings, per crystal (all thicknesses)."""
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.crystal.structure import Crystal

    out = []
    for k in range(n):
        crystal = Crystal.from_dict(json.loads(group["structure"][k]))
        a = float(group["lattice_parameter"][k])
        settings = domain.simulation_settings(a, list(thicknesses), domain.reflections)
        t = time.perf_counter()
        compute_discs(crystal, settings, show_progressbar=False)
        out.append(time.perf_counter() - t)
        print(f"simulate {crystal.name}: {out[-1]:.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Time the generators and simulate on the same crystals; write and return the ratios."""
    import torch

    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.nets.normalisation import Encoding
    from hyperspy_lacbed.train.dataset import open_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data/lacbed-v1")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--sizes", default="10+0,20+40,40+80")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    add_results_argument(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    group = open_dataset(args.store, args.split)
    domain = Domain.from_dict(dict(group.attrs["domain"]))
    thicknesses = [float(t) for t in group.attrs["thicknesses"]]
    x, cond = _batch(group, args.limit, Encoding.for_domain(domain), thicknesses)
    gen = time_generators(domain, x, cond, args.sizes.split(","), args.repeats)
    sim = np.array(time_simulate(group, args.limit, domain, thicknesses))
    rows = {}
    for size, seconds in gen.items():
        per_crystal = seconds / args.limit
        ratio = sim / per_crystal
        rows[size] = {
            "batch_seconds": seconds,
            "patterns": len(x),
            "ratio_median": float(np.median(ratio)),
            "ratio_cheapest_crystal": float(ratio[int(np.argmin(sim))]),
        }
        print(f"{size}: × simulate median {np.median(ratio):.0f}, cheapest crystal "
              f"{rows[size]['ratio_cheapest_crystal']:.1f}")  # fmt: skip
    report = {"simulate_seconds": sim.tolist(), "generators": rows}
    write_results(
        args, "bench_physics_forward", report,
        settings={"store": args.store, "split": args.split, "limit": args.limit,
                  "threads": args.threads},
    )  # fmt: skip
    return report


if __name__ == "__main__":
    main()
