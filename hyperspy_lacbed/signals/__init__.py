"""HyperSpy signal classes: LACBED and ProjectedPotential, their plots and cGAN methods."""
