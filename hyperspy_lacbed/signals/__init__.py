"""HyperSpy signal classes: LACBED and ProjectedPotential, with their plots."""
