"""Sphinx configuration of the hyperspy-lacbed documentation.

Build with ``bash .ci/docs`` (warnings are errors, broken cross-references too).
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import hyperspy_lacbed

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

# The gallery examples run in this process: keep torch and BLAS to the two cores CI has.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _quiet_gallery_output() -> None:
    """Keep noise of the build machine out of the examples' captured output.

    * HyperSpy logs one "Numba is not installed" warning per accelerated function when
      ``hyperspy.misc._array_tools`` is first imported: import it here, so that the
      messages go to the build log rather than into the first example that needs it.
    * dask's progress bar redraws itself every 0.1 s with a carriage return; a terminal
      shows one line, the captured output of an example hundreds. In the built pages only
      its final state is drawn.
    * RosettaSciIO's .zspy writer uses a Zarr class that Zarr 2.18 marks as deprecated.
    """
    import warnings

    import hyperspy.api
    import hyperspy.misc._array_tools  # noqa: F401
    from dask.diagnostics import progress

    draw = progress.ProgressBar._draw_bar

    def _draw_final(self, frac, elapsed):
        if frac >= 1:
            draw(self, frac, elapsed)

    progress.ProgressBar._draw_bar = _draw_final
    warnings.filterwarnings(
        "ignore", "The NestedDirectoryStore is deprecated", category=FutureWarning
    )


_quiet_gallery_output()

project = "hyperspy-lacbed"
author = "hyperspy-lacbed developers"
copyright = f"{date.today().year}, {author}"
release = hyperspy_lacbed.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "clihelp",
]
# sphinx.ext.intersphinx is left out on purpose: the build machines have no internet, so
# references to NumPy, HyperSpy, matplotlib, ... cannot be resolved (see nitpick_ignore).

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
nitpicky = True
default_role = "py:obj"

# The docstrings write absolute values the way physicists do, |g|, |U_g|, which RST reads
# as substitution references. Define each one as itself, so that it renders as written.
_ABSOLUTE_VALUES = ("g", "k", "p", "s_g", "U_g", "g - k", "Δg", "g_200", "hkl")
rst_prolog = "\n".join(f".. |{name}| replace:: \\|{name}\\|" for name in _ABSOLUTE_VALUES)

# -- autodoc / autosummary / numpydoc ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_member_order = "bysource"
# Types are written in the numpydoc "Parameters" and "Returns" sections; the annotations
# in the signatures would only repeat them, as links that cannot resolve offline.
autodoc_typehints = "none"
autoclass_content = "class"
# Methods without a docstring of their own (torch's ``forward``, HyperSpy overrides) are
# left out rather than shown with the base class's text.
autodoc_inherit_docstrings = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# Third-party names that appear as cross-references in docstrings and class bases and
# cannot resolve without intersphinx. Nothing of this package is listed here.
nitpick_ignore = [
    # HyperSpy base classes of the signal types (shown by :show-inheritance:)
    ("py:class", "hyperspy.signals.Signal2D"),
    ("py:class", "hyperspy.signals.LazySignal2D"),
    ("py:class", "hyperspy._signals.signal2d.Signal2D"),
    ("py:class", "hyperspy._signals.signal2d.LazySignal2D"),
    ("py:class", "hyperspy._signals.lazy.LazySignal"),
    # Base class of the network modules
    ("py:class", "torch.nn.Module"),
    ("py:class", "torch.nn.modules.module.Module"),
    # Types in numpydoc "Returns" sections, which numpydoc turns into links
    ("py:class", "numpy.ndarray"),
    ("py:class", "collections.abc.Callable"),
    ("py:class", "matplotlib.figure.Figure"),
    # Referenced from docstrings
    ("py:func", "dask.array.from_array"),
]
nitpick_ignore_regex = [
    # Links inside HyperSpy's own text appended to the lazy classes (LAZYSIGNAL_DOC)
    (r"py:.*", r"hyperspy\..*"),
]

# -- sphinx-gallery ---------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "show_memory": False,
    "promote_jupyter_magic": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "default_thumb_file": None,
    "line_numbers": False,
    "plot_gallery": "True",
    "min_reported_time": 1,
    # The execution-times pages load DataTables and Bootstrap from CDNs; the times are in
    # each example's own page.
    "write_computation_times": False,
}

# -- math -------------------------------------------------------------------------------
# MathJax is served from _static, never from a CDN, so that formulas render offline (a
# CDN script shows raw TeX without a network). tools/fetch_mathjax.sh copies it there from
# the npm registry; it runs here when the copy is missing.
_MATHJAX = HERE / "_static" / "mathjax" / "tex-svg.js"
if not _MATHJAX.is_file():
    import subprocess

    subprocess.run(["bash", str(HERE.parent / "tools" / "fetch_mathjax.sh")], check=False)
if not _MATHJAX.is_file():
    raise RuntimeError(
        f"{_MATHJAX} is missing and could not be fetched; run `bash tools/fetch_mathjax.sh` "
        "(needs npm and the npm registry) before building the docs."
    )
mathjax_path = "mathjax/tex-svg.js"
# MathJax's context menu can switch on speech output, which fetches the speech-rule
# engine's data from a CDN: without the menu nothing is ever loaded from elsewhere (the
# assistive MathML for screen readers stays on).
mathjax3_config = {"options": {"enableMenu": False}}

# -- HTML -------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"hyperspy-lacbed {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_edit_page_button": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_context = {"default_mode": "light"}
