"""cGAN surrogates: architectures, model registry, normalisation and inference."""
