"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hyperspy_lacbed.bloch.compare",
    "hyperspy_lacbed.bloch.lacbed",
    "hyperspy_lacbed.crystal.scattering",
    "hyperspy_lacbed.crystal.structure",
    "hyperspy_lacbed.nets.inference",
    "hyperspy_lacbed.nets.registry",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0
