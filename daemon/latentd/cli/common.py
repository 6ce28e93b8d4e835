"""What every subcommand shares: exit codes, the parser setup, the ``-c/--config`` argument, config errors.

Exit codes, the same for every ``latentd`` subcommand:

* :data:`EXIT_OK` (0): the work was done.
* :data:`EXIT_FAIL` (1): the work could not be done although the input was fine (JACK, OSC, a file that
  cannot be written, a refused OSC command, nobody answering).
* :data:`EXIT_INVALID` (2): the input is wrong (config, arguments, a file that is not what it claims).
  argparse also exits with 2 on a malformed command line.
* :data:`EXIT_PIPE` (141): whoever read the output closed the pipe first (``latentd ... | head``). The
  output stops quietly; 141 = 128 + SIGPIPE is the status a shell reports for a Unix tool stopped the
  same way, so ``set -o pipefail`` scripts see it as they see ``yes | head``.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentd.installation.errors import ModelError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INVALID = 2
EXIT_PIPE = 141

# ``code`` and :role:`target` (reStructuredText in docstrings used as descriptions) → plain text.
_MARKUP = re.compile(r"(?::[a-z]+:)?`{1,2}([^`]+)`{1,2}")


def plain(text: str) -> str:
    """``text`` with its reStructuredText inline markup (double backquotes, roles, backquotes) removed.

    Descriptions come from docstrings; ``--help`` shows them as plain text.
    """
    return _MARKUP.sub(r"\1", text)


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` for every ``latentd`` parser: plain text, paragraphs kept, meaningful defaults shown.

    A default is shown as ``(default: X)`` unless it says nothing (None, False for a flag, an empty
    string) or the help text already speaks of it.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # Descriptions are docstrings: keep their paragraphs, rewrap each one.
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", plain(text).strip())]
        return "\n\n".join(
            textwrap.fill(p, width, initial_indent=indent, subsequent_indent=indent) for p in paragraphs if p
        )

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = plain(action.help) if action.help else action.help
        default = action.default
        if (
            text is None
            or "default" in text
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default in ("", [])
            or not action.option_strings
        ):
            return text
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        shown = shown.replace("%", "%%")  # argparse %-formats help strings
        if text.endswith(")"):  # one parenthesis, not two in a row
            return f"{text[:-1]}; default: {shown})"
        return f"{text} (default: {shown})"


def add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand parser with the shared :class:`HelpFormatter` (``sub`` from ``add_subparsers``).

    ``description`` defaults to ``help``, so ``latentd NAME --help`` always says what NAME does.
    """
    kwargs.setdefault("description", kwargs.get("help"))
    parser: argparse.ArgumentParser = sub.add_parser(name, formatter_class=HelpFormatter, **kwargs)
    return parser


def config_arg(p: argparse.ArgumentParser, *, required: bool = True, help: str | None = None) -> None:
    """The venue config, the same way for every subcommand: ``-c/--config FILE``."""
    p.add_argument(
        "-c",
        "--config",
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


def guarded(name: str, body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``body`` with its errors as one line on stderr and the matching exit code.

    Bad input (a ``ValueError``, a model that cannot be read) is :data:`EXIT_INVALID`; a file that cannot
    be read or written (``OSError``) is :data:`EXIT_FAIL`. A closed stdout passes through to
    :func:`latentd.cli.main`.
    """

    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except (ModelError, ValueError) as exc:
            sys.stderr.write(f"latentd {name}: error: {exc}\n")
            return EXIT_INVALID
        except BrokenPipeError:
            raise
        except OSError as exc:
            sys.stderr.write(f"latentd {name}: error: {exc}\n")
            return EXIT_FAIL

    return run
