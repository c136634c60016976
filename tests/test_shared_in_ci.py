"""A missing ``../shared`` skips the reference tests locally and fails them in CI (``CI=true``).

About fifteen tests compare against ``../shared`` (Felix, abTEM, py4DSTEM, the structures,
the recorded GeSn discs). A CI job that lost the folder must not pass by skipping them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: Two reference tests: a ``needs_shared`` marker and a ``require_shared`` call.
TARGET = ["crystal/test_crystal.py", "-k", "py4dstem or mixed_occupancy"]


def _pytest(args: list[str], ci: str, shared: Path, cwd: Path = TESTS.parent):
    env = dict(os.environ, CI=ci, HYPERSPY_LACBED_SHARED=str(shared), MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_shared_skips_locally_and_fails_in_ci(ci, tmp_path):
    proc = _pytest([str(TESTS / TARGET[0]), *TARGET[1:]], ci, tmp_path / "no-shared")
    out = proc.stdout + proc.stderr
    if ci:
        assert proc.returncode == 1, out
        # the marker fails in setup (an error), require_shared in the test (a failure)
        assert "1 failed" in out and "1 error" in out, out
        assert "CI=true" in out and "is missing" in out and "skipped" not in out, out
    else:
        assert proc.returncode == 0, out
        assert "2 skipped" in out, out


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_test_that_skips_for_shared_data_itself_fails_in_ci(ci, tmp_path):
    """Tests that check for the data themselves (tests/refinement, tests/train) are caught by
    the conftest hook: their skip becomes a failure in CI."""
    (tmp_path / "test_own_check.py").write_text(
        "import pytest\n\n\ndef test_gesn():\n"
        "    pytest.skip('recorded GeSn data not available')\n\n\n"
        "def test_other_skip():\n    pytest.skip('needs a CUDA device')\n"
    )
    proc = _pytest(
        ["-p", "conftest", "--rootdir", str(tmp_path), str(tmp_path / "test_own_check.py")],
        ci,
        tmp_path / "no-shared",
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    if ci:
        assert "1 failed, 1 skipped" in out and "CI=true" in out, out
    else:
        assert "2 skipped" in out, out
