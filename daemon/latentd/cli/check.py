"""``latentd check`` and ``latentd config``: validate a venue and its piece, print the effective config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from latentd.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK, add_parser, config_arg, config_errors


def cmd_check(args: argparse.Namespace) -> int:
    """Validate both files and the places latentd writes, decode a block per voice; every problem at once."""
    from latentd.config import ConfigError, load_config
    from latentd.config.writable import writable_problems
    from latentd.diffusion.piece_pools import check_pools
    from latentd.offline.build import build_engine

    try:
        config = load_config(args.config)
        unwritable = writable_problems(config)  # as the user running check: run it as the service's user
        if unwritable:
            raise ConfigError(unwritable)
        engine = build_engine(config, fade_in_s=0.0, live_loads=False, remeasure=args.remeasure)
        installation = engine.installation
        for group in engine.groups:
            group.fill(engine.blocksize)
            if group.recovery.failures:
                raise ConfigError.single(
                    installation.piece_file,
                    f"models.{group.name}.path",
                    str(config.piece.models[group.name].path),
                    f"decode failed for voice(s) {', '.join(v.name for v in group.voices)}: "
                    f"{group.recovery.last_error}",
                )
            if group.faulted_rows:
                names = [group.voices[r].name for r in group.faulted_rows]
                raise ConfigError.single(
                    installation.piece_file,
                    f"models.{group.name}.path",
                    str(config.piece.models[group.name].path),
                    f"decode produced NaN/Inf for voice(s) {', '.join(names)}",
                )
        pool_lines = check_pools(
            config, {n: installation.models[v.model].info.latent_size for n, v in config.piece.voices.items()}
        )
    except ConfigError as exc:
        return config_errors(exc)
    layout = installation.layout
    print(
        f"ok: {args.config}: piece {config.piece.name!r}, {len(installation.models)} model(s), "
        f"{len(engine.snapshot.voices)} voice(s), {len(config.piece.sections)} section(s), "
        f"layout {layout.name} ({layout.n_channels} ch) at {engine.samplerate} Hz"
    )
    for name, model in installation.models.items():
        i = model.info
        print(
            f"  model {name}: {i.path.name} latent_size {i.latent_size} ratio {i.ratio} "
            f"sr {i.sr}{_sr_note(i)} "
            f"channels {i.n_channels} streaming {'yes' if i.streaming else 'NO'}"
        )
    for name, node in config.venue.nodes.items():
        this = " (this machine)" if name == config.venue.node else ""
        print(
            f"  node {name}{this}: {node.role} at {node.address}, voices {', '.join(node.voices) or 'none'}"
        )
    for line in pool_lines:
        print(line)
    if args.load:
        from latentd.offline.capacity import measure

        verdict = measure(engine)
        for line in verdict.lines():
            print(line)
        if not verdict.keeps_up:
            return EXIT_FAIL
    return EXIT_OK


def _sr_note(info: Any) -> str:
    """Where a model's sample rate comes from, when not from the file."""
    if info.declared_sr is None:
        return " (from the piece: the model declares none)"
    if info.declared_sr != info.sr:
        return f" (from the piece; the model declares {info.declared_sr})"
    return ""


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults filled in, paths resolved), or the key reference."""
    from latentd.config import ConfigError, load_config, print_effective

    if args.reference:
        from latentd.config.reference import reference_markdown

        sys.stdout.write(reference_markdown())
        return EXIT_OK
    if args.config is None:
        sys.stderr.write(
            "latentd config: error: give -c/--config FILE (the venue config to print), "
            "or --reference for the reference of every key\n"
        )
        return EXIT_INVALID
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return config_errors(exc)
    print_effective(config, sys.stdout)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``check`` and ``config``."""
    p = add_parser(
        sub, "check", help="validate the config and piece, load models, decode one block per voice"
    )
    config_arg(p)
    p.add_argument(
        "--load",
        action="store_true",
        help="also time each model with its voices and call shape on this machine and print the share "
        "of the real-time budget the piece needs, its margin and what to change below a 1.3x margin "
        "(exit status 1 when it will not keep up)",
    )
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="measure each model's decode call shape again and replace the one this machine chose before "
        "(call-shapes.json beside the state file, which run, render and check reuse); run as the "
        "service's user, on a quiet machine",
    )
    p.set_defaults(func=cmd_check)

    p = add_parser(sub, "config", help="print the effective configuration, or with --reference every key")
    config_arg(p, required=False, help="venue config (configs/*.toml); required unless --reference")
    p.add_argument(
        "--reference",
        action="store_true",
        help="print the reference of every configuration key (Markdown, as docs/configuration.md)",
    )
    p.set_defaults(func=cmd_config)
