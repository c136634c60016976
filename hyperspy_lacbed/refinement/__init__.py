"""Refinement by gradient descent through a differentiable Bloch-wave model (array layer).

:mod:`~hyperspy_lacbed.refinement.parameters` (names, bounds, symmetry),
:mod:`~hyperspy_lacbed.refinement.model` (the torch forward model),
:mod:`~hyperspy_lacbed.refinement.fom` (ZNCC and least squares),
:mod:`~hyperspy_lacbed.refinement.fit` (coarse-to-fine L-BFGS and uncertainties) and
:mod:`~hyperspy_lacbed.refinement.result`. The signal-level entry points are
``hyperspy_lacbed.refine`` and ``LACBED.refine``
(:mod:`hyperspy_lacbed.signals.refinement`). The package is not called ``refine`` so that
importing it never shadows the function ``hyperspy_lacbed.refine``.
"""
