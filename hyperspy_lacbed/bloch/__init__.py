"""Bloch-wave engine on plain arrays: settings, geometry, structure matrices and discs.

:mod:`~hyperspy_lacbed.bloch.settings` (the validated settings and presets),
:mod:`~hyperspy_lacbed.bloch.geometry`, :mod:`~hyperspy_lacbed.bloch.solver` and
:mod:`~hyperspy_lacbed.bloch.discs` (LACBED discs as NumPy arrays). Nothing here imports
HyperSpy; :func:`hyperspy_lacbed.simulate` builds the signal (:doc:`/architecture`).
"""
