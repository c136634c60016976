"""The README and the user guide run as written.

Every ```python and ```bash block of README.md and every ``.. code-block::`` of
docs/user_guide/*.rst (the gallery examples run in the docs build) is executed here the
way a user would run it, in a temporary folder that holds the files a user would have
(``pattern.tif``, ``discs.tif``, ...). A comment after an expression that looks like a
value (``s  # <LACBED, ...>``) is checked against the value's repr, and so is a doctest's
expected output.

Shell commands: ``pip install`` is not repeated (the test runs in the installed
environment) and the README's ``pytest`` command is not run from inside pytest; every
other command runs. A block preceded by ``<!-- readme-test: parse-only -->`` (hours of
training) only has its arguments parsed by the command's own parser.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import SI_DIAMOND_ATOMS, p1_cif

import hyperspy_lacbed

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "user_guide"

_MD_BLOCK = re.compile(
    r"(?:<!--\s*readme-test:\s*(?P<mode>[\w-]+)\s*-->\s*\n)?```(?P<lang>python|bash)\n"
    r"(?P<body>.*?)```",
    re.S,
)
_RST_BLOCK = re.compile(
    r"(?:^\.\. docs-test: (?P<mode>[\w-]+)\n\n)?^\.\. code-block:: (?P<lang>\w+)\n"
    r"(?P<body>(?:\n|   .*\n)+)",
    re.M,
)
#: Comments that state a value: a repr, a list, a tuple or a string.
_VALUE_COMMENT = re.compile(r"#\s*(?P<claim>[<\[(\'\"].*)$")


def readme_blocks() -> list[tuple[str, str, str]]:
    """(language, mode, body) of each fenced block of the README."""
    text = README.read_text(encoding="utf-8")
    return [(m["lang"], m["mode"] or "run", m["body"]) for m in _MD_BLOCK.finditer(text)]


def rst_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, mode, dedented body) of each code-block of a page.

    An RST comment ``.. docs-test: parse-only`` before a block (hours of training) has
    its commands' arguments parsed only, as ``<!-- readme-test: parse-only -->`` does in
    the README.
    """
    text = page.read_text(encoding="utf-8")
    return [
        (m["lang"], m["mode"] or "run", textwrap.dedent(m["body"]).strip("\n") + "\n")
        for m in _RST_BLOCK.finditer(text)
    ]


def _claim_matches(claim: str, value: object) -> bool:
    """A value comment such as ``[[0, 0, 0], [2, 2, 0], ...]`` against the repr."""
    got = " ".join(repr(value).split())
    claim = " ".join(claim.split())
    if claim.endswith("...]") or claim.endswith("...)"):
        return got.startswith(claim[:-4])
    return got == claim


def run_python(source: str, namespace: dict) -> int:
    """Run a block statement by statement; check value comments. Returns how many."""
    tree = ast.parse(source)
    lines = source.splitlines()
    checked = 0
    for node in tree.body:
        code = compile(ast.Module([node], []), "<README>", "exec")
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), "<README>", "eval"), namespace)
            comment = _VALUE_COMMENT.search(lines[node.end_lineno - 1])
            if comment:
                assert _claim_matches(comment["claim"], value), (
                    f"README line {lines[node.end_lineno - 1]!r}: got {value!r}"
                )
                checked += 1
        else:
            exec(code, namespace)
    return checked


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def _parser_of(module: str):
    """The argparse parser of ``python -m module``."""
    name = module if module.endswith("__main__") else module + ".__main__"
    try:
        mod = importlib.import_module(name)
    except SystemExit:  # pragma: no cover - a __main__ that runs on import
        mod = importlib.import_module(module.rsplit(".", 1)[0] + ".cli")
    if not hasattr(mod, "build_parser"):
        mod = importlib.import_module("hyperspy_lacbed.cli")
    return mod.build_parser()


def run_shell(body: str, mode: str, cwd: Path) -> list[str]:
    """Run each command of a shell block as documented; returns what ran."""
    done = []
    for line in body.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for command in line.split("&&"):
            argv = shlex.split(command)
            if argv[:2] == ["pip", "install"]:
                continue  # the test runs in the installed environment
            if argv[:3] == ["python", "-m", "pytest"]:
                assert "-q" in argv  # the suite's own command; not run from inside itself
                continue
            if argv[0] == "hyperspy-lacbed":
                argv = ["python", "-m", "hyperspy_lacbed", *argv[1:]]
            assert argv[:2] == ["python", "-m"], f"an untested command in the docs: {command!r}"
            module, args = argv[2], argv[3:]
            assert module.startswith("hyperspy_lacbed"), command
            if mode == "parse-only":
                _parser_of(module).parse_args(args)
            elif "--help" in args:
                with pytest.raises(SystemExit) as exc:
                    _parser_of(module).parse_args(args)
                assert exc.value.code == 0
            elif module == "hyperspy_lacbed" and args[0] == "demo":
                # one command through a real process, exactly as typed
                proc = subprocess.run(
                    [sys.executable, "-m", module, *args],
                    cwd=cwd,
                    env=_env(),
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert proc.returncode == 0, proc.stderr[-2000:]
            else:
                from hyperspy_lacbed.cli import main

                old = Path.cwd()
                os.chdir(cwd)
                try:
                    assert main(args) == 0
                finally:
                    os.chdir(old)
            done.append(command.strip())
    return done


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    """A folder with the files the README and the guide load, as the cwd."""
    import hyperspy.api as hs

    rng = np.random.default_rng(0)
    hs.signals.Signal2D(rng.random((64, 64)).astype("float32")).save(tmp_path / "pattern.tif")
    hs.signals.Signal2D(rng.random((9, 64, 64)).astype("float32")).save(tmp_path / "discs.tif")
    hs.signals.Signal2D(rng.random((256, 256)).astype("float32")).save(tmp_path / "montage.tif")
    # my_crystal.cif of the CLI page: a P1 cell, as many programs write them
    (tmp_path / "my_crystal.cif").write_text(P1_SI_CIF)
    # a Felix user's files: the crystal and felix.hkl (one [h,k,l] a line)
    si = Path(hyperspy_lacbed.__file__).parent / "data" / "structures" / "Si.cif"
    (tmp_path / "Si.cif").write_text(si.read_text())
    (tmp_path / "felix.hkl").write_text("[0,0,0]\n[2,-2,0]\n[2,2,0]\n[4,0,0]\n[0,4,0]\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


#: Diamond-cubic Si written as a P1 cell: no space group, every atom listed.
P1_SI_CIF = p1_cif(
    [f"Si{i} Si {x} {y} {z}" for i, (_, x, y, z) in enumerate(SI_DIAMOND_ATOMS, 1)],
    5.4307,
    name="si_p1",
)


# ----------------------------------------------------------------------------- README
def test_readme_has_the_blocks_this_test_runs():
    langs = [lang for lang, _, _ in readme_blocks()]
    assert langs.count("python") >= 2 and langs.count("bash") >= 3


def test_readme_python_runs_as_written(user_files):
    namespace: dict = {"__name__": "__readme__"}
    checked = 0
    for lang, mode, body in readme_blocks():
        if lang == "python":
            assert mode == "run"
            checked += run_python(body, namespace)
    assert checked >= 3  # the repr, the reflections and the units comments
    # what the tour promises: potentials from generate's and from simulate's discs
    assert namespace["pot"].data.shape == (4, 128, 128)
    assert np.isfinite(namespace["pot"].data).all()
    assert namespace["e"].metadata.Signal.signal_type == "LACBED"


def test_readme_shell_commands_run(user_files):
    ran = []
    for lang, mode, body in readme_blocks():
        if lang == "bash":
            ran += run_shell(body, mode, user_files)
    assert any("demo --out out" in c for c in ran)
    assert (user_files / "out" / "si001.hspy").is_file()
    assert (user_files / "out" / "si001_montage.png").stat().st_size > 1000
    assert sum("hyperspy_lacbed.train" in c for c in ran) == 4


def test_readme_tour_error_names_the_call():
    """Defect: the README's tour retrieved from default simulate output and failed."""
    import hyperspy_lacbed as hl

    s = hl.simulate("Si", thickness="100 nm", pixels=16, strong_beams=20)
    with pytest.raises(
        ValueError, match=re.escape("hl.simulate('Si', **hl.model_settings('Si'))")
    ):
        s.retrieve_potential()
    # the right reflections but the default (too small) disc radius: the same advice
    kw = hl.model_settings("Si")
    s = hl.simulate("Si", reflections=kw["reflections"], thickness="100 nm", pixels=16)
    with pytest.raises(ValueError, match="less than the model's disc radius") as exc:
        s.retrieve_potential()
    assert "hl.model_settings('Si')" in str(exc.value)
    # an experiment-like pattern gets the recorded-pattern advice instead
    s.metadata.LACBED.source = "experiment"
    with pytest.raises(ValueError, match="A recorded pattern needs"):
        s.retrieve_potential()


# ----------------------------------------------------------------------------- user guide
class _Checker(doctest.OutputChecker):
    """Expected output is checked where the page gives one; progress bars are not."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if not want.strip() or want.lstrip().startswith("[####"):
            return True
        return super().check_output(want, got, optionflags)


@pytest.fixture(scope="module")
def si001():
    """``s`` of the guide: simulate.rst's first example, used by the pages after it."""
    import hyperspy_lacbed as hl

    return hl.simulate(
        "Si",
        zone_axis=(0, 0, 1),
        voltage="200 kV",
        thickness=["50 nm", "100 nm", "150 nm", "200 nm"],
    )


PAGES = sorted(p.name for p in GUIDE.glob("*.rst") if rst_blocks(p))


def check_dataset_config(text: str) -> None:
    """A training config of the docs: valid TOML whose splits each build a recipe that draws."""
    import tomllib

    from hyperspy_lacbed.nets.domain import Domain
    from hyperspy_lacbed.train.__main__ import split_structures
    from hyperspy_lacbed.train.dataset import DatasetRecipe

    table = tomllib.loads(text)["dataset"]
    per_split = table.get("split_structures", {})
    # A fragment may give only per-split structure tables: one draw of each then.
    splits = table.get("splits", dict.fromkeys(per_split, 1))
    assert splits, "a [dataset] fragment with neither splits nor split_structures"
    for split, n in splits.items():
        recipe = DatasetRecipe(
            domain=Domain().to_dict(),
            n_structures=int(n),
            seed=0,
            split=split,
            structures=split_structures(table.get("structures", {}), per_split.get(split, {})),
        )
        generator = recipe.structure_generator()
        a = generator.structure(0).lattice_parameter
        lo, hi = Domain().lattice_parameter_range
        assert lo <= a <= hi, f"split {split}: a = {a} Å outside the domain"


@pytest.mark.parametrize("page", PAGES)
def test_user_guide_snippets_run(page, user_files, si001):
    import hyperspy.api as hs

    import hyperspy_lacbed as hl

    if page == "surrogates.rst":  # "simulated or measured discs": a saved cGAN pattern
        hl.generate("NaCl", thickness="100 nm").save(user_files / "pattern.hspy")
    # What every page takes as given: the two imports and the signal s of simulate.rst.
    globs = {"hs": hs, "hl": hl, "s": si001.deepcopy(), "__name__": page}
    runner = doctest.DocTestRunner(
        checker=_Checker(), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    parser = doctest.DocTestParser()
    report: list[str] = []
    n_python = 0
    for lang, mode, body in rst_blocks(GUIDE / page):
        if lang == "bash":
            run_shell(body, mode, user_files)
            continue
        if lang == "toml":
            check_dataset_config(body)
            continue
        assert lang == "python", f"{page}: a {lang} block this test cannot run"
        test = parser.get_doctest(body, globs, page, str(GUIDE / page), 0)
        assert test.examples, f"{page}: a python block without >>> examples"
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # the next block of the page continues from this one
        n_python += 1
    import matplotlib.pyplot as plt

    plt.close("all")
    assert runner.failures == 0, "".join(report)
