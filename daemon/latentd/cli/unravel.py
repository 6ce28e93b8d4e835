"""The ``latentd unravel`` (encode, stats, generate, decode) and ``latentd tempo`` commands.

``add_commands(sub)`` adds them to the main parser's subparsers; each sets ``func(args) -> int``.
Bad input is reported in one line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from latentd.installation.errors import ModelError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INVALID = 2


def _guarded(name: str, body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command, turning bad input into one line on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except (ModelError, ValueError) as exc:  # UnravelError is a ValueError
            sys.stderr.write(f"latentd {name}: error: {exc}\n")
            return EXIT_INVALID
        except OSError as exc:
            sys.stderr.write(f"latentd {name}: error: {exc}\n")
            return EXIT_FAIL

    return run


def _model_rate(args: argparse.Namespace, command: str) -> tuple[int, int, object | None]:
    """``(sr, ratio, info)`` from ``--model`` or from ``--samplerate`` and ``--ratio``."""
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


def _add_rate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="model file whose sample rate and ratio to use")
    p.add_argument("--samplerate", type=int, help="the model's sample rate in Hz (with --ratio)")
    p.add_argument("--ratio", type=int, help="audio samples per latent frame (with --samplerate)")


# --- commands ------------------------------------------------------------------------------------


def cmd_tempo(args: argparse.Namespace) -> int:
    """Print the BPM table of loops of k latent frames, and the nearest tempo to --bpm."""
    from latentd.tempo import format_table, nearest_k
    from latentd.unravel.inputs import UnravelError

    sr, ratio, _ = _model_rate(args, "tempo")
    if args.k_max < 1:
        raise UnravelError(f"--k-max must be >= 1, got {args.k_max}")
    print(format_table(sr, ratio, args.k_max))
    if args.bpm is not None:
        print(nearest_k(sr, ratio, args.bpm).message)
    return EXIT_OK


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
    sr, ratio, info = _model_rate(args, "generate")
    stats = load_stats(args.stats, required_keys(args.distribution, args.pattern))
    d = len(next(v for k, v in stats.items() if k in ("centre", "lower_bound")))
    if info is not None:
        low, high = allowed_dims(info)  # type: ignore[arg-type]
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


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``unravel`` (encode, stats, generate, decode) and ``tempo`` commands to ``sub``."""
    from latentd.unravel.generate import DISTRIBUTIONS, PATTERNS

    p = sub.add_parser(
        "tempo",
        help="print the BPM of loops of k latent frames (k = 1..32, with double time)",
        description="BPM = 60 * (samplerate / ratio) / k for a loop of k latent frames.",
    )
    _add_rate_options(p)
    p.add_argument("--bpm", type=float, help="also print the achievable tempo nearest to this one")
    p.add_argument("--k-max", type=int, default=32, help="last k of the table (default 32)")
    p.set_defaults(func=_guarded("tempo", cmd_tempo))

    unravel = sub.add_parser("unravel", help="offline UnRAVEl toolkit: encode, stats, generate, decode")
    usub = unravel.add_subparsers(dest="unravel_command", metavar="ACTION", required=True)

    p = usub.add_parser(
        "encode",
        help="encode audio files or folders into latents (1, d, T) .npy",
        description="Audio (wav, flac, aiff, ogg; folders are scanned, not recursively) is mixed to mono, "
        "resampled to the model's rate and encoded; each file becomes OUTPUT/<stem>.npy.",
    )
    p.add_argument("--model", type=Path, required=True, help="the model (.ts) whose encoder to use")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="audio files or folders")
    p.add_argument("--output", type=Path, required=True, help="folder for the .npy files")
    p.add_argument("--seed", type=int, default=0, help="torch seed per file (variational encoders sample)")
    p.add_argument("--chunk-frames", type=int, default=64, help="latent frames per encode call (default 64)")
    p.set_defaults(func=_guarded("unravel encode", cmd_encode))

    p = usub.add_parser(
        "stats",
        help="statistics of latent files (mean, std, covariance, IQR bounds) into a .npz",
        description="Latent files (.npy or latent WAV; folders are scanned) are concatenated in time.",
    )
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="latent files or folders")
    p.add_argument("--iqr", action="store_true", help="also IQR bounds; draw around midhinge and IQR/1.35")
    p.add_argument("--output", type=Path, required=True, help="the stats file to write (.npz)")
    p.add_argument("--plot", type=Path, help="also write a PNG of each dim's distribution")
    p.set_defaults(func=_guarded("unravel stats", cmd_stats))

    p = usub.add_parser(
        "generate",
        help="generate latent files from statistics and a pattern",
        description="Writes OUTPUT/<name>_<i>.npy (1, d, N) float32 and <name>_<i>.latent.wav (32-bit float, "
        "header rate samplerate // ratio), plus <name>_<i>.png with --plot. The rate comes from --model, "
        "or from --samplerate and --ratio.",
    )
    p.add_argument("--stats", type=Path, required=True, help="stats file from `latentd unravel stats`")
    p.add_argument(
        "--distribution", choices=DISTRIBUTIONS, default="normal", help="how base arrays are drawn"
    )
    p.add_argument("--pattern", choices=PATTERNS, default="default", help="pattern over the base arrays")
    p.add_argument("--num-latents", type=int, default=16, help="frames k of each base array (default 16)")
    p.add_argument("--num-loops", type=int, default=4, help="repeats L inside the pattern (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's one random generator")
    p.add_argument("--num-files", type=int, default=1, help="files to generate (default 1)")
    p.add_argument("--output", type=Path, required=True, help="folder for the generated files")
    p.add_argument("--name", help="file name prefix (default <pattern>-<distribution>)")
    p.add_argument("--plot", action="store_true", help="also write a PNG of each generated array")
    _add_rate_options(p)
    p.set_defaults(func=_guarded("unravel generate", cmd_generate))

    p = usub.add_parser(
        "decode",
        help="decode latent files (.npy or latent WAV) into audio at the model's rate",
        description="Each latent file becomes OUTPUT/<stem>.wav (32-bit float); x.latent.wav becomes x.wav. "
        "In folders, a latent WAV beside its .npy twin is skipped.",
    )
    p.add_argument("--model", type=Path, required=True, help="the model (.ts) whose decoder to use")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="latent files or folders")
    p.add_argument("--output", type=Path, required=True, help="folder for the audio files")
    p.add_argument("--seed", type=int, default=0, help="torch seed per file (variational decoders sample)")
    p.set_defaults(func=_guarded("unravel decode", cmd_decode))
