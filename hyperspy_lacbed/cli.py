"""Command line: ``hyperspy-lacbed`` (or ``python -m hyperspy_lacbed``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _write_outputs(signal, out: Path, stem: str, overwrite: bool) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    data_path = out / f"{stem}.hspy"
    fig_path = out / f"{stem}_montage.png"
    for p in (data_path, fig_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass --overwrite to replace it.")
    signal.save(data_path, overwrite=True)
    fig = signal.plot_montage(scale="per_disc")
    fig.savefig(fig_path, dpi=120)
    plt.close(fig)
    return [data_path, fig_path]


def _demo(args: argparse.Namespace) -> int:
    from hyperspy_lacbed import simulate

    t0 = time.perf_counter()
    s = simulate(
        "Si",
        zone_axis=(0, 0, 1),
        thickness=["50 nm", "100 nm", "150 nm", "200 nm"],
        voltage="200 kV",
        pixels=args.pixels,
        show_progressbar=not args.quiet,
    )
    paths = _write_outputs(s, Path(args.out), "si001", overwrite=True)
    print(
        f"Simulated Si [001], {s.data.shape[0]} thicknesses × {s.data.shape[1]} discs of "
        f"{args.pixels}×{args.pixels} pixels in {time.perf_counter() - t0:.1f} s."
    )
    for p in paths:
        print(f"wrote {p}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from hyperspy_lacbed import simulate

    zone = tuple(int(x) for x in args.zone_axis.split(","))
    s = simulate(
        args.structure,
        zone_axis=zone,
        thickness=args.thickness,
        voltage=args.voltage,
        pixels=args.pixels,
        strong_beams=args.strong_beams,
        weak_beams=args.weak_beams,
        tolerance=args.tolerance,
        absorption=args.absorption,
        show_progressbar=not args.quiet,
    )
    stem = Path(args.structure).stem
    for p in _write_outputs(s, Path(args.out), stem, args.overwrite):
        print(f"wrote {p}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from hyperspy_lacbed.nets.registry import list_models

    print(list_models(models_dir=args.models_dir))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from hyperspy_lacbed import generate

    # One thickness on the command line is one pattern, not a stack of one.
    thickness = args.thickness
    if thickness is not None and len(thickness) == 1:
        thickness = thickness[0]
    s = generate(
        args.structure,
        thickness=thickness,
        model=args.model,
        models_dir=args.models_dir,
        show_progressbar=not args.quiet,
    )
    stem = Path(args.structure).stem + "_cgan"
    for p in _write_outputs(s, Path(args.out), stem, args.overwrite):
        print(f"wrote {p}")
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    import hyperspy.api as hs
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = hs.load(args.pattern)
    if s.metadata.Signal.signal_type != "LACBED":
        raise ValueError(
            f"{args.pattern} holds a {s.metadata.Signal.signal_type or 'plain'} signal; save a "
            "calibrated LACBED signal (set_signal_type('LACBED') and calibrate) first."
        )
    pot = s.retrieve_potential(
        model=args.model,
        lattice_parameter=args.lattice_parameter,
        thickness=args.thickness,
        models_dir=args.models_dir,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.pattern).stem + "_potential"
    data_path, fig_path = out / f"{stem}.hspy", out / f"{stem}.png"
    for p in (data_path, fig_path):
        if p.exists() and not args.overwrite:
            raise FileExistsError(f"{p} exists; pass --overwrite to replace it.")
    pot.save(data_path, overwrite=True)
    images = np.asarray(pot.data).reshape(-1, *pot.data.shape[-2:])
    fig, ax = plt.subplots(figsize=(4, 4), constrained_layout=True)
    img = ax.imshow(images[0], cmap="viridis", origin="lower")
    if len(images) > 1:  # a stack: the figure shows its first potential
        ax.set_title(f"first of {len(images)} potentials")
    fig.colorbar(img, ax=ax, label="V·Å")
    fig.savefig(fig_path, dpi=120)
    plt.close(fig)
    for p in (data_path, fig_path):
        print(f"wrote {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hyperspy-lacbed`` command."""
    parser = argparse.ArgumentParser(
        prog="hyperspy-lacbed",
        description="Dynamical LACBED: Bloch-wave simulation and cGAN surrogates for HyperSpy.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate Si [001] at 50–200 nm; write .hspy and PNG")
    demo.add_argument("--out", default="out", help="output folder (default: out)")
    demo.add_argument("--pixels", type=int, default=64, help="disc size in pixels (default 64)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    sim = sub.add_parser("simulate", help="Bloch-wave LACBED discs of a crystal")
    sim.add_argument("structure", help="CIF file or example name (Si, GaAs, SrTiO3, ...)")
    sim.add_argument("--zone-axis", default="0,0,1", help="beam direction u,v,w (default 0,0,1)")
    sim.add_argument(
        "--thickness",
        nargs="+",
        default=["100 nm"],
        help="thicknesses with units, e.g. '50 nm' '100 nm' (default 100 nm)",
    )
    sim.add_argument("--voltage", default="200 kV", help="accelerating voltage (default 200 kV)")
    sim.add_argument("--pixels", type=int, default=64, help="disc size in pixels (default 64)")
    sim.add_argument(
        "--strong-beams",
        type=int,
        default=None,
        help="explicit strong beams (default: by --tolerance)",
    )
    sim.add_argument(
        "--weak-beams",
        type=int,
        default=None,
        help="explicit Bethe weak beams (default: by --tolerance)",
    )
    sim.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="convergence tolerance, fraction of each image's maximum (default 0.01)",
    )
    sim.add_argument(
        "--absorption",
        default="proportional",
        choices=["none", "proportional", "bird-king"],
        help="absorption model",
    )
    sim.add_argument("--out", default="out", help="output folder (default: out)")
    sim.add_argument("--overwrite", action="store_true", help="replace existing files")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)

    mod = sub.add_parser("models", help="list the pretrained surrogate models")
    mod.add_argument("--models-dir", dest="models_dir", help="another models folder")
    mod.set_defaults(func=_models)

    gen = sub.add_parser("generate", help="LACBED discs of a cubic crystal from the forward cGAN")
    gen.add_argument("structure", help="CIF file or example name (Si, GaAs, SrTiO3, ...)")
    gen.add_argument(
        "--thickness",
        nargs="+",
        default=None,
        help="thicknesses with units, e.g. '50 nm' (default: the model's)",
    )
    gen.add_argument("--model", default="default", help="model name or folder")
    gen.add_argument("--models-dir", dest="models_dir", help="another models folder")
    gen.add_argument("--out", default="out", help="output folder (default: out)")
    gen.add_argument("--overwrite", action="store_true", help="replace existing files")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    ret = sub.add_parser("retrieve", help="projected potential from a LACBED pattern file")
    ret.add_argument("pattern", help="a saved LACBED signal (.hspy, .zspy)")
    ret.add_argument(
        "--lattice-parameter",
        dest="lattice_parameter",
        type=float,
        help="cubic lattice parameter in Å when the file does not hold it",
    )
    ret.add_argument("--thickness", help="thickness, e.g. '100 nm', when the file lacks it")
    ret.add_argument("--model", default="default", help="model name or folder")
    ret.add_argument("--models-dir", dest="models_dir", help="another models folder")
    ret.add_argument("--out", default="out", help="output folder (default: out)")
    ret.add_argument("--overwrite", action="store_true", help="replace existing files")
    ret.set_defaults(func=_retrieve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as exc:
        print(f"hyperspy-lacbed {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
