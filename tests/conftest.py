"""Shared pytest configuration and fixtures.

The tests mirror the package (``tests/crystal``, ``tests/bloch``, ``tests/api``,
``tests/signals``, ``tests/analysis``, ``tests/nets``, ``tests/train``); constants and
builders shared between them are in ``tests/helpers.py``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re

import hyperspy.api as hs
import numpy as np
import pytest
from helpers import IN_CI, SHARED, require_shared, tiny_dataset

hs.preferences.General.show_progressbar = False

#: Reflections of the small synthetic LACBED fixtures (a cubic crystal, [001]).
REFLECTIONS = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0], [2, 2, 0]]
#: Lattice parameter (Å) of the synthetic crystal: |g_200| = 2 / A.
A = 4.0


def g_vectors(reflections=REFLECTIONS, a=A) -> np.ndarray:
    """[gx, gy] (1/Å) of cubic reflections on [001] with x along [100]."""
    return np.asarray(reflections, dtype=float)[:, :2] / a


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(2024)


@pytest.fixture
def disc_stack(rng) -> dict:
    """Arguments of ``LACBED.from_discs`` for 2 × 3 thicknesses × 6 discs of 16 × 16 pixels.

    The disc radius is 0.75 |g_200| (as in the shipped cGAN domain), so the discs overlap
    at their true g positions. The thicknesses are unevenly spaced.
    """
    n = 8  # half-width in pixels
    radius = 0.75 * 2 / A
    return {
        "discs": rng.random((2, 3, len(REFLECTIONS), 2 * n, 2 * n)).astype("float32"),
        "reflections": REFLECTIONS,
        "g_vectors": g_vectors(),
        "thickness": [500.0, 1000.0, 2000.0],
        "dk": radius / n,
        "voltage": 200e3,
        "zone_axis": [0, 0, 1],
        "settings": {"engine": "test", "n_beams": np.int64(31), "tilts": np.arange(3)},
    }


@pytest.fixture
def lacbed(disc_stack):
    """An in-memory LACBED signal, shape (2, 3, 6, 16, 16)."""
    from hyperspy_lacbed.signals.lacbed import LACBED

    return LACBED.from_discs(**disc_stack)


@pytest.fixture
def lacbed_file(lacbed, tmp_path):
    """The ``lacbed`` fixture saved as ``.hspy`` in a temporary folder."""
    path = tmp_path / "lacbed.hspy"
    lacbed.save(path)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a test module (several test processes share the CPUs)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_dir():
    """The ``../shared`` folder beside the checkout; skips the test when it is absent (in CI:
    fails it)."""
    return require_shared(SHARED)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_shared(*parts): the test needs ../shared (or those paths in it); it skips "
        "without them, and fails in CI (CI=true)",
    )


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("needs_shared")
    if marker is not None:
        for part in marker.args or ("",):
            require_shared(SHARED / part)


#: Skip reasons that mean "the shared data are not there" in tests that check for them
#: themselves (tests/refinement, tests/train); in CI such a skip is a failure.
_SHARED_SKIP = re.compile(r"shared|GeSn", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if _SHARED_SKIP.search(reason):
            report.outcome = "failed"
            report.longrepr = (
                f"CI=true: skipped for missing shared data ({reason}); ../shared must be "
                "beside the checkout in CI"
            )


@pytest.fixture(scope="module")
def tiny_arrays():
    """Bloch-wave discs and potentials of four example crystals on the tiny domain."""
    return tiny_dataset()
