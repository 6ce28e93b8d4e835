"""The ``latentd`` command line: a thin layer that builds one configuration and calls the library.

One module per group of subcommands, each with ``add_commands(subparsers)``; exit codes and the
``-c/--config`` argument are shared (:mod:`latentd.cli.common`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from latentd import __version__

# Modules that add their own subcommands (each has ``add_commands(subparsers)``), in --help order.
COMMAND_MODULES = (
    "latentd.cli.play",
    "latentd.cli.check",
    "latentd.cli.schedule",
    "latentd.cli.osc",
    "latentd.cli.recording",
    "latentd.cli.models",
    "latentd.cli.unravel",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every module in :data:`COMMAND_MODULES` adds its subcommands."""
    parser = argparse.ArgumentParser(
        prog="latentd",
        description="Performs neural-audio works unattended: nn~ models, latent trajectories, JACK output.",
    )
    parser.add_argument("--version", action="version", version=f"latentd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``latentd`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
