"""The engine's HOLZ intensities against abTEM's Bloch-wave module (3-D beam sets).

Run: ``python benchmarks/bench_holz_abtem.py`` in an environment with abTEM
(``pip install abtem``; 1.0.11 was used; it is not a dependency of the package). Writes
``benchmarks/results/bench_holz_abtem.json`` (``--results PATH``, ``--no-results``).

abTEM's ``BlochWaves`` takes every reflection of the 3-D reciprocal lattice with
|g| ≤ g_max and |s_g| ≤ sg_max, so it includes the higher-order Laue zones. Conventions are
matched as in ``tests/bloch/test_bloch.py``: Si, Kirkland scattering factors, the
Debye–Waller factor of the shipped Si (B = 0.46 Å², u = sqrt(B / 8π²)), no absorption,
200 kV, surface normal along the beam. Tilts are crystal rotations in abTEM (the
rotation that takes the engine's incident direction k̂ onto the beam) and beam tilts in
the engine; over these 1–5 mrad the two differ only in the slab's orientation, to second
order in the angle.

1. Si [111] at exact zone-axis incidence, I_000 at 50, 100 and 150 nm: abTEM's two
   largest beam sets, the engine with ``holz=True`` (all beams strong, no Bethe, 600–1000
   beams) and with ``holz=False``.
2. A profile of 21 tilts across the first-order Laue zone line of (11 −1 −11), centred
   where the kinematic s_g = 0: I_000 of both programs (the engine with 800 strong beams,
   abTEM with sg_max 0.25 and g_max 4 1/Å by default) and their largest difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import add_results_argument, write_results

from hyperspy_lacbed.bloch.discs import beam_intensities
from hyperspy_lacbed.bloch.holz import line_crossing
from hyperspy_lacbed.bloch.pool import normal_in_frame, prepare_pool
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import load_structure, zone_frame
from hyperspy_lacbed.units import electron_wavelength

THICKNESS = [500.0, 1000.0, 1500.0]
ENGINE = dict(zone_axis=(1, 1, 1), absorption="none", scattering_factors="kirkland")
LINE = (11, -1, -11)


def rotation_onto_z(v: np.ndarray) -> np.ndarray:
    """The rotation taking the unit vector ``v`` onto +z (Rodrigues)."""
    v = v / np.linalg.norm(v)
    axis = np.cross(v, [0.0, 0.0, 1.0])
    s, c = np.linalg.norm(axis), v[2]
    if s < 1e-15:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def abtem_i000(sfa, frame, k: np.ndarray, sg_max: float, g_max: float, thickness):
    """abTEM I_000 for the incident vector ``k`` (frame coordinates) and its beam count."""
    from abtem.bloch import BlochWaves

    rot = rotation_onto_z(k) @ frame.rotation
    bw = BlochWaves(sfa, energy=200e3, sg_max=sg_max, g_max=g_max, orientation_matrix=rot)
    dp = bw.calculate_diffraction_patterns(thickness, lazy=False)
    origin = np.flatnonzero((bw.hkl == 0).all(1))[0]
    return np.asarray(dp.array)[..., origin], len(bw.hkl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile-beams", type=int, default=800, help="the engine's strong beams on the profile"
    )
    parser.add_argument(
        "--profile-sg-max",
        type=float,
        default=0.25,
        help="abTEM's sg_max on the profile (g_max 4 1/Å)",
    )
    add_results_argument(parser)
    args = parser.parse_args()
    import abtem
    from abtem.bloch import StructureFactor
    from ase import Atoms

    abtem.config.set({"device": "cpu"})
    si = load_structure("Si")
    frame = zone_frame(si, (1, 1, 1))
    atoms = Atoms(["Si"] * len(si), scaled_positions=si.positions, cell=si.direct_basis, pbc=True)
    u_rms = float(np.sqrt(si.b_iso[0] / (8 * np.pi**2)))
    sfa = StructureFactor(
        atoms, g_max=10.0, parametrization="kirkland", thermal_sigma=u_rms, cutoff="hard"
    ).build(lazy=False)
    k_vac = 1.0 / electron_wavelength(200e3)  # abTEM's vacuum K (the engine refracts)

    zone = {"thickness_A": THICKNESS, "abtem": [], "engine_holz": [], "engine_zolz": []}
    for sg, gm in ((0.15, 3.5), (0.25, 4.0)):
        t0 = time.perf_counter()
        i000, n = abtem_i000(sfa, frame, np.array([0, 0, k_vac]), sg, gm, THICKNESS)
        zone["abtem"].append({"sg_max": sg, "g_max": gm, "beams": n, "I000": i000,
                              "seconds": time.perf_counter() - t0})  # fmt: skip
        print("abTEM", zone["abtem"][-1], flush=True)
    for holz, beams in ((True, 600), (True, 800), (True, 1000), (False, 300)):
        t0 = time.perf_counter()
        i000 = beam_intensities(si, [(0.0, 0.0)], THICKNESS, [(0, 0, 0)], holz=holz,
                                strong_beams=beams, tolerance=1e-3, disc_radius=0.05,
                                **ENGINE)[0, :, 0]  # fmt: skip
        key = "engine_holz" if holz else "engine_zolz"
        zone[key].append({"strong_beams": beams, "I000": i000,
                          "seconds": time.perf_counter() - t0})  # fmt: skip
        print(key, zone[key][-1], flush=True)
    best_ab = np.array(zone["abtem"][-1]["I000"])
    best_en = np.array(zone["engine_holz"][-1]["I000"])
    zone["max_abs_difference_holz"] = float(np.abs(best_ab - best_en).max())
    zone["max_abs_difference_zolz"] = float(
        np.abs(best_ab - np.array(zone["engine_zolz"][-1]["I000"])).max()
    )

    # --- a profile across a FOLZ line ------------------------------------------------
    settings = SimulationSettings.from_user(
        **ENGINE, holz=True, strong_beams=args.profile_beams, tolerance=1e-3, disc_radius=0.26
    )
    pool, _ = prepare_pool(si, frame, settings, normal_in_frame(si, frame, None),
                           np.zeros((1, 3), int))  # fmt: skip
    g = (si.g_vectors(np.array([LINE])) @ frame.rotation.T)[0]
    normal = g[:2] / np.linalg.norm(g[:2])
    u0 = line_crossing(si, frame, LINE, pool.k0, np.zeros(2), normal, 0.26)
    dk = 0.26 / 32  # a pixel of a 64-pixel disc of radius |g_220| / 2
    u = np.linspace(-3, 3, 21)
    tilts = (u0 + u * dk)[:, None] * normal[None, :]
    t_line = [1500.0]
    t0 = time.perf_counter()
    eng = beam_intensities(si, tilts, t_line, [(0, 0, 0)], holz=True,
                           strong_beams=args.profile_beams,
                           tolerance=1e-3, disc_radius=0.26, **ENGINE)[:, 0, 0]  # fmt: skip
    t_eng = time.perf_counter() - t0
    t0 = time.perf_counter()
    ab, beams = [], []
    for kt in tilts:
        kz = np.sqrt(k_vac**2 - kt @ kt)
        i, n = abtem_i000(
            sfa, frame, np.array([kt[0], kt[1], kz]), args.profile_sg_max, 4.0, t_line
        )
        ab.append(float(np.ravel(i)[0]))
        beams.append(n)
    t_ab = time.perf_counter() - t0
    ab = np.array(ab)
    profile = {
        "reflection": list(LINE),
        "thickness_A": t_line[0],
        "pixel_inv_A": dk,
        "offset_px": u,
        "kinematic_line_px": 0.0,
        "engine_I000": eng,
        "abtem_I000": ab,
        "abtem_beams": [min(beams), max(beams)],
        "engine_strong_beams": args.profile_beams,
        "max_abs_difference": float(np.abs(eng - ab).max()),
        "max_abs_difference_rel_profile_max": float(np.abs(eng - ab).max() / ab.max()),
        "engine_minimum_px": float(u[np.argmin(eng)]),
        "abtem_minimum_px": float(u[np.argmin(ab)]),
        "seconds_engine": t_eng,
        "seconds_abtem": t_ab,
    }
    print(profile, flush=True)
    write_results(args, "bench_holz_abtem", {"zone_axis": zone, "profile": profile},
                  abtem=abtem.__version__)  # fmt: skip


if __name__ == "__main__":
    main()
