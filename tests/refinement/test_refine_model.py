"""The differentiable forward model: agreement with the engine, gradients, symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperspy_lacbed.bloch.discs import compute_discs
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import Crystal, load_structure
from hyperspy_lacbed.refinement.driver import Problem
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.refinement.parameters import (
    ParameterError,
    crystal_sites,
    resolve_parameters,
)
from hyperspy_lacbed.train.prototypes import build_prototype

#: Closed under the [001] point group: the engine forces the symmetry images of the discs
#: into every beam set, the model forces exactly the discs asked for.
SI_DISCS = [
    (0, 0, 0), (2, 2, 0), (-2, -2, 0), (2, -2, 0), (-2, 2, 0), (4, 0, 0), (-4, 0, 0), (0, 4, 0),
    (0, -4, 0),
]  # fmt: skip


def fesi() -> Crystal:
    """FeSi (B20, P2_13): both sites are x,x,x (a free coordinate along [111])."""
    return build_prototype(
        "B20", params={"x": 0.1358, "u": 0.844}, b_iso={"M": 0.3, "X": 0.4}, name="FeSi"
    )


@pytest.mark.parametrize(
    ("name", "physics"),
    [
        ("Si", {"absorption": "proportional"}),
        ("GaAs", {"absorption": "bird-king"}),
        ("Si", {"preset": "felix", "beam_pool": 60}),
        ("GaAs", {"strong_beams": 12, "weak_beams": 10}),
    ],
)
def test_model_matches_engine(name, physics):
    """Same beams, no Bethe: the matrix exponential reproduces the eigen-solve engine."""
    crystal = load_structure(name)
    kw = {"zone_axis": (0, 0, 1), "voltage": 200e3, "strong_beams": 20, **physics}
    ref = compute_discs(
        crystal,
        thickness=[800.0],
        reflections=SI_DISCS,
        pixels=8,
        solver="exact",
        device="cpu",
        show_progressbar=False,
        **kw,
    )
    model = BlochModel(
        crystal, SimulationSettings.from_user(**kw), np.array(SI_DISCS), 8, ref.dk, thickness=800.0
    )
    got = model.discs(model.start_vector()).numpy()
    want = ref.discs[0]
    assert np.abs(got - want).max() <= 1e-6 * want.max()


def test_model_matches_engine_tilted_normal():
    """A surface normal off the beam (the GeSn geometry) and Bird–King absorption."""
    crystal = load_structure("Si")
    refl = [(0, 0, 0), (0, 0, 4), (2, 2, 0), (-2, -2, 0), (1, 1, 1)]
    kw = {
        "zone_axis": (1, -1, 0),
        "x_direction": (0, 0, -1),
        "surface_normal": (1, -1, 1),
        "absorption": "bird-king",
        "strong_beams": 15,
    }
    ref = compute_discs(
        crystal, thickness=[600.0], reflections=refl, pixels=6, solver="exact", device="cpu",
        show_progressbar=False, symmetry=False, **kw
    )  # fmt: skip
    model = BlochModel(
        crystal, SimulationSettings.from_user(**kw), np.array(refl), 6, ref.dk, thickness=600.0
    )
    got = model.discs(model.start_vector()).numpy()
    assert np.abs(got - ref.discs[0]).max() <= 1e-6 * ref.discs[0].max()


def _check_gradient(problem: Problem, x: torch.Tensor, rel: float = 1e-3) -> None:
    xg = x.clone().requires_grad_(True)
    loss = problem.loss(problem.model.intensities(xg), xg)
    (grad,) = torch.autograd.grad(loss, xg)
    assert torch.isfinite(grad).all()
    for k, p in enumerate(problem.model.parameters):
        h = 1e-4 * p.step
        e = torch.zeros_like(x)
        e[k] = h
        fd = (problem.value(x + e) - problem.value(x - e)) / (2 * h)
        assert abs(float(grad[k]) - fd) <= rel * abs(fd) + 1e-9 * float(grad.abs().max()), (
            p.name,
            float(grad[k]),
            fd,
        )


def _problem(crystal, names, pixels, dk, fom="zncc", phys=None, data=None, **kw):
    phys = phys or SimulationSettings.from_user(zone_axis=(0, 0, 1), strong_beams=10)
    params = resolve_parameters(
        names,
        crystal,
        thickness=700.0,
        absorption=phys.absorption,
        absorption_fraction=phys.absorption_fraction,
        fom=fom,
        blur=0.7,
        disc_radius=dk * pixels / 2,
    )
    model = BlochModel(crystal, phys, np.array(SI_DISCS), pixels, dk, params, thickness=700.0)
    if data is None:
        rng = np.random.default_rng(1)
        data = rng.uniform(0, 1, (len(SI_DISCS), pixels, pixels))
    mask = np.ones_like(data, bool)
    return Problem(model, data if fom == "zncc" else 1e3 * data, mask, fom, (1, False), 0.7, None)


@pytest.mark.parametrize("fom", ["zncc", "lsq"])
def test_gradient_matches_finite_differences(fom):
    """Autograd against central differences at random points, every kind of parameter."""
    names = ["thickness", "B", "absorption", "scale", "offset", "blur", "Ug[2,2,0]"]
    if fom == "lsq":
        names.append("background")
    problem = _problem(load_structure("Si"), names, 6, 0.04, fom=fom)
    rng = np.random.default_rng(7)
    for _ in range(2):
        x = torch.tensor(
            [p.value + rng.uniform(-1, 1) * 20 * p.step for p in problem.model.parameters],
            dtype=torch.float64,
        )
        _check_gradient(problem, x)


@pytest.mark.parametrize("propagator", ["eig", "expm"])
def test_gradient_at_degenerate_symmetric_tilt(propagator):
    """A pixel exactly on the [001] zone axis (fourfold: degenerate eigenvalues)."""
    crystal = load_structure("Si")
    dk = 0.04
    problem = _problem(crystal, ["thickness", "B", "offset", "Ug[2,2,0]"], 4, dk)
    model = problem.model
    model.propagator = propagator
    x = model.start_vector()
    # offset +dk/2 moves pixel (N-1, N-1) onto kx = ky = 0 exactly
    x[model.names.index("offset_x")] = 0.5 * dk
    x[model.names.index("offset_y")] = 0.5 * dk
    model.choose_beams(x)  # the beam set of the on-axis tilt is the symmetric one
    t = model.tilts(x)
    on_axis = int(np.flatnonzero((t.abs().sum(1) == 0).numpy())[0])
    pot, k0 = model._potential(x)
    a, _ = model._matrices(x, pot, k0, np.array([on_axis]))
    gamma = torch.linalg.eigvals(a[0]).numpy()
    gaps = np.abs(gamma[:, None] - gamma[None, :]) + np.eye(len(gamma))
    assert gaps.min() < 1e-10  # the test really has a degenerate tilt
    _check_gradient(problem, x)


def test_gradient_coordinate_and_occupancy():
    """A free x,x,x coordinate and an occupancy (FeSi, P2_13)."""
    crystal = fesi()
    problem = _problem(crystal, ["xyz[Fe1]", "occupancy[Si]", "B[Fe]"], 4, 0.05)
    x = problem.model.start_vector()
    x[0] = 0.003
    _check_gradient(problem, x)


def test_free_coordinates_follow_symmetry():
    sites = {s.label: s for s in crystal_sites(fesi())}
    d = sites["Fe1"].free_directions
    assert d.shape == (1, 3) and np.allclose(d[0], [1, 1, 1])
    # every Fe atom moves by its image of the displacement, keeping the space group
    c = fesi()
    moved = c.with_positions(c.positions + 0.01 * sites["Fe1"].displacement[0])
    assert moved.space_group_number == 198
    si = {s.label: s for s in crystal_sites(load_structure("Si"))}
    assert len(si["Si1"].free_directions) == 0


def test_parameter_errors():
    si = load_structure("Si")
    kw = dict(
        thickness=500.0, absorption="proportional", absorption_fraction=0.1, fom="zncc", blur=0.0
    )
    with pytest.raises(ParameterError, match="fixed by symmetry"):
        resolve_parameters(["xyz[Si1]"], si, **kw)
    with pytest.raises(ParameterError, match="neither an element"):
        resolve_parameters(["B[Sn]"], si, **kw)
    with pytest.raises(ParameterError, match="ZNCC"):
        resolve_parameters(["background"], si, **kw)
    with pytest.raises(ParameterError, match="forbidden"):
        resolve_parameters(["Ug[2,0,0]"], si, **kw)
    with pytest.raises(ParameterError, match="fixes the phase"):
        resolve_parameters(["Ug[2,2,0].phase"], si, **kw)
    with pytest.raises(ParameterError, match="bird-king"):
        resolve_parameters(["absorption"], si, **{**kw, "absorption": "bird-king"})
    with pytest.raises(ParameterError, match="Unknown parameter"):
        resolve_parameters(["lattice"], si, **kw)
    assert math.isfinite(resolve_parameters(["B"], si, **kw)[0].value)


def test_occupancy_keeps_mixed_site_sum():
    """GeSn: Sn and Ge share the 8a site; refining Sn moves Ge the other way."""
    from pathlib import Path

    cif = (
        Path(__file__).resolve().parents[3] / "shared" / "experimental" / "GeSn_1-10" / "GeSn.cif"
    )
    if not cif.is_file():
        pytest.skip("GeSn.cif not available")
    crystal = load_structure(cif)
    kw = dict(
        thickness=500.0, absorption="proportional", absorption_fraction=0.1, fom="zncc", blur=0.0
    )
    (p,) = resolve_parameters(["occupancy[Sn]"], crystal, **kw)
    model = BlochModel(
        crystal, SimulationSettings.from_user(zone_axis=(1, -1, 0), strong_beams=8),
        np.array([(0, 0, 0), (1, 1, 1)]), 2, 0.05, [p],
    )  # fmt: skip
    occ, _, _ = model.atom_values(torch.tensor([0.15], dtype=torch.float64))
    sn = np.array(crystal.elements) == "Sn"
    assert np.allclose(occ.numpy()[sn], 0.15) and np.allclose(occ.numpy()[~sn], 0.85)
    (q,) = resolve_parameters(["occupancy[Sn]"], crystal, keep_site_sums=False, **kw)
    assert np.allclose(q.atoms[~sn], 0.0)


def test_gradient_with_bethe_potentials():
    phys = SimulationSettings.from_user(zone_axis=(0, 0, 1), strong_beams=8, weak_beams=6)
    problem = _problem(
        load_structure("GaAs"), ["thickness", "B", "offset", "Ug[2,0,0]"], 4, 0.04, phys=phys
    )
    assert problem.model._weak is not None
    x = problem.model.start_vector()
    x[problem.model.names.index("offset_x")] = 0.003
    _check_gradient(problem, x)


def test_chunked_gradient_equals_the_whole_graph():
    """The bounded-memory gradient (one chunk of tilts at a time) is the full one."""
    import torch

    problem = _problem(load_structure("GaAs"), ["thickness", "B", "offset"], 6, 0.04)
    u = problem.to_u(problem.model.start_vector()).clone().requires_grad_(True)
    loss, grad = problem.value_and_grad(u)
    problem.max_graph_bytes = 0  # force the chunked path
    problem.model.chunk = 7  # 36 tilts in 6 chunks, the last one short
    loss_c, grad_c = problem.value_and_grad(u)
    assert float(loss_c) == pytest.approx(float(loss), rel=1e-12)
    assert torch.allclose(grad_c, grad, rtol=1e-9, atol=1e-12 * float(grad.abs().max()))


def test_model_takes_the_engines_converged_beams():
    """Beam counts left to the tolerance are the ones simulate chooses (one rule)."""
    from dataclasses import replace

    from hyperspy_lacbed.bloch.discs import compute_discs

    crystal = load_structure("Si")
    settings = SimulationSettings.from_user(zone_axis=(0, 0, 1), tolerance=0.02)
    ref = compute_discs(
        crystal, replace(settings, thickness=(700.0,), pixels=8, reflections=SI_DISCS,
                         disc_radius=0.16), show_progressbar=False,
    )  # fmt: skip
    model = BlochModel(crystal, settings, np.array(SI_DISCS), 8, 0.04, thickness=700.0)
    assert (model.settings.strong_beams, model.settings.weak_beams) == (
        ref.settings.strong_beams,
        ref.settings.weak_beams,
    )


def test_model_matches_engine_with_anisotropic_displacements():
    """The model's torch structure factors carry the tensors as the engine's do."""
    crystal = load_structure("GaAs")
    u = np.diag([0.004, 0.009, 0.015])  # not isotropic: B_eq alone would differ
    b_eq = 8 * np.pi**2 * np.trace(u) / 3
    aniso = Crystal.from_dict(
        {
            **crystal.to_dict(),
            "u_aniso": [u.tolist()] * len(crystal),
            "b_iso": [b_eq] * len(crystal),
        }
    )
    kw = {"zone_axis": (0, 0, 1), "voltage": 200e3, "strong_beams": 14}
    ref = compute_discs(
        aniso, thickness=[800.0], reflections=SI_DISCS, pixels=6, solver="exact",
        device="cpu", symmetry=False, show_progressbar=False, **kw,
    )  # fmt: skip
    model = BlochModel(
        aniso, SimulationSettings.from_user(**kw), np.array(SI_DISCS), 6, ref.dk, thickness=800.0
    )
    out = model.discs(model.start_vector()).detach().numpy()
    assert np.abs(out - ref.discs[0]).max() <= 1e-9 * ref.discs[0].max()
    iso = compute_discs(
        Crystal.from_dict({**crystal.to_dict(), "b_iso": [b_eq] * len(crystal)}),
        thickness=[800.0], reflections=SI_DISCS, pixels=6, solver="exact",
        device="cpu", symmetry=False, show_progressbar=False, **kw,
    ).discs[0]  # fmt: skip
    # the same B_eq, isotropic: the anisotropy itself matters here
    assert np.abs(out - iso).max() > 1e-4 * iso.max()
