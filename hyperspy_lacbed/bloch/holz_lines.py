"""Dynamical positions of HOLZ lines: where a HOLZ beam meets the zero-order Bloch states.

Kinematically a HOLZ line lies where s_g = 0
(:func:`~hyperspy_lacbed.bloch.holz.line_crossing`). In a crystal the incident wave
travels as zero-order Bloch states with eigenvalues γ_j, and a weak HOLZ beam takes
intensity from state j where its own diagonal element of the structure matrix equals
γ_j: the line splits into branches, one per excited state, either side of s_g = 0
(Jones, Rackham & Steeds 1977). :func:`line_branches` gives that condition along a path,
from the engine's own zero-order matrices, as the first-order prediction against which
``benchmarks/bench_holz.py`` and the tests check the engine's HOLZ lines.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hyperspy_lacbed.bloch.geometry import excitation_errors, incident_vectors
from hyperspy_lacbed.bloch.matrix import structure_matrices
from hyperspy_lacbed.bloch.pool import normal_in_frame, prepare_pool
from hyperspy_lacbed.bloch.solver import padded_indices, select_beams
from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame

__all__ = ["line_branches"]


def line_branches(
    crystal: Crystal,
    frame: ZoneFrame,
    settings,
    hkl,
    tilts: np.ndarray,
    states: int = 2,
) -> np.ndarray:
    """Where the dynamical HOLZ line of ``hkl`` lies along a path: one branch per Bloch state.

    A weak HOLZ beam g couples to the zero-order Bloch wave j where its own diagonal
    element of the structure matrix, s_g K / (k·n d_g), equals that state's eigenvalue
    γ_j: the line splits into branches, one per excited state, displaced from the
    kinematic s_g = 0 by γ_j (first order in U_g; Jones, Rackham & Steeds 1977). This
    returns, at each tilt, that diagonal element minus Re γ_j for the ``states`` states
    most excited from 000 at the path's middle; a branch lies where a column changes
    sign.

    Parameters
    ----------
    crystal, frame
        The crystal and its zone-axis frame.
    settings
        :class:`~hyperspy_lacbed.bloch.settings.SimulationSettings` with explicit beam
        counts; its zero-order physics gives the Bloch states.
    hkl
        The HOLZ reflection.
    tilts
        (T, 2) transverse tilts of the path, 1/Å.
    states
        Bloch states followed.

    Returns
    -------
    numpy.ndarray
        (T, states) in 1/Å.
    """
    import torch

    zolz = replace(settings, holz=False)
    normal = normal_in_frame(crystal, frame, settings.surface_normal)
    pool, rule = prepare_pool(crystal, frame, zolz, normal, np.zeros((1, 3), int))
    t = np.atleast_2d(np.asarray(tilts, float))
    k = incident_vectors(t[:, 0], t[:, 1], pool.k0)
    s = excitation_errors(k, pool.g, pool.k0)
    strong, weak = select_beams(s, pool, rule, np.array([0]))
    idx = padded_indices(strong)[0]
    widx = padded_indices(weak)[0] if weak.any() else None
    a, _ = structure_matrices(
        torch.as_tensor(pool.potential), torch.as_tensor(s), pool.k0,
        torch.as_tensor(k @ pool.normal), torch.as_tensor(pool.g @ pool.normal),
        torch.as_tensor(idx), None if widx is None else torch.as_tensor(widx),
    )  # fmt: skip
    gamma, vec = torch.linalg.eig(a)
    e0 = torch.zeros(vec.shape[:2], dtype=vec.dtype)
    e0[:, 0] = 1.0
    alpha = torch.linalg.solve(vec, e0)
    weight = (vec[:, 0, :] * alpha).abs().numpy()  # (T, M)
    gamma = gamma.real.numpy()
    # follow the states most excited at the middle by eigenvalue continuity
    mid = len(t) // 2
    chosen = np.argsort(-weight[mid])[:states]
    ref = gamma[mid, chosen]
    followed = np.empty((len(t), states))
    for j in range(states):
        for i in range(len(t)):
            followed[i, j] = gamma[i, np.argmin(np.abs(gamma[i] - ref[j]) - 1e-3 * weight[i])]
    g = (crystal.g_vectors(np.asarray(hkl).reshape(1, 3)) @ frame.rotation.T)[0]
    s_g = excitation_errors(k, g[None], pool.k0)[:, 0]
    kn = k @ pool.normal
    diag = s_g * pool.k0 / (kn * (1 + (g @ pool.normal) / kn))
    return diag[:, None] - followed
