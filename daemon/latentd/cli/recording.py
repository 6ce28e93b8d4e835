"""``latentd recover`` and ``latentd replay``: the command-line side of recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg


def cmd_recover(args: argparse.Namespace) -> int:
    """Close interrupted recordings and report what each holds."""
    from latentd.recording.recover import RecoverError, fix_session, recover, session_files

    try:
        results = recover(Path(args.target))
        fixes = [fix_session(path) for path in session_files(Path(args.target))]
    except RecoverError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    for r in results:
        print(r.describe())
    for fix in fixes:
        print(fix.describe())
    audio = [r for r in results if not r.latents]
    recovered = sum(1 for r in audio if not r.intact)
    total = sum(r.seconds for r in audio)
    latents = len(results) - len(audio)
    print(
        f"recovered {recovered} file(s), {len(audio) - recovered} intact, {total:.2f} s of audio"
        + (f" ({latents} latent file(s) not counted)" if latents else "")
        + (f"; {sum(1 for f in fixes if f.changes)} session file(s) fixed" if fixes else "")
    )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-render a recorded session offline from its config, seeds and command log."""
    from latentd.config import ConfigError
    from latentd.offline.replay import ReplayError, replay
    from latentd.runtime.process import quiet_torchscript_warnings

    quiet_torchscript_warnings()
    try:
        result = replay(Path(args.session), Path(args.output), args.config, segment=args.segment)
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
    p.add_argument(
        "--segment",
        type=int,
        default=None,
        metavar="N",
        help="render segment N alone (the _NNN of its file name, from 0), from the checkpoint it begins with",
    )
    config_arg(p, required=False, help="venue config (default: the one the session was recorded with)")
    p.set_defaults(func=cmd_replay)
