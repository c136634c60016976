"""The built wheel carries what HyperSpy and users need at run time."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("hyperspy_lacbed-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_extension_yaml_data_and_entry_point(wheel):
    names = set(wheel.namelist())
    assert "hyperspy_lacbed/hyperspy_extension.yaml" in names
    assert "hyperspy_lacbed/crystal/data/kirkland.json" in names
    assert "hyperspy_lacbed/crystal/data/lobato.json" in names
    assert any(re.match(r"hyperspy_lacbed/data/structures/Si\.cif$", n) for n in names)
    for direction in ("forward", "inverse"):  # the shipped weights travel with the wheel
        for f in ("model.safetensors", "card.json"):
            assert f"hyperspy_lacbed/_models/default-{direction}/{f}" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = wheel.read(entry).decode()
    assert "[hyperspy.extensions]" in text
    assert "hyperspy_lacbed = hyperspy_lacbed" in text
    assert "hyperspy-lacbed = hyperspy_lacbed.cli:main" in text


def test_import_hyperspy_does_not_import_torch():
    # HyperSpy imports every registered extension's signal modules lazily; neither that nor
    # importing the package may pull in torch (seconds of import time).
    code = "import sys, hyperspy.api as hs, hyperspy_lacbed; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
