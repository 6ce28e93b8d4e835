"""The ``latentd`` command line: a thin layer that builds one configuration and calls the library.

One module per group of subcommands, each with ``add_commands(subparsers)``; exit codes, the parser
setup and the ``-c/--config`` argument are shared (:mod:`latentd.cli.common`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from latentd import __version__
from latentd.cli.common import EXIT_PIPE, HelpFormatter

# Modules that add their own subcommands (each has ``add_commands(subparsers)``), in --help order.
COMMAND_MODULES = (
    "latentd.cli.play",
    "latentd.cli.check",
    "latentd.cli.snapshot",
    "latentd.cli.schedule",
    "latentd.cli.osc",
    "latentd.cli.recording",
    "latentd.cli.models",
    "latentd.cli.tempo",
    "latentd.cli.seeds",
    "latentd.cli.unravel",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every module in :data:`COMMAND_MODULES` adds its subcommands."""
    parser = argparse.ArgumentParser(
        prog="latentd",
        description="Performs neural-audio works unattended: nn~ models, latent trajectories, JACK output.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"latentd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``latentd`` console script.

    Returns:
        The exit code (:mod:`latentd.cli.common`); :data:`~latentd.cli.common.EXIT_PIPE` when the reader
        of stdout went away (``latentd ... | head``), which ends the output without a traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe can still be caught, not at interpreter exit
    except BrokenPipeError:
        # Python's documented recipe (signal module, "Note on SIGPIPE"): point stdout at devnull so the
        # flush at exit finds somewhere to write instead of raising a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
