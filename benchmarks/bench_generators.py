"""Size and throughput of the generators, physics-informed against the paper's pix2pixHD.

Run: ``python benchmarks/bench_generators.py`` (``--threads 1``, ``--batch 32``,
``--repeats 5``, ``--structure Si``, ``--simulate``, ``--json out.json``, ``--kwargs
'{"fourier-forward": {"width": 48}}'`` for other sizes).

Every generator of :data:`~hyperspy_lacbed.nets.architectures.ARCHITECTURES` is built at
its default size for the default :class:`~hyperspy_lacbed.nets.domain.Domain` (128²
potentials, nine 64² discs), with random weights (the time does not depend on them), and
timed in one process, the architectures interleaved repeat by repeat so that a busy
machine slows all of them alike: patterns (one thickness, nine discs) per second at the
given batch, and the ratio to pix2pixHD of the same direction. The inputs are those of a
real crystal (its projected potential, encoded with the canonical origin, and discs of
the same shape), because the physics-informed forward generator's origin search and
symmetry test depend on the potential. Parameter counts and the size of the weights as
written to ``model.safetensors`` are listed too. With ``--simulate`` the Bloch-wave engine
(``hyperspy_lacbed.simulate`` at the domain's settings, its four thicknesses) is timed in
the same process, for the ratio the issue's speed target is about.

``--domain-from FOLDER [FOLDER]`` times at another domain: that of an exported model (its
``card.json``) or of a training run (its ``config.json``), e.g. the v1 runs' 32-px discs
and converged Bloch-wave settings. The JSON (``--json``) is what
``tools/finalise_models.py --speed`` puts in the model cards::

    python benchmarks/bench_generators.py --domain-from runs/v1-forward runs/v1-inverse --simulate \
        --threads 2 --json out/speed.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import add_results_argument, write_results


def rst_table(report: dict) -> str:
    """The rows of a run as the RST table of docs/user_guide/surrogates.rst."""
    sim = report["simulate_patterns_per_s"] is not None
    head = ["generator", "parameters", "weights (MB)", "× pix2pixHD"] + (
        ["× ``simulate``"] if sim else []
    )
    body = []
    for r in report["rows"]:
        name = r["architecture"] + (
            f", {r['direction']}" if r["architecture"] == "pix2pixhd" else ""
        )
        cells = [name, f"{r['parameters']:,}".replace(",", " "), f"{r['weights_mb']:.1f}"]
        cells.append(f"{r['ratio_to_pix2pixhd']:.2g}")
        if sim:
            cells.append(f"{r['ratio_to_simulate']:.2g}")
        body.append(cells)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = "  ".join("=" * w for w in widths)
    lines = [line, "  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), line]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join([*lines, line])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batch", type=int, default=32, help="patterns per call (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--structure", default="Si", help="example name or CIF (default Si)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--simulate", action="store_true", help="also time simulate()")
    parser.add_argument(
        "--json", type=Path, help="also write the rows here (the finaliser's --speed input)"
    )
    add_results_argument(parser)
    parser.add_argument(
        "--domain-from",
        type=Path,
        nargs="+",
        help="model folders (card.json) or run folders (config.json): the first one's domain, "
        "and each one's generator settings for its architecture",
    )
    parser.add_argument(
        "--kwargs",
        default="{}",
        help='JSON generator overrides per architecture, e.g. \'{"fourier-forward": {"width": 48}}\'',
    )
    args = parser.parse_args()
    overrides = json.loads(args.kwargs)

    import safetensors.torch
    import torch

    torch.set_num_threads(args.threads)
    from hyperspy_lacbed.crystal.potential import projected_potential_array
    from hyperspy_lacbed.crystal.structure import load_structure
    from hyperspy_lacbed.nets.architectures import (
        build_generator,
        count_parameters,
        generator_kwargs,
    )
    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.nets.normalisation import Encoding

    dom, dev = Domain(), torch.device(args.device)
    for k, folder in enumerate(args.domain_from or []):
        for name in ("card.json", "config.json"):
            if (folder / name).is_file():
                source = json.loads((folder / name).read_text())
                break
        else:
            raise FileNotFoundError(
                f"{folder} holds neither card.json (an exported model) nor config.json (a "
                "training run); give one of those folders to --domain-from."
            )
        if k == 0:
            dom = Domain.from_dict(source["domain"])
        # the generator as trained: a card keeps its full kwargs, a run its overrides
        arch = source.get("architecture")
        if isinstance(arch, dict):
            arch, settings = arch["name"], arch.get("kwargs", {})
        else:
            settings = source.get("generator", {})
        if arch:
            overrides[arch] = {**settings, **overrides.get(arch, {})}
    enc = Encoding.for_domain(dom)
    crystal = load_structure(args.structure)
    a = float(crystal.lattice_parameters[0])
    p = dom.potential_pixels
    pot, _ = projected_potential_array(
        crystal, dom.zone_axis, dom.x_direction, (p, p), dom.scattering_factors, True
    )
    rng = np.random.default_rng(0)
    b = args.batch
    shifts = rng.integers(0, p, (b, 2))
    pots = np.stack([np.roll(pot, tuple(s), axis=(0, 1)) for s in shifts])
    x_fwd = torch.from_numpy(enc.encode_potential(pots))[:, None].to(dev)
    discs = rng.random((b, len(dom.reflections), dom.disc_pixels, dom.disc_pixels))
    x_inv = torch.from_numpy(enc.encode_input_discs(discs)).to(dev)
    cond = torch.from_numpy(enc.encode_conditioning(np.full(b, a), np.full(b, 1000.0))).to(dev)

    nets = {}
    for direction, arch in [
        ("forward", "pix2pixhd"),
        ("forward", "fourier-forward"),
        ("inverse", "pix2pixhd"),
        ("inverse", "fourier-inverse"),
    ]:
        torch.manual_seed(0)
        kw = generator_kwargs(direction, dom, overrides.get(arch), arch)
        g = build_generator(arch, kw).to(dev).eval()
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "model.safetensors"
            safetensors.torch.save_file({k: v.contiguous() for k, v in g.state_dict().items()}, f)
            size = f.stat().st_size
        nets[(direction, arch)] = {"module": g, "parameters": count_parameters(g), "bytes": size}

    def call(key):
        g = nets[key]["module"]
        x = x_fwd if key[0] == "forward" else x_inv
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            g(x, cond)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for key in nets:  # warm-up
        call(key)
    walls = {key: [] for key in nets}
    sim_walls = []
    if args.simulate:
        import hyperspy_lacbed as hl

        kw = dom.simulation_kwargs(a)
        hl.simulate(crystal, **{**kw, "pixels": 4}, show_progressbar=False)  # warm-up
    for _ in range(args.repeats):
        for key in nets:
            walls[key].append(call(key))
        if args.simulate:
            t0 = time.perf_counter()
            s = hl.simulate(crystal, **kw, device=args.device, show_progressbar=False)
            sim_walls.append((time.perf_counter() - t0) / s.data.shape[0])

    print(
        f"generators at {'the default' if args.domain_from is None else 'the given'} domain "
        f"({p}² potentials, {len(dom.reflections)} discs of "
        f"{dom.disc_pixels}²), {args.structure} inputs, batch {b}, {args.device}, "
        f"{args.threads} torch thread(s), median of {args.repeats}; torch {torch.__version__}"
    )
    head = f"{'direction':<10}{'architecture':<18}{'parameters':>12}{'weights MB':>12}"
    head += f"{'patterns/s':>12}{'× pix2pixhd':>13}"
    head += f"{'× simulate':>12}" if sim_walls else ""
    print(head)
    print("-" * len(head))
    results = []
    sim_rate = 1.0 / float(np.median(sim_walls)) if sim_walls else None
    for (direction, arch), info in nets.items():
        rate = b / float(np.median(walls[(direction, arch)]))
        base = b / float(np.median(walls[(direction, "pix2pixhd")]))
        row = {
            "direction": direction,
            "architecture": arch,
            "parameters": info["parameters"],
            "weights_mb": info["bytes"] / 1e6,
            "patterns_per_s": rate,
            "ratio_to_pix2pixhd": rate / base,
        }
        line = f"{direction:<10}{arch:<18}{info['parameters']:>12,}{info['bytes'] / 1e6:>12.2f}"
        line += f"{rate:>12.4g}{rate / base:>13.3g}"
        if sim_rate:
            row["ratio_to_simulate"] = rate / sim_rate
            line += f"{rate / sim_rate:>12.3g}"
        print(line)
        results.append(row)
    if sim_rate:
        print(f"simulate: {sim_rate:.3g} patterns/s (four thicknesses per solve, per pattern)")
    report = {
        "benchmark": "benchmarks/bench_generators.py",
        "threads": args.threads,
        "device": args.device,
        "batch": b,
        "repeats": args.repeats,
        "structure": args.structure,
        "domain": dom.to_dict(),
        "torch": torch.__version__,
        "rows": results,
        "simulate_patterns_per_s": sim_rate,
    }
    print(rst_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    # benchmarks/results/bench_generators[-domain]-<structure>.json
    name = "bench_generators" + ("-domain" if args.domain_from else "")
    write_results(args, f"{name}-{Path(args.structure).stem}", report)


if __name__ == "__main__":
    main()
