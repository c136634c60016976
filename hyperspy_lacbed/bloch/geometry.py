"""Scattering geometry: tilt grids, the beam pool, excitation errors and symmetry of tilts.

Everything is in the zone-axis frame of :func:`hyperspy_lacbed.crystal.structure.zone_frame`
(z along the beam, x along the x-direction, y = z × x), in 1/Å without 2π.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperspy_lacbed.crystal.structure import Crystal, ZoneFrame


def tilt_grid(n_half: int, dk: float) -> tuple[np.ndarray, np.ndarray]:
    """Incident tilts of a (2N)×(2N) LACBED grid.

    Pixel [i, j] is the tilt k_x = (j − N + 0.5)·dk, k_y = (i − N + 0.5)·dk, so the grid is
    centred on the zone axis with no pixel exactly on it (the Felix convention).

    Returns
    -------
    kx, ky
        Arrays of shape (2N, 2N) in 1/Å.
    """
    ax = (np.arange(2 * n_half) - n_half + 0.5) * dk
    ky, kx = np.meshgrid(ax, ax, indexing="ij")
    return kx, ky


def incident_vectors(kx: np.ndarray, ky: np.ndarray, k0: float) -> np.ndarray:
    """3-D incident wave vectors (…, 3) of length ``k0`` with transverse parts (kx, ky)."""
    kz = np.sqrt(k0**2 - kx**2 - ky**2)
    return np.stack([kx, ky, kz], axis=-1)


def excitation_errors(k: Any, g: Any, k0: Any) -> Any:
    """Exact excitation errors s_g (1/Å) for incident vectors ``k`` (…, T, 3) and beams ``g`` (…, P, 3).

    s_g is the distance, along the incident direction, from g to the Ewald sphere:
    ``|k + g + s_g k̂|² = K²``, positive for g inside the sphere. For small s it reduces to
    ``s_g ≈ (K² − |k + g|²) / 2K``.

    The one definition for NumPy arrays and torch tensors alike (the engine and the
    differentiable models): ``k0`` is a number or broadcasts against (…, T, P).

    Returns
    -------
    Excitation errors (…, T, P), of the inputs' array type.
    """
    gk = k @ g.swapaxes(-1, -2)  # (…, T, P)
    b = k0 + gk / k0
    c = (g**2).sum(-1)[..., None, :] + 2 * gk
    # -b + sqrt(b² - c) written to avoid cancellation: -c / (b + sqrt(b² - c)).
    return -c / (b + (b**2 - c) ** 0.5)


@dataclass(frozen=True)
class TiltSymmetry:
    """How the tilt grid folds under the zone-axis point group.

    ``representatives`` are the flat pixel indices that are solved; ``rep_of[p]`` is the
    representative of pixel p and ``op_of[p]`` the index of the operation R with
    k_p = R k_rep; ``rotations`` are those operations as 3×3 matrices in the frame.
    """

    representatives: np.ndarray
    rep_of: np.ndarray
    op_of: np.ndarray
    rotations: np.ndarray


def frame_point_group(crystal: Crystal, frame: ZoneFrame, normal: np.ndarray) -> np.ndarray:
    """Point-group operations of the crystal that keep the beam and surface normal, in the frame.

    Returns an array (n, 3, 3) of orthogonal matrices acting on frame vectors.
    """
    a = crystal.direct_basis
    f = frame.rotation
    ops = []
    for w in crystal.point_group_rotations:
        r_cart = a.T @ w @ np.linalg.inv(a.T)
        r = f @ r_cart @ f.T
        if np.allclose(r @ [0, 0, 1], [0, 0, 1], atol=1e-8) and np.allclose(
            r @ normal, normal, atol=1e-8
        ):
            ops.append(r)
    return np.array(ops) if ops else np.eye(3)[None]


def fold_tilts(kx: np.ndarray, ky: np.ndarray, rotations: np.ndarray) -> TiltSymmetry:
    """Group the pixels of a square tilt grid into orbits of the operations that map it to itself."""
    n = kx.shape[0]
    dk = kx[0, 1] - kx[0, 0]
    flat = np.stack([kx.ravel(), ky.ravel()], axis=1)
    perms, kept = [], []
    for r in rotations:
        moved = flat @ r[:2, :2].T
        j = (moved[:, 0] / dk + n / 2 - 0.5).round().astype(int)
        i = (moved[:, 1] / dk + n / 2 - 0.5).round().astype(int)
        inside = (i >= 0) & (i < n) & (j >= 0) & (j < n)
        if not inside.all():
            continue
        target = i * n + j
        if not np.allclose(flat[target], moved, atol=1e-9 * max(dk, 1e-12) + 1e-12):
            continue  # e.g. a threefold axis does not map a square grid onto itself
        perms.append(target)
        kept.append(r)
    perms_arr = np.array(perms)  # (n_ops, n_pix): pixel p goes to perms[o, p]
    rep_of = perms_arr.min(axis=0)
    # Pixel p is the image of its representative under the op o with perms[o, rep] == p.
    hits = perms_arr[:, rep_of] == np.arange(rep_of.size)[None, :]
    op_of = hits.argmax(axis=0)
    reps = np.unique(rep_of)
    return TiltSymmetry(reps, rep_of, op_of, np.array(kept))
