"""Property-based tests (hypothesis) of the public entry points, valid and invalid input.

Each call either returns a result that passes a physical check, or raises the documented
exception (``ValueError`` and its subclass ``StructureError``, ``FileNotFoundError``,
``TypeError``; exit status 2 on the command line) with a message that says what is wrong.
Anything else — an ``IndexError`` from deep inside numpy, a silent NaN, intensity
created from nothing — fails.

Driven: ``hl.load_structure`` (mutated CIF text, P1 cells, partial occupancies, odd cell
settings), ``hl.simulate`` (zone axes, thicknesses, units, reflections), ``LACBED``
methods (shapes, NaN/inf, uncalibrated axes) and the ``hyperspy-lacbed`` command. The
grids are tiny (2–6 pixels, ≤ 20 beams) so that the whole file runs in well under a
minute on two cores; ``EXAMPLES`` sums the examples per run.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import hyperspy.api as hs
import numpy as np
import pytest
from helpers import p1_cif
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hyperspy_lacbed as hl
from hyperspy_lacbed.cli import main
from hyperspy_lacbed.crystal.structure import StructureError

#: Documented exceptions of the public API (StructureError is a ValueError).
DOCUMENTED = (ValueError, FileNotFoundError, TypeError)
#: max_examples of each property below; their sum is what one run of this file tries.
N_CIF, N_SIM, N_UNITARY, N_SIGNAL, N_CLI = 60, 25, 8, 40, 12
EXAMPLES = N_CIF + N_SIM + N_UNITARY + N_SIGNAL + N_CLI
FAST = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "derandomize": True}


def _shipped_domain():
    from hyperspy_lacbed.nets import registry
    from hyperspy_lacbed.nets.domain import Domain

    card = registry.read_card(registry.resolve_model("default", "forward"))
    return Domain.from_dict(card["domain"])


#: The shipped forward model's domain (the surrogate paths take exactly its crystals).
_MODEL_DOMAIN = _shipped_domain()


def documented(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raised a documented, explained exception."""
    try:
        out = fn(*args, **kwargs)
        event("returned a result")
        return out
    except DOCUMENTED as exc:
        event(f"refused: {type(exc).__name__}: {str(exc)[:50]}")
        message = str(exc)
        assert len(message) > 15, f"{type(exc).__name__} without a useful message: {message!r}"
        assert "Traceback" not in message
        return None


# ----------------------------------------------------------------------------- load_structure
BASE_CIFS = {
    "Si (Fd-3m, symmetry loop)": (Path(hl.__file__).parent / "data" / "structures" / "Si.cif"),
    "NaCl": Path(hl.__file__).parent / "data" / "structures" / "NaCl.cif",
    "SrTiO3": Path(hl.__file__).parent / "data" / "structures" / "SrTiO3.cif",
}
ELEMENTS = ["Si", "O", "Ga", "As", "Sr", "Ti", "Cu", "Na", "Cl", "Au", "C", "Fe", "Xx", "si"]
NUMBER = st.one_of(
    st.floats(-2, 15, allow_nan=False).map(lambda v: f"{v:.4f}"),
    st.sampled_from(["0", "-1", "1e9", "nan", "inf", "?", ".", "0.5(3)", "1/2"]),
)


@st.composite
def p1_cifs(draw) -> str:
    """A P1 cell: odd settings (any angles), partial occupancies, shared sites."""
    a, b, c = (draw(st.floats(2.5, 9.0)) for _ in range(3))
    angles = [draw(st.sampled_from([90, 90, 60, 120, 100.5, 75])) for _ in range(3)]
    rows = []
    for i in range(draw(st.integers(1, 4))):
        el = draw(st.sampled_from(ELEMENTS[:12]))
        xyz = [draw(st.sampled_from([0, 0.25, 0.5, 0.75]) | st.floats(0, 1)) for _ in range(3)]
        occ = draw(st.sampled_from([1.0, 0.5, 0.3]) | st.floats(0.01, 1.0))
        rows.append(f"{el}{i} {el} {xyz[0]} {xyz[1]} {xyz[2]} {occ}")
    return p1_cif(rows, a, b, c, tuple(angles), columns=("occupancy",))


@st.composite
def mutated_cifs(draw) -> str:
    """A shipped CIF or a P1 cell, with one or two textual mutations."""
    if draw(st.booleans()):
        text = BASE_CIFS[draw(st.sampled_from(sorted(BASE_CIFS)))].read_text()
    else:
        text = draw(p1_cifs())
    for _ in range(draw(st.integers(0, 2))):
        lines = text.splitlines()
        kind = draw(
            st.sampled_from(
                ["drop_line", "number", "element", "no_symmetry", "truncate", "duplicate"]
            )
        )
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "drop_line":
            del lines[i]
        elif kind == "number":
            tokens = lines[i].split()
            spots = [j for j, t in enumerate(tokens) if re.fullmatch(r"-?[\d.]+", t)]
            if spots:
                tokens[draw(st.sampled_from(spots))] = draw(NUMBER)
                lines[i] = " ".join(tokens)
        elif kind == "element":
            tokens = lines[i].split()
            if len(tokens) >= 5 and tokens[1] in ELEMENTS:
                tokens[1] = draw(st.sampled_from(ELEMENTS))
                lines[i] = " ".join(tokens)
        elif kind == "no_symmetry":  # strip the space group and the symmetry loop
            lines = [ln for ln in lines if "space_group" not in ln and "symmetry" not in ln]
            lines = [ln for ln in lines if not re.fullmatch(r"\s*\d+\s+'.*'\s*", ln)]
        elif kind == "truncate":
            lines = lines[: max(i, 1)]
        else:
            lines.insert(i, lines[i])
        text = "\n".join(lines) + "\n"
    return text


def _crystal_is_physical(c) -> None:
    lp = np.asarray(c.lattice_parameters)
    assert np.isfinite(lp).all() and (lp[:3] > 0).all() and c.volume > 0
    assert len(c) >= 1 and ((c.positions >= 0) & (c.positions < 1)).all()
    assert ((c.occupancies > 0) & (c.occupancies <= 1)).all() and (c.b_iso >= 0).all()
    assert 1 <= c.space_group_number <= 230
    # the potential of one cell along c: finite and positive on average (V·Å); an oblique
    # cell has no rectangular projection along c, which is refused with the reason
    pot = documented(hl.projected_potential, c, zone_axis=(0, 0, 1), shape=(16, 16))
    if pot is None:
        assert not np.allclose(lp[3:5], 90) or lp[5] != 90
    else:
        assert np.isfinite(pot.data).all() and pot.data.mean() > 0


@settings(max_examples=N_CIF, **FAST)
@given(mutated_cifs())
def test_load_structure_of_mutated_cifs(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crystal.cif"
        path.write_text(text)
        try:
            c = hl.load_structure(path)
        except StructureError as exc:
            assert len(str(exc)) > 15
            return
        _crystal_is_physical(c)
        # what load_structure returns, every entry point takes (and is refused cleanly)
        lo, hi = _MODEL_DOMAIN.lattice_parameter_range
        if c.is_cubic and lo <= c.lattice_parameters[0] <= hi:
            assert hl.model_settings(c)["pixels"] == _MODEL_DOMAIN.disc_pixels
        else:
            with pytest.raises(ValueError, match="not cubic|outside"):
                hl.model_settings(c)


@settings(max_examples=10, **FAST)
@given(st.sampled_from([None, 3.5, [1, 2], {"a": 1}, b"data_x", "no-such-crystal"]))
def test_load_structure_of_other_things(value):
    with pytest.raises((TypeError, FileNotFoundError, ValueError)) as exc:
        hl.load_structure(value)
    assert len(str(exc.value)) > 15


# ----------------------------------------------------------------------------- simulate
UNITS = ["nm", "Å", "angstrom", "um", "pm", "kV", "kg", ""]
ZOLZ_001 = [(h, k, 0) for h in range(-4, 5) for k in range(-4, 5)]
ZONE_REFLECTIONS = {  # a few reflections of each zone's zero-order Laue zone
    (0, 0, 1): ZOLZ_001,
    (1, 1, 0): [(0, 0, 2), (1, -1, 1), (-2, 2, 0), (2, -2, 2), (0, 0, -4)],
    (1, 1, 1): [(2, -2, 0), (0, 2, -2), (-2, 0, 2), (4, -2, -2)],
    (0, 1, 1): [(2, 0, 0), (0, 2, -2), (1, 1, -1), (-4, 0, 0)],
}


@st.composite
def simulate_arguments(draw) -> tuple[dict, str | None]:
    """simulate's keywords, all valid or with exactly one invalid argument (named)."""
    broken = draw(st.sampled_from([None] * 4 + ["zone", "thickness", "voltage", "reflections",
                                                 "pixels", "absorption"]))  # fmt: skip
    zone = draw(st.sampled_from(sorted(ZONE_REFLECTIONS)))
    kind = draw(st.sampled_from(["number", "string", "list", "quantity"]))
    value = draw(st.floats(5, 3000))
    if kind == "number":
        thickness = value
    elif kind == "string":
        unit = draw(st.sampled_from(["Å", "angstrom", "nm"]))
        thickness = f"{value / 10 if unit == 'nm' else value:g} {unit}"
    elif kind == "quantity":
        from hyperspy_lacbed.units import ureg

        thickness = ureg().Quantity(value / 10, "nm")
    else:
        thickness = sorted({draw(st.floats(5, 3000)) for _ in range(draw(st.integers(1, 3)))})
    kw = {
        "zone_axis": zone,
        "thickness": thickness,
        "voltage": draw(st.sampled_from(["200 kV", 300e3, "1 MV", 120e3, "80 kV"])),
        "reflections": draw(
            st.none() | st.lists(st.sampled_from(ZONE_REFLECTIONS[zone]), min_size=1, max_size=4)
        ),
        "pixels": draw(st.sampled_from([2, 4, 6])),
        "absorption": draw(st.sampled_from(["none", "proportional", "bird-king"])),
    }
    if broken == "zone":
        kw["zone_axis"] = draw(st.sampled_from([(0, 0, 0), (0.5, 0, 1), (1, 0), "001"]))
    elif broken == "thickness":
        kw["thickness"] = draw(
            st.sampled_from([0, -5.0, math.nan, math.inf, "3 kV", [], [500, 100], "-1 nm"])
        )
    elif broken == "voltage":
        kw["voltage"] = draw(st.sampled_from(["5 kV", "3 kg", -200e3, "2 MV", "fast"]))
    elif broken == "reflections":
        kw["reflections"] = draw(st.sampled_from([[(1, 1, 1)] if zone != (1, 1, 0) else
                                                  [(0, 0, 1)], [(1, 2)], [(0.5, 0, 0)]]))  # fmt: skip
    elif broken == "pixels":
        kw["pixels"] = draw(st.sampled_from([0, 3, -2]))
    elif broken == "absorption":
        kw["absorption"] = "lots"
    return kw, broken


@settings(max_examples=N_SIM, **FAST)
@given(structure=st.sampled_from(["Si", "Cu", "NaCl", "Fe", "SrTiO3"]), case=simulate_arguments())
def test_simulate_valid_or_refused(structure, case):
    kw, broken = case
    s = documented(hl.simulate, structure, strong_beams=12, show_progressbar=False, **kw)
    if broken is not None:
        assert s is None, (
            f"an invalid {broken} was accepted: {kw[broken if broken != 'zone' else 'zone_axis']!r}"
        )
        return
    assert s is not None, "valid arguments were refused"
    data = np.asarray(s.data)
    assert np.isfinite(data).all() and (data >= -1e-6).all()
    assert (data.sum(axis=-3) <= 1 + 1e-4).all()  # never more than came in
    assert s.axes_manager.signal_shape == (kw["pixels"], kw["pixels"])
    refl = {tuple(r) for r in s.metadata.LACBED.reflections}
    assert (0, 0, 0) in refl
    if kw["reflections"] is not None:  # each requested disc is returned (000 added)
        assert {tuple(r) for r in kw["reflections"]} <= refl


CU_POOL = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0]]
CU_POOL += [[2, 2, 0], [2, -2, 0], [-2, 2, 0], [-2, -2, 0]]


@settings(max_examples=N_UNITARY, **FAST)
@given(
    t=st.floats(1.0, 3000.0),
    radius=st.floats(0.01, 0.4),
    solver=st.sampled_from(["exact", "fast"]),
)
def test_simulate_conserves_intensity_without_absorption(t, radius, solver):
    """All 9 beams of the pool returned, no absorption: Σ_g I_g = 1 at every tilt."""
    s = hl.simulate(
        "Cu", reflections=CU_POOL, beam_pool=9, strong_beams=9, absorption="none",
        pixels=4, thickness=t, disc_radius=radius, solver=solver, show_progressbar=False,
    )  # fmt: skip
    np.testing.assert_allclose(s.data.sum(axis=0), 1.0, atol=1e-4 if solver == "fast" else 1e-9)


# ----------------------------------------------------------------------------- LACBED methods
@st.composite
def signals(draw):
    """A user's LACBED signal: any small shape, perhaps bad values, perhaps uncalibrated."""
    nav = draw(st.sampled_from([(), (3,), (2, 3), (9,)]))
    side = draw(st.sampled_from([4, 6, 8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = rng.random((*nav, side, side)).astype("float32")
    bad = draw(st.sampled_from([None, np.nan, np.inf, -1.0, "all-nan"]))
    if bad == "all-nan":
        data[:] = np.nan
    elif bad is not None:
        data.reshape(-1)[draw(st.integers(0, data.size - 1))] = bad
    s = hs.signals.Signal2D(data)
    s.set_signal_type("LACBED")
    calibrate = draw(st.sampled_from(["none", "scale", "radius", "zero"]))
    params = {}
    if draw(st.booleans()):
        params["beam_energy"] = draw(st.sampled_from(["200 kV", 300.0, "0 kV"]))
    if nav and draw(st.booleans()):
        n = nav[-1]
        refl = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0]]
        refl += [[2, 2, 0], [2, -2, 0], [-2, 2, 0], [-2, -2, 0]]
        params["reflections"] = refl[: draw(st.sampled_from([n, max(n - 1, 1)]))]
    if params:
        s = documented(s.set_experimental_parameters, **params) or s
    if calibrate == "scale":
        s = documented(s.calibrate, scale="0.01 1/Å") or s
    elif calibrate == "radius":
        s = documented(s.calibrate, disc_radius="10 mrad") or s
    elif calibrate == "zero":
        s.axes_manager.signal_axes[0].scale = 0.0
    return s, bad


@settings(max_examples=N_SIGNAL, **FAST)
@given(signals(), st.sampled_from(["to_mrad", "to_inverse_angstrom", "to_montage",
                                   "get_disc", "retrieve_potential", "calibrate"]))  # fmt: skip
def test_lacbed_methods_valid_or_refused(case, method):
    s, bad = case
    before = np.array(s.data, copy=True)
    args = {"get_disc": ((0, 0, 0),), "calibrate": ()}.get(method, ())
    kwargs = {"calibrate": {"scale": "0.02 1/Å"}, "retrieve_potential": {"thickness": "100 nm"}}
    out = documented(getattr(s, method), *args, **kwargs.get(method, {}))
    np.testing.assert_array_equal(np.asarray(s.data), before)  # never in place
    if out is None:
        return
    if method == "retrieve_potential":
        # refused above for infinite, negative or all-NaN intensities
        assert bad not in (np.inf, -1.0, "all-nan")
        assert np.isfinite(out.data).all()
        return
    assert type(out).__name__ in ("LACBED", "LazyLACBED")
    for ax in out.axes_manager.signal_axes:
        assert math.isfinite(ax.scale) and ax.scale != 0 and math.isfinite(ax.offset)
    if method in ("to_mrad", "to_inverse_angstrom", "calibrate"):
        np.testing.assert_array_equal(np.asarray(out.data), before)  # only the axes change


# ----------------------------------------------------------------------------- the CLI
OPTIONS = {
    "--zone-axis": st.sampled_from(["0,0,1", "1,1,0", "1,1,1", "0,0,0", "1,0", "a,b,c"]),
    "--x-direction": st.sampled_from(["1,0,0", "0,1,0", "0,0,1", "1,1,0"]),
    "--thickness": st.sampled_from(["50 nm", "500", "-3 nm", "10 kg", "1e9 nm"]),
    "--voltage": st.sampled_from(["200 kV", "300000", "5 kV", "banana"]),
    "--reflections": st.sampled_from(["0,0,0 2,2,0", "1,1,1", "2,0", "0,0,0 0,0,2"]),
    "--disc-radius": st.sampled_from(["0.1 1/Å", "3 mrad", "0.1", "-1 mrad", "2 kg"]),
    "--absorption": st.sampled_from(["none", "proportional", "bird-king"]),
    "--absorption-fraction": st.sampled_from(["0.1", "10%", "-5%", "x"]),
    # felix (a 329-beam pool, the exact solver) is tested in test_public_path.py; here
    # only the refusal of an unknown preset, to keep each example fast
    "--preset": st.just("other"),
    "--weak-beams": st.sampled_from(["0", "3", "-1"]),
    "--no-debye-waller": st.just(None),
}


@settings(max_examples=N_CLI, **FAST)
@given(
    st.sampled_from(["Si", "Cu", "GaAs", "NoSuchCrystal"]),
    st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: OPTIONS[k] for k in keys})
    ),
)
def test_cli_simulate_valid_or_refused(structure, options):
    argv = ["simulate", structure, "--pixels", "2", "--strong-beams", "10", "--quiet"]
    for key, value in options.items():
        argv += [key] if value is None else [key, value]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.hspy"
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([*argv, "-o", str(out)])
            except SystemExit as exc:  # argparse: a usage error
                code = exc.code
        event(f"exit status {code}")
        if code == 0:
            s = hs.load(out)
            assert s.metadata.LACBED.source == "bloch"
            assert np.isfinite(s.data).all() and (s.data.sum(axis=-3) <= 1 + 1e-4).all()
        else:
            assert code == 2
            assert "error:" in err.getvalue() and len(err.getvalue().strip()) > 20
