"""``l3net eval PROTOCOL``: the paper's evaluations, one module here per protocol of
:mod:`l3net.evaluate.registry`.

Each protocol module defines ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> int``, like the top-level commands: it parses, calls the library's
``evaluate_<protocol>`` (which returns a result), writes it with
:func:`l3net.evaluate.result.write_result` and prints it. Heavy libraries (scikit-learn, SciPy,
matplotlib) are imported only when a protocol runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from ...evaluate import registry

HELP = "Reproduce the paper's evaluations (AVC accuracy, baselines, transfer, clustering, units, localization)"
DESCRIPTION = """Reproduce the paper's tables and figures on your data. Every protocol writes JSON (for
machines) and PNG (for people) into an eval/ folder (the run directory's when --model is one), and
accepts --model random for the paper's untrained rows."""

#: (name, module) of each protocol, in the paper's order: from the one list, :mod:`l3net.evaluate.registry`.
PROTOCOLS: list[tuple[str, str]] = [(p.name, p.cli_module) for p in registry.PROTOCOLS]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .. import add_commands

    add_commands(parser.add_subparsers(dest="protocol", metavar="PROTOCOL"), PROTOCOLS, "_protocol_run")
    parser.set_defaults(_eval_parser=parser)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "_protocol_run", None):
        args._eval_parser.print_help()
        return 2
    return int(args._protocol_run(args) or 0)
