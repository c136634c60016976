"""Converged by default (issue 16): beams chosen by a tolerance, verified and reported."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import STRUCTURES, needs_shared

import hyperspy_lacbed as hl
from hyperspy_lacbed.bloch import convergence as conv
from hyperspy_lacbed.bloch.geometry import incident_vectors
from hyperspy_lacbed.crystal.structure import load_structure, zone_frame
from hyperspy_lacbed.units import electron_wavelength

DATA = Path(__file__).resolve().parents[1] / "data"
needs_structures = needs_shared("structures")
#: As in tests/data/make_convergence_reference.py.
SETTINGS = {"thickness": ["50 nm", "200 nm"], "pixels": 6}


def _reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    ref = np.load(DATA / "convergence_reference.npz")
    return ref[f"{name}_discs"], ref[f"{name}_reflections"]


def _error(discs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Largest difference per (thickness, disc) in units of the reference image's maximum."""
    return np.abs(discs - ref).max(axis=(-2, -1)) / ref.max(axis=(-2, -1))


@pytest.fixture(scope="module", params=["SrTiO3", "GaAs"])
def default_run(request):
    name = request.param
    with warnings.catch_warnings():
        warnings.simplefilter("error", conv.ConvergenceWarning)
        s = hl.simulate(str(STRUCTURES / f"{name}.cif"), **SETTINGS)
    return name, s


@needs_structures
def test_default_is_within_1_percent_of_a_600_beam_reference(default_run):
    name, s = default_run
    ref, reflections = _reference(name)
    assert s.reflections == [tuple(r) for r in reflections.tolist()]
    err = _error(s.data, ref)
    # README: every case within 1 % (measured here: SrTiO3 0.56 %, GaAs 0.35 %); 20 % for noise
    assert err.max() < 1.2 * 0.01, f"{name}: {err.max():.4f} of the image maximum"
    c = s.metadata.LACBED.convergence
    assert c.mode == "auto" and c.converged and c.tolerance == 0.01
    assert c.estimate <= c.tolerance
    # The chosen counts are the settings, so that simulate(**settings) reproduces them.
    settings = s.metadata.LACBED.settings
    assert (settings.strong_beams, settings.weak_beams) == (c.strong_beams, c.weak_beams)
    assert c.strong_beams + c.weak_beams <= conv.DEFAULT_BUDGET.max_beams
    # The set grew only while the probes disagreed by more than the tolerance.
    assert all(step["estimate"] > c.tolerance for step in c.steps[:-1])
    assert c.steps[-1]["estimate"] <= c.tolerance
    assert (c.steps[-1]["strong_beams"], c.steps[-1]["weak_beams"]) == (
        c.strong_beams,
        c.weak_beams,
    )
    # The old default (100 strong, no weak) misses by far more than 1 % on SrTiO3.
    if name == "SrTiO3":
        old = hl.simulate(str(STRUCTURES / f"{name}.cif"), strong_beams=100, **SETTINGS)
        assert _error(old.data, ref).max() > 0.05


@needs_structures
def test_reported_estimate_is_within_a_factor_2_of_the_true_difference(default_run):
    name, s = default_run
    ref, _ = _reference(name)
    true = _error(s.data, ref).max()
    estimate = s.metadata.LACBED.convergence.estimate
    assert true / 2 <= estimate <= 2 * true, f"{name}: estimate {estimate:.4g}, true {true:.4g}"


def test_estimate_does_not_flatter_a_heavy_crystal():
    """Issue 24: ``tolerance=0.01`` means within 1 %, and the estimate says so.

    Gold [001] with absorption, 50 and 200 nm, 12 × 12 px: 21 tilts after the 4mm folding,
    more than the 16 probes, so the probe choice is what is tested. The truth is 2.5× the
    beams with the exact solver (its own error is about 2.5⁻³ of the chosen set's).
    The issue-16 estimate (9 tilts on a spiral, no safety factor) reported 0.79× the
    true error here.
    """
    settings = {"thickness": ["50 nm", "200 nm"], "pixels": 12}
    s = hl.simulate("Au", **settings)
    c = s.metadata.LACBED.convergence
    assert c.mode == "auto" and c.converged
    assert c.verified_tilts == conv.DEFAULT_BUDGET.probe_tilts
    ref = hl.simulate(
        "Au",
        strong_beams=math.ceil(2.5 * c.strong_beams),
        weak_beams=math.ceil(2.5 * c.weak_beams),
        solver="exact",
        tolerance=math.inf,
        **settings,
    )
    scale = conv.image_scale(ref.data.max(axis=(-2, -1)))
    true = (np.abs(s.data - ref.data).max(axis=(-2, -1)) / scale).max()
    assert true <= c.tolerance, f"true error {true:.4f}"
    assert 0.8 * true <= c.estimate <= 2 * true, f"estimate {c.estimate:.4g}, true {true:.4g}"


def test_explicit_beam_counts_are_honoured_exactly():
    s = hl.simulate("Si", thickness="100 nm", pixels=4, strong_beams=37, weak_beams=11)
    c = s.metadata.LACBED.convergence
    assert (c.mode, c.strong_beams, c.weak_beams) == ("explicit", 37, 11)
    # 4 × 4 px fold to 3 tilts under 4mm: fewer than the probes, so all are verified.
    assert len(c.steps) == 1 and c.verified_tilts == 3
    assert (c.reference_strong_beams, c.reference_weak_beams) == conv.grow(37, 11, 1.5)
    assert (s.metadata.LACBED.settings.strong_beams, s.metadata.LACBED.settings.weak_beams) == (
        37,
        11,
    )
    # The measurement does not change the result: the same discs without it.
    quiet = hl.simulate(
        "Si", thickness="100 nm", pixels=4, strong_beams=37, weak_beams=11, tolerance=math.inf
    )
    np.testing.assert_array_equal(s.data, quiet.data)
    assert quiet.metadata.get_item("LACBED.convergence") is None
    # One count alone: the other takes 0 weak beams.
    only = hl.simulate("Si", thickness="100 nm", pixels=4, strong_beams=25)
    assert (
        only.metadata.LACBED.settings.strong_beams,
        only.metadata.LACBED.settings.weak_beams,
    ) == (
        25,
        0,
    )


def test_felix_preset_keeps_its_beams_and_reports_convergence():
    s = hl.simulate("Si", thickness="100 nm", pixels=4, preset="felix")
    c = s.metadata.LACBED.convergence
    assert c.mode == "explicit" and c.strong_beams == conv.FALLBACK_STRONG_BEAMS
    assert c.weak_beams == 0 and np.isfinite(c.estimate)


@needs_structures
def test_warning_fires_when_the_budget_is_too_small():
    with pytest.warns(conv.ConvergenceWarning, match="not converged"):
        s = hl.simulate(str(STRUCTURES / "SrTiO3.cif"), thickness="200 nm", pixels=4, max_beams=40)
    c = s.metadata.LACBED.convergence
    assert not c.converged and c.estimate > c.tolerance
    assert c.strong_beams + c.weak_beams <= 40
    assert len(c.steps) >= 1


def test_automatic_choice_reproduces_from_its_settings():
    s = hl.simulate("Si", thickness="50 nm", pixels=4)
    again = hl.simulate(**s.metadata.LACBED.settings.as_dictionary())
    np.testing.assert_array_equal(s.data, again.data)


def test_bad_tolerance_is_a_clear_error():
    with pytest.raises(ValueError, match="fraction of each image"):
        hl.simulate("Si", tolerance=2.0)
    with pytest.raises(ValueError, match="tolerance=inf"):
        hl.simulate("Si", tolerance=math.inf)


def test_probes_spread_over_the_wedge_and_reach_its_corner():
    from hyperspy_lacbed.bloch.geometry import fold_tilts, frame_point_group, tilt_grid

    crystal = load_structure("Si")
    frame = zone_frame(crystal, (0, 0, 1), None)
    kx, ky = tilt_grid(16, 0.01)
    fold = fold_tilts(kx, ky, frame_point_group(crystal, frame, np.array([0.0, 0.0, 1.0])))
    reps = fold.representatives
    tilts = np.stack([kx.ravel()[reps], ky.ravel()[reps]], 1)
    assert len(tilts) == 16 * 17 // 2  # the 1/8 wedge of 32 × 32 px, diagonal included
    chosen = conv.select_probes(tilts, 16)
    assert len(set(chosen.tolist())) == 16
    assert np.hypot(*tilts[chosen[0]]) == np.hypot(*tilts.T).min()  # the zone axis first
    corner = np.argmax(np.hypot(*tilts.T))
    assert corner in chosen  # the disc's corner, where the old spiral never looked
    # Every tilt of the wedge (136) lies within 2.5 grid steps of one of the 16 probes.
    gap = np.hypot(*(tilts[:, None] - tilts[chosen][None]).transpose(2, 0, 1)).min(1)
    assert gap.max() < 2.5 * 0.01
    # A grid with no more tilts than probes is verified on all of them.
    np.testing.assert_array_equal(conv.select_probes(tilts[:5], 16), np.arange(5))


def _left_out(name: str, thickness: float) -> np.ndarray:
    crystal = load_structure(name)
    frame = zone_frame(crystal, (0, 0, 1), None)
    k0 = 1 / electron_wavelength(200e3)
    tilts = np.array([[0.0, 0.0], [0.05, 0.02], [-0.03, 0.08], [0.09, -0.04], [-0.07, -0.06]])
    k = incident_vectors(tilts[:, 0], tilts[:, 1], k0)
    return conv.left_out_phase(crystal, frame, k, k0, thickness, voltage=200e3, candidates=800)


def test_left_out_phase_is_physical():
    si = _left_out("Si", 1000.0)
    assert np.all(np.diff(si) <= 1e-15) and si[-1] == 0
    # Second-order phase: linear in thickness.
    np.testing.assert_allclose(_left_out("Si", 2000.0), 2 * si, rtol=1e-12)
    # Heavier columns need more beams at the same tolerance; tighter tolerances need more.
    gaas = _left_out("GaAs", 1000.0)
    assert conv.physical_beam_counts(gaas, 0.01)[0] > conv.physical_beam_counts(si, 0.01)[0]
    assert conv.physical_beam_counts(si, 0.001)[0] > conv.physical_beam_counts(si, 0.01)[0]


def test_dark_discs_are_measured_against_the_brightest():
    peak = np.array([[1.0, 0.0, 0.5, 2e-4]])
    np.testing.assert_allclose(conv.image_scale(peak), [[1.0, 1e-3, 0.5, 1e-3]])
    # Si 200 is exactly zero on [001] (forbidden by the lattice): the estimate stays finite.
    s = hl.simulate(
        "Si",
        reflections=[[0, 0, 0], [2, 0, 0], [2, 2, 0]],
        thickness="50 nm",
        pixels=4,
        strong_beams=40,
    )
    assert s.data[1].max() == 0
    assert np.isfinite(s.metadata.LACBED.convergence.estimate)
    assert s.metadata.LACBED.convergence.estimate < 0.05


def test_tight_tolerances_use_the_exact_solver():
    # complex64 is up to 5e-4 of the maximum off: no beam count would beat that noise.
    tight = hl.simulate("Si", thickness="20 nm", pixels=2, tolerance=0.002)
    assert tight.metadata.LACBED.settings.solver == "exact"
    assert tight.metadata.LACBED.convergence.converged
    loose = hl.simulate("Si", thickness="20 nm", pixels=2)
    assert loose.metadata.LACBED.settings.solver == "fast"
