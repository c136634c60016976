"""Bloch-wave engine: geometry, structure matrices, batched eigen-solves and LACBED discs."""
