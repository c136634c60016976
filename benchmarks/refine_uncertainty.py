"""Can the refinement's σ be trusted? A Monte Carlo over noise seeds (Si and rutile TiO2).

Run: ``python benchmarks/refine_uncertainty.py`` (48 noise seeds for Si with the Poisson
likelihood, 24 for the others; ``--quick``: 8 seeds, Si only). Writes
``benchmarks/results/refine_uncertainty.json``
(``--results PATH``, ``--no-results``).

Each case simulates small discs with the differentiable model at known values, draws
Poisson noise (10⁴ counts in the brightest pixel) with every seed, refines from the same
perturbed start and compares, parameter by parameter, the mean reported σ with the
standard deviation of the refined values over the seeds. The goal: they agree within
30 % (ratio σ / spread between 0.7 and 1.3). The ratio of a spread of n values is itself
uncertain by about 1/√(2(n − 1)) (10 % for 48 seeds, 15 % for 24). Every fit is one
stage at full resolution with up to 60 L-BFGS iterations; the fits that stopped on the
iteration limit are counted.

- Si [001] (cubic): thickness and B, 7 discs of 12 × 12 px, 12 strong beams, Poisson
  likelihood (``fom="lsq"``) and Felix's ZNCC (``fom="zncc"``).
- Rutile TiO2 [001] (tetragonal, P4₂/mnm): thickness, B of Ti and of O and the free x of
  the O site (4f, x x 0), 7 discs of 12 × 12 px, 12 strong beams, ``fom="lsq"``.

The strongly correlated pairs (|r| > 0.8) the result summaries report are recorded too,
with the correlation of the refined values over the seeds that they should predict.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import add_results_argument, write_results

PIXELS, DK, COUNTS = 12, 0.025, 1e4


def rutile():
    """Rutile TiO2 (P4₂/mnm, a = 4.594 Å, c = 2.959 Å, O at 4f x = 0.3048)."""
    from hyperspy_lacbed.crystal.structure import Crystal

    x = 0.3048
    return Crystal.from_dict(
        {
            "name": "TiO2 rutile",
            "lattice_parameters": [4.5937, 4.5937, 2.9587, 90.0, 90.0, 90.0],
            "elements": ["Ti", "Ti", "O", "O", "O", "O"],
            "positions": [
                [0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [x, x, 0.0], [-x % 1, -x % 1, 0.0],
                [0.5 + x, 0.5 - x, 0.5], [0.5 - x, 0.5 + x, 0.5],
            ],
            "occupancies": [1.0] * 6,
            "b_iso": [0.45, 0.45, 0.6, 0.6, 0.6, 0.6],
            "space_group": 136,
        }
    )  # fmt: skip


def cases(quick: bool) -> list[dict]:
    """The Monte Carlo cases: crystal, discs, beams, figure of merit, truth and start."""
    from hyperspy_lacbed.crystal.structure import load_structure

    si = load_structure("Si")
    si_discs = [(0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0), (0, 4, 0)]
    si_case = dict(crystal=si, discs=si_discs, beams=12, parameters=["thickness", "B"])
    si_case.update(truth={"thickness": 800.0, "B[Si]": 0.60}, start={"thickness": 780.0})
    if quick:
        return [{**si_case, "name": "Si lsq", "fom": "lsq", "seeds": 8}]
    out = [{**si_case, "name": "Si lsq", "fom": "lsq", "seeds": 48}]
    out.append({**si_case, "name": "Si zncc", "fom": "zncc", "seeds": 24})
    ti_discs = [(0, 0, 0), (1, 1, 0), (-1, -1, 0), (1, -1, 0), (-1, 1, 0), (2, 0, 0), (0, 2, 0)]
    out.append(
        dict(
            name="TiO2 rutile lsq", crystal=rutile(), discs=ti_discs, beams=12, fom="lsq",
            seeds=24,
            parameters=["thickness", "B", "xyz[O1]"],
            truth={"thickness": 600.0, "B[Ti]": 0.50, "B[O]": 0.70},
            start={"thickness": 590.0},
        )
    )  # fmt: skip
    return out


def _model(case, params):
    from hyperspy_lacbed.bloch.settings import SimulationSettings
    from hyperspy_lacbed.refinement.model import BlochModel

    phys = SimulationSettings.from_user(zone_axis=(0, 0, 1), strong_beams=case["beams"])
    return BlochModel(case["crystal"], phys, np.array(case["discs"]), PIXELS, DK, params)


def clean_discs(case) -> tuple[np.ndarray, dict[str, float]]:
    """Noise-free discs at the truth (parameters not in the truth stay at the crystal's)."""
    import torch

    from hyperspy_lacbed.refinement.parameters import resolve_parameters

    params = resolve_parameters(
        case["parameters"], case["crystal"], thickness=case["truth"]["thickness"],
        absorption="proportional", absorption_fraction=0.1, fom=case["fom"], blur=0.0,
    )  # fmt: skip
    truth = {p.name: case["truth"].get(p.name, p.value) for p in params}
    model = _model(case, params)
    x = torch.tensor([truth[p.name] for p in params], dtype=torch.float64)
    return model.discs(x).numpy(), truth


def monte_carlo(case) -> dict:
    """Refine every seed's noisy discs; the spread of the values against the mean σ."""
    from hyperspy_lacbed.refinement.fit import Stage, refine_discs

    clean, truth = clean_discs(case)
    seeds = case["seeds"]
    values, sigmas, corr, limited = [], [], [], 0
    t0 = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        data = rng.poisson(COUNTS * clean / clean.max()).astype(float)
        res = refine_discs(
            case["crystal"], data, case["discs"], DK, case["parameters"],
            thickness=case["start"]["thickness"], fom=case["fom"], thickness_scan=0,
            stages=[Stage(max_iter=60)], check=False, progress=False, zone_axis=(0, 0, 1),
            strong_beams=case["beams"],
        )  # fmt: skip
        limited += "stopped after" in res.message
        values.append([res.values[n] for n in res.names])
        sigmas.append([res.uncertainties[n] for n in res.names])
        corr.append(res.correlation)
    names = res.names
    values, sigmas = np.array(values), np.array(sigmas)
    spread = values.std(axis=0, ddof=1)
    mean_sigma = sigmas.mean(axis=0)
    empirical = np.corrcoef(values.T)
    reported = np.mean(corr, axis=0)
    pairs = [
        {"pair": [names[i], names[j]], "reported_r": reported[i, j], "seeds_r": empirical[i, j]}
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if abs(reported[i, j]) > 0.8
    ]
    return {
        "seeds": seeds,
        "names": names,
        "truth": [truth[n] for n in names],
        "mean_value": values.mean(axis=0),
        "spread": spread,
        "mean_sigma": mean_sigma,
        "sigma_over_spread": mean_sigma / spread,
        "within_30_percent": bool(np.all(np.abs(mean_sigma / spread - 1) <= 0.3)),
        "bias_over_standard_error": (values.mean(axis=0) - [truth[n] for n in names])
        / (spread / np.sqrt(seeds)),
        "strongly_correlated": pairs,
        "fits_at_iteration_limit": limited,
        "last_summary": res.summary(),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 seeds, Si only")
    add_results_argument(parser)
    args = parser.parse_args()
    results = {}
    for case in cases(args.quick):
        r = monte_carlo(case)
        results[case["name"]] = r
        print(f"{case['name']}: {r['seeds']} seeds, {r['wall_s']:.0f} s", flush=True)
        for n, s, sp in zip(r["names"], r["mean_sigma"], r["spread"]):
            print(f"  {n:<14} mean σ {s:.4g}  spread {sp:.4g}  ratio {s / sp:.2f}")
        for p in r["strongly_correlated"]:
            print(
                f"  correlated {p['pair']}: r {p['reported_r']:+.3f} (seeds {p['seeds_r']:+.3f})"
            )
    write_results(
        args, "refine_uncertainty", results,
        settings={"pixels": PIXELS, "dk": DK, "counts": COUNTS,
                  "goal": "mean σ within 30 % of the spread over the seeds"},
    )  # fmt: skip


if __name__ == "__main__":
    main()
