"""Reference discs for tests/test_convergence.py: SrTiO3 and GaAs [001] with 600 + 1200 beams.

Run from the repository root: ``python tests/data/make_convergence_reference.py``. It writes
``tests/data/convergence_reference.npz`` (a few kB): for each crystal the discs of the default
reflections at 50 and 200 nm on a 6 × 6 tilt grid, computed with 600 strong + 1200 Bethe weak
beams and the exact (complex128) solver.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hyperspy_lacbed.bloch.discs import compute_discs

HERE = Path(__file__).resolve().parent
STRUCTURES = HERE.parents[2] / "shared" / "structures"
#: Settings shared with the tests.
SETTINGS = {"thickness": [500.0, 2000.0], "pixels": 6}
CRYSTALS = ("SrTiO3", "GaAs")
REFERENCE_BEAMS = (600, 1200)


def main() -> None:
    out = {}
    for name in CRYSTALS:
        r = compute_discs(
            str(STRUCTURES / f"{name}.cif"),
            strong_beams=REFERENCE_BEAMS[0],
            weak_beams=REFERENCE_BEAMS[1],
            solver="exact",
            tolerance=math.inf,
            device="cpu",
            show_progressbar=False,
            **SETTINGS,
        )
        out[f"{name}_discs"] = r.discs
        out[f"{name}_reflections"] = r.reflections
    np.savez_compressed(HERE / "convergence_reference.npz", **out)


if __name__ == "__main__":
    main()
