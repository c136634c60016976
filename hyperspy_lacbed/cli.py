"""Command line: ``hyperspy-lacbed`` (or ``python -m hyperspy_lacbed``)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _output_paths(args: argparse.Namespace, stem: str, figure_suffix: str) -> tuple[Path, Path]:
    """(data file, figure) from ``-o FILE`` or from ``--out FOLDER`` and the input's name."""
    output = getattr(args, "output", None)
    if output is not None:
        if args.out is not None:
            raise ValueError("give either -o/--output FILE or --out FOLDER, not both.")
        data_path = Path(output)
        if data_path.suffix.lower() not in (".hspy", ".zspy"):
            raise ValueError(
                f"-o/--output {output!r}: the file must end in .hspy or .zspy "
                "(HyperSpy's formats, which keep the calibration and metadata)."
            )
        return data_path, data_path.with_name(data_path.stem + figure_suffix + ".png")
    out = Path(args.out if args.out is not None else "out")
    return out / f"{stem}.hspy", out / f"{stem}{figure_suffix}.png"


def _write_outputs(signal, paths: tuple[Path, Path], overwrite: bool) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data_path, fig_path = paths
    data_path.parent.mkdir(parents=True, exist_ok=True)
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
    paths = _write_outputs(
        s, (Path(args.out) / "si001.hspy", Path(args.out) / "si001_montage.png"), True
    )
    print(
        f"Simulated Si [001], {s.data.shape[0]} thicknesses × {s.data.shape[1]} discs of "
        f"{args.pixels}×{args.pixels} pixels in {time.perf_counter() - t0:.1f} s."
    )
    for p in paths:
        print(f"wrote {p}")
    return 0


def _triples(text: str, what: str) -> list[tuple[int, int, int]]:
    """Integer triples from ``"0,0,0 2,-2,0"``, ``"[0,0,0] [2,-2,0]"`` or a file holding them."""
    path = Path(text)
    if len(text) < 4096 and path.is_file():  # e.g. Felix's felix.hkl: one [h,k,l] a line
        text = path.read_text(errors="replace")
    found = re.findall(r"(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)", text)
    rest = re.sub(r"(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)|[\s\[\]();]", "", text)
    if not found or rest:
        raise ValueError(
            f"{what} {text!r}: give integer triples h,k,l separated by spaces, e.g. "
            "'0,0,0 2,-2,0 -2,2,0' (quote the list when one starts with a minus sign), "
            "or a file with one [h,k,l] a line."
        )
    return [tuple(int(v) for v in t) for t in found]


def _direction(text: str | None, what: str) -> tuple[int, int, int] | None:
    if text is None:
        return None
    triples = _triples(text, what)
    if len(triples) != 1:
        raise ValueError(f"{what} {text!r}: give one direction u,v,w, e.g. 1,0,0.")
    return triples[0]


def _length_or_angle(text: str | None) -> Any:
    """A disc radius: a plain number is 1/Å (as in simulate); otherwise a quantity string."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _fraction(text: str | None) -> float | None:
    """An absorption fraction: ``0.1`` or ``10%`` (Felix's RAbsorptionPer is in %)."""
    if text is None:
        return None
    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(
            f"--absorption-fraction {text!r}: give a fraction (0.1) or a percentage (10%)."
        ) from None


def simulate_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`hyperspy_lacbed.simulate` that the command line gives.

    Options left out are not passed, so that simulate's defaults, or the preset's
    conventions (``--preset felix``), apply to them.
    """
    kw: dict[str, Any] = {
        "zone_axis": _direction(args.zone_axis, "--zone-axis"),
        "x_direction": _direction(args.x_direction, "--x-direction"),
        "surface_normal": _direction(args.surface_normal, "--surface-normal"),
        "thickness": args.thickness,
        "voltage": args.voltage,
        "pixels": args.pixels,
        "reflections": None
        if args.reflections is None
        else [t for text in args.reflections for t in _triples(text, "--reflections")],
        "disc_radius": _length_or_angle(args.disc_radius),
        "absorption": args.absorption,
        "absorption_fraction": _fraction(args.absorption_fraction),
        "scattering_factors": args.scattering_factors,
        "debye_waller": args.debye_waller,
        "strong_beams": args.strong_beams,
        "weak_beams": args.weak_beams,
        "tolerance": args.tolerance,
        "beam_pool": args.beam_pool,
        "solver": args.solver,
        "preset": args.preset,
        "device": args.device,
    }
    return {k: v for k, v in kw.items() if v is not None}


def _simulate(args: argparse.Namespace) -> int:
    import hyperspy_lacbed

    s = hyperspy_lacbed.simulate(
        args.structure, show_progressbar=not args.quiet, **simulate_kwargs(args)
    )
    paths = _output_paths(args, Path(args.structure).stem, "_montage")
    for p in _write_outputs(s, paths, args.overwrite):
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
    paths = _output_paths(args, Path(args.structure).stem + "_cgan", "_montage")
    for p in _write_outputs(s, paths, args.overwrite):
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
    data_path, fig_path = _output_paths(args, Path(args.pattern).stem + "_potential", "")
    data_path.parent.mkdir(parents=True, exist_ok=True)
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


def _output_options(parser: argparse.ArgumentParser, names: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the data file to write (.hspy or .zspy); the PNG goes beside it",
    )
    parser.add_argument(
        "--out", metavar="FOLDER", help=f"output folder for {names} (default: out)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")


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

    _add_simulate(sub)
    _add_surrogate_commands(sub)
    return parser


def _add_simulate(sub: Any) -> None:
    """The ``simulate`` command: every setting of :func:`hyperspy_lacbed.simulate`."""
    sim = sub.add_parser(
        "simulate",
        help="Bloch-wave LACBED discs of a crystal",
        description="Bloch-wave LACBED discs of a crystal. Options left out take simulate's "
        "defaults, or the preset's conventions with --preset.",
    )
    sim.add_argument("structure", help="CIF file or example name (Si, GaAs, SrTiO3, ...)")
    sim.add_argument("--zone-axis", help="beam direction u,v,w (default 0,0,1)")
    sim.add_argument(
        "--x-direction", help="direction u,v,w along kx, perpendicular to the beam (default [100])"
    )
    sim.add_argument("--surface-normal", help="surface normal u,v,w (default the beam direction)")
    sim.add_argument(
        "--thickness",
        nargs="+",
        default=["100 nm"],
        help="thicknesses with units, e.g. '50 nm' '100 nm' (default 100 nm; numbers are Å)",
    )
    sim.add_argument("--voltage", help="accelerating voltage (default 200 kV)")
    sim.add_argument("--pixels", type=int, help="disc size in pixels, even (default 64)")
    sim.add_argument(
        "--reflections",
        nargs="+",
        help="discs to compute as h,k,l triples, e.g. '0,0,0 2,-2,0 -2,2,0' (quote a list whose "
        "first triple starts with a minus), or a file with one [h,k,l] a line (Felix's "
        "felix.hkl); default 000 and two shells",
    )
    sim.add_argument(
        "--disc-radius",
        "--convergence-angle",
        dest="disc_radius",
        help="disc radius as '0.25 1/Å' or convergence semi-angle as '6 mrad' (a number is "
        "1/Å); default half the smallest |g|",
    )
    sim.add_argument(
        "--absorption",
        choices=["none", "proportional", "bird-king"],
        help="absorption model (default proportional)",
    )
    sim.add_argument(
        "--absorption-fraction",
        help="κ of proportional absorption: 0.1 or 10%% (Felix's RAbsorptionPer; default 0.1)",
    )
    sim.add_argument(
        "--scattering-factors", choices=["kirkland", "lobato"], help="default kirkland"
    )
    sim.add_argument(
        "--debye-waller",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply the atoms' Debye–Waller factors (default yes)",
    )
    sim.add_argument(
        "--strong-beams",
        type=int,
        help="strong beams, honoured exactly (Felix IMinStrongBeams; default: by --tolerance)",
    )
    sim.add_argument(
        "--weak-beams",
        type=int,
        help="weak beams as Bethe potentials (IMinWeakBeams; default: by --tolerance)",
    )
    sim.add_argument(
        "--tolerance",
        type=float,
        help="convergence tolerance, a fraction of each image's maximum (default 0.01)",
    )
    sim.add_argument(
        "--beam-pool", type=int, help="reflections in the beam pool (IMinReflectionPool)"
    )
    sim.add_argument(
        "--preset",
        help="another program's conventions, e.g. felix; the options given still win",
    )
    sim.add_argument("--solver", choices=["auto", "exact", "fast"], help="default auto")
    sim.add_argument("--device", help="auto (default), cpu or cuda")
    _output_options(sim, "<structure>.hspy and <structure>_montage.png")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)


def _add_surrogate_commands(sub: Any) -> None:
    """The ``models``, ``generate`` and ``retrieve`` commands (the cGAN surrogates)."""
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
    _output_options(gen, "<structure>_cgan.hspy and <structure>_cgan_montage.png")
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
    _output_options(ret, "<pattern>_potential.hspy and <pattern>_potential.png")
    ret.set_defaults(func=_retrieve)


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
