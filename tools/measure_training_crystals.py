"""Measure the realistic training-crystal sampler (numbers quoted in the docs and reports).

Usage::

    OMP_NUM_THREADS=1 python tools/measure_training_crystals.py [n_crystals] [seed]

Prints the number of prototypes, the sampling speed (crystals/s, one core), the achieved
space-group frequencies against the ICSD targets (top 6; from the crystals and from 2000
cheap space-group draws), the lattice-parameter histogram against the ICSD one, and which
fraction of prototype draws falls in the domain's 3–12 Å range before any redraw.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import numpy as np

from hyperspy_lacbed.train.prototypes import (
    PROTOTYPES,
    SPACE_GROUP_FREQUENCIES,
    RealisticConfig,
    RealisticGenerator,
    excluded_compositions,
    prototype_counts,
    reduced_formula,
    target_lattice_histogram,
)


def main(n: int = 400, seed: int = 1) -> None:
    print(f"prototypes: {len(PROTOTYPES)} in {len({p.space_group for p in PROTOTYPES})} groups")
    gen = RealisticGenerator(seed)
    gen.lattice_weights()  # calibration once per process, not counted in the speed
    t0 = time.perf_counter()
    out = gen.generate(n)
    dt = time.perf_counter() - t0
    print(f"speed: {n / dt:.1f} crystals/s ({n} crystals in {dt:.1f} s)")
    print(f"draw statistics: {gen.stats.to_dict()}")
    counts = Counter(s.space_group for s in out)
    draws = Counter(gen.space_group(i) for i in range(2000))
    tv = 0.5 * sum(abs(counts.get(g, 0) / n - p) for g, p in SPACE_GROUP_FREQUENCIES.items())
    tv2 = 0.5 * sum(abs(draws.get(g, 0) / 2000 - p) for g, p in SPACE_GROUP_FREQUENCIES.items())
    print(f"space groups: total variation {tv:.3f} ({n} crystals), {tv2:.3f} (2000 draws)")
    print("  group  target  crystals  2000 draws")
    for g, p in sorted(SPACE_GROUP_FREQUENCIES.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {g:5d}  {p:6.3f}  {counts.get(g, 0) / n:8.3f}  {draws.get(g, 0) / 2000:10.3f}")
    a = np.array([s.lattice_parameter for s in out])
    edges, target = target_lattice_histogram((3.0, 12.0))
    h = np.histogram(a, bins=edges)[0] / n
    print(
        f"lattice parameter: TV to the ICSD histogram (3-12 Å) {0.5 * np.abs(h - target).sum():.3f}"
    )
    print("  bins  ", " ".join(f"{e:5.0f}" for e in edges[:-1]))
    print("  target", " ".join(f"{x:5.3f}" for x in target))
    print("  drawn ", " ".join(f"{x:5.3f}" for x in h))
    excluded = excluded_compositions()
    bad = sum(reduced_formula(s.crystal.elements, s.crystal.occupancies) in excluded for s in out)
    random_share = sum(s.recipe["prototype"] == "random" for s in out) / n
    partial = np.mean([bool((s.crystal.occupancies < 1).any()) for s in out])
    print(
        f"excluded compositions produced: {bad}; random share {random_share:.3f}; "
        f"partial occupancy {partial:.3f}"
    )
    print(f"prototypes drawn: {prototype_counts(out).most_common()}")
    # Domain acceptance before redraws: prototype draws (chemistry + radius rule) whose a is
    # in 3-12 Å, over the space groups as drawn.
    free = RealisticGenerator(seed, RealisticConfig(lattice_parameter_range=None,
                                                    lattice_weighting=False))  # fmt: skip
    rng = np.random.default_rng(seed)
    inside = total = 0
    for i in range(3000):
        protos = free._by_group.get(free.space_group(i))
        if not protos:
            continue
        drawn = free._draw_chemistry(protos, rng)
        if isinstance(drawn, str):
            continue
        total += 1
        inside += 3.0 <= drawn[-1] <= 12.0
    print(f"domain check (3 <= a <= 12 Å): {inside / total:.3f} of {total} prototype draws")


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:3]))
