"""The forward engine against an earlier revision of itself, in one run.

Each revision's ``hyperspy_lacbed`` is exported from git (``git archive``) into a
temporary folder and timed in fresh processes, the two revisions alternating so that
the machine's load falls on both alike. The figure is the ratio of the best times
(baseline / current: above 1 is faster now). The discs of both revisions are compared
too, so a speed-up that changed the physics shows.

    python benchmarks/bench_revisions.py --baseline fee664e
    python benchmarks/bench_revisions.py --baseline fee664e --repeats 5

It writes ``benchmarks/results/bench_revisions.json`` (``--results PATH``, ``--no-results``).

The default cases are the engine's everyday work at fixed beams (so that both revisions
solve the same matrices): Si [001] with 80 strong + 160 Bethe beams and SrTiO3 [001]
with 120 strong + 240 Bethe beams, 32 × 32 px, four thicknesses. ``--case`` picks others:

- ``SrTiO3-converged``: ``simulate``'s default (tolerance 1 %, beams chosen and verified
  by each revision), 64 × 64 px: what a user waits for (issue 24);
- ``SrTiO3-340+679``: the beams the issue-16 default chose there, fixed, without the
  verification (``tolerance=inf``): the engine at equal beams.

    python benchmarks/bench_revisions.py --baseline 597b8ed --case SrTiO3-converged \
        --case SrTiO3-340+679 --repeats 2 --results benchmarks/results/bench_revisions-converged.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "Si": {"strong_beams": 80, "weak_beams": 160},
    "SrTiO3": {"strong_beams": 120, "weak_beams": 240},
}
#: Cases run only when named (``--case``): (structure, keywords, pixels).
MORE_CASES = {
    "SrTiO3-converged": ("SrTiO3", {}, 64),
    "SrTiO3-340+679": (
        "SrTiO3",
        {"strong_beams": 340, "weak_beams": 679, "tolerance": float("inf")},
        64,
    ),
}

PIXELS = 32
THICKNESSES = [500.0, 1000.0, 1500.0, 2000.0]

# Run in the child: time compute_discs of one case and save its discs.
CHILD = """
import json, sys, time
import numpy as np
import torch
from hyperspy_lacbed.bloch.discs import compute_discs
name, kw, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
torch.set_num_threads(int(sys.argv[4]))
args = dict(thickness=json.loads(sys.argv[5]), pixels=int(sys.argv[6]), show_progressbar=False,
            **kw)
compute_discs(name, **{**args, "pixels": 2})  # warm-up: imports, tables
t = time.perf_counter()
r = compute_discs(name, **args)
c = r.convergence
beams = None if c is None else [c.strong_beams, c.weak_beams, c.estimate]
print(json.dumps({"seconds": time.perf_counter() - t, "file": r.crystal.name, "beams": beams}))
np.save(out, r.discs)
"""


def export_revision(rev: str, dest: Path) -> Path:
    """``hyperspy_lacbed`` of git revision ``rev`` under ``dest`` (for PYTHONPATH)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "src.tar"
    with open(archive, "wb") as f:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "hyperspy_lacbed"], stdout=f, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def time_case(
    tree: Path, name: str, kw: dict, out: Path, threads: int, pixels: int = PIXELS
) -> dict:
    """Seconds (and chosen beams) of one compute_discs call of ``tree``'s package in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = out.resolve()
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            name,
            json.dumps(kw),
            str(out),
            str(threads),
            json.dumps(THICKNESSES),
            str(pixels),
        ],
        env=env,
        cwd=tree,  # `python -c` puts the working folder first on sys.path
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Time the cases at both revisions; write and return the results."""

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--current", default="WORKTREE", help="revision, or the working tree")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--case",
        action="append",
        choices=[*CASES, *MORE_CASES],
        help="cases to run (default: " + ", ".join(CASES) + ")",
    )
    add_results_argument(ap)
    args = ap.parse_args(argv)
    results = {
        "baseline": args.baseline,
        "current": args.current,
        "threads": args.threads,
        "pixels": PIXELS,
        "thicknesses_A": THICKNESSES,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = export_revision(args.baseline, tmp / "base")
        if args.current == "WORKTREE":
            cur = ROOT
        else:
            cur = export_revision(args.current, tmp / "cur")
        cases = {}
        table = {n: (n, kw, PIXELS) for n, kw in CASES.items()} | MORE_CASES
        for name in args.case or list(CASES):
            structure, kw, pixels = table[name]
            times = {"baseline": [], "current": []}
            beams = {}
            for _ in range(args.repeats):
                for label, tree in (("baseline", base), ("current", cur)):
                    out = tmp / f"{label}.npy"
                    run = time_case(tree, structure, kw, out, args.threads, pixels)
                    times[label].append(run["seconds"])
                    beams[label] = run.get("beams")
            a, b = np.load(tmp / "baseline.npy"), np.load(tmp / "current.npy")
            cases[name] = {
                "settings": {**kw, "structure": structure, "pixels": pixels},
                "beams_strong_weak_estimate": beams,
                "baseline_seconds": min(times["baseline"]),
                "current_seconds": min(times["current"]),
                "speedup": min(times["baseline"]) / min(times["current"]),
                "max_difference": float(np.abs(a - b).max() / a.max()),
                "all_seconds": times,
            }
            print(
                f"{name}: baseline {cases[name]['baseline_seconds']:.2f} s, current "
                f"{cases[name]['current_seconds']:.2f} s, ratio {cases[name]['speedup']:.2f}, "
                f"max |Δ| {cases[name]['max_difference']:.1e} of the maximum"
            )
        results["cases"] = cases
    write_results(args, "bench_revisions", results)
    return results


if __name__ == "__main__":
    main()
