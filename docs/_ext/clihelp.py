"""``.. cli-help:: [subcommand]``: the ``--help`` text of a command line, as literal blocks.

With a subcommand, its help; without one, the help of the command and then of every
subcommand in turn, so that a new subcommand appears in the docs by itself. The text
comes from the ``build_parser()`` of the module named by the ``:module:`` option
(default :mod:`hyperspy_lacbed.cli`) at build time, so the page always shows what the
installed command prints; ``:prog:`` is the command shown (default ``hyperspy-lacbed``).
"""

from __future__ import annotations

import argparse
import importlib
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parser(module: str, prog: str, words: list[str]) -> argparse.ArgumentParser:
    parser = importlib.import_module(module).build_parser()
    for word in words:
        subs = _subcommands(parser)
        if word not in subs:
            raise ValueError(f"{prog} has no subcommand {' '.join(words)!r}")
        parser = subs[word]
    return parser


def _block(prog: str, words: list[str], parser: argparse.ArgumentParser) -> nodes.literal_block:
    # A fixed width, so that the page does not depend on the terminal of the build.
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=88)
    text = f"$ {' '.join([prog, *words, '--help'])}\n{parser.format_help()}"
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


class CliHelp(Directive):
    """Insert ``hyperspy-lacbed [words...] --help`` (every subcommand without words)."""

    required_arguments = 0
    optional_arguments = 3
    has_content = False
    option_spec: ClassVar[dict] = {"module": directives.unchanged, "prog": directives.unchanged}

    def run(self):
        words = list(self.arguments)
        module = self.options.get("module", "hyperspy_lacbed.cli")
        prog = self.options.get("prog", "hyperspy-lacbed")
        try:
            parser = _parser(module, prog, words)
        except ValueError as exc:
            raise self.error(str(exc)) from exc
        blocks = [_block(prog, words, parser)]
        if not words:
            subs = _subcommands(parser).items()
            blocks += [_block(prog, [name], sub) for name, sub in subs]
        return blocks


def setup(app):
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
