"""The ``l3net`` command: one sub-command per module of this package.

Each sub-command module defines ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text),
``add_arguments(parser)`` and ``run(args) -> int``. Errors meant for the user
(:class:`~l3net.errors.L3NetError`) are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from .._version import __version__
from ..errors import L3NetError

#: (name, module) of every sub-command, in the order ``--help`` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("demo", "l3net.cli.demo"),
    ("embed", "l3net.cli.embed"),
    ("info", "l3net.cli.info"),
    ("convert", "l3net.cli.convert"),
    ("export", "l3net.cli.export"),
    ("synth", "l3net.cli.synth"),
    ("labels", "l3net.cli.labels"),
    ("prepare", "l3net.cli.prepare"),
    ("pairs", "l3net.cli.pairs"),
    ("train", "l3net.cli.train"),
    ("eval", "l3net.cli.eval"),
    ("localize", "l3net.cli.localize"),
    ("report", "l3net.cli.report"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l3net",
        description="Look, Listen and Learn (L3-Net): train on unlabelled videos, embed audio, images "
        "and video, and reproduce the paper's evaluations. Run 'l3net COMMAND --help' for details.",
    )
    parser.add_argument("--version", action="version", version=f"l3net {__version__}")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"), COMMANDS, "_run")
    return parser


def add_commands(sub: Any, table: list[tuple[str, str]], run_attribute: str) -> None:
    """One sub-parser per ``(name, module)`` of ``table``; the module's ``run`` is stored as
    ``run_attribute`` of the parsed arguments (used here and by ``l3net eval``)."""
    for name, module_name in table:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command not built yet
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(**{run_attribute: module.run})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except L3NetError as exc:
        print(f"l3net {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"l3net {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
