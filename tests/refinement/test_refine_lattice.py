"""Lattice parameters as refinement parameters: HOLZ lines measure the cell."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperspy_lacbed.bloch.discs import compute_discs
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import Crystal, load_structure
from hyperspy_lacbed.refinement.fit import Stage, refine_discs
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.refinement.parameters import (
    ParameterError,
    lattice_axes,
    resolve_parameters,
)

DISCS = np.array([(0, 0, 0)])
SI111 = {"zone_axis": (1, 1, 1), "voltage": 200e3, "holz": True}


def _scaled(crystal: Crystal, factor: float) -> Crystal:
    a, b, c, al, be, ga = crystal.lattice_parameters
    lp = [a * factor, b * factor, c * factor, al, be, ga]
    return Crystal.from_dict({**crystal.to_dict(), "lattice_parameters": lp})


def _params(names, crystal, thickness=1500.0):
    return resolve_parameters(
        names, crystal, thickness=thickness, absorption="proportional",
        absorption_fraction=0.1, fom="zncc", blur=0.0,
    )  # fmt: skip


def test_lattice_parameters_follow_the_cell_symmetry():
    si = load_structure("Si")
    np.testing.assert_array_equal(lattice_axes(si, "a"), [1, 1, 1])
    with pytest.raises(ParameterError, match="tied to 'a'"):
        _params(["c"], si)
    gan = Crystal.from_dict(
        {
            "lattice_parameters": [3.189, 3.189, 5.185, 90, 90, 120],
            "elements": ["Ga", "Ga", "N", "N"],
            "positions": [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.377],
                          [2 / 3, 1 / 3, 0.877]],
            "occupancies": [1, 1, 1, 1],
            "b_iso": [0.3, 0.3, 0.3, 0.3],
        }
    )  # fmt: skip
    a, c = _params(["a", "c"], gan)
    np.testing.assert_array_equal(a.axes, [1, 1, 0])
    np.testing.assert_array_equal(c.axes, [0, 0, 1])
    assert (a.value, c.value) == (3.189, 5.185)
    with pytest.raises(ParameterError, match="Bird–King"):
        resolve_parameters(["a"], si, thickness=1e3, absorption="bird-king",
                           absorption_fraction=0.1, fom="zncc", blur=0.0)  # fmt: skip


@pytest.mark.parametrize("holz", [False, True])
def test_model_at_another_lattice_parameter_is_the_engine_on_that_cell(holz):
    """The model's cell, frame, K and form factors follow a: at a × 1.004 it reproduces
    the engine run on the strained crystal (same beams)."""
    si = load_structure("Si")
    kw = {**SI111, "holz": holz, "strong_beams": 40}
    dk = 0.26 / 4
    model = BlochModel(si, SimulationSettings.from_user(**kw), DISCS, 8, dk, _params(["a"], si),
                       thickness=1500.0)  # fmt: skip
    x = torch.tensor([si.lattice_parameters[0] * 1.004], dtype=torch.float64)
    model.choose_beams(x)
    got = model.discs(x).detach().numpy()
    ref = compute_discs(
        _scaled(si, 1.004), thickness=[1500.0], reflections=DISCS.tolist(), pixels=8,
        disc_radius=4 * dk, solver="exact", device="cpu", show_progressbar=False, **kw,
    )  # fmt: skip
    want = ref.discs[0]
    assert np.abs(got - want).max() <= 1e-6 * want.max()
    start = model.discs(model.start_vector()).detach().numpy()
    assert np.abs(start - want).max() > 1e-3 * want.max()  # the cell does change the discs


def test_gradient_in_the_lattice_parameter_matches_finite_differences():
    si = load_structure("Si")
    kw = {**SI111, "strong_beams": 30}
    model = BlochModel(si, SimulationSettings.from_user(**kw), DISCS, 4, 0.03,
                       _params(["a"], si), thickness=1500.0)  # fmt: skip
    x = model.start_vector().requires_grad_(True)
    f = lambda v: (model.discs(v) ** 2).sum()  # noqa: E731
    (grad,) = torch.autograd.grad(f(x), x)
    h = 1e-5
    with torch.no_grad():
        fd = (f(x + h) - f(x - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-4)


def test_refinement_recovers_the_lattice_parameter_from_holz_lines():
    """A 000 disc of Si [111] made by the engine (HOLZ on) at a = 5.4307 × 1.003; the fit
    starts at 5.4307 Å and finds the true a from the HOLZ lines."""
    si = load_structure("Si")
    truth = si.lattice_parameters[0] * 1.003
    kw = {**SI111, "strong_beams": 40, "weak_beams": 40}
    pixels, radius = 24, 0.12
    made = compute_discs(
        _scaled(si, 1.003), thickness=[1500.0], reflections=DISCS.tolist(), pixels=pixels,
        disc_radius=radius, solver="exact", device="cpu", show_progressbar=False, **kw,
    )  # fmt: skip
    res = refine_discs(
        si, made.discs[0], DISCS, made.dk, ["a"], thickness=1500.0, fom="zncc",
        stages=[Stage(max_iter=15)], progress=False, check=False, **kw,
    )  # fmt: skip
    assert res.start["a"] == pytest.approx(si.lattice_parameters[0])
    # the start is 0.016 Å off; the fit lands within 1e-4 of a (5e-4 Å)
    assert abs(res.values["a"] - truth) < 5e-4, (res.values["a"], truth)
    assert res.mean_zncc > 0.999 > res.mean_zncc_start


@pytest.mark.parametrize(("zone", "name"), [((0, 0, 1), "a"), ((1, -1, 0), "c"), ((1, 0, 1), "c")])
def test_hexagonal_cell_lengths_move_the_model_as_the_engine(zone, name):
    """Wurtzite GaN: a or c changed by 0.5 % in the model equals the engine on that cell,
    including a zone axis ([101]) whose direction in the crystal turns as c changes."""
    gan = Crystal.from_dict(
        {
            "lattice_parameters": [3.189, 3.189, 5.185, 90, 90, 120],
            "elements": ["Ga", "Ga", "N", "N"],
            "positions": [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.377],
                          [2 / 3, 1 / 3, 0.877]],
            "occupancies": [1, 1, 1, 1],
            "b_iso": [0.3, 0.3, 0.4, 0.4],
        }
    )  # fmt: skip
    kw = {"zone_axis": zone, "voltage": 200e3, "strong_beams": 30}
    reflections = np.array([(0, 0, 0)])
    model = BlochModel(gan, SimulationSettings.from_user(**kw), reflections, 4, 0.02,
                       _params([name], gan), thickness=800.0)  # fmt: skip
    factor = 1.005
    x = torch.tensor([model.parameters[0].value * factor], dtype=torch.float64)
    model.choose_beams(x)
    got = model.discs(x).detach().numpy()
    lp = list(gan.lattice_parameters)
    for i, axis in enumerate(model.parameters[0].axes):
        lp[i] *= factor if axis else 1.0
    strained = Crystal.from_dict({**gan.to_dict(), "lattice_parameters": lp})
    ref = compute_discs(
        strained, thickness=[800.0], reflections=reflections.tolist(), pixels=4,
        disc_radius=0.04, solver="exact", device="cpu", show_progressbar=False,
        x_direction=model.frame.x_direction, symmetry=False, **kw,
    )  # fmt: skip
    np.testing.assert_allclose(got, ref.discs[0], rtol=0, atol=1e-6 * ref.discs[0].max())
