"""Running the toolkit's commands as ``latentd`` would, and making test audio."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

from latentd.cli.unravel import add_commands


def run(argv: list[str | Path]) -> int:
    """Parse ``argv`` with a parser holding the toolkit's commands and run the chosen one."""
    parser = argparse.ArgumentParser(prog="latentd")
    add_commands(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    return int(args.func(args))


def write_sweep(path: Path, seconds: float, samplerate: int, channels: int = 1, seed: int = 0) -> Path:
    """A sine sweep (100 Hz -> 4 kHz) plus a little noise, as float32 audio."""
    n = int(seconds * samplerate)
    freq = np.geomspace(100.0, 4000.0, n)
    x = 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / samplerate)
    x += 0.05 * np.random.default_rng(seed).standard_normal(n)
    soundfile.write(path, np.repeat(x[:, None], channels, axis=1).astype(np.float32), samplerate)
    return path
