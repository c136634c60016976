"""Physics-refined retrieval: ℓMSE of the cGAN potential before and after Bloch refinement.

For each crystal, a pattern is simulated at the shipped inverse model's settings (one
thickness), the potential is retrieved by the cGAN (``refine=False``) and refined
(``refine=True``), and the origin-invariant ℓMSE of each against the true projected
potential (:func:`hyperspy_lacbed.train.metrics.origin_invariant_lmse`) is printed with the
pattern figures of merit before and after.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/refined_retrieval.py [Si GaAs ...] [--thickness 1000]

It writes ``benchmarks/results/refined_retrieval.json`` (``--results PATH``;
``--no-results``), the table of docs/user_guide/refinement.rst.
"""

from __future__ import annotations

import argparse
import time

from _results import add_results_argument, write_results

import hyperspy_lacbed as hl
from hyperspy_lacbed.refinement.potential import potential_coefficients
from hyperspy_lacbed.train.metrics import align_potential, origin_invariant_lmse


def strongest_classes(p0, p1, true, record: dict, n: int = 3) -> list[dict]:
    """The ``n`` refined classes of largest true |U_g|: refined ± σ against the truth.

    Values are the c·V_g (V·Å) of each class's named member, after aligning both
    potentials on the truth (origin and 4mm operation); σ is the class factor's standard
    uncertainty times the start's coefficient.
    """
    hm = 8
    c0 = potential_coefficients(align_potential(p0, true), hm)
    c1 = potential_coefficients(align_potential(p1, true), hm)
    ct = potential_coefficients(true, hm)
    out = []
    for name, sig in record["sigma"].items():
        if not name.startswith("U("):
            continue
        h, k, _ = (int(v) for v in name[2:-1].split(","))
        if max(abs(h), abs(k)) > hm:
            continue
        at = (k + hm, h + hm)
        out.append({"class": name, "true": float(ct[at].real), "refined": float(c1[at].real),
                    "cgan": float(c0[at].real),
                    "sigma": float(sig * abs(c0[at]) * record["gain"])})  # fmt: skip
    out.sort(key=lambda r: -abs(r["true"]))
    for r in out:
        r["z"] = abs(r["refined"] - r["true"]) / r["sigma"] if r["sigma"] > 0 else float("inf")
        r["relative_sigma"] = r["sigma"] / abs(r["true"])
    return out[:n]


def rst_table(rows: list[dict]) -> str:
    """The rows as the RST table of docs/user_guide/refinement.rst."""
    e = lambda x: f"{x:.1e}".replace("e-0", "e-")  # noqa: E731
    head = ["crystal", "FoM before", "FoM after", "ℓMSE cGAN", "ℓMSE refined", "time/s"]
    body = [
        [
            r["crystal"],
            e(r["fom_before"]),
            e(r["fom_after"]),
            e(r["lmse_cgan"]),
            e(r["lmse_refined"]),
            f"{r['refine_s']:.0f}",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = "  ".join("=" * w for w in widths)
    lines = [line, "  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), line]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join([*lines, line])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("crystals", nargs="*", default=["Si", "GaAs", "NaCl", "MgO", "SrTiO3"])
    ap.add_argument("--thickness", type=float, default=1000.0, help="Å")
    ap.add_argument("--n-classes", type=int, default=24)
    ap.add_argument("--max-iter", type=int, default=60)
    ap.add_argument("--strong-beams", type=int, default=40)
    ap.add_argument("--weak-beams", type=int, default=80)
    add_results_argument(ap)
    args = ap.parse_args()
    opts = {"n_classes": args.n_classes, "max_iter": args.max_iter,
            "strong_beams": args.strong_beams, "weak_beams": args.weak_beams}  # fmt: skip
    print(f"{'crystal':8s} {'fom before':>11s} {'fom after':>10s} {'lMSE cGAN':>10s} "
          f"{'lMSE refined':>13s} {'gain':>5s} {'time s':>7s}")  # fmt: skip
    rows = []
    for name in args.crystals:
        kw = hl.model_settings(name)
        kw["thickness"] = args.thickness
        s = hl.simulate(name, **kw, show_progressbar=False)
        true = hl.projected_potential(name).data
        p0 = s.retrieve_potential(show_progressbar=False)
        t = time.perf_counter()
        p1 = s.retrieve_potential(show_progressbar=False, refine=True, refine_options=opts)
        dt = time.perf_counter() - t
        rec = p1.metadata.ProjectedPotential.settings.refinement[0]
        l0 = float(origin_invariant_lmse(p0.data, true))
        l1 = float(origin_invariant_lmse(p1.data, true))
        print(f"{name:8s} {rec['fom_before']:11.4g} {rec['fom_after']:10.4g} {l0:10.4g} "
              f"{l1:13.4g} {rec['gain']:5.2f} {dt:7.1f}", flush=True)  # fmt: skip
        rows.append({"crystal": name, "fom_before": rec["fom_before"],
                     "fom_after": rec["fom_after"], "lmse_cgan": l0, "lmse_refined": l1,
                     "gain": rec["gain"], "improved": rec["improved"],
                     "refine_s": dt,
                     "strongest": strongest_classes(p0.data, p1.data, true, rec)})  # fmt: skip
        for c in rows[-1]["strongest"]:
            print(f"    {c['class']}: true {c['true']:.4f} cGAN {c['cgan']:.4f} refined "
                  f"{c['refined']:.4f} ± {c['sigma']:.4f} ({c['z']:.1f} σ)")  # fmt: skip
    print(rst_table(rows))
    write_results(
        args,
        "refined_retrieval",
        rows,
        settings={"thickness_A": args.thickness, "refine_options": opts},
    )


if __name__ == "__main__":
    main()
