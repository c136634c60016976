"""Where the benchmarks put what they measured: ``benchmarks/results/<name>.json``.

Every number of the README's *What is measured* table and of the docs' measured tables is
read from one of these files (or from a model card); ``tests/test_readme_results.py``
checks the text against them. A file holds the command that wrote it, when and where it
ran, and the results; it is written only by the benchmark that measured them, so a rerun
updates the file and the test then says which sentence of the docs no longer holds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    """``--results PATH`` (default ``benchmarks/results/<name>.json``) and ``--no-results``."""
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="write the results here (default: benchmarks/results/<benchmark>.json)",
    )
    parser.add_argument(
        "--no-results", action="store_true", help="print only; write no results file"
    )


def command_line() -> str:
    """The command as typed from the repository root: ``python benchmarks/x.py ...``."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = script.relative_to(ROOT).as_posix()
    except ValueError:
        script_text = str(script)
    args = [a for a in sys.argv[1:]]
    return " ".join(["python", script_text, *map(shlex.quote, args)])


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _clean(value):
    """NaN and infinities as None (JSON has neither); tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def machine() -> dict:
    """Where it ran: CPUs, platform, Python, torch, the package and the git commit."""
    info = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # the machine's load when the results were written: timings on shared cores
        # depend on it
        "load_average_1_5_15_min": list(os.getloadavg()),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    try:
        import hyperspy_lacbed

        info["hyperspy_lacbed"] = hyperspy_lacbed.__version__
    except Exception:  # pragma: no cover - the benchmarks run in the installed package
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - not a checkout
        pass
    return info


def write_results(args: argparse.Namespace, name: str, results, **context) -> Path | None:
    """Write ``results`` (with the command, time and machine) to ``args.results``.

    Without ``--results`` the file is ``benchmarks/results/<name>.json``.
    ``context`` adds top-level keys (settings, references the results are compared to).
    Returns the path, or None with ``--no-results``.
    """
    if getattr(args, "no_results", False):
        return None
    record = {
        "command": command_line(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **_clean(context),
        "results": _clean(results),
    }
    path = Path(args.results) if args.results else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=_jsonable) + "\n", encoding="utf-8")
    print(f"results: {path}", flush=True)
    return path
