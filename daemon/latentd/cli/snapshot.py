"""``latentd snapshot``: a venue's live tuning (its state file) written as a new piece file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg, config_errors


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Merge the state file's seeds and overrides into the piece, write it beside, print the diff."""
    from latentd.config import ConfigError, load_config
    from latentd.offline.build import build_engine
    from latentd.offline.snapshot import (
        merge_live_state,
        report,
        state_file_live,
        unified_diff,
        write_snapshot,
    )
    from latentd.runtime.logs import setup_logging
    from latentd.runtime.process import quiet_torchscript_warnings

    quiet_torchscript_warnings()
    try:
        config = load_config(args.config)
        setup_logging("warning", config.venue.logging.format)  # the diff is the output: only problems besides
        # The piece's voices as an engine builds them: the state is checked as a restart would check it.
        view = build_engine(config, fade_in_s=0.0, live_loads=False, warm_up=False).snapshot
    except ConfigError as exc:
        return config_errors(exc)
    state = args.state if args.state is not None else config.state_file
    try:
        live = state_file_live(state, view)
    except ValueError as exc:
        sys.stderr.write(f"latentd snapshot: error: {exc}\n")
        return EXIT_INVALID
    except OSError as exc:
        sys.stderr.write(f"latentd snapshot: error: cannot read the state file {state}: {exc}\n")
        return EXIT_FAIL
    original = config.piece_file.read_text(encoding="utf-8")
    merged = merge_live_state(config, original, live)
    try:
        path = write_snapshot(config, merged.text, output=args.output)
    except ConfigError as exc:
        sys.stderr.write("latentd snapshot: the merged piece does not check (nothing written):\n")
        return config_errors(exc)
    except OSError as exc:
        sys.stderr.write(f"latentd snapshot: error: {exc}\n")
        return EXIT_FAIL
    diff = unified_diff(original, merged.text, str(config.piece_file), str(path))
    sys.stdout.write(report(merged, diff, path))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``snapshot``."""
    p = add_parser(
        sub,
        "snapshot",
        help="write the live tuning (state file: seeds, overrides) into a new piece file beside piece.toml",
        description="Merge the operator overrides and voice seeds of the venue's state file into the "
        "piece and write the result as piece.snapshot-<UTC time>.toml beside piece.toml (never over a "
        "file), keeping the piece's comments and layout; print the diff and what a piece cannot express. "
        "The state file is only read, so this runs beside a playing daemon. To play the snapshot, copy it "
        "over piece.toml (keep the old one under another name).",
    )
    config_arg(p)
    p.add_argument(
        "--from",
        dest="state",
        type=Path,
        default=None,
        metavar="STATE_FILE",
        help="the state file to read (default: the venue's schedule.state_file)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="PATH",
        help="write here instead (it must not exist; model paths stay relative to the piece folder, so "
        "keep it there to use it as is)",
    )
    p.set_defaults(func=cmd_snapshot)
