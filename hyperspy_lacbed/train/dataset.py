"""Training datasets: Bloch-wave LACBED discs of synthetic crystals in a zarr store.

A :class:`DatasetRecipe` (the model :class:`~hyperspy_lacbed.nets.domain.Domain`, a
number of structures, a seed, the structure-generator settings and a split name) fully
determines a dataset. :func:`generate_dataset` turns it into a zarr group
``<path>/<split>`` with one task per structure in a dask graph (local threads by default,
a ``dask.distributed.Client`` when one is given). Each task writes its finished sample at
once into the arrays (chunks of one sample, so that concurrent tasks never share a
chunk) and sets the sample's ``done`` flag last. Re-running the same recipe skips the
done samples, so a run that was interrupted (killed, out of time, crashed) and resumed
holds exactly the same content as an uninterrupted one. Raising ``n_structures`` of an
existing recipe extends the store (sample ``i`` never depends on the count).

Store layout (group ``<path>/<split>``)::

    potential          (n, P, P)               float32  projected potential, V·Å, one a × a cell
    discs              (n, n_t, R, D, D)       float32  |ψ_g|² per thickness and reflection
    lattice_parameter  (n,)                    float64  Å
    space_group        (n,)                    int16
    n_atoms            (n,)                    int32
    structure          (n,)                    str      JSON: Crystal.to_dict() + "recipe"
    seconds            (n,)                    float32  wall time of the sample (not part of
                                                        the reproducible content)
    done               (n,)                    bool     set last, when the sample is complete
    attrs: recipe, format, domain, reflections, thicknesses, units, space_group_labels

The space-group labels (``space_group`` and the structure's ``"space_group"``) of a store
begun by this version are the symmetry of each crystal's arrangement of atoms
(``space_group_labels = "arrangement"``,
the ``space_group`` of :class:`~hyperspy_lacbed.train.structures.SyntheticStructure`). A
store begun
before has splits without that attribute, which keep the group each structure was drawn
in, also for the samples a resumed run adds; a split added to such a store is marked
``"drawn"`` and does the same, so that one store never mixes the two.

:class:`LACBEDDataset` reads a store lazily as a map-style torch dataset, optionally
with augmentation by random origin shifts and by the operations of the zone axis that
map the square grids onto themselves
(:func:`~hyperspy_lacbed.train.augment.zone_axis_operations`).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.parsing import dataclass_kwargs
from hyperspy_lacbed.train.augment import zone_axis_operations
from hyperspy_lacbed.train.structures import (
    GenerationStats,
    StructureConfig,
    StructureGenerator,
)

__all__ = [
    "FORMAT",
    "DatasetRecipe",
    "DatasetReport",
    "LACBEDDataset",
    "compute_sample",
    "dataset_summary",
    "generate_dataset",
    "open_dataset",
    "space_group_label",
]

#: Format tag of the stores written here.
FORMAT = "hyperspy_lacbed.dataset/1"

_ARRAYS = (
    "potential",
    "discs",
    "lattice_parameter",
    "space_group",
    "n_atoms",
    "structure",
    "seconds",
    "done",
)
#: Arrays that stores written before v1 lack: each sample's convergence estimate and beams.
_SINCE_V1 = ("convergence", "beams")
#: Split attribute naming the space-group labels of its samples (absent: "drawn").
LABELS_ATTR = "space_group_labels"


# ----------------------------------------------------------------------------------------
# Recipe
# ----------------------------------------------------------------------------------------


@dataclass
class DatasetRecipe:
    """Everything that determines a dataset.

    Attributes
    ----------
    domain
        ``Domain.to_dict()`` of the model domain (voltage, thicknesses, reflections,
        pixels, disc radius, Bloch-wave settings).
    n_structures
        Number of samples.
    seed
        Seed of the structures. The generator's seed is derived from ``(seed, split)``
        (:attr:`structure_seed`), so the splits of one seed never share a structure.
    structures
        Settings of :class:`~hyperspy_lacbed.train.structures.StructureConfig`; the lattice
        parameter range defaults to the domain's. With ``"kind": "realistic"`` the
        settings of :class:`~hyperspy_lacbed.train.prototypes.RealisticConfig` instead
        (common structure types; e.g. ``{"kind": "realistic", "random_fraction": 0.2}``).
    split
        Name of the split (``"train"``, ``"val"``, ``"test"``); the zarr group's name.
    """

    domain: dict[str, Any] = field(default_factory=lambda: Domain().to_dict())
    n_structures: int = 1000
    seed: int = 0
    structures: dict[str, Any] = field(default_factory=dict)
    split: str = "train"

    def __post_init__(self) -> None:
        if isinstance(self.domain, Domain):
            self.domain = self.domain.to_dict()
        if int(self.n_structures) < 1:
            raise ValueError(f"n_structures must be at least 1, got {self.n_structures}.")
        self.n_structures = int(self.n_structures)
        self.seed = int(self.seed)
        if not self.split or not str(self.split).replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"split must be a plain name such as 'train', 'val' or 'test', got {self.split!r}."
            )
        self.domain_object()  # validate
        self.structure_generator()

    def domain_object(self) -> Domain:
        """The :class:`~hyperspy_lacbed.nets.domain.Domain`."""
        return Domain.from_dict(self.domain)

    @property
    def structure_kind(self) -> str:
        """``"random"`` (random Wyckoff sites, v0) or ``"realistic"`` (structure types)."""
        kind = str(self.structures.get("kind", "random"))
        if kind not in ("random", "realistic"):
            raise ValueError(f"structures.kind must be 'random' or 'realistic', got {kind!r}.")
        return kind

    def structure_config(self) -> StructureConfig:
        """The random-generator settings (lattice range from the domain by default).

        For ``kind = "realistic"`` these are the settings of its random-Wyckoff part.
        """
        d = {"lattice_parameter_range": list(self.domain_object().lattice_parameter_range)}
        if self.structure_kind == "realistic":
            d.update(self.structures.get("random", {}))
        else:
            d.update({k: v for k, v in self.structures.items() if k != "kind"})
        return StructureConfig.from_dict(d)

    def structure_generator(self) -> Any:
        """The seeded structure generator of this recipe.

        ``structures = {"kind": "realistic", ...}`` gives a
        :class:`~hyperspy_lacbed.train.prototypes.RealisticGenerator` (other keys are
        :class:`~hyperspy_lacbed.train.prototypes.RealisticConfig` settings, e.g.
        ``random_fraction`` or ``exclude_prototypes``); otherwise a
        :class:`~hyperspy_lacbed.train.structures.StructureGenerator`.
        """
        if self.structure_kind == "realistic":
            from hyperspy_lacbed.train.prototypes import RealisticConfig, RealisticGenerator

            d = {"lattice_parameter_range": list(self.domain_object().lattice_parameter_range)}
            d.update({k: v for k, v in self.structures.items() if k != "kind"})
            return RealisticGenerator(self.structure_seed, RealisticConfig.from_dict(d))
        return StructureGenerator(self.structure_seed, self.structure_config())

    @property
    def structure_seed(self) -> int:
        """Seed of the structure generator: a hash of ``(seed, split)``."""
        entropy = [self.seed, zlib.crc32(str(self.split).encode())]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint32)[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (as stored in the zarr attributes)."""
        return json.loads(
            json.dumps(
                {
                    "domain": self.domain,
                    "n_structures": self.n_structures,
                    "seed": self.seed,
                    "structures": self.structures,
                    "split": self.split,
                }
            )
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetRecipe:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**dataclass_kwargs(cls, d, "dataset recipe fields"))


@dataclass
class DatasetReport:
    """What one call of :func:`generate_dataset` did.

    Attributes
    ----------
    path, split
        The store and its group.
    n_total, n_done
        Samples in the recipe, and complete after this call.
    n_new
        Samples computed by this call.
    seconds
        Wall time of this call.
    sample_seconds
        Wall time of each new sample (inside its task).
    structure_stats
        Acceptance statistics of the structure generator for the new samples.
    """

    path: str
    split: str
    n_total: int
    n_done: int
    n_new: int
    seconds: float
    sample_seconds: list[float]
    structure_stats: GenerationStats

    @property
    def complete(self) -> bool:
        """Whether every sample is done."""
        return self.n_done == self.n_total

    @property
    def samples_per_minute(self) -> float:
        """New samples per minute of wall time."""
        return 60.0 * self.n_new / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        rate = self.structure_stats.acceptance_rate
        return (
            f"{self.path} [{self.split}]: {self.n_done}/{self.n_total} done, {self.n_new} new in "
            f"{self.seconds:.1f} s ({self.samples_per_minute:.2f} samples/min); structure "
            f"acceptance rate {rate:.1%}"
        )


# ----------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------


def _split_path(path: str | os.PathLike, split: str) -> str:
    return str(Path(path) / split)


def _create_or_check(path: str | os.PathLike, recipe: DatasetRecipe, overwrite: bool):
    """Open the split group for writing; create it, check its recipe or extend it."""
    import zarr
    from numcodecs import VLenUTF8

    dom = recipe.domain_object()
    n = recipe.n_structures
    p, nt, r, d = dom.potential_pixels, len(dom.thicknesses), len(dom.reflections), dom.disc_pixels
    root = zarr.open_group(str(path), mode="a")
    split = recipe.split
    if split in root and overwrite:
        del root[split]
    if split in root:
        group = root[split]
        stored = DatasetRecipe.from_dict(group.attrs["recipe"])
        a, b = stored.to_dict(), recipe.to_dict()
        a_n, b_n = a.pop("n_structures"), b.pop("n_structures")
        if a != b:
            changed = sorted(k for k in a if a[k] != b.get(k))
            raise ValueError(
                f"{_split_path(path, split)} holds a dataset of another recipe (differs in "
                f"{changed}); use another path or split name, or overwrite=True to start over."
            )
        if b_n < a_n:
            raise ValueError(
                f"{_split_path(path, split)} holds {a_n} structures; the recipe asks for {b_n}. "
                "A store can be extended but not shrunk: use LACBEDDataset(..., indices=...) "
                "to read a subset."
            )
        if b_n > a_n:
            for name in (*_ARRAYS, *(n for n in _SINCE_V1 if n in group)):
                arr = group[name]
                arr.resize((b_n, *arr.shape[1:]))
            group.attrs["recipe"] = recipe.to_dict()
        return group
    labels = _labels_of_a_new_split(root)
    group = root.create_group(split)
    group.attrs.update(
        {
            "format": FORMAT,
            "recipe": recipe.to_dict(),
            "domain": recipe.domain,
            "reflections": [list(x) for x in dom.reflections],
            "thicknesses": list(dom.thicknesses),
            "structure_seed": recipe.structure_seed,
            LABELS_ATTR: labels,
            "units": {
                "potential": "V·Å (projected potential over one a × a cell, pixel [iy, ix] at "
                "(ix, iy)·a/P from the cell origin)",
                "discs": "fraction of the incident intensity; pixel [i, j] at tilt "
                "((j − N + 0.5), (i − N + 0.5))·dk with dk = disc_radius_g200 · 2/a / N",
                "lattice_parameter": "Å",
                "thicknesses": "Å",
            },
        }
    )
    kw = {"overwrite": True}
    group.zeros("potential", shape=(n, p, p), chunks=(1, p, p), dtype="f4", **kw)
    group.zeros("discs", shape=(n, nt, r, d, d), chunks=(1, nt, r, d, d), dtype="f4", **kw)
    group.zeros("lattice_parameter", shape=(n,), chunks=(1,), dtype="f8", **kw)
    group.zeros("space_group", shape=(n,), chunks=(1,), dtype="i2", **kw)
    group.zeros("n_atoms", shape=(n,), chunks=(1,), dtype="i4", **kw)
    group.create("structure", shape=(n,), chunks=(1,), dtype=object, object_codec=VLenUTF8(), **kw)
    group.zeros("seconds", shape=(n,), chunks=(1,), dtype="f4", **kw)
    group.zeros("done", shape=(n,), chunks=(1,), dtype=bool, **kw)
    # The engine's own convergence estimate of each sample (fraction of each image's
    # maximum) and the beams it used, so that a card can state the data's error.
    group.zeros("convergence", shape=(n,), chunks=(1,), dtype="f4", **kw)
    group.zeros("beams", shape=(n, 2), chunks=(1, 2), dtype="i4", **kw)
    return group


def _labels_of_a_new_split(root: Any) -> str:
    """``"arrangement"``, or ``"drawn"`` in a store that has a split from before the labels.

    A store is one dataset: a split added to a store begun by an earlier version (whose
    splits keep the drawn groups) takes the drawn groups too.
    """
    older = [name for name, g in root.groups() if g.attrs.get(LABELS_ATTR) != "arrangement"]
    return "drawn" if older else "arrangement"


def compute_sample(recipe: DatasetRecipe, index: int, device: str = "cpu") -> dict[str, Any]:
    """Structure, potential and discs of sample ``index`` of a recipe (nothing is written).

    Returns
    -------
    dict
        ``structure`` (:class:`~hyperspy_lacbed.train.structures.SyntheticStructure`),
        ``potential`` (P, P) float32 V·Å, ``discs`` (n_t, R, D, D) float32, ``stats``
        (:class:`~hyperspy_lacbed.train.structures.GenerationStats`) and ``seconds``.
    """
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.crystal.potential import projected_potential_array

    t0 = time.perf_counter()
    dom = recipe.domain_object()
    gen = recipe.structure_generator()
    synthetic = gen.structure(index)
    crystal = synthetic.crystal
    a = synthetic.lattice_parameter
    p = dom.potential_pixels
    potential, _ = projected_potential_array(
        crystal,
        dom.zone_axis,
        dom.x_direction,
        (p, p),
        scattering_factors=dom.scattering_factors,
    )
    result = compute_discs(
        crystal, dom.simulation_settings(a), device=device, show_progressbar=False
    )
    if [tuple(r) for r in result.reflections.tolist()] != [tuple(r) for r in dom.reflections]:
        raise RuntimeError("The engine returned the reflections in another order than the domain.")
    return {
        "structure": synthetic,
        "potential": potential.astype(np.float32),
        "discs": result.discs.astype(np.float32),
        "stats": gen.stats,
        "convergence": result.convergence,
        "seconds": time.perf_counter() - t0,
    }


def space_group_label(attrs: Any, synthetic: Any) -> int:
    """The space-group label a split stores for a structure (see the module docstring).

    Parameters
    ----------
    attrs
        The split group's attributes.
    synthetic
        The :class:`~hyperspy_lacbed.train.structures.SyntheticStructure`.

    Returns
    -------
    int
        Its arrangement's group in a split with ``space_group_labels = "arrangement"``;
        otherwise (``"drawn"``, or a split from before the attribute) the group it was
        drawn in.
    """
    if attrs.get(LABELS_ATTR) == "arrangement":
        return int(synthetic.space_group)
    return int(synthetic.recipe["space_group"])


def _sample_task(path: str, recipe_json: str, index: int, device: str) -> dict[str, Any]:
    """One dask task: compute sample ``index`` and write it, ``done`` last."""
    import zarr

    recipe = DatasetRecipe.from_dict(json.loads(recipe_json))
    out = compute_sample(recipe, index, device)
    group = zarr.open_group(_split_path(path, recipe.split), mode="r+")
    synthetic = out["structure"]
    label = space_group_label(group.attrs, synthetic)
    group["potential"][index] = out["potential"]
    group["discs"][index] = out["discs"]
    group["lattice_parameter"][index] = synthetic.lattice_parameter
    group["space_group"][index] = label
    group["n_atoms"][index] = len(synthetic.crystal)
    group["structure"][index] = json.dumps({**synthetic.to_dict(), "space_group": label})
    group["seconds"][index] = out["seconds"]
    report = out["convergence"]
    if report is not None and "convergence" in group:  # not in stores from before v1
        group["convergence"][index] = report.estimate
        group["beams"][index] = (report.strong_beams, report.weak_beams)
    group["done"][index] = True  # last: a sample is complete only once this is written
    stats = out["stats"]
    return {
        "index": index,
        "seconds": out["seconds"],
        "attempts": stats.attempts,
        "accepted": stats.accepted,
        "rejected": dict(stats.rejected),
    }


def generate_dataset(
    recipe: DatasetRecipe,
    path: str | os.PathLike,
    *,
    client: Any = None,
    num_workers: int = 1,
    limit: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    show_progressbar: bool | None = None,
) -> DatasetReport:
    """Generate (or resume) a dataset into the zarr group ``<path>/<recipe.split>``.

    Parameters
    ----------
    recipe
        What to generate.
    path
        Folder of the zarr store (created when missing); several splits share one store.
    client
        A ``dask.distributed.Client``: the tasks run on its workers (which must see
        ``path``, e.g. a shared file system). Default: dask's local threaded scheduler.
    num_workers
        Samples computed at once, one per thread. Each solve also uses torch's own
        threads: with several workers give each one core
        (``torch.set_num_threads(cores // num_workers)``, as the ``generate`` command
        does), since one sample at a time leaves cores idle in the many small solves of
        light crystals.
    limit
        Compute at most this many of the missing samples (lowest indices first) and
        stop, e.g. to spread a large dataset over several sessions.
    device
        Device of the Bloch-wave solves (``"cpu"``, ``"cuda"``, ``"auto"``).
    overwrite
        Delete an existing group of this split first.
    show_progressbar
        A tqdm progress bar; default HyperSpy's preference.

    Returns
    -------
    DatasetReport
        Counts, wall time, throughput and the structures' acceptance rate.

    Raises
    ------
    ValueError
        The store holds a dataset of another recipe (other than a larger
        ``n_structures``, which extends it).
    """
    from hyperspy_lacbed.progress import ProgressBar

    t0 = time.perf_counter()
    group = _create_or_check(path, recipe, overwrite)
    done = np.asarray(group["done"][:], bool)
    pending = np.flatnonzero(~done)
    if limit is not None:
        pending = pending[: max(int(limit), 0)]
    recipe_json = json.dumps(recipe.to_dict())
    tasks = [(str(path), recipe_json, int(i), device) for i in pending]
    bar = ProgressBar(len(pending), show_progressbar, f"LACBED dataset [{recipe.split}]", "sample")
    try:
        if client is not None:
            results = _run_on_client(client, tasks, bar.update)
        else:
            results = _run_on_threads(tasks, num_workers, bar.update)
    finally:
        bar.close()
    stats = GenerationStats()
    for r in results:
        stats.attempts += r["attempts"]
        stats.accepted += r["accepted"]
        stats.rejected.update(r["rejected"])
    n_done = int(np.count_nonzero(group["done"][:]))
    return DatasetReport(
        path=str(path),
        split=recipe.split,
        n_total=recipe.n_structures,
        n_done=n_done,
        n_new=len(results),
        seconds=time.perf_counter() - t0,
        sample_seconds=[float(r["seconds"]) for r in sorted(results, key=lambda r: r["index"])],
        structure_stats=stats,
    )


def _run_on_client(
    client: Any, tasks: list[tuple], done: Callable[[int], Any]
) -> list[dict[str, Any]]:
    """Run the sample tasks on a ``dask.distributed`` client; results as they finish."""
    if not tasks:
        return []
    import dask
    from distributed import as_completed

    futures = client.compute([dask.delayed(_sample_task, pure=False)(*t) for t in tasks])
    results = []
    for fut in as_completed(futures):
        results.append(fut.result())
        done(1)
    return results


def _run_on_threads(
    tasks: list[tuple], num_workers: int, done: Callable[[int], Any]
) -> list[dict[str, Any]]:
    """Run the sample tasks on a local thread pool; results as they finish.

    The solves release the GIL. The pool takes the samples in index order, so a run
    stopped part-way holds a prefix of the recipe but for the few in flight; no thread
    waits for a slower one (sample times span 100×).
    """
    if not tasks:
        return []
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=max(1, int(num_workers)))
    results = []
    try:
        futures = [pool.submit(_sample_task, *t) for t in tasks]
        for fut in as_completed(futures):
            results.append(fut.result())
            done(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def open_dataset(path: str | os.PathLike, split: str | None = None, mode: str = "r"):
    """The zarr group of a dataset (arrays are read lazily, chunk by chunk).

    Parameters
    ----------
    path
        A store written by :func:`generate_dataset`, or one of its split groups.
    split
        The split's group; default: ``path`` itself when it is a split group, else the
        store's only split.
    mode
        zarr mode (``"r"`` by default).

    Returns
    -------
    zarr.hierarchy.Group
        With the arrays of the module docstring and ``attrs["recipe"]``.
    """
    import zarr

    root = zarr.open_group(str(path), mode=mode)
    if split is None:
        if "done" in root:
            return root
        splits = sorted(name for name, _ in root.groups())
        if len(splits) != 1:
            raise ValueError(
                f"{path} holds the splits {splits}; choose one with split=..."
                if splits
                else f"{path} holds no dataset; create one with generate_dataset()."
            )
        split = splits[0]
    if split not in root:
        splits = sorted(name for name, _ in root.groups())
        raise KeyError(f"{path} has no split {split!r}; it has {splits}.")
    return root[split]


# ----------------------------------------------------------------------------------------
# torch Dataset
# ----------------------------------------------------------------------------------------


class LACBEDDataset:
    """A map-style torch dataset reading a store of :func:`generate_dataset` lazily.

    Works with ``torch.utils.data.DataLoader`` (also with worker processes); torch is
    imported only when an item is read.

    Parameters
    ----------
    path
        The store (or a split group of it).
    split
        The split; see :func:`open_dataset`.
    thickness_index
        Return the discs of this thickness only, (R, D, D) with a float thickness;
        default all thicknesses, (n_t, R, D, D).
    augment
        Random cyclic origin shifts of the potential and random operations of
        :func:`~hyperspy_lacbed.train.augment.zone_axis_operations` applied to potential and discs together.
    seed
        Seed of the augmentation. ``None`` (default): draws from NumPy's global generator,
        which :func:`hyperspy_lacbed.train.loop.fit` seeds per step (so training stays
        exactly reproducible and every epoch sees new draws). An integer: the draws are a
        function of ``(seed, epoch, index)``, with the epoch set by :meth:`set_epoch`.
    indices
        Read only these sample indices (default every done sample).
    in_memory
        Load the arrays into memory at once (faster epochs for small datasets).
    max_convergence
        Leave out the samples whose stored convergence estimate (fraction of each image's
        maximum) exceeds this: crystals the engine could not converge within the domain's
        beam budget. None (default) keeps every sample.

    Attributes
    ----------
    recipe
        The stored recipe (dict, with ``"domain"``) plus ``n_samples`` (and ``n_train``
        for a training split).
    domain
        The :class:`~hyperspy_lacbed.nets.domain.Domain`.
    thicknesses
        (n_t,) Å.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str | None = None,
        thickness_index: int | None = None,
        augment: bool = False,
        seed: int | None = None,
        indices: Any = None,
        in_memory: bool = False,
        max_convergence: float | None = None,
    ):
        self.path = str(path)
        self.split = split
        group = open_dataset(path, split)
        self._group = group
        stored = dict(group.attrs["recipe"])
        self.domain = Domain.from_dict(stored["domain"])
        self.thicknesses = np.asarray(group.attrs["thicknesses"], np.float32)
        done = np.asarray(group["done"][:], bool)
        if indices is None:
            self.indices = np.flatnonzero(done)
            if not done.all():
                warnings.warn(
                    f"{self.path}: {int((~done).sum())} of {done.size} samples are not done yet; "
                    "reading the done ones (resume generate_dataset to complete the store).",
                    stacklevel=2,
                )
        else:
            self.indices = np.asarray(indices, int).ravel()
            if not done[self.indices].all():
                raise ValueError("Some requested samples are not done yet.")
        self.n_unconverged = 0
        if max_convergence is not None:
            if "convergence" not in group:
                raise ValueError(
                    f"{self.path} stores no convergence estimates (a store from before v1); "
                    "drop max_convergence or regenerate the store."
                )
            estimate = np.asarray(group["convergence"][:], float)[self.indices]
            keep = estimate <= float(max_convergence)
            self.n_unconverged = int((~keep).sum())
            self.indices = self.indices[keep]
        if thickness_index is not None:
            nt = len(self.thicknesses)
            if not -nt <= int(thickness_index) < nt:
                raise IndexError(f"thickness_index {thickness_index} out of range for {nt}.")
            thickness_index = int(thickness_index) % nt
        self.thickness_index = thickness_index
        self.augment = bool(augment)
        self.seed = seed
        self.epoch = 0
        self.operations = zone_axis_operations(self.domain) if augment else []
        self.recipe = {**stored, "n_samples": len(self.indices), "path": self.path}
        if max_convergence is not None:
            self.recipe["max_convergence"] = float(max_convergence)
            self.recipe["n_unconverged_left_out"] = self.n_unconverged
        if stored.get("split") == "train":
            self.recipe["n_train"] = len(self.indices)
        self._memory: dict[str, np.ndarray] | None = None
        if in_memory:
            self._memory = {
                "potential": group["potential"].get_orthogonal_selection((self.indices,)),
                "discs": group["discs"].get_orthogonal_selection((self.indices,)),
            }
        self._lattice = np.asarray(group["lattice_parameter"][:], float)
        self._space_group = np.asarray(group["space_group"][:], int)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None  # reopened in the worker process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._group = open_dataset(self.path, self.split)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the augmentation draws (used with an integer ``seed``)."""
        self.epoch = int(epoch)

    @property
    def space_groups(self) -> np.ndarray:
        """Space group of each item."""
        return self._space_group[self.indices]

    @property
    def lattice_parameters(self) -> np.ndarray:
        """Lattice parameter (Å) of each item."""
        return self._lattice[self.indices]

    def structure(self, item: int) -> dict[str, Any]:
        """The stored structure (``Crystal.to_dict()`` + ``recipe``) of an item."""
        return json.loads(self._group["structure"][self.indices[item]])

    def arrays(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Potential (P, P) and discs (n_t, R, D, D) of an item, unaugmented, as numpy."""
        if self._memory is not None:
            return self._memory["potential"][item], self._memory["discs"][item]
        k = int(self.indices[item])
        return self._group["potential"][k], self._group["discs"][k]

    def _rng(self, item: int) -> np.random.Generator:
        if self.seed is None:
            entropy = int(np.random.randint(0, 2**31 - 1))  # noqa: NPY002 (see docstring)
            return np.random.default_rng(entropy)
        return np.random.default_rng([int(self.seed), self.epoch, int(self.indices[item])])

    def __getitem__(self, item: int) -> dict[str, Any]:
        import torch

        if not -len(self) <= item < len(self):
            raise IndexError(f"item {item} out of range for {len(self)} samples.")
        item = int(item) % len(self)
        potential, discs = self.arrays(item)
        if self.augment:
            rng = self._rng(item)
            op = self.operations[int(rng.integers(len(self.operations)))]
            shift = rng.integers(0, potential.shape[-1], size=2)
            potential = op.potential(potential)
            discs = op.discs(discs)
            # A translation t of the crystal multiplies every U_g by exp(−2πi g·t): the
            # structure matrix becomes D A D⁻¹ with D = diag(exp(−2πi g·t)), a unitary
            # similarity, so every |ψ_g|² — the LACBED intensities — is unchanged. Only the
            # potential image moves: the origin of a projected potential is arbitrary.
            potential = np.roll(potential, (int(shift[0]), int(shift[1])), axis=(-2, -1))
        if self.thickness_index is not None:
            discs = discs[self.thickness_index]
            thickness: Any = float(self.thicknesses[self.thickness_index])
        else:
            thickness = torch.from_numpy(self.thicknesses.copy())
        k = int(self.indices[item])
        return {
            "potential": torch.from_numpy(np.ascontiguousarray(potential, np.float32)[None]),
            "discs": torch.from_numpy(np.ascontiguousarray(discs, np.float32)),
            "thickness": thickness,
            "lattice_parameter": float(self._lattice[k]),
            "space_group": int(self._space_group[k]),
            "index": k,
        }


def dataset_summary(path: str | os.PathLike, split: str | None = None) -> dict[str, Any]:
    """Counts per space group (and per structure type), lattice-parameter range and timing.

    ``convergence`` is the median and the largest convergence estimate of the samples
    (fraction of each image's maximum, :mod:`hyperspy_lacbed.bloch.convergence`),
    ``tolerance`` the domain's convergence tolerance (None for fixed beam counts),
    ``above_tolerance`` the share of samples whose estimate exceeds it (those that hit
    the domain's beam budget first) and ``beams`` the median and largest number of
    strong and of weak beams of the samples' solves (``{"strong": [median, max],
    "weak": [median, max]}``); the three are None for stores from before v1.
    ``per_prototype`` counts the samples of each structure type of a realistic dataset
    (``"random"`` for the random-Wyckoff ones); it is empty for a random dataset.
    """
    group = open_dataset(path, split)
    done = np.asarray(group["done"][:], bool)
    sg = np.asarray(group["space_group"][:], int)[done]
    a = np.asarray(group["lattice_parameter"][:], float)[done]
    sec = np.asarray(group["seconds"][:], float)[done]
    groups, counts = np.unique(sg, return_counts=True)
    err = np.asarray(group["convergence"][:], float)[done] if "convergence" in group else []
    tolerance = dict(group.attrs["recipe"]).get("domain", {}).get("tolerance")
    above = None
    if len(err) and tolerance is not None:
        above = float(np.mean(err > float(tolerance)))
    beams = None
    if "beams" in group and done.any():
        b = np.asarray(group["beams"][:], int)[done]
        beams = {
            kind: [float(np.median(b[:, k])), int(b[:, k].max())]
            for k, kind in enumerate(("strong", "weak"))
        }
    prototypes: dict[str, int] = {}
    if dict(group.attrs["recipe"]).get("structures", {}).get("kind") == "realistic":
        for k in np.flatnonzero(done):
            name = json.loads(group["structure"][k])["recipe"].get("prototype", "random")
            prototypes[name] = prototypes.get(name, 0) + 1
    return {
        "n_total": int(done.size),
        "n_done": int(done.sum()),
        "per_space_group": {int(g): int(c) for g, c in zip(groups, counts)},
        "per_prototype": dict(sorted(prototypes.items(), key=lambda kv: -kv[1])),
        "lattice_parameter_range": [float(a.min()), float(a.max())] if a.size else None,
        "mean_seconds_per_sample": float(sec.mean()) if sec.size else math.nan,
        # the engine's convergence estimate of the samples: median and largest
        "convergence": [float(np.median(err)), float(np.max(err))] if len(err) else None,
        "tolerance": None if tolerance is None else float(tolerance),
        "above_tolerance": above,
        "beams": beams,
        "recipe": dict(group.attrs["recipe"]),
    }
