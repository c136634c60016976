"""The documentation renders formulas without a network (issue 14, defect 6)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mathjax_is_served_locally():
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    path = re.search(r"^mathjax_path\s*=\s*['\"]([^'\"]+)['\"]", conf, re.M)
    assert path, "docs/conf.py must set mathjax_path to a copy in _static"
    assert "://" not in path[1] and not path[1].startswith("//")
    assert "sphinx.ext.imgmath" in conf or path[1].startswith("mathjax/")
    # the copy is fetched by the docs CI script and never committed
    script = (ROOT / "tools" / "fetch_mathjax.sh").read_text(encoding="utf-8")
    assert Path(path[1]).name in script
    assert "tools/fetch_mathjax.sh" in (ROOT / ".ci" / "docs").read_text(encoding="utf-8")
    assert "docs/_static/mathjax/" in (ROOT / ".gitignore").read_text(encoding="utf-8")
    # the menu could switch on speech, which loads from a CDN; sphinx-gallery's
    # execution-times pages load DataTables and Bootstrap from CDNs
    assert re.search(r"mathjax3_config\s*=\s*\{\s*\"options\":\s*\{\s*\"enableMenu\": False", conf)
    assert re.search(r"\"write_computation_times\":\s*False", conf)


def test_no_cdn_in_the_docs_sources():
    """No page, template or config loads a script or style from another host."""
    sources = [*(ROOT / "docs").rglob("*.rst"), *(ROOT / "docs" / "_templates").rglob("*")]
    sources.append(ROOT / "docs" / "conf.py")
    for path in sources:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
            assert "cdn." not in text.lower() and "cdnjs" not in text.lower(), path
