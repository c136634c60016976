"""
Training a surrogate end to end (tiny)
======================================

The four steps of training a cGAN surrogate — a dataset from the Bloch-wave engine, a
fit, an export to a model folder, an evaluation on held-out structures — on a domain
small enough to run in under a minute on two cores. The shipped models were made the
same way (``python -m hyperspy_lacbed.train``, see :doc:`/user_guide/cli`), at full size
and for hours rather than seconds, so the numbers here only show the machinery.
"""

# %%
# A tiny domain
# -------------
# :class:`~hyperspy_lacbed.nets.domain.Domain` holds every number a model is trained on:
# here two thicknesses, 16 × 16 discs, 32 × 32 potentials and 20 strong beams.
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import hyperspy_lacbed as hl
from hyperspy_lacbed.nets.domain import Domain
from hyperspy_lacbed.train.dataset import DatasetRecipe, LACBEDDataset, generate_dataset
from hyperspy_lacbed.train.evaluate import evaluate_model
from hyperspy_lacbed.train.loop import TrainConfig, export, fit

domain = Domain(thicknesses=(500.0, 1000.0), disc_pixels=16, potential_pixels=32, strong_beams=20)
work = Path(tempfile.mkdtemp())
store = work / "tiny.zarr"

# %%
# 1. The dataset, on a dask.distributed cluster
# ---------------------------------------------
# Random cubic crystals by space group, simulated into a Zarr store, one task per
# structure; the splits of one seed never share a structure, and a run that stops
# resumes where it was. Given a ``dask.distributed`` client the tasks run on its
# workers — here a ``LocalCluster`` of two single-threaded workers inside this process
# (``processes=True``, the default, in a script guarded by ``if __name__ ==
# "__main__":``), on an HPC system a ``dask_jobqueue`` cluster (the workers must see
# the store's folder).
from dask.distributed import Client, LocalCluster

with (
    LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster,
    Client(cluster) as client,
):
    for split, n in {"train": 24, "test": 6}.items():
        recipe = DatasetRecipe(domain=domain, n_structures=n, seed=0, split=split)
        print(generate_dataset(recipe, store, client=client, show_progressbar=False))

# %%
# 2. The fit
# ----------
# The shipped architecture (``fourier-forward``, the v1 recipe's default) made small, with
# the paper's losses (LSGAN, feature matching, L1); the run folder holds a checkpoint that
# a later call resumes from.
train = LACBEDDataset(store, split="train", augment=True)
config = TrainConfig(
    direction="forward",
    generator={"width": 16, "latent": 32, "n_layers": 2},
    discriminator={"ndf": 8, "n_layers": 2},
    batch_size=4,
    steps=60,
    checkpoint_every=30,
    out_dir=str(work / "run"),
)
summary = fit(train, config, show_progressbar=False)
print(f"{summary['step']} steps in {summary['wall_time_s']:.1f} s")

# %%
# 3. Export, 4. evaluate
# ----------------------
# ``export`` writes ``model.safetensors`` and its ``card.json`` (with the sha256 that is
# checked at every load); ``evaluate_model`` scores it on the held-out split.
folder = export(config.out_dir, work / "models", "tiny-forward")
result = evaluate_model(folder, store, split="test")
print(result.markdown())

# %%
# The learning curve, from the run's JSON-lines log, and the new model in use: a model
# folder is passed as ``model=`` like a shipped model's name.
records = [json.loads(line) for line in (work / "run" / "log.jsonl").read_text().splitlines()]
losses = [r for r in records if "loss_l1" in r]
g = hl.generate("NaCl", thickness="100 nm", model=folder, show_progressbar=False)

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), constrained_layout=True)
axes[0].plot([r["step"] for r in losses], [r["loss_l1"] for r in losses], "o-")
axes[0].set(xlabel="step", ylabel="L1 loss × 100", title="learning curve")
axes[1].imshow(g.to_montage().data, cmap="inferno")
axes[1].set_title("NaCl, 100 nm, tiny model")
axes[1].set_axis_off()
plt.show()
