"""The user-facing functions that read user input and build signals.

:mod:`~hyperspy_lacbed.api.simulate` (``simulate``), :mod:`~hyperspy_lacbed.api.surrogates`
(``generate``) and :mod:`~hyperspy_lacbed.api.potential` (``projected_potential``) sit on
top of the array layers (crystal, bloch, nets) and the signal classes; see
:doc:`/architecture`.
"""
