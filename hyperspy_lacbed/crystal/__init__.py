"""Crystal layer: structures, scattering factors, structure factors and potentials.

Nothing here imports HyperSpy, so the engine can be used on plain arrays.
"""
