"""Accuracy of the engine against independent programs: Felix, abTEM and py4DSTEM.

Run: ``python benchmarks/bench_reference.py`` (seconds; needs ``../shared/reference``). It
writes ``benchmarks/results/bench_reference.json`` (``--results PATH``; ``--no-results``),
which the README's reference rows are read from; the tests of those rows
(``pytest tests/bloch/test_bloch.py -k "felix or abtem"``,
``pytest tests/crystal/test_crystal.py -k py4dstem``) assert the same comparisons.

* Felix Si [001] (``felix_si001``): ``hl.simulate(..., preset="felix")`` with only the
  inputs of ``felix.inp``; the largest difference of any of the 20 discs (5 reflections,
  4 thicknesses, N = 32) in units of that Felix image's maximum.
* abTEM zone-axis intensities (``si001_zone_axis.json``, 4 settings: Lobato or Kirkland
  factors, with and without Debye–Waller; 000, 220, 400, 440 at 50, 100, 200 nm): the
  largest absolute difference of a beam intensity (incident intensity 1).
* py4DSTEM (Lobato) structure potentials U_000, U_220, U_400: the largest relative
  difference.

An accuracy study, no timings: the engine's speed is ``bench_engine.py``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
FELIX = REFERENCE / "felix_si001"
ABTEM_CASES = {
    "lobato_noDW_noabs_zolz_gmax2": ("lobato", False),
    "kirkland_noDW_noabs_zolz_gmax2": ("kirkland", False),
    "lobato_DW_noabs_zolz_gmax2": ("lobato", True),
    "kirkland_DW_noabs_zolz_gmax2": ("kirkland", True),
}


def felix() -> dict:
    """Largest |ours − Felix| / max(Felix) over the 20 images, and the worst image."""
    import hyperspy_lacbed as hl

    inputs = json.loads((FELIX / "case.json").read_text())["inputs"]
    images = np.load(FELIX / "felix_si001_n32.npz")
    s = hl.simulate(
        FELIX / "Si.cif",
        zone_axis=inputs["zone"],
        x_direction=inputs["x_direction"],
        voltage=f"{inputs['kV']} kV",
        thickness=inputs["thicknesses_A"],
        reflections=inputs["reflections"],
        pixels=2 * inputs["IPixelCount"],
        disc_radius=f"{inputs['ROuterConvergenceAngle_invA']} 1/Å",
        strong_beams=inputs["IMinStrongBeams"],
        absorption_fraction=inputs["RAbsorptionPer"] / 100,
        preset="felix",
        device="cpu",
        show_progressbar=False,
    )
    per_image = {}
    for ti, t in enumerate(inputs["thicknesses_A"]):
        for ri, hkl in enumerate(inputs["reflections"]):
            key = "{:+d}{:+d}{:+d}_{}A".format(*hkl, t)
            ref = images[key]
            per_image[key] = float(np.abs(s.data[ti, ri] - ref).max() / ref.max())
    worst = max(per_image, key=per_image.get)
    return {
        "n_images": len(per_image),
        "pixels_N": inputs["IPixelCount"],
        "max_error": per_image[worst],
        "worst_image": worst,
        "per_image": per_image,
    }


def abtem() -> dict:
    """Largest absolute difference of the zone-axis beam intensities, per setting."""
    from hyperspy_lacbed.bloch.discs import beam_intensities
    from hyperspy_lacbed.crystal.structure import load_structure

    ref_all = json.loads((REFERENCE / "si001_zone_axis.json").read_text())["cases"]
    si = load_structure(FELIX / "Si.cif")
    si = dataclasses.replace(si, b_iso=np.full(len(si), 8 * np.pi**2 * 0.0766**2))
    per_case = {}
    for case, (table, dw) in ABTEM_CASES.items():
        rows = ref_all[case]["abtem"]["rows"]
        ours = beam_intensities(
            si,
            [(0.0, 0.0)],
            [r["t_nm"] * 10 for r in rows],
            [[0, 0, 0], [2, 2, 0], [4, 0, 0], [4, 4, 0]],
            g_max=2.0,
            strong_beams=10_000,
            absorption="none",
            scattering_factors=table,
            debye_waller=dw,
        )[0]
        want = np.array(
            [[r["I000"], r["I220_each"], r["I400_each"], r["I440_each"]] for r in rows]
        )
        per_case[case] = float(np.abs(ours - want).max())
    return {"n_settings": len(per_case), "max_abs_difference": max(per_case.values()), **per_case}


def py4dstem() -> dict:
    """Relative difference of U_000, U_220, U_400 (Lobato, no Debye–Waller)."""
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.crystal.structure_factors import structure_factors

    ref = json.loads((REFERENCE / "si001_zone_axis.json").read_text())
    ref = ref["structure_potentials_py4dstem_lobato"]
    si = load_structure(FELIX / "Si.cif")
    u = structure_factors(
        si, np.array([[0, 0, 0], [2, 2, 0], [4, 0, 0]]), 200e3, "lobato", debye_waller=False
    )
    rel = {
        key: float(abs(value.real - ref[key]) / abs(ref[key]))
        for value, key in zip(u, ("U000", "U220", "U400"))
    }
    return {"max_relative_difference": max(rel.values()), **rel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_results_argument(parser)
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        raise SystemExit(f"The reference data are missing: {REFERENCE}")
    results = {"felix": felix(), "abtem": abtem(), "py4dstem": py4dstem()}
    f, a, p = results["felix"], results["abtem"], results["py4dstem"]
    print(
        f"Felix Si [001], {f['n_images']} discs: max difference {100 * f['max_error']:.3f} % "
        f"of the image maximum ({f['worst_image']})"
    )
    print(f"abTEM, {a['n_settings']} settings: max |ΔI| {a['max_abs_difference']:.2e}")
    print(f"py4DSTEM U_g: max relative difference {100 * p['max_relative_difference']:.4f} %")
    write_results(args, "bench_reference", results)


if __name__ == "__main__":
    main()
