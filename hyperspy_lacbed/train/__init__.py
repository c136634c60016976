"""Training the surrogates: synthetic crystals, engine-made datasets, the loop, evaluation."""
