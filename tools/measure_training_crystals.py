"""Measure the realistic training-crystal sampler (numbers quoted in the docs and reports).

Usage::

    OMP_NUM_THREADS=1 python tools/measure_training_crystals.py [n_crystals] [seed]

Prints the number of prototypes, the sampling speed (crystals/s, one core), the achieved
space-group frequencies against the ICSD targets (top 6; from the crystals and from 2000
cheap space-group draws), the lattice-parameter histogram against the ICSD one, and which
fraction of crystals drawn without the range filter pass the model domain's check.
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
    # Domain acceptance without the range filter: crystals drawn with any a (and no lattice
    # weighting), checked by the model domain's own check (cubic, 3 <= a <= 12 Å).
    from hyperspy_lacbed.nets.domain import Domain

    domain = Domain()
    config = RealisticConfig(lattice_parameter_range=None, lattice_weighting=False)
    free = RealisticGenerator(seed, config).generate(n)
    ok = []
    for s in free:
        try:
            domain.check_crystal(s.crystal)
            ok.append(True)
        except ValueError:
            ok.append(False)
    proto = [k for k, s in zip(ok, free) if s.recipe["prototype"] != "random"]
    print(
        f"domain check (Domain().check_crystal, 3-12 Å) without the range filter: "
        f"{np.mean(ok):.3f} of {n} crystals, {np.mean(proto):.3f} of {len(proto)} prototype ones"
    )


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:3]))
