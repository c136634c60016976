"""cGAN surrogates on plain arrays: architectures, registry, domain, encoding, runner.

Nothing here imports HyperSpy or the signals; the signal side is
:mod:`hyperspy_lacbed.api.surrogates` and :mod:`hyperspy_lacbed.signals.surrogates`
(:doc:`/architecture`). torch is imported when a network is built or run.
"""
