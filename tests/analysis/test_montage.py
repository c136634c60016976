"""Montage kernels: laying discs out and cutting them back, NumPy and dask alike."""

from __future__ import annotations

import dask.array as da
import numpy as np

from hyperspy_lacbed.analysis.montage import (
    cut_index,
    disc_mask,
    disc_positions,
    discs_overlap,
    gather,
    grid_montage,
    min_spacing,
    montage_index,
)


def test_lay_out_and_cut_back_is_exact_inside_the_discs():
    rng = np.random.default_rng(1)
    n, r = 8, 3
    discs = rng.random((r, n, n))
    g = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5]])
    dk = 0.05
    mask = disc_mask(n, n, dk, dk, n / 2 * dk, "circle")
    spacing = min_spacing(g, n / 2 * dk, dk, dk, n, n, "circle")
    pos = disc_positions(spacing, g, dk, dk)
    assert not discs_overlap(pos, mask)
    shape = tuple(int(v) for v in pos.max(axis=0) + n)
    montage = gather(discs.reshape(-1), montage_index(pos, mask, shape), np.nan).reshape(shape)
    back = gather(montage.reshape(-1), cut_index(pos, mask, shape), np.nan).reshape(r, n, n)
    np.testing.assert_array_equal(back[:, mask], discs[:, mask])
    assert np.isnan(back[:, ~mask]).all()
    # the same on dask arrays, lazily
    lazy = gather(da.from_array(discs.reshape(-1)), montage_index(pos, mask, shape), np.nan)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute().reshape(shape), montage)


def test_grid_montage_places_discs_by_h_and_k():
    discs = np.stack([np.full((4, 4), v) for v in (1.0, 2.0, 3.0)])
    out = grid_montage(discs, [[0, 0, 0], [2, 0, 0], [0, 2, 0]])
    assert out.shape == (9, 9)  # two rows and columns of 4 pixels and a 1-pixel gap
    assert out[0, 0] == 1.0 and out[0, 5] == 2.0 and out[5, 0] == 3.0
    assert np.isnan(out[5, 5]) and np.isnan(out[4, 0])
    assert grid_montage(discs).shape == (4, 14)
