"""Property-based tests (hypothesis) of the structure parser and the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperspy_lacbed.bloch.discs import beam_intensities
from hyperspy_lacbed.crystal.scattering import ELEMENTS
from hyperspy_lacbed.crystal.structure import Crystal, StructureError, zolz_reflections

LIGHT = [e for e in ELEMENTS[:56] if e not in ("He", "Ne", "Ar", "Kr", "Xe")]


@st.composite
def crystals(draw, max_atoms=4):
    a = draw(st.floats(3.0, 7.0))
    n = draw(st.integers(1, max_atoms))
    elements = [draw(st.sampled_from(LIGHT)) for _ in range(n)]
    positions = np.array(
        [[draw(st.floats(0, 1, exclude_max=True)) for _ in range(3)] for _ in range(n)]
    )
    b = [draw(st.floats(0.1, 2.0)) for _ in range(n)]
    return {
        "lattice_parameters": [a, a, a, 90, 90, 90],
        "elements": elements,
        "positions": positions.tolist(),
        "occupancies": [1.0] * n,
        "b_iso": b,
    }


def _build(d):
    return Crystal.from_dict(d)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crystals())
def test_random_structures_are_valid_or_rejected_with_the_documented_error(d):
    try:
        crystal = _build(d)
    except StructureError as exc:
        assert "Overlapping atoms" in str(exc)
        return
    assert len(crystal) == len(d["elements"])
    assert 1 <= crystal.space_group_number <= 230
    assert np.all((crystal.positions >= 0) & (crystal.positions < 1))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    crystals(max_atoms=3),
    st.floats(-0.15, 0.15),
    st.floats(-0.15, 0.15),
    st.floats(10.0, 3000.0),
)
def test_random_structures_obey_unitarity_without_absorption(d, kx, ky, t):
    try:
        crystal = _build(d)
    except StructureError:
        return
    hkl = zolz_reflections(crystal, (0, 0, 1), 1.2)
    intensities = beam_intensities(
        crystal, [(kx, ky)], [t], hkl, g_max=1.2, strong_beams=10_000, absorption="none"
    )
    assert np.all(np.isfinite(intensities))
    assert intensities.sum() == pytest.approx(1.0, abs=1e-8)


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["lattice", "occupancy", "b", "element"]),
    st.floats(-10, 0),
)
def test_invalid_values_raise_structure_error(field, bad):
    d = {
        "lattice_parameters": [4, 4, 4, 90, 90, 90],
        "elements": ["Si"],
        "positions": [[0, 0, 0]],
        "occupancies": [1.0],
        "b_iso": [0.5],
    }
    if field == "lattice":
        d["lattice_parameters"][0] = bad
    elif field == "occupancy":
        d["occupancies"] = [bad]
    elif field == "b":
        d["b_iso"] = [bad - 1e-3]
    else:
        d["elements"] = ["Qx"]
    with pytest.raises(StructureError):
        _build(d)


@settings(max_examples=10, deadline=None)
@given(st.floats(1.0, 20.0), st.integers(1, 3))
def test_thin_and_thick_crystals_single_and_few_beams(t_scale, n_beams):
    # A single beam (or a few) and thicknesses from 1 Å to 2 µm stay finite and unitary.
    intensities = beam_intensities(
        "Si",
        [(0.01, 0.02)],
        [t_scale, 100 * t_scale, 1000 * t_scale],
        [[0, 0, 0]],
        strong_beams=n_beams,
        absorption="none",
    )
    assert np.all(np.isfinite(intensities))
    if n_beams == 1:
        np.testing.assert_allclose(intensities, 1.0, atol=1e-12)


def test_structure_matrices_batched_over_crystals_equal_one_by_one():
    """Many crystals in one call (a (C, P, P) potential) give each crystal's own matrices."""
    import torch

    from hyperspy_lacbed.bloch.matrix import structure_matrices

    rng = np.random.default_rng(0)
    c, p, t, m, w = 3, 12, 5, 6, 4
    pot = torch.as_tensor(rng.normal(size=(c, p, p)) + 1j * rng.normal(size=(c, p, p)))
    s = torch.as_tensor(rng.uniform(-0.05, 0.05, (c * t, p)))
    kn = torch.as_tensor(rng.uniform(39.0, 40.0, c * t))
    gn = torch.as_tensor(rng.uniform(-0.1, 0.1, p))
    strong = torch.as_tensor(
        np.stack([np.r_[0, rng.permutation(p - 1)[: m - 1] + 1] for _ in range(c * t)])
    )
    strong[1, -2:] = -1  # padding beams
    weak = torch.as_tensor(np.stack([rng.permutation(p)[:w] for _ in range(c * t)]))
    weak[2, -1] = -1
    which = torch.arange(c).repeat_interleave(t)
    a, scale = structure_matrices(pot, s, 40.0, kn, gn, strong, weak, which)
    for i in range(c):
        rows = slice(i * t, (i + 1) * t)
        a_i, scale_i = structure_matrices(
            pot[i], s[rows], 40.0, kn[rows], gn, strong[rows], weak[rows]
        )
        assert torch.allclose(a[rows], a_i, rtol=0, atol=0)
        assert torch.allclose(scale[rows], scale_i)
    # padding rows are isolated: no coupling to the other beams
    assert (a[1, -2:, :-2] == 0).all() and (a[1, :-2, -2:] == 0).all()
