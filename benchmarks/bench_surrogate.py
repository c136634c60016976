"""Throughput and memory of the cGAN surrogates against the Bloch-wave engine.

Run: ``python benchmarks/bench_surrogate.py`` (``--structure GaAs``, ``--threads 2``,
``--device cuda``, ``--repeats 5``).

The shipped default models (``models/default-forward`` and ``models/default-inverse``:
the v1 recipe's fourier-forward and fourier-inverse generators) at their domain (128²
potentials, 9 discs of 32², 4 thicknesses; docs/user_guide/conventions.rst). Where no
model ships, the recipe's architectures (:class:`hyperspy_lacbed.train.loop.TrainConfig`
defaults) with random weights at ``Domain()``, the same shapes: timing does not depend on
the weights.

* network throughput, forward (potential → 9 discs) and inverse (discs → potential),
  at batch 1 and batch 32, in patterns (one thickness, nine discs) per second;
* end to end, ``hyperspy_lacbed.generate`` of one structure at the domain's four
  thicknesses (structure → potential → network → LACBED signal, through the registry),
  side by side with ``hyperspy_lacbed.simulate`` of the same structure and thicknesses
  with the domain's Bloch-wave settings (the settings of the training data), and the
  ratio of their throughputs.

Each measurement runs in a fresh process, so that its peak resident memory (ru_maxrss)
is its own; the table gives it and its rise over the process after the imports
(model, activations and, for ``simulate``, the eigen-solves).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _fresh_process import run_in_fresh_process
from _results import add_results_argument, write_results


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(root: Path, direction: str):
    """The shipped default of a direction, else the recipe's architecture, random weights.

    Returns what ``model=`` of the registry takes: ``"default"`` or a model folder.
    """
    from hyperspy_lacbed.nets.registry import resolve_model

    try:
        resolve_model("default", direction)
        return "default"
    except FileNotFoundError:
        return _random_model_folder(root, direction)


def _random_model_folder(root: Path, direction: str) -> Path:
    """A registry folder holding the recipe's generator of a direction with random weights."""
    import safetensors.torch
    import torch

    from hyperspy_lacbed.nets.architectures import build_generator, generator_kwargs
    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.nets.normalisation import Encoding
    from hyperspy_lacbed.nets.registry import MODEL_FILE, write_card
    from hyperspy_lacbed.train.loop import TrainConfig

    torch.manual_seed(0)
    domain, cfg = Domain(), TrainConfig(direction=direction)
    enc = Encoding.for_domain(domain)
    kw = generator_kwargs(direction, domain, cfg.generator, cfg.architecture, enc)
    g = build_generator(cfg.architecture, kw)
    folder = root / f"bench-{direction}"
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in g.state_dict().items()}, str(folder / MODEL_FILE)
    )
    write_card(
        folder,
        {
            "name": folder.name,
            "direction": direction,
            "architecture": {"name": cfg.architecture, "kwargs": kw},
            "domain": domain.to_dict(),
            "normalisation": enc.to_dict(),
            "metrics": {},
        },
    )
    return folder


def _worker(job: dict, queue) -> None:
    import torch

    torch.set_num_threads(job["threads"])
    import hyperspy.api as hs

    hs.preferences.General.show_progressbar = False
    import hyperspy_lacbed as hl
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.nets.surrogate import load_surrogate

    crystal = load_structure(job["structure"])
    base = _rss_mb()  # after the imports, before any model or work
    a = float(crystal.lattice_parameters[0])
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if job["kind"] == "simulate":
            # the Bloch-wave settings of the forward model's training data
            folder = _model(Path(tmp), "forward")
            kw = load_surrogate(folder, "forward", "cpu").domain.simulation_kwargs(a)
            hl.simulate(crystal, **{**kw, "pixels": 4}, device=job["device"])  # warm-up
            t0 = time.perf_counter()
            s = hl.simulate(crystal, **kw, device=job["device"])
            wall = time.perf_counter() - t0
            out = {"patterns": int(s.data.shape[0]), "wall_s": wall}
        elif job["kind"] == "generate":
            folder = _model(Path(tmp), "forward")
            hl.generate(crystal, model=folder, device=job["device"])  # warm-up, loads model
            walls = []
            for _ in range(job["repeats"]):
                t0 = time.perf_counter()
                s = hl.generate(crystal, model=folder, device=job["device"])
                walls.append(time.perf_counter() - t0)
            out = {"patterns": int(s.data.shape[0]), "wall_s": float(np.median(walls))}
        else:
            direction, batch = job["kind"], job["batch"]
            folder = _model(Path(tmp), direction)
            sur = load_surrogate(folder, direction, job["device"])
            kw = sur.card["architecture"]["kwargs"]
            rng = np.random.default_rng(0)
            x = rng.uniform(-1, 1, (batch, kw["in_channels"], kw["in_size"], kw["in_size"]))
            x = x.astype(np.float32)
            cond = np.zeros((batch, 2), np.float32)
            sur.run(x, cond, batch)  # warm-up
            walls = []
            for _ in range(job["repeats"]):
                if job["device"] == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                sur.run(x, cond, batch)
                if job["device"] == "cuda":
                    torch.cuda.synchronize()
                walls.append(time.perf_counter() - t0)
            out = {"patterns": batch, "wall_s": float(np.median(walls))}
    out.update(peak_mb=_rss_mb(), base_mb=base)
    if job["device"] == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    queue.put(out)


def _run(job: dict) -> dict:
    return run_in_fresh_process(_worker, job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", default="Si", help="example name or CIF (default Si)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    add_results_argument(parser)
    args = parser.parse_args()
    common = {
        "structure": args.structure,
        "threads": args.threads,
        "device": args.device,
        "repeats": args.repeats,
    }

    import torch

    from hyperspy_lacbed.nets.architectures import count_parameters
    from hyperspy_lacbed.nets.surrogate import load_surrogate

    with tempfile.TemporaryDirectory() as tmp:
        models = {
            d: load_surrogate(_model(Path(tmp), d), d, "cpu") for d in ("forward", "inverse")
        }
    domain = models["forward"].domain
    beams = (
        f"{domain.strong_beams} strong beams"
        if domain.strong_beams is not None
        else f"beams converged to {domain.tolerance:.0%} (at most {domain.max_beams})"
    )
    print(
        f"hyperspy-lacbed surrogate benchmark: {args.structure}, {args.device}, "
        f"{args.threads} torch threads, torch {torch.__version__}; simulate with {beams} "
        "(the forward model's training data)"
    )
    for direction, sur in models.items():
        n = count_parameters(sur.module)
        print(
            f"  {direction} generator: {sur.name} ({sur.card['architecture']['name']}), "
            f"{n / 1e6:.2f} M parameters, {4 * n / 2**20:.1f} MiB"
        )

    rows = []
    for direction in ("forward", "inverse"):
        for batch in (1, 32):
            r = _run({**common, "kind": direction, "batch": batch})
            rows.append((f"cGAN {direction} network", batch, r))
    gen = _run({**common, "kind": "generate"})
    rows.append(("generate (end to end)", gen["patterns"], gen))
    sim = _run({**common, "kind": "simulate"})
    rows.append(("simulate (Bloch waves)", sim["patterns"], sim))

    print()
    head = f"{'what':<26}{'batch':>6}{'patterns/s':>13}{'ms/pattern':>12}{'peak RSS MB':>13}"
    head += f"{'(+ over base)':>15}"
    if args.device == "cuda":
        head += f"{'GPU peak MB':>13}"
    print(head)
    print("-" * len(head))
    results = []
    for label, batch, r in rows:
        rate = r["patterns"] / r["wall_s"]
        line = (
            f"{label:<26}{batch:>6}{rate:>13.4g}{1e3 / rate:>12.4g}{r['peak_mb']:>13.0f}"
            f"{r['peak_mb'] - r['base_mb']:>+15.0f}"
        )
        if args.device == "cuda":
            line += f"{r.get('gpu_peak_mb', 0):>13.0f}"
        print(line)
        results.append({"what": label, "batch": batch, "patterns_per_s": rate, **r})
    sim_rate = sim["patterns"] / sim["wall_s"]
    print()
    for label, batch, r in rows[:-1]:
        rate = r["patterns"] / r["wall_s"]
        print(f"  {label} (batch {batch}) / simulate: {rate / sim_rate:,.0f}×")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    # benchmarks/results/bench_surrogate-<structure>[-<device>].json
    suffix = "" if args.device == "cpu" else f"-{args.device}"
    write_results(
        args,
        f"bench_surrogate-{Path(args.structure).stem}{suffix}",
        results,
        threads=args.threads,
        device=args.device,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
