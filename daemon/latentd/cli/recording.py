"""``latentd recover`` and ``latentd replay``: the command-line side of recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INVALID = 2


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
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    print(
        f"replayed {result.frames / result.samplerate:.2f} s, {result.channels} channels at "
        f"{result.samplerate} Hz → {result.output}"
    )
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``recover`` and ``replay`` to the ``latentd`` subcommands (``sub`` from add_subparsers)."""
    p = sub.add_parser(
        "recover", help="turn interrupted recordings (a file or a folder) into clean closed files"
    )
    p.add_argument("target", type=Path, help="a recording (.w64/.wav/.flac) or a folder of sessions")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("replay", help="re-render a recorded session offline, sample for sample")
    p.add_argument("session", type=Path, help="the session folder (holding session.json)")
    p.add_argument("--output", "-o", type=Path, required=True, help="output file (.wav, .w64, .flac)")
    p.add_argument("--config", "-c", type=Path, default=None, help="venue config (default: the recorded one)")
    p.set_defaults(func=cmd_replay)
