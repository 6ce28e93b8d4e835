"""``latentd unravel``: the offline UnRAVEl toolkit (encode, stats, generate, decode).

``add_commands(sub)`` adds them to the main parser's subparsers; each sets ``func(args) -> int``.
Bad input is reported in one line on stderr with exit status 2, never as a traceback
(:func:`latentd.cli.common.guarded`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from latentd.cli.common import EXIT_OK, add_parser, guarded
from latentd.cli.tempo import add_rate_options, model_rate

# --- commands ------------------------------------------------------------------------------------


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode audio files into latents."""
    import numpy as np

    from latentd.unravel.encode import encode_files

    outs = encode_files(args.model, args.inputs, args.output, seed=args.seed, chunk_frames=args.chunk_frames)
    for out in outs:
        print(f"wrote {out} {tuple(np.load(out, mmap_mode='r').shape)}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """Compute the statistics of latent files."""
    from latentd.unravel.stats import stats_files

    written, stats = stats_files(args.inputs, args.output, iqr=args.iqr, plot=args.plot)
    kind = "midhinge and IQR / 1.35 (with IQR bounds)" if args.iqr else "mean and std"
    print(
        f"wrote {written}: {int(stats['n_frames'])} frames x {len(stats['mean'])} dims; "
        f"generators will draw around the {kind}"
    )
    if args.plot is not None:
        print(f"wrote {args.plot}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate latent files from statistics and a pattern."""
    from latentd.tempo import bpm
    from latentd.unravel.decode import allowed_dims
    from latentd.unravel.generate import check_options, generate_files, required_keys
    from latentd.unravel.inputs import UnravelError
    from latentd.unravel.stats import load_stats

    check_options(args.pattern, args.num_latents, args.num_loops, args.num_files)
    sr, ratio, info = model_rate(args, "generate")
    stats = load_stats(args.stats, required_keys(args.distribution, args.pattern))
    d = len(next(v for k, v in stats.items() if k in ("centre", "lower_bound")))
    if info is not None:
        low, high = allowed_dims(info)
        if not low <= d <= high:
            allowed = f"{low}" if low == high else f"{low}..{high}"
            raise UnravelError(f"{args.stats}: {d} latent dims, but {args.model} decodes {allowed}")
    name = args.name or f"{args.pattern}-{args.distribution}"
    written = generate_files(
        stats,
        distribution=args.distribution,
        pattern=args.pattern,
        num_latents=args.num_latents,
        num_loops=args.num_loops,
        seed=args.seed,
        num_files=args.num_files,
        output=args.output,
        name=name,
        sr=sr,
        ratio=ratio,
        plot=args.plot,
    )
    for g in written:
        extra = f", {g.plot}" if g.plot else ""
        print(f"wrote {g.npy} (1, {d}, {g.n_frames}), {g.wav}{extra} ({g.n_frames / (sr / ratio):.2f} s)")
    beat = bpm(sr, ratio, args.num_latents)
    note = " (fibo's loop is longer: its prefixes grow)" if args.pattern == "fibo" else ""
    print(
        f"tempo: a base of {args.num_latents} latent frames at {sr} Hz / ratio {ratio} = {beat:.2f} BPM "
        f"(double time {2 * beat:.2f}){note}"
    )
    return EXIT_OK


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode latent files into audio."""
    from latentd.unravel.decode import decode_files

    for out in decode_files(args.model, args.inputs, args.output, seed=args.seed):
        print(f"wrote {out}")
    return EXIT_OK


# --- wiring --------------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Add ``unravel`` (encode, stats, generate, decode) to the ``latentd`` subcommands."""
    from latentd.unravel.generate import DISTRIBUTIONS, PATTERNS

    unravel = add_parser(sub, "unravel", help="offline UnRAVEl toolkit: encode, stats, generate, decode")
    usub = unravel.add_subparsers(dest="unravel_command", metavar="ACTION", required=True)

    p = add_parser(
        usub,
        "encode",
        help="encode audio files or folders into latents (1, d, T) .npy",
        description="Audio (wav, flac, aiff, ogg; folders are scanned, not recursively) is mixed to mono, "
        "resampled to the model's rate and encoded; each file becomes OUTPUT/<stem>.npy.",
    )
    p.add_argument("--model", type=Path, required=True, help="the model (.ts) whose encoder to use")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, help="folder for the .npy files")
    p.add_argument("--seed", type=int, default=0, help="torch seed per file (variational encoders sample)")
    p.add_argument("--chunk-frames", type=int, default=64, help="latent frames per encode call")
    p.set_defaults(func=guarded("unravel encode", cmd_encode))

    p = add_parser(
        usub,
        "stats",
        help="statistics of latent files (mean, std, covariance, IQR bounds) into a .npz",
        description="Latent files (.npy or latent WAV; folders are scanned) are concatenated in time.",
    )
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="latent files or folders")
    p.add_argument("--iqr", action="store_true", help="also IQR bounds; draw around midhinge and IQR/1.35")
    p.add_argument("--output", type=Path, required=True, help="the stats file to write (.npz)")
    p.add_argument("--plot", type=Path, help="also write a PNG of each dim's distribution")
    p.set_defaults(func=guarded("unravel stats", cmd_stats))

    p = add_parser(
        usub,
        "generate",
        help="generate latent files from statistics and a pattern",
        description="Writes OUTPUT/<name>_<i>.npy (1, d, N) float32 and <name>_<i>.latent.wav (32-bit float, "
        "header rate samplerate // ratio), plus <name>_<i>.png with --plot. The rate comes from --model, "
        "or from --samplerate and --ratio.",
    )
    p.add_argument("--stats", type=Path, required=True, help="stats file written by latentd unravel stats")
    p.add_argument(
        "--distribution", choices=DISTRIBUTIONS, default="normal", help="how base arrays are drawn"
    )
    p.add_argument("--pattern", choices=PATTERNS, default="default", help="pattern over the base arrays")
    p.add_argument("--num-latents", type=int, default=16, help="frames k of each base array")
    p.add_argument("--num-loops", type=int, default=4, help="repeats L inside the pattern")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's one random generator")
    p.add_argument("--num-files", type=int, default=1, help="files to generate")
    p.add_argument("--output", type=Path, required=True, help="folder for the generated files")
    p.add_argument("--name", help="file name prefix (default <pattern>-<distribution>)")
    p.add_argument("--plot", action="store_true", help="also write a PNG of each generated array")
    add_rate_options(p)
    p.set_defaults(func=guarded("unravel generate", cmd_generate))

    p = add_parser(
        usub,
        "decode",
        help="decode latent files (.npy or latent WAV) into audio at the model's rate",
        description="Each latent file becomes OUTPUT/<stem>.wav (32-bit float); x.latent.wav becomes x.wav. "
        "In folders, a latent WAV beside its .npy twin is skipped.",
    )
    p.add_argument("--model", type=Path, required=True, help="the model (.ts) whose decoder to use")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="latent files or folders")
    p.add_argument("--output", type=Path, required=True, help="folder for the audio files")
    p.add_argument("--seed", type=int, default=0, help="torch seed per file (variational decoders sample)")
    p.set_defaults(func=guarded("unravel decode", cmd_decode))
