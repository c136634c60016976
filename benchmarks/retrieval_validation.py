"""Issue 22's validation of the physics-consistent retrieval on the realistic test split.

For each test crystal of a store made by the v1 recipe (``python -m hyperspy_lacbed.train
--config configs/v1.toml generate``) and each chosen thickness, the discs of the store (the
engine at the converged settings) are inverted four ways:

- ``cgan``: the shipped inverse cGAN alone;
- ``refined``: the cGAN's potential refined on the engine's core
  (:func:`hyperspy_lacbed.refinement.potential.refine_potential`, its defaults);
- ``noisy``: the same two steps on a Poisson-noisy pattern (``--counts`` in the brightest
  pixel); both the noisy cGAN and the noisy refinement are reported;
- ``neutral``: the refinement from a *neutral* start, the true potential of another crystal
  of the split (the one with the nearest lattice parameter): a wrong but plausible
  crystal, which shows how much the network's start matters.

Each row reports the origin-invariant ℓMSE, the paper's metric (8-bit min–max MSE) and the
ℓMSE with the mean potential V₀ taken from the truth. V₀ (the U₀ of the structure matrix)
adds the same phase to every Bloch wave, so no pattern determines it: the last column is
the part of the error that a pattern can correct.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/retrieval_validation.py --store data/lacbed-v1 \\
        [--limit 16] [--thickness 1000] [--counts 1e4]

It writes ``benchmarks/results/retrieval_validation.json`` (``--results PATH``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import add_results_argument, write_results


def _metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    from hyperspy_lacbed.train.metrics import align_potential, origin_invariant_lmse, paper_mse

    v0_free = pred - pred.mean() + true.mean()
    return {
        "lmse": float(origin_invariant_lmse(pred, true)),
        # the paper's metric after the same alignment (origin and 4mm operation)
        "paper": float(paper_mse(align_potential(pred, true), true)),
        "lmse_v0_from_truth": float(origin_invariant_lmse(v0_free, true)),
    }


def summary(rows: list[dict], key: str) -> dict[str, float]:
    """Median and mean of each metric of the entries ``key`` of the rows."""
    out = {}
    for m in ("lmse", "paper", "lmse_v0_from_truth"):
        v = np.array([r[key][m] for r in rows])
        out[f"{m}_median"], out[f"{m}_mean"] = float(np.median(v)), float(np.mean(v))
    return out


#: the rows of the docs' table: (results key, label)
ROWS = (
    ("cgan", "cGAN"),
    ("refined", "cGAN + refinement"),
    ("noisy_cgan", "cGAN, noisy"),
    ("noisy_refined", "cGAN + refinement, noisy"),
    ("neutral_refined", "refinement from a neutral start"),
)


def rst_table(table: dict[str, dict[str, float]]) -> str:
    """The summary as the RST table of docs/user_guide/refinement.rst."""
    e = lambda x: f"{x:.1e}".replace("e-0", "e-")  # noqa: E731
    head = ["retrieval", "ℓMSE median", "ℓMSE mean", "8-bit MSE median",
            "ℓMSE, true V₀: median", "mean"]  # fmt: skip
    body = [
        [label, *(e(table[key][m]) for m in ("lmse_median", "lmse_mean", "paper_median",
                                              "lmse_v0_from_truth_median",
                                              "lmse_v0_from_truth_mean"))]
        for key, label in ROWS
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = "  ".join("=" * w for w in widths)
    lines = [line, "  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), line]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join([*lines, line])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data/lacbed-v1")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=16, help="first N crystals of the split")
    ap.add_argument("--thickness", type=float, nargs="*", default=[1000.0], help="Å")
    ap.add_argument("--counts", type=float, default=1e4, help="Poisson counts, brightest pixel")
    ap.add_argument("--seed", type=int, default=0)
    add_results_argument(ap)
    args = ap.parse_args()

    import zarr

    from hyperspy_lacbed.nets.surrogate import load_surrogate
    from hyperspy_lacbed.refinement.potential import refine_potential

    sur = load_surrogate("default", "inverse", "cpu")
    dom = sur.domain
    g = zarr.open(f"{args.store}/{args.split}", mode="r")
    done = np.flatnonzero(g["done"][:] > 0)[: args.limit]
    a_all = g["lattice_parameter"][:]
    refl = np.asarray(dom.reflections, int)
    rng = np.random.default_rng(args.seed)
    phys = {"voltage": dom.voltage, "absorption": dom.absorption,
            "absorption_fraction": dom.absorption_fraction}  # fmt: skip
    rows = []
    for i in done:
        a = float(a_all[i])
        true = np.asarray(g["potential"][i], float)
        others = done[done != i]
        neutral_i = int(others[np.argmin(abs(a_all[others] - a))])
        neutral = np.asarray(g["potential"][neutral_i], float)
        dk = dom.disc_radius(a) / (dom.disc_pixels / 2)
        for t in args.thickness:
            j = list(dom.thicknesses).index(float(t))
            discs = np.asarray(g["discs"][i, j], float)
            noisy = rng.poisson(discs / discs.max() * args.counts) * (discs.max() / args.counts)
            row: dict = {"index": int(i), "structure": str(g["structure"][i])[:60], "a": a,
                         "thickness": float(t), "neutral_from": neutral_i}  # fmt: skip
            for label, data, start in (
                ("", discs, None),
                ("noisy_", noisy, None),
                ("neutral_", discs, neutral),
            ):
                if start is None:
                    start = sur.inverse_potentials(data[None], [a], [t])[0].astype(float)
                    row[f"{label}cgan"] = _metrics(start, true)
                clock = time.perf_counter()
                r = refine_potential(start, a, data, refl, dk, t, uncertainties=False, **phys)
                row[f"{label}refined"] = _metrics(r["potential"], true)
                row[f"{label}refined"].update(
                    fom_before=r["fom_before"], fom_after=r["fom_after"],
                    thickness=r["thickness"], seconds=time.perf_counter() - clock,
                )  # fmt: skip
            rows.append(row)
            print(
                f"{i:3d} a={a:.2f} t={t:.0f}: ℓMSE cGAN {row['cgan']['lmse']:.2e} → refined "
                f"{row['refined']['lmse']:.2e} (V0 from truth {row['cgan']['lmse_v0_from_truth']:.2e}"
                f" → {row['refined']['lmse_v0_from_truth']:.2e}); noisy {row['noisy_cgan']['lmse']:.2e}"
                f" → {row['noisy_refined']['lmse']:.2e}; neutral → {row['neutral_refined']['lmse']:.2e};"
                f" {row['refined']['seconds']:.0f} s",
                flush=True,
            )
    keys = ("cgan", "refined", "noisy_cgan", "noisy_refined", "neutral_refined")
    table = {k: summary(rows, k) for k in keys}
    better = float(np.mean([r["refined"]["lmse"] < r["cgan"]["lmse"] for r in rows]))
    seconds = float(np.median([r["refined"]["seconds"] for r in rows]))
    for k, s in table.items():
        print(f"{k:16s} " + "  ".join(f"{m} {v:.2e}" for m, v in s.items()))
    print(f"refined better than the cGAN in {better:.0%} of cases; median {seconds:.0f} s/pattern")
    print(rst_table(table))
    write_results(
        args,
        "retrieval_validation",
        rows,
        summary=table,
        fraction_better=better,
        median_seconds=seconds,
        settings={"store": args.store, "split": args.split, "limit": args.limit,
                  "thicknesses_A": args.thickness, "counts": args.counts, "seed": args.seed},
    )  # fmt: skip


if __name__ == "__main__":
    main()
