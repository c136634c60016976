"""The recorded LiNbO3 [1-10] discs (a trigonal crystal with a split Li/Mg site): load,
calibrate and refine on a binned subset, as a user does (``benchmarks/refine_linbo3.py``
does the same on all 63 discs at full size)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import EXPERIMENTAL, needs_shared

from hyperspy_lacbed.refinement.driver import RefinementWarning

DATA = EXPERIMENTAL / "LiNbO3_1-10"
#: A subset that spans the zone: the direct beam, the forbidden-but-dynamical 00-3, a 00l,
#: a 11l and 22l pair, and a 33l (the orientation needs discs off both axes).
PICKS = ["+0+0+0", "+0+0-3", "+0+0+6", "+1+1+0", "-1-1+0", "+1+1+3", "+2+2-6", "+3+3+3"]


def _load(step: int = 1):
    from hyperspy_lacbed.api.recorded import load_discs

    s = load_discs(
        [DATA / f"LiNbO3_{p}.dm3" for p in PICKS],
        disc_radius="0.725 1/Å",
        beam_energy="200 kV",
        zone_axis=[1, -1, 0],
        x_direction=[0, 0, -1],
    )
    if step == 1:
        return s
    # every step-th recorded pixel, on a grid centred like the disc (step odd)
    first = (168 - 1 - step * (168 // step - 1)) // 2
    return s.isig[first::step, first::step]


@needs_shared("experimental/LiNbO3_1-10")
def test_linbo3_discs_load_and_calibrate():
    """168-px discs, radius 0.725 1/Å over 84 pixels, centred; the split site loads."""
    import hyperspy_lacbed as hl

    s = _load()
    kx = s.axes_manager.signal_axes[0]
    assert s.axes_manager.signal_shape == (168, 168)
    assert kx.scale == pytest.approx(0.725 / 84)
    assert kx.offset + 83.5 * kx.scale == pytest.approx(0.0, abs=1e-9)
    assert s.reflections[2] == (0, 0, 6)
    crystal = hl.load_structure(str(DATA / "LiNbO3.cif"))
    # R3c: Nb 6a, Li 6a (0.95) beside Mg 6a (0.05), O 18b; the split site sums to 1
    assert len(crystal.elements) == 36
    assert crystal.occupancies[np.array(crystal.elements) == "Mg"].sum() == pytest.approx(0.3)


@needs_shared("experimental/LiNbO3_1-10")
def test_linbo3_sampled_subset_refinement_raises_zncc():
    """Eight discs, every 13th pixel (12 × 12 recorded pixels at their own tilts): the
    orientation is found, and refining the thickness, B of Nb and O, the tilt-grid centre
    and the blur raises the ZNCC."""
    s = _load(13)
    assert s.axes_manager.signal_shape == (12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefinementWarning)
        res = s.refine(
            str(DATA / "LiNbO3.cif"), ["thickness", "B[Nb1]", "B[O1]", "offset", "blur"],
            thickness="122 nm", orientation="auto", zone_axis=(1, -1, 0), x_direction=(0, 0, -1),
            surface_normal=(1, -1, 0), absorption="bird-king", strong_beams=30, progress=False,
        )  # fmt: skip
    # the map the benchmark's eight-way scan finds on all 63 discs (rot90 once, as for GeSn)
    assert res.recipe["orientation"] == [1, False]
    assert res.check["pixels"] == 12
    assert res.check["fom_end"] < res.check["fom_start"]
    assert res.mean_zncc > res.mean_zncc_start + 0.01
    # the authors searched 112–132 nm; 30 beams are not converged, hence the wider range
    assert 1000 < res.thickness < 1450
    assert all(np.isfinite(list(res.uncertainties.values())))
