"""Analysis of patterns as plain arrays (no HyperSpy, no torch).

:mod:`~hyperspy_lacbed.analysis.compare` (correlation, blur, orientation and thickness
fits of simulated against recorded discs), :mod:`~hyperspy_lacbed.analysis.square`
(the 4mm operations of square grids) and :mod:`~hyperspy_lacbed.analysis.montage`
(laying discs out as one image). See :doc:`/architecture`.
"""
