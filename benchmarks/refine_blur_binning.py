"""Why ``blur=`` made no difference at bin 5: the start ZNCC of a binned stage against σ.

Run: ``python benchmarks/refine_blur_binning.py``. Needs ``../shared/experimental/GeSn_1-10``.
Writes ``benchmarks/results/refine_blur_binning.json`` (``--results PATH``, ``--no-results``).

Five recorded GeSn [1-10] discs (000, 004, 111, 220, 113) binned 5 × 5 to 30 × 30 px are
compared (mean ZNCC) with the model at 132.5 nm (30 strong beams, Bird–King, the README's
geometry) for blur σ = 0, 0.2, 1 and 2 data pixels, point-sampled (one tilt per binned
pixel, ``supersample=1``) and supersampled (2 × 2 tilts per binned pixel, averaged like the
data). The blur acts on the model's grid before its sub-pixels are averaged, σ · supersample
/ bin of its pixels: point-sampled at bin 5, σ = 1 is 0.2 of a model pixel, which a sampled
Gaussian cannot show.
"""

from __future__ import annotations

import argparse

import numpy as np
from _results import add_results_argument, write_results
from bench_gesn import DATA

PICKS = ["+0+0+0", "+0+0+4", "+1+1+1", "+2+2+0", "+1+1+3"]
BLURS = (0.0, 0.2, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_results_argument(parser)
    args = parser.parse_args()
    import hyperspy.api as hs
    import torch

    from hyperspy_lacbed.analysis.compare import block_mean
    from hyperspy_lacbed.bloch.settings import SimulationSettings
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.refinement import fom
    from hyperspy_lacbed.refinement.driver import Problem
    from hyperspy_lacbed.refinement.model import BlochModel

    discs = np.array([hs.load(DATA / f"GeSn_{p}.dm3").data for p in PICKS], float)
    refl = np.array([[int(p[i : i + 2]) for i in (0, 2, 4)] for p in PICKS])
    data = block_mean(discs, 5)
    mask = np.broadcast_to(fom.disc_mask(30), data.shape)
    crystal = load_structure(str(DATA / "GeSn.cif"))
    phys = SimulationSettings.from_user(
        zone_axis=(1, -1, 0), x_direction=(0, 0, -1), surface_normal=(1, -1, 0),
        absorption="bird-king", strong_beams=30, voltage=200e3,
    )  # fmt: skip
    rows = []
    for ss in (1, 2):
        model = BlochModel(crystal, phys, refl, 30 * ss, 0.673 / 15 / ss, thickness=1325.0)
        x = model.start_vector()
        inten = model.intensities(x)
        for blur in BLURS:
            problem = Problem(model, data, mask, "zncc", (1, False), blur, None, ss, bin=5)
            with torch.no_grad():
                z = fom.zncc_per_disc(problem.images(inten, x), problem.data, problem.mask)
            rows.append({"supersample": ss, "blur_px": blur, "mean_zncc": float(z.mean())})
            print(f"bin 5, supersample {ss}, σ = {blur} px: mean ZNCC {rows[-1]['mean_zncc']:.4f}")
    write_results(args, "refine_blur_binning", rows, settings={"bin": 5, "discs": PICKS})


if __name__ == "__main__":
    main()
