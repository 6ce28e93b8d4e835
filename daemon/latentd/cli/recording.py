"""``latentd recover`` and ``latentd replay``: the command-line side of recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg


def cmd_recover(args: argparse.Namespace) -> int:
    """Close interrupted recordings and report what each holds."""
    from latentd.recording.recover import RecoverError, recover

    try:
        results = recover(Path(args.target))
    except RecoverError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    for r in results:
        print(r.describe())
    total = sum(r.seconds for r in results)
    print(f"recovered {len(results)} file(s), {total:.2f} s of audio")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-render a recorded session offline from its config, seeds and command log."""
    from latentd.config import ConfigError
    from latentd.offline.replay import ReplayError, replay
    from latentd.runtime.process import quiet_torchscript_warnings

    quiet_torchscript_warnings()
    try:
        result = replay(Path(args.session), Path(args.output), args.config)
    except (ReplayError, ConfigError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    except OSError as exc:  # the output cannot be written: the session itself was fine
        sys.stderr.write(f"{exc}\n")
        return EXIT_FAIL
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    print(
        f"replayed {result.frames / result.samplerate:.2f} s, {result.channels} channels at "
        f"{result.samplerate} Hz → {result.output}"
    )
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``recover`` and ``replay`` to the ``latentd`` subcommands (``sub`` from add_subparsers)."""
    p = add_parser(
        sub, "recover", help="turn interrupted recordings (a file or a folder) into clean closed files"
    )
    p.add_argument("target", type=Path, help="a recording (.w64/.wav/.flac) or a folder of sessions")
    p.set_defaults(func=cmd_recover)

    p = add_parser(sub, "replay", help="re-render a recorded session offline, sample for sample")
    p.add_argument("session", type=Path, help="the session folder (holding session.json)")
    p.add_argument("--output", "-o", type=Path, required=True, help="output file (.wav, .w64, .flac)")
    config_arg(p, required=False, help="venue config (default: the one the session was recorded with)")
    p.set_defaults(func=cmd_replay)
