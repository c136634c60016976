"""``s.refine`` with its default stages on the 27 recorded GeSn [1-10] discs, as a user calls it.

Run: ``python benchmarks/refine_default_gesn.py`` (``--bin 3``: the 150-px discs binned to
50 px; ``--strong-beams 60``). Needs ``../shared/experimental/GeSn_1-10``. Writes
``benchmarks/results/refine_default_gesn.json`` (``--results PATH``, ``--no-results``).

The discs are loaded and calibrated as ``bench_gesn.py`` does (``hs.load`` →
``set_signal_type`` → ``hs.stack`` → ``set_experimental_parameters`` → ``calibrate``),
binned with HyperSpy's ``rebin`` and refined with only the physics of the data's README
given: ``s.refine(cif, ["thickness", "blur"], thickness="125 nm", orientation=(1, False),
blur=1, ...)`` — the stages are the ones ``refine`` chooses. Reported: the stages, the
mean ZNCC at the start and refined, both at the binned discs' full resolution (the
result's check), the refined values ± σ and the wall time (2 cores shared with other jobs).
"""

from __future__ import annotations

import argparse
import time
import warnings

from _results import add_results_argument, write_results
from bench_gesn import DATA, load_recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=int, default=3, help="bin the 150-px discs (default 3)")
    parser.add_argument("--strong-beams", type=int, default=60)
    add_results_argument(parser)
    args = parser.parse_args()
    s = load_recorded()
    if args.bin > 1:
        s = s.rebin(scale=(1, args.bin, args.bin))
    options = dict(
        thickness="125 nm", orientation=(1, False), blur=1.0, zone_axis=(1, -1, 0),
        x_direction=(0, 0, -1), surface_normal=(1, -1, 0), absorption="bird-king",
        strong_beams=args.strong_beams, progress=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = s.refine(str(DATA / "GeSn.cif"), ["thickness", "blur"], **options)
    wall = time.perf_counter() - t0
    print(res.summary())
    results = {
        "discs": len(res.reflections),
        "pixels": int(res.check["pixels"]),
        "stages": res.stages,
        "mean_zncc_start": res.mean_zncc_start,
        "mean_zncc": res.mean_zncc,
        "fom_start": res.check["fom_start"],
        "fom_end": res.check["fom_end"],
        "values": res.values,
        "uncertainties": res.uncertainties,
        "wall_s": wall,
        "warnings": [str(w.message) for w in caught if "Refinement" in type(w.message).__name__],
    }
    write_results(
        args, "refine_default_gesn", results,
        settings={"bin": args.bin, "options": {k: v for k, v in options.items()}},
    )  # fmt: skip


if __name__ == "__main__":
    main()
