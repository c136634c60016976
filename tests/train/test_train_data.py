"""Training data: synthetic cubic crystals, the zarr dataset (resume), augmentation, metrics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from hyperspy_lacbed.analysis.square import square_grid_operations, transform_potential
from hyperspy_lacbed.crystal.potential import projected_potential_array
from hyperspy_lacbed.crystal.structure import _periodic_distances
from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.train.augment import zone_axis_operations
from hyperspy_lacbed.train.dataset import (
    DatasetRecipe,
    LACBEDDataset,
    generate_dataset,
    open_dataset,
    space_group_label,
)
from hyperspy_lacbed.train.evaluate import evaluate_forward, evaluate_inverse, plot_cases
from hyperspy_lacbed.train.metrics import align_potential, lmse, origin_invariant_lmse
from hyperspy_lacbed.train.structures import (
    COVALENT_RADII,
    StructureConfig,
    StructureGenerator,
    generate_structures,
    wyckoff_positions,
)

#: A tiny domain: 8×8 discs, 16×16 potentials, 15 strong beams, two thicknesses.
TINY = Domain(disc_pixels=8, potential_pixels=16, strong_beams=15, thicknesses=(500.0, 1000.0))
#: Low and high symmetry, primitive, body- and face-centred, with and without inversion.
GROUPS = (195, 198, 200, 212, 221, 225, 227, 230)
ARRAYS = ("potential", "discs", "lattice_parameter", "space_group", "n_atoms", "structure", "done")


def _spglib_number(crystal) -> int:
    import spglib

    types = [list(dict.fromkeys(crystal.elements)).index(e) + 1 for e in crystal.elements]
    cell = (crystal.direct_basis, crystal.positions, types)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return int(spglib.get_symmetry_dataset(cell, symprec=1e-3).number)


# ----------------------------------------------------------------------------------------
# Synthetic crystals
# ----------------------------------------------------------------------------------------


def test_wyckoff_positions_match_international_tables():
    # Multiplicities of ITA's Wyckoff positions (standard settings).
    assert [w.multiplicity for w in wyckoff_positions(195)] == [1, 1, 3, 3, 4, 6, 6, 6, 6, 12]
    assert [w.multiplicity for w in wyckoff_positions(227)] == [8, 8, 16, 16, 32, 48, 96, 96, 192]
    assert [w.multiplicity for w in wyckoff_positions(230)] == [16, 16, 24, 24, 32, 48, 48, 96]
    assert [w.dof for w in wyckoff_positions(230)] == [0, 0, 0, 0, 1, 1, 1, 3]


@pytest.fixture(scope="module")
def structures():
    config = StructureConfig(space_groups=GROUPS)
    return generate_structures(2 * len(GROUPS), seed=7, config=config)


def test_structures_have_the_requested_space_group(structures):
    items, stats = structures
    assert [s.recipe["space_group"] for s in items] == list(GROUPS) * 2  # round robin
    for s in items:
        assert s.crystal.space_group_number == s.recipe["space_group"] and s.recipe["sites"]
        assert _spglib_number(s.crystal) == s.space_group  # the label: the arrangement's
    assert stats.accepted == len(items) and 0 < stats.acceptance_rate <= 1


def test_a_crystal_is_labelled_by_the_symmetry_of_its_atoms():
    """Two Mn sites of P4_332 (212) that differ only in B are the one site of I4_132 (214)."""
    from hyperspy_lacbed.train.structures import arrangement_space_group

    mn = StructureGenerator(7).structure(53)
    assert set(mn.crystal.elements) == {"Mn"} and mn.recipe["space_group"] == 212
    assert mn.crystal.space_group_number == 212  # the Debye-Waller factors tell them apart
    assert mn.space_group == arrangement_space_group(mn.crystal) == _spglib_number(mn.crystal)
    assert mn.space_group == 214
    assert mn.to_dict()["space_group"] == 214 and mn.to_dict()["recipe"]["space_group"] == 212
    # a split created before the relabelling keeps the drawn groups, also when resumed
    assert space_group_label({}, mn) == 212
    assert space_group_label({"space_group_labels": "drawn"}, mn) == 212
    assert space_group_label({"space_group_labels": "arrangement"}, mn) == 214


def test_a_store_keeps_one_kind_of_label(tmp_path):
    """A split added to a store begun before the relabelling keeps the drawn groups."""
    from hyperspy_lacbed.train.dataset import _create_or_check

    new, old = tmp_path / "new.zarr", tmp_path / "old.zarr"
    first = _recipe(2)
    assert _create_or_check(new, first, False).attrs["space_group_labels"] == "arrangement"
    del _create_or_check(old, first, False).attrs["space_group_labels"]  # as before
    second = DatasetRecipe(TINY.to_dict(), 2, 5, {}, "test")
    assert _create_or_check(new, second, False).attrs["space_group_labels"] == "arrangement"
    assert _create_or_check(old, second, False).attrs["space_group_labels"] == "drawn"
    # resuming keeps what a split has
    assert "space_group_labels" not in _create_or_check(old, first, False).attrs


def test_structures_respect_the_bond_rule_and_limits(structures):
    items, _ = structures
    config = StructureConfig()
    for s in items:
        c = s.crystal
        assert 3.0 <= s.lattice_parameter <= 12.0
        assert len(c) <= 64
        assert np.all((c.b_iso >= 0.3) & (c.b_iso <= 1.5))
        radii = np.array([COVALENT_RADII[e] for e in c.elements])
        for i in range(len(c)):
            d = _periodic_distances(c.positions[i], c.positions, c.direct_basis)
            d[i] = np.inf
            need = config.bond_factor * (radii[i] + radii) * (1 - 1e-6)
            assert np.all(d >= need), (s.recipe["formula"], i)


def test_structures_are_reproducible_and_independent_of_the_count():
    config = StructureConfig(space_groups=(195, 227, 230))
    first, _ = generate_structures(4, seed=11, config=config)
    again, _ = generate_structures(4, seed=11, config=config)
    alone = StructureGenerator(11, config).structure(3)
    tail, _ = generate_structures(2, seed=11, config=config, start=2)
    other, _ = generate_structures(4, seed=12, config=config)
    as_json = [json.dumps(s.to_dict()) for s in first]
    assert as_json == [json.dumps(s.to_dict()) for s in again]
    assert json.dumps(alone.to_dict()) == as_json[3]
    assert [json.dumps(s.to_dict()) for s in tail] == as_json[2:]
    assert as_json != [json.dumps(s.to_dict()) for s in other]


def test_structure_round_trip_and_bad_config():
    from hyperspy_lacbed.train.structures import SyntheticStructure

    s = StructureGenerator(3).structure(5)
    back = SyntheticStructure.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.space_group == s.space_group and np.allclose(
        back.crystal.positions, s.crystal.positions
    )
    assert StructureConfig.from_dict(StructureConfig().to_dict()) == StructureConfig()
    with pytest.raises(ValueError, match="cubic"):
        StructureConfig(space_groups=(194,))
    with pytest.raises(ValueError, match="radius"):
        StructureConfig(elements=("Xe",))


# ----------------------------------------------------------------------------------------
# Dataset: generation, resume, lazy reading
# ----------------------------------------------------------------------------------------


def _recipe(n: int = 6) -> DatasetRecipe:
    return DatasetRecipe(
        domain=TINY.to_dict(),
        n_structures=n,
        seed=5,
        structures={"space_groups": [198, 227, 230, 195, 212, 221]},
        split="train",
    )


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "full.zarr"
    report = generate_dataset(_recipe(), path, show_progressbar=False)
    assert report.complete and report.n_new == 6
    return path


def _assert_same_content(a_path, b_path):
    a, b = open_dataset(a_path, "train"), open_dataset(b_path, "train")
    for name in ARRAYS:
        assert np.array_equal(a[name][:], b[name][:]), name
    assert a.attrs["recipe"] == b.attrs["recipe"]


def test_interrupted_generation_resumes_to_the_same_content(full_store, tmp_path):
    path = tmp_path / "resumed.zarr"
    first = generate_dataset(_recipe(), path, limit=3, show_progressbar=False)
    assert (first.n_new, first.n_done, first.complete) == (3, 3, False)
    # A task killed after writing part of sample 4 but before its done flag.
    group = open_dataset(path, "train", mode="r+")
    assert group["done"][:].tolist() == [True] * 3 + [False] * 3
    group["potential"][4] = np.nan
    group["lattice_parameter"][4] = -1.0
    second = generate_dataset(_recipe(), path, show_progressbar=False)
    assert (second.n_new, second.n_done) == (3, 6)
    _assert_same_content(full_store, path)
    third = generate_dataset(_recipe(), path, show_progressbar=False)
    assert third.n_new == 0  # nothing redone


_KILLABLE = """
import sys
sys.path.insert(0, {tests!r})
from test_train_data import _recipe
from hyperspy_lacbed.train.dataset import generate_dataset
generate_dataset(_recipe({n}), {path!r}, show_progressbar=False)
"""


def test_generation_killed_with_sigkill_resumes_exactly(full_store, tmp_path):
    """A real worker process killed mid-way: no sample lost, none duplicated or torn."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    n, path = 12, tmp_path / "killed.zarr"
    code = _KILLABLE.format(tests=str(Path(__file__).parent), n=n, path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    done = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                done = int(np.sum(open_dataset(path, "train")["done"][:]))
            except (FileNotFoundError, KeyError, ValueError):
                continue
            if done >= 2:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the generator finished before it was killed"
    flags = open_dataset(path, "train")["done"][:]
    assert 2 <= flags.sum() < n
    # Lowest indices first: what was done is a prefix (one sample may be half-written).
    assert flags[: int(flags.sum())].all()
    resumed = generate_dataset(_recipe(n), path, show_progressbar=False)
    assert resumed.n_done == n and resumed.n_new == n - int(flags.sum())
    group, full = open_dataset(path, "train"), open_dataset(full_store, "train")
    for name in ARRAYS:  # sample i never depends on the count: the first 6 as in full
        assert np.array_equal(group[name][:6], full[name][:]), name
    structures = list(group["structure"][:])
    assert len(set(structures)) == n, "a sample was duplicated"
    assert np.isfinite(group["potential"][:]).all() and np.isfinite(group["discs"][:]).all()


def test_store_extends_and_refuses_another_recipe(full_store, tmp_path):
    path = tmp_path / "grown.zarr"
    generate_dataset(_recipe(4), path, show_progressbar=False)
    grown = generate_dataset(_recipe(6), path, show_progressbar=False)
    assert grown.n_new == 2
    _assert_same_content(full_store, path)
    other = _recipe()
    other.seed = 6
    with pytest.raises(ValueError, match="another recipe"):
        generate_dataset(other, path, show_progressbar=False)


def test_store_is_lazy_and_holds_the_recipe(full_store):
    import zarr

    group = open_dataset(full_store)  # the only split
    assert isinstance(group["discs"], zarr.Array)  # nothing read yet
    assert group["discs"].shape == (6, 2, 9, 8, 8) and group["discs"].chunks[0] == 1
    assert group["potential"].shape == (6, 16, 16) and group["potential"].dtype == np.float32
    recipe = DatasetRecipe.from_dict(group.attrs["recipe"])
    assert recipe.to_dict() == _recipe().to_dict()
    assert Domain.from_dict(recipe.domain) == TINY
    assert group["space_group"][:].tolist() == [198, 227, 230, 195, 212, 221]
    assert group.attrs["space_group_labels"] == "arrangement"  # a split of this version
    structure = json.loads(group["structure"][2])
    assert structure["space_group"] == 230 and structure["recipe"]["index"] == 2
    assert np.all(group["discs"][:] >= 0) and np.all(np.isfinite(group["potential"][:]))


def test_torch_dataset_items(full_store):
    import torch

    ds = LACBEDDataset(full_store, split="train")
    assert len(ds) == 6 and ds.recipe["domain"] == TINY.to_dict() and ds.recipe["n_train"] == 6
    item = ds[1]
    assert item["potential"].shape == (1, 16, 16) and item["potential"].dtype == torch.float32
    assert item["discs"].shape == (2, 9, 8, 8) and item["discs"].dtype == torch.float32
    assert item["thickness"].tolist() == [500.0, 1000.0]
    assert item["space_group"] == 227 and isinstance(item["lattice_parameter"], float)
    one = LACBEDDataset(full_store, thickness_index=1)[1]
    assert one["discs"].shape == (9, 8, 8) and one["thickness"] == 1000.0
    assert torch.equal(one["discs"], item["discs"][1])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["discs"].shape == (3, 2, 9, 8, 8)


# ----------------------------------------------------------------------------------------
# Augmentation: checked against the engine
# ----------------------------------------------------------------------------------------


def test_augmentation_matches_the_engine_on_the_transformed_crystal(full_store):
    from hyperspy_lacbed.bloch.discs import compute_discs
    from hyperspy_lacbed.crystal.structure import Crystal

    ds = LACBEDDataset(full_store)
    crystal = Crystal.from_dict(ds.structure(0))  # P2_13: its pattern is not fourfold
    a = float(ds.lattice_parameters[0])
    potential, discs = ds.arrays(0)
    ops = {op.name: op for op in zone_axis_operations(TINY)}
    assert len(ops) == 8

    def engine(c):
        result = compute_discs(
            c, **TINY.simulation_kwargs(a), device="cpu", show_progressbar=False
        )
        image, _ = projected_potential_array(c, TINY.zone_axis, TINY.x_direction, (16, 16))
        return image, result.discs

    scale_d, scale_v = discs.max(), potential.max()
    for name in ("4+", "m_xy"):
        op = ops[name]
        w = op.crystal_rotation(TINY)
        v_rot, d_rot = engine(crystal.with_positions(crystal.positions @ w.T))
        assert np.abs(op.potential(potential) - v_rot).max() < 1e-5 * scale_v
        assert np.abs(op.discs(discs) - d_rot).max() < 1e-4 * scale_d
        assert np.abs(discs - d_rot).max() > 1e-2 * scale_d  # the operation matters
    # An origin shift moves the potential and leaves the discs unchanged.
    v_sh, d_sh = engine(crystal.with_positions(crystal.positions + [3 / 16, 5 / 16, 0.3]))
    assert np.abs(np.roll(potential, (5, 3), axis=(0, 1)) - v_sh).max() < 1e-5 * scale_v
    assert np.abs(discs - d_sh).max() < 1e-4 * scale_d

    # The dataset's augmented items are such transformed samples, reproducibly.
    aug = LACBEDDataset(full_store, augment=True, seed=3)
    item, again = aug[0], aug[0]
    assert np.array_equal(item["discs"].numpy(), again["discs"].numpy())
    got_v, got_d = item["potential"].numpy()[0], item["discs"].numpy()
    matches = [
        op
        for op in ops.values()
        if np.array_equal(op.discs(discs), got_d)
        and origin_invariant_lmse(got_v, op.potential(potential), "none") < 1e-12
    ]
    assert matches


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------


def test_lmse_of_an_image_with_itself_is_zero():
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16))
    assert np.all(lmse(image, image) == 0)
    assert lmse(image, 0.5 * image).shape == (3,)
    ref = np.ones((4, 4))
    assert lmse(np.zeros((4, 4)), ref) == pytest.approx(1.0)  # (0 − 1)², reference max 1


def test_origin_invariant_lmse_ignores_shifts_and_square_symmetry(full_store):
    potentials = np.stack([LACBEDDataset(full_store).arrays(i)[0] for i in (0, 3)]).astype(float)
    shifted = np.roll(potentials, (3, 7), axis=(-2, -1))
    rotated = transform_potential(shifted, square_grid_operations()[1])  # 90°
    for moved in (shifted, rotated):
        assert np.all(lmse(moved, potentials) > 1e-3)
        assert np.all(origin_invariant_lmse(moved, potentials) < 1e-12)
        assert np.allclose(align_potential(moved, potentials), potentials)
    # Translations alone do not undo the rotation of a non-fourfold cell.
    assert origin_invariant_lmse(rotated, potentials, "none")[0] > 1e-4


def test_evaluation_tables_and_figure(full_store, tmp_path):
    ds = LACBEDDataset(full_store)
    pots = np.stack([ds.arrays(i)[0] for i in range(len(ds))])
    discs = np.stack([ds.arrays(i)[1] for i in range(len(ds))])
    fwd = evaluate_forward(
        pots, discs, ds.thicknesses, ds.lattice_parameters, ds.space_groups, predictions=discs
    )
    assert np.all(fwd.lmse == 0) and fwd.lmse.shape == (6, 2)
    calls = []

    def predict(x, a, t):
        calls.append(t)
        idx = [int(np.argmin(np.abs(ds.lattice_parameters - v))) for v in a]
        return np.roll(pots[idx], 2, axis=-1) * 1.01

    inv = evaluate_inverse(
        pots,
        discs,
        ds.thicknesses,
        ds.lattice_parameters,
        ds.space_groups,
        predict=predict,
        batch_size=4,
    )
    assert sorted(set(calls)) == [500.0, 1000.0]
    assert np.all(inv.metrics["lmse_origin_invariant"] < inv.lmse)
    by_t = inv.by_thickness()["lmse"]
    assert set(by_t) == {500.0, 1000.0} and by_t[500.0]["n"] == 6
    by_sg = inv.by_space_group()["lmse"]
    assert by_sg[227]["symbol"] == "Fd-3m" and by_sg[230]["n"] == 1
    text = inv.markdown()
    assert "per space group" in text and "Ia-3d" in text
    json.dumps(inv.to_dict())
    fig = plot_cases(
        inv,
        pots,
        discs,
        predict=predict,
        lattice_parameters=ds.lattice_parameters,
        reflections=TINY.reflections,
        path=tmp_path / "cases.png",
    )
    assert (tmp_path / "cases.png").stat().st_size > 0 and len(fig.axes) >= 12


def test_max_convergence_leaves_out_unconverged_samples(full_store, tmp_path):
    """Samples above the convergence bound are left out of training, and counted."""
    import shutil

    from hyperspy_lacbed.train.dataset import LACBEDDataset, open_dataset

    store = tmp_path / "copy.zarr"
    shutil.copytree(full_store, store)
    group = open_dataset(store, "train", mode="r+")
    n = int(np.count_nonzero(group["done"][:]))
    estimates = np.linspace(0.001, 0.1, n).astype("f4")
    group["convergence"][:n] = estimates
    everything = LACBEDDataset(store, "train")
    kept = LACBEDDataset(store, "train", max_convergence=0.05)
    assert len(everything) == n
    assert len(kept) == int((estimates <= 0.05).sum()) < n
    assert kept.recipe["n_unconverged_left_out"] == n - len(kept)
    assert kept.recipe["n_train"] == len(kept)


def test_two_workers_write_the_same_store(full_store, tmp_path):
    """Samples computed two at a time (thread pool) equal the one-at-a-time store."""
    path = tmp_path / "two.zarr"
    report = generate_dataset(_recipe(), path, num_workers=2, show_progressbar=False)
    assert report.complete and report.n_new == 6
    _assert_same_content(full_store, path)
