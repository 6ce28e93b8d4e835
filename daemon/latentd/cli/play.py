"""``latentd run`` (live, on JACK) and ``latentd render`` (offline, to a file)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg, config_errors


def cmd_render(args: argparse.Namespace) -> int:
    """Render the piece offline, faster than real time, with the engine used for live playback."""
    from latentd.config import ConfigError, load_config
    from latentd.offline.build import build_engine
    from latentd.offline.render import render
    from latentd.runtime.logs import setup_logging

    if not math.isfinite(args.seconds) or args.seconds <= 0:
        # Checked before anything loads: an empty render file is never what was asked for.
        sys.stderr.write(f"--seconds must be a positive number of seconds, got {args.seconds:g}\n")
        return EXIT_INVALID
    try:
        config = load_config(args.config)
        setup_logging(config.venue.logging.level, config.venue.logging.format)
        engine = build_engine(config, seed=args.seed, live_loads=False)  # offline: swaps land where asked
    except ConfigError as exc:
        return config_errors(exc)
    try:
        summary = render(engine, args.seconds, Path(args.output))
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_INVALID
    summary.print(sys.stdout)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Play the piece live on JACK until a signal (or ``--duration``) stops it."""
    from latentd.config import ConfigError
    from latentd.control.osc import OscServerError
    from latentd.outputs.jack_out import JackOutputError
    from latentd.outputs.jackd import JackServerError
    from latentd.runtime.supervisor import run_from_file

    try:
        return run_from_file(
            args.config, args.duration, record=args.record, label=args.label, fresh=args.fresh, node=args.node
        )
    except ConfigError as exc:
        return config_errors(exc)
    except (JackOutputError, JackServerError) as exc:
        sys.stderr.write(f"JACK: {exc}\n")
        return EXIT_FAIL
    except OscServerError as exc:
        sys.stderr.write(f"OSC: {exc}\n")
        return EXIT_FAIL


def add_commands(sub: Any) -> None:
    """Add ``run`` and ``render``."""
    p = add_parser(sub, "run", help="play the piece live on JACK (the main job)")
    config_arg(p)
    p.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop cleanly after this time"
    )
    p.add_argument("--record", action="store_true", help="record the master bus from the start")
    p.add_argument("--label", default="", help="added to the recording's file names")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="play the piece from its start: ignore the state file (programme position, seeds, operator "
        "overrides) and replace it",
    )
    p.add_argument(
        "--node",
        default=None,
        metavar="NAME",
        help="which node of the venue's [nodes] this machine is (overrides the venue's node key)",
    )
    p.set_defaults(func=cmd_run)

    p = add_parser(sub, "render", help="render the piece offline into an N-channel file")
    config_arg(p)
    p.add_argument("--seconds", type=float, required=True, help="length of the render")
    p.add_argument("--output", "-o", required=True, help="output file (.wav, .w64, .rf64, .flac)")
    p.add_argument("--seed", type=int, default=None, help="override the piece's seed")
    p.set_defaults(func=cmd_render)
