"""``latentd check`` and ``latentd config``: validate a venue and its piece, print the effective config."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from latentd.cli.common import EXIT_OK, config_arg, config_errors
from latentd.runtime.process import configure_process


def cmd_check(args: argparse.Namespace) -> int:
    """Validate both files, load every model, decode one block per voice; print every problem at once."""
    from latentd.config import ConfigError, load_config
    from latentd.diffusion.piece_pools import check_pools
    from latentd.engine.engine import Engine
    from latentd.installation.piece import load_installation

    try:
        config = load_config(args.config)
        configure_process(config.venue.audio.torch_threads)
        installation = load_installation(config)
        engine = Engine(installation, fade_in_s=0.0, live_loads=False)
        for group in engine.groups:
            group.fill(engine.blocksize)
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
        f"{len(engine.voices)} voice(s), {len(config.piece.sections)} section(s), "
        f"layout {layout.name} ({layout.n_channels} ch) at {engine.samplerate} Hz"
    )
    for name, model in installation.models.items():
        i = model.info
        print(
            f"  model {name}: {i.path.name} latent_size {i.latent_size} ratio {i.ratio} sr {i.sr} "
            f"channels {i.n_channels} streaming {'yes' if i.streaming else 'NO'}"
        )
    for line in pool_lines:
        print(line)
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults filled in, paths resolved)."""
    from latentd.config import ConfigError, load_config, print_effective

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return config_errors(exc)
    print_effective(config, sys.stdout)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``check`` and ``config``."""
    p = sub.add_parser("check", help="validate the config and piece, load models, decode one block per voice")
    config_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("config", help="print the effective configuration")
    config_arg(p)
    p.set_defaults(func=cmd_config)
