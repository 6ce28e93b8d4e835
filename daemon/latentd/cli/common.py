"""What every subcommand shares: exit codes, the ``-c/--config`` argument, config errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAIL = 1  # the work could not be done (JACK, OSC, a file that cannot be written)
EXIT_INVALID = 2  # the input is wrong (config, arguments, a file that is not what it claims)


def config_arg(p: argparse.ArgumentParser, *, required: bool = True, help: str | None = None) -> None:
    """The venue config, the same way for every subcommand."""
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        required=required,
        default=None,
        metavar="FILE",
        help=help or "venue config (configs/*.toml)",
    )


def config_errors(exc: Exception) -> int:
    """Print a configuration error (every problem, with file and key) and return :data:`EXIT_INVALID`."""
    sys.stderr.write(f"{exc}\n")
    return EXIT_INVALID
