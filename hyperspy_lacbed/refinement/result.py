"""The result of a refinement: values, uncertainties, correlations, best fit and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperspy_lacbed.crystal.structure import Crystal
from hyperspy_lacbed.refinement.fom import zscore


def crystal_to_diffpy(crystal: Crystal):
    """A ``diffpy.structure.Structure`` (space group P1, every atom listed) of a crystal."""
    from diffpy.structure import Atom, Lattice, Structure

    lattice = Lattice(*crystal.lattice_parameters)
    atoms = [
        Atom(
            e,
            xyz=list(p),
            occupancy=float(o),
            Uisoequiv=float(b) / (8 * np.pi**2),
            lattice=lattice,
        )
        for e, p, o, b in zip(
            crystal.elements, crystal.positions, crystal.occupancies, crystal.b_iso
        )
    ]
    return Structure(atoms, lattice=lattice, title=crystal.name or "refined")


@dataclass
class RefinementResult:
    """Everything a refinement found.

    Attributes
    ----------
    names
        The refined parameters, in order.
    values, start, uncertainties, units
        Refined values, start values, standard uncertainties (from the Gauss–Newton
        curvature scaled by the residual variance) and units, by name.
    covariance, correlation
        (p, p) matrices in the order of ``names``.
    residual_variance
        ``s² = |r|² / (n − p)`` at the optimum.
    crystal
        The refined crystal (B, occupancies, positions applied); :meth:`to_cif` writes it.
    thickness
        Refined (or fixed) thickness in Å.
    fom, fom_value
        Figure of merit kind and its final value.
    history
        Figure of merit at each evaluation, over all stages.
    zncc_start, zncc
        ZNCC of each disc at the start values and at the optimum, at full resolution
        (``check``; the final stage's grid when the fit ran with ``check=False``).
    simulated, experiment, mask
        Best-fit images (data frame, blurred), the compared data and the valid pixels
        (R, ny, nx), on the same grid.
    reflections, dk, bin
        Discs, pixel size (1/Å) and binning of that grid.
    message
        How each stage stopped.
    stages
        Per-stage log (grid, beams, figure of merit, evaluations).
    wall_time
        Seconds.
    recipe
        Every input needed to run the fit again (plain values, metadata-ready).
    check
        The full-resolution comparison of the start and the result (figures of merit
        ``fom_start``/``fom_end``, per-disc ``zncc_start``/``zncc_end``, pixels, beams), or
        None.
    signal, difference_signal
        The best fit and the z-scored differences as ``LACBED`` signals (set by the
        signal-level API, :func:`hyperspy_lacbed.refinement`).
    """

    names: list[str]
    values: dict[str, float]
    start: dict[str, float]
    uncertainties: dict[str, float]
    units: dict[str, str]
    covariance: np.ndarray
    correlation: np.ndarray
    residual_variance: float
    crystal: Crystal
    thickness: float
    fom: str
    fom_value: float
    history: np.ndarray
    zncc_start: np.ndarray
    zncc: np.ndarray
    simulated: np.ndarray
    experiment: np.ndarray
    mask: np.ndarray
    reflections: np.ndarray
    dk: float
    bin: int
    message: str
    stages: list[dict[str, Any]]
    wall_time: float
    recipe: dict[str, Any]
    check: dict[str, Any] | None = None
    signal: Any = field(default=None, repr=False)
    difference_signal: Any = field(default=None, repr=False)

    @property
    def mean_zncc(self) -> float:
        """Mean ZNCC over the discs at the optimum."""
        return float(np.nanmean(self.zncc))

    @property
    def mean_zncc_start(self) -> float:
        """Mean ZNCC over the discs at the start values."""
        return float(np.nanmean(self.zncc_start))

    @property
    def difference(self) -> np.ndarray:
        """z-scored simulation minus z-scored experiment per disc (NaN outside the mask)."""
        return zscore(self.simulated, self.mask) - zscore(self.experiment, self.mask)

    def to_cif(self, path: str | Path) -> Path:
        """Write the refined crystal as a CIF file (via diffpy.structure)."""
        path = Path(path)
        crystal_to_diffpy(self.crystal).write(str(path), "cif")
        return path

    def correlated_pairs(self, threshold: float = 0.8) -> list[tuple[str, str, float]]:
        """Parameter pairs whose correlation exceeds ``threshold`` in magnitude, strongest first.

        Parameters
        ----------
        threshold
            The smallest ``|r|`` listed.

        Returns
        -------
        list of (name, name, r)
        """
        corr = np.asarray(self.correlation, float)
        pairs = [
            (self.names[i], self.names[j], float(corr[i, j]))
            for i in range(len(self.names))
            for j in range(i + 1, len(self.names))
            if np.isfinite(corr[i, j]) and abs(corr[i, j]) > threshold
        ]
        return sorted(pairs, key=lambda p: -abs(p[2]))

    def summary(self) -> str:
        """A table of the refined values with their uncertainties and strong correlations."""
        lines = [
            f"{'parameter':<22}{'start':>14}{'refined':>14}{'σ':>12}  unit",
        ]
        for n in self.names:
            lines.append(
                f"{n:<22}{self.start[n]:>14.6g}{self.values[n]:>14.6g}"
                f"{self.uncertainties[n]:>12.3g}  {self.units[n]}"
            )
        lines.append(
            f"mean ZNCC {self.mean_zncc_start:.4f} -> {self.mean_zncc:.4f}; "
            f"{self.fom} = {self.fom_value:.6g}; {self.message}; {self.wall_time:.1f} s"
        )
        if self.check is not None:
            n = self.check["pixels"]
            lines.append(
                f"checked at full resolution ({n} × {n} px, {self.check['max_beams']} beams): "
                f"{self.fom} {self.check['fom_start']:.6g} at the start, "
                f"{self.check['fom_end']:.6g} refined"
            )
        pairs = self.correlated_pairs()
        if pairs:
            lines.append("strongly correlated (|r| > 0.8): " + ", ".join(
                f"{a}/{b} {r:+.3f}" for a, b, r in pairs
            ))  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Plain values for metadata: the recipe, the results and the uncertainties."""
        return {
            "recipe": self.recipe,
            "names": list(self.names),
            "values": dict(self.values),
            "start": dict(self.start),
            "uncertainties": dict(self.uncertainties),
            "units": dict(self.units),
            "correlation": np.asarray(self.correlation).tolist(),
            "residual_variance": float(self.residual_variance),
            "thickness": float(self.thickness),
            "fom": self.fom,
            "fom_value": float(self.fom_value),
            "history": np.asarray(self.history).tolist(),
            "mean_zncc_start": self.mean_zncc_start,
            "mean_zncc": self.mean_zncc,
            "zncc": np.asarray(self.zncc).tolist(),
            "message": self.message,
            "stages": self.stages,
            "wall_time": float(self.wall_time),
            "check": None
            if self.check is None
            else {
                k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.check.items()
            },
            "crystal": self.crystal.to_dict(),
        }

    def plot(self, discs: int | None = 6):
        """Figure of merit history and difference images (matplotlib figure).

        Parameters
        ----------
        discs
            How many discs to show (the worst-fitting first); None for all.
        """
        import matplotlib.pyplot as plt

        order = np.argsort(np.nan_to_num(self.zncc, nan=-2))
        if discs is not None:
            order = order[:discs]
        n = len(order)
        fig, axes = plt.subplots(3, n + 1, figsize=(2.2 * (n + 1), 6.6), squeeze=False)
        ax = axes[0, 0]
        ax.plot(self.history, ".-")
        ax.set_xlabel("evaluation")
        ax.set_ylabel(self.fom)
        ax.set_title("figure of merit")
        for a in axes[1:, 0]:
            a.axis("off")
        diff = self.difference
        sim = zscore(self.simulated, self.mask)
        exp = zscore(self.experiment, self.mask)
        for col, r in enumerate(order, start=1):
            label = "".join(str(int(v)) for v in self.reflections[r])
            for row, (img, kw) in enumerate(
                (
                    (exp[r], {"cmap": "gray"}),
                    (sim[r], {"cmap": "gray"}),
                    (diff[r], {"cmap": "RdBu_r", "vmin": -3, "vmax": 3}),
                )
            ):
                a = axes[row, col]
                a.imshow(img, **kw)
                a.set_xticks([])
                a.set_yticks([])
            axes[0, col].set_title(f"{label}  {self.zncc[r]:.3f}", fontsize=8)
        axes[0, 1].set_ylabel("experiment")
        axes[1, 1].set_ylabel("best fit")
        axes[2, 1].set_ylabel("difference")
        fig.suptitle(f"mean ZNCC {self.mean_zncc_start:.4f} → {self.mean_zncc:.4f}", fontsize=10)
        fig.tight_layout()
        return fig
