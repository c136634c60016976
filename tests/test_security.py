"""Nothing in the package unpickles, evals or execs user data."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hyperspy_lacbed"

FORBIDDEN = {
    r"\bpickle\.loads?\(": "pickle.load",
    r"\bcloudpickle\b": "cloudpickle",
    r"\bdill\b": "dill",
    r"(?<![\w.])eval\(": "eval(",
    r"(?<![\w.])exec\(": "exec(",
    r"allow_pickle\s*=\s*True": "allow_pickle=True",
    r"\bmarshal\.loads?\(": "marshal.load",
}


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_unpickling_eval_or_exec_in_the_package():
    offences = []
    for path in _sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, name in FORBIDDEN.items():
                if re.search(pattern, code):
                    offences.append(f"{path.relative_to(PACKAGE)}:{n}: {name}")
    assert not offences, "\n".join(offences)


def _call_text(text: str, open_paren: int) -> str:
    depth = 0
    for i in range(open_paren, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_paren : i + 1]
    return text[open_paren:]


def test_every_torch_load_is_weights_only():
    offences = []
    for path in _sources():
        text = path.read_text()
        # safetensors.torch.load(bytes) is the safe loader, not torch.load.
        for match in re.finditer(r"(?<![\w.])torch\.load\(", text):
            call = _call_text(text, match.end() - 1)
            if "weights_only=True" not in call:
                line = text.count("\n", 0, match.start()) + 1
                offences.append(f"{path.relative_to(PACKAGE)}:{line}")
    assert not offences, "torch.load without weights_only=True at " + ", ".join(offences)


def test_the_scan_finds_what_it_looks_for(tmp_path):
    # The patterns are live: a file with each offence is caught.
    sample = "import pickle\npickle.load(f)\neval('1')\nnp.load(p, allow_pickle=True)\n"
    hits = [name for pattern, name in FORBIDDEN.items() if re.search(pattern, sample)]
    assert set(hits) == {"pickle.load", "eval(", "allow_pickle=True"}
    text = "torch.load(str(p),\n map_location='cpu')"
    assert "weights_only=True" not in _call_text(text, text.index("("))
    assert _call_text(text, text.index("(")).endswith("'cpu')")
