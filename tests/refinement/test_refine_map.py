"""Maps: every pattern of a LACBED signal with scan axes refined on its own, lazily through dask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperspy_lacbed as hl
from hyperspy_lacbed.bloch.settings import SimulationSettings
from hyperspy_lacbed.crystal.structure import load_structure
from hyperspy_lacbed.refinement.model import BlochModel
from hyperspy_lacbed.signals.lacbed import LACBED

DISCS = [(0, 0, 0), (2, 2, 0), (-2, -2, 0), (4, 0, 0)]
DK = 0.03
THICKNESS = np.linspace(500.0, 1500.0, 5)  # a wedge, 50–150 nm
OPTIONS = dict(thickness=(400.0, 1700.0), fom="lsq", strong_beams=10)


@pytest.fixture(scope="module")
def wedge() -> LACBED:
    """Five Si [001] patterns of 10 × 10 px along a wedge, Poisson noise (1e4 counts)."""
    crystal = load_structure("Si")
    rng = np.random.default_rng(0)
    patterns = []
    for t in THICKNESS:
        model = BlochModel(
            crystal, SimulationSettings.from_user(strong_beams=10), np.array(DISCS), 10, DK,
            thickness=t,
        )  # fmt: skip
        clean = model.discs(torch.zeros(0, dtype=torch.float64)).numpy()
        patterns.append(rng.poisson(1e4 * clean / clean.max()).astype(float))
    g = np.array(DISCS, float)[:, :2] / 5.431
    s = LACBED.from_discs(
        np.array(patterns), DISCS, g, thickness=1000.0, dk=DK, voltage=200e3,
        zone_axis=[0, 0, 1], source="experiment",
    )  # fmt: skip
    s.axes_manager.navigation_axes[1].name = "x"
    return s


@pytest.fixture(scope="module")
def eager(wedge):
    return wedge.refine("Si", ["thickness"], progress=False, **OPTIONS)


def test_every_pattern_recovers_its_thickness(wedge, eager):
    before = wedge.data.copy()
    t = eager.values["thickness"]
    sigma = eager.uncertainties["thickness"]
    assert t.axes_manager.signal_axes[0].name == "x" and t.data.shape == (5,)
    assert np.all(np.abs(t.data - THICKNESS) <= 3 * sigma.data), (t.data, sigma.data)
    assert np.all(sigma.data > 0) and np.all(sigma.data < 5.0)
    assert np.all(eager.zncc.data > eager.zncc_start.data)
    assert np.all(np.isfinite(eager.fom.data))
    best = eager.best_fit
    assert isinstance(best, LACBED) and best.data.shape == wedge.data.shape
    assert best.reflections == wedge.reflections
    assert np.array_equal(wedge.data, before)
    assert "thickness" in eager.summary()


def test_lazy_equals_eager_and_stays_lazy(wedge, eager):
    lazy = wedge.as_lazy().refine("Si", ["thickness"], compute=False, progress=False, **OPTIONS)
    assert lazy.lazy and lazy.values["thickness"]._lazy and lazy.best_fit._lazy
    done = lazy.compute(progress=False)
    assert not done.lazy
    assert np.array_equal(done.packed, eager.packed, equal_nan=True)


def test_a_map_pattern_is_the_single_refinement(wedge, eager):
    one = hl.refine(wedge.inav[:, 3], "Si", ["thickness"], progress=False, **OPTIONS)
    assert eager.values["thickness"].data[3] == pytest.approx(one.thickness, rel=1e-12)
    assert eager.uncertainties["thickness"].data[3] == pytest.approx(
        one.uncertainties["thickness"], rel=1e-9
    )


def test_map_errors_are_named_up_front(wedge):
    with pytest.raises(ValueError, match="neither an element"):
        wedge.refine("Si", ["B[Sn]"], compute=False, progress=False, **OPTIONS)
    with pytest.raises(ValueError, match="always checked"):
        wedge.refine("Si", ["thickness"], check=False, progress=False, **OPTIONS)
    bad = wedge.deepcopy()
    bad.axes_manager.navigation_axes[0].name = "disc"
    with pytest.raises(ValueError, match="one navigation axis 'reflection'"):
        bad.refine("Si", progress=False, **OPTIONS)


def test_map_runs_on_the_active_distributed_client(wedge, eager):
    """With a dask.distributed client active, the patterns run on its workers (with its
    progress bar) and give the same values."""
    distributed = pytest.importorskip("distributed")

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        with distributed.get_task_stream(client) as stream:
            res = wedge.refine("Si", ["thickness"], progress=True, **OPTIONS)
    # one refinement task per pattern ran on the cluster's worker
    keys = {str(t["key"]) for t in stream.data if str(t["key"]).startswith("('_refine_block")}
    assert len(keys) == len(THICKNESS), keys
    assert np.allclose(res.values["thickness"].data, eager.values["thickness"].data, rtol=1e-12)
