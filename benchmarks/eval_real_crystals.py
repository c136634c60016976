"""The shipped surrogates on real crystals they never saw (``shared/structures``).

Run: ``python benchmarks/eval_real_crystals.py [--forward NAME] [--inverse NAME]``.

For each CIF: the Bloch-wave discs at the model's domain settings (the reference), the
forward cGAN's discs, and the inverse cGAN's potential retrieved from the reference discs.
Prints ℓMSE per thickness (DESIGN.md §4: the pattern divided by the reference maximum)
and, for potentials, the plain and the origin-invariant ℓMSE, with the wall time of each
path; crystals outside the domain (lattice parameter) are reported as such.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "structures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forward", default="default")
    parser.add_argument("--inverse", default="default")
    args = parser.parse_args()

    import hyperspy_lacbed as hl
    from hyperspy_lacbed.bloch.lacbed import simulate
    from hyperspy_lacbed.nets.inference import load_surrogate
    from hyperspy_lacbed.train.evaluate import lmse, origin_invariant_lmse

    fwd = load_surrogate(args.forward, "forward")
    inv = load_surrogate(args.inverse, "inverse")
    domain = fwd.domain
    lo, hi = domain.lattice_parameter_range
    thick = list(domain.thicknesses)
    print(f"forward {fwd.name}, inverse {inv.name}; thicknesses {thick} Å")
    header = ["crystal", "a (Å)"] + [f"fwd {t / 10:g} nm" for t in thick]
    header += ["inv", "inv (origin-inv.)", "Bloch s", "cGAN s"]
    print(" | ".join(header))
    rows_f, rows_i, rows_io = [], [], []
    for cif in sorted(SHARED.glob("*.cif")):
        crystal = hl.load_structure(cif)
        a = crystal.lattice_parameters[0]
        if not lo <= a <= hi:
            print(f"{cif.stem} | {a:.3f} | outside the model's lattice range {lo}–{hi} Å")
            continue
        t0 = time.perf_counter()
        ref = simulate(crystal, **domain.simulation_kwargs(a), show_progressbar=False)
        t_bloch = time.perf_counter() - t0
        t0 = time.perf_counter()
        gen = hl.generate(crystal, thickness=thick, model=fwd, show_progressbar=False)
        t_cgan = time.perf_counter() - t0
        f = lmse(np.asarray(gen.data), np.asarray(ref.data), axes=(-3, -2, -1))
        pot_ref = hl.projected_potential(crystal, shape=(domain.potential_pixels,) * 2).data
        inv_plain, inv_oi = [], []
        for ti, t in enumerate(thick):
            pot = ref.inav[:, ti].retrieve_potential(model=inv, thickness=t).data
            inv_plain.append(float(lmse(pot, pot_ref)))
            inv_oi.append(float(origin_invariant_lmse(pot, pot_ref)))
        rows_f.append(f)
        rows_i.append(inv_plain)
        rows_io.append(inv_oi)
        cells = [cif.stem, f"{a:.3f}"] + [f"{x:.2e}" for x in f]
        cells += [f"{np.mean(inv_plain):.2e}", f"{np.mean(inv_oi):.2e}"]
        cells += [f"{t_bloch:.2f}", f"{t_cgan:.3f}"]
        print(" | ".join(cells))
    if rows_f:
        print(
            "mean | | "
            + " | ".join(f"{x:.2e}" for x in np.mean(rows_f, axis=0))
            + f" | {np.mean(rows_i):.2e} | {np.mean(rows_io):.2e}"
        )


if __name__ == "__main__":
    main()
