"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hyperspy_lacbed.analysis.compare",
    "hyperspy_lacbed.api.potential",
    "hyperspy_lacbed.api.simulate",
    "hyperspy_lacbed.api.surrogates",
    "hyperspy_lacbed.bloch.settings",
    "hyperspy_lacbed.crystal.scattering",
    "hyperspy_lacbed.crystal.structure",
    "hyperspy_lacbed.nets.physics_informed",
    "hyperspy_lacbed.nets.registry",
    "hyperspy_lacbed.progress",
    "hyperspy_lacbed.train.metrics",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0
