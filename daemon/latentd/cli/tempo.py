"""``latentd tempo``: the BPM of loops of k latent frames, for a model or a sample rate and ratio."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentd.cli.common import EXIT_OK, add_parser, guarded

if TYPE_CHECKING:
    from latentd.installation.models import ModelInfo


def model_rate(args: argparse.Namespace, command: str) -> tuple[int, int, ModelInfo | None]:
    """``(sr, ratio, info)`` from ``--model`` or from ``--samplerate`` and ``--ratio``.

    Raises:
        UnravelError: neither or both ways given, or a rate below 1.
        ModelError: the model file cannot be read.
    """
    from latentd.installation.models import read_info
    from latentd.unravel.inputs import UnravelError

    if args.model is not None:
        if args.samplerate is not None or args.ratio is not None:
            raise UnravelError(f"{command}: give either --model or --samplerate and --ratio, not both")
        info = read_info(Path(args.model))
        return info.sr, info.ratio, info
    if args.samplerate is None or args.ratio is None:
        raise UnravelError(
            f"{command} needs the model's rate: give --model M.ts, or both --samplerate and --ratio"
        )
    if args.samplerate < 1 or args.ratio < 1:
        raise UnravelError(f"--samplerate and --ratio must be >= 1, got {args.samplerate} and {args.ratio}")
    return args.samplerate, args.ratio, None


def add_rate_options(p: argparse.ArgumentParser) -> None:
    """``--model``, or ``--samplerate`` with ``--ratio``: where :func:`model_rate` reads the rate."""
    p.add_argument("--model", type=Path, help="model file whose sample rate and ratio to use")
    p.add_argument("--samplerate", type=int, help="the model's sample rate in Hz (with --ratio)")
    p.add_argument("--ratio", type=int, help="audio samples per latent frame (with --samplerate)")


def cmd_tempo(args: argparse.Namespace) -> int:
    """Print the BPM table of loops of k latent frames, and the nearest tempo to --bpm."""
    from latentd.tempo import format_table, nearest_k
    from latentd.unravel.inputs import UnravelError

    sr, ratio, _ = model_rate(args, "tempo")
    if args.k_max < 1:
        raise UnravelError(f"--k-max must be >= 1, got {args.k_max}")
    print(format_table(sr, ratio, args.k_max))
    if args.bpm is not None:
        print(nearest_k(sr, ratio, args.bpm).message)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``tempo`` to the ``latentd`` subcommands."""
    p = add_parser(
        sub,
        "tempo",
        help="print the BPM of loops of k latent frames (k = 1..32, with double time)",
        description="BPM = 60 * (samplerate / ratio) / k for a loop of k latent frames.",
    )
    add_rate_options(p)
    p.add_argument("--bpm", type=float, help="also print the achievable tempo nearest to this one")
    p.add_argument("--k-max", type=int, default=32, help="last k of the table")
    p.set_defaults(func=guarded("tempo", cmd_tempo))
