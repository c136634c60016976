"""The shipped surrogates on real crystals they never saw (``shared/structures``).

Run: ``python benchmarks/eval_real_crystals.py [--forward NAME] [--inverse NAME]``.

For each CIF (:func:`hyperspy_lacbed.train.evaluate.evaluate_structures`): the Bloch-wave
discs at the model's domain settings (the reference), the forward cGAN's discs, and the
inverse cGAN's potential retrieved from the reference discs. Prints ℓMSE per thickness
(docs/user_guide/conventions.rst: the pattern divided by the reference maximum) and, for potentials, the
plain and the origin-invariant ℓMSE, with the wall time of each path; crystals outside
the domain (lattice parameter) are reported as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "structures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forward", default="default")
    parser.add_argument("--inverse", default="default")
    add_results_argument(parser)
    args = parser.parse_args()

    from hyperspy_lacbed.nets.surrogate import load_surrogate
    from hyperspy_lacbed.train.evaluate import evaluate_structures

    thick = load_surrogate(args.forward, "forward").domain.thicknesses
    rows = evaluate_structures(sorted(SHARED.glob("*.cif")), args.forward, args.inverse)
    header = ["crystal", "a (Å)"] + [f"fwd {t / 10:g} nm" for t in thick]
    print(" | ".join([*header, "inv", "inv (origin-inv.)", "Bloch s", "cGAN s"]))
    done = [r for r in rows if r["in_domain"]]
    for r in rows:
        if not r["in_domain"]:
            print(f"{r['name']} | {r['a']:.3f} | outside the model's lattice range")
            continue
        cells = [r["name"], f"{r['a']:.3f}"] + [f"{x:.2e}" for x in r["forward"]]
        cells += [f"{np.mean(r['inverse']):.2e}", f"{np.mean(r['inverse_origin_invariant']):.2e}"]
        print(" | ".join([*cells, f"{r['bloch_s']:.2f}", f"{r['cgan_s']:.3f}"]))
    if done:
        fwd = np.mean([r["forward"] for r in done], axis=0)
        inv = np.mean([r["inverse"] for r in done])
        oi = np.mean([r["inverse_origin_invariant"] for r in done])
        print("mean | | " + " | ".join(f"{x:.2e}" for x in fwd) + f" | {inv:.2e} | {oi:.2e}")
    write_results(
        args,
        "eval_real_crystals",
        rows,
        models={"forward": args.forward, "inverse": args.inverse},
        thicknesses_A=list(thick),
    )


if __name__ == "__main__":
    main()
