"""Accuracy of the few-beam Bloch layer alone against a store's converged discs (issue 21).

The physics rows of the forward surrogate's ablation: the layer of the ``physics-forward``
generator (:class:`~hyperspy_lacbed.nets.bloch_layer.FewBeamBloch`) with zero network
correction, on every sample of a split, at each beam count. Each sample's U_g come from
its stored projected potential (the generator's own input), so this is exactly what the
generator computes before the network adds anything. Scores are the cards': the ℓMSE of
each pattern (nine discs) at each thickness, and the paper's 8-bit min–max MSE.

    python benchmarks/physics_layer_accuracy.py --store data/lacbed-v1 --split test
    python benchmarks/physics_layer_accuracy.py --store data/lacbed-v1 --split test --sizes 10+0,20+40 --limit 16

Writes ``benchmarks/results/physics_layer_<split>.json`` (``--results PATH``,
``--no-results``). No timing here: speed lives in ``bench_physics_forward.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
from _results import add_results_argument, write_results


def layer_discs(layer, fourier, potential: np.ndarray, a: float, thicknesses) -> np.ndarray:
    """The layer's discs (n_t, R, D, D) of one stored sample."""
    import torch

    v = torch.as_tensor(np.asarray(potential, np.float64))[None]
    u = fourier(v, torch.tensor([a], dtype=torch.float64))
    n = len(thicknesses)
    with torch.no_grad():
        out = layer(u.expand(n, -1, -1), torch.full((n,), a), torch.as_tensor(thicknesses))
    return out.numpy()


def summary(values: np.ndarray) -> dict[str, float]:
    """Median and mean of a score."""
    return {"median": float(np.median(values)), "mean": float(np.mean(values))}


def main(argv: list[str] | None = None) -> dict:
    """Score the layer at each size on a split; write and return the results."""
    from hyperspy_lacbed.nets.bloch_layer import FewBeamBloch
    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.nets.fourier import FourierCoefficients
    from hyperspy_lacbed.train.dataset import open_dataset
    from hyperspy_lacbed.train.metrics import lmse, paper_mse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data/lacbed-v1")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sizes", default="10+0,20+40,40+80", help="strong+weak beam counts")
    ap.add_argument("--limit", type=int, default=None, help="the first N samples only")
    add_results_argument(ap)
    args = ap.parse_args(argv)
    group = open_dataset(args.store, args.split)
    domain = Domain.from_dict(dict(group.attrs["domain"]))
    thicknesses = np.asarray(group.attrs["thicknesses"], float)
    n = int(group["done"][:].sum()) if args.limit is None else int(args.limit)
    results = {"samples": n, "patterns": n * len(thicknesses), "sizes": {}}
    for size in args.sizes.split(","):
        strong, weak = (int(v) for v in size.split("+"))
        layer = FewBeamBloch(
            domain.reflections, domain.disc_pixels, domain.disc_radius_g200, domain.voltage,
            strong, weak, absorption_fraction=domain.absorption_fraction,
            mean_absorption=domain.mean_absorption,
        )  # fmt: skip
        pixels = group["potential"].shape[-1]
        fourier = FourierCoefficients(
            min(layer.table_h_max, (pixels - 1) // 2), pixels, origin="none",
            units="structure_factor", voltage=domain.voltage,
        )  # fmt: skip
        scores, paper, per_sample = [], [], []
        for k in range(n):
            a = float(group["lattice_parameter"][k])
            ref = np.asarray(group["discs"][k], np.float64)
            got = layer_discs(layer, fourier, group["potential"][k], a, thicknesses)
            s = lmse(got, ref, axes=(-3, -2, -1))
            scores.append(s)
            paper.append(paper_mse(got, ref))
            per_sample.append({"index": k, "a": a, "lmse": s.tolist()})
        scores = np.concatenate(scores)
        results["sizes"][size] = {
            "strong_beams": strong,
            "weak_beams": weak,
            "lmse": summary(scores),
            "paper_mse": summary(np.concatenate([p.ravel() for p in paper])),
            "per_sample": per_sample,
        }
        print(
            f"{size}: ℓMSE median {np.median(scores):.2e}, mean {np.mean(scores):.2e} "
            f"({len(scores)} patterns)"
        )
    write_results(
        args, f"physics_layer_{args.split}", results,
        settings={"store": args.store, "split": args.split},
    )  # fmt: skip
    return results


if __name__ == "__main__":
    main()
