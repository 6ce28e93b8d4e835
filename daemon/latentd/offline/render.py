"""Offline rendering: the live engine, driven as fast as the CPU allows, into an N-channel file."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import soundfile as sf
from tqdm import tqdm

from latentd.engine.engine import Engine

WAV_LIMIT_BYTES = 4 * 2**30 - 2**20  # plain WAV cannot pass 4 GiB: switch to RF64 before that


@dataclass(frozen=True)
class RenderSummary:
    """What a render produced, for the summary printed after it."""

    path: Path
    seconds: float
    samplerate: int
    speakers: tuple[str, ...]
    peak_db: tuple[float, ...]
    rms_db: tuple[float, ...]
    wall_s: float

    @property
    def speed(self) -> float:
        """Seconds of audio per second of wall time (× real time)."""
        return self.seconds / self.wall_s if self.wall_s > 0 else math.inf

    def print(self, out: TextIO) -> None:
        out.write(
            f"rendered {self.seconds:.2f} s, {len(self.speakers)} channels at {self.samplerate} Hz"
            f" → {self.path}\n"
            f"render speed {self.speed:.1f}× real time ({self.wall_s:.2f} s wall)\n"
            f"{'channel':>8} {'peak dBFS':>10} {'RMS dBFS':>10}\n"
        )
        for name, peak, rms in zip(self.speakers, self.peak_db, self.rms_db, strict=True):
            out.write(f"{name:>8} {peak:10.1f} {rms:10.1f}\n")


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def file_format(path: Path, n_channels: int, frames: int) -> tuple[str, str]:
    """(format, subtype) for ``path``: float32, RF64 when a .wav would pass the 4 GiB limit."""
    ext = path.suffix.lower()
    if ext == ".flac":
        return "FLAC", "PCM_24"
    if ext == ".w64":
        return "W64", "FLOAT"
    if ext == ".wav" and frames * n_channels * 4 > WAV_LIMIT_BYTES:
        return "RF64", "FLOAT"
    if ext in (".wav", ".rf64"):
        return ("RF64" if ext == ".rf64" else "WAV"), "FLOAT"
    raise ValueError(f"{path}: unknown audio file extension {ext!r}; allowed: .wav, .w64, .rf64, .flac")


def render(engine: Engine, seconds: float, output: Path, *, progress: bool | None = None) -> RenderSummary:
    """Render ``seconds`` of the engine's output into ``output`` and summarise it."""
    blocks = math.ceil(seconds * engine.samplerate / engine.blocksize)
    frames_total = round(seconds * engine.samplerate)
    fmt, subtype = file_format(output, engine.n_channels, frames_total)
    output.parent.mkdir(parents=True, exist_ok=True)
    peak = np.zeros(engine.n_channels)
    sumsq = np.zeros(engine.n_channels)
    show = sys.stderr.isatty() if progress is None else progress
    written = 0
    start = time.perf_counter()
    with (
        sf.SoundFile(output, "w", engine.samplerate, engine.n_channels, subtype=subtype, format=fmt) as f,
        tqdm(total=blocks, disable=not show, unit="block", desc="render", leave=False) as bar,
    ):
        for _ in range(blocks):
            block = engine.next_block()[:, : frames_total - written]
            f.write(block.T)
            written += block.shape[1]
            peak = np.maximum(peak, np.max(np.abs(block), axis=1))
            sumsq += np.sum(block.astype(np.float64) ** 2, axis=1)
            bar.update(1)
    wall = time.perf_counter() - start
    rms = np.sqrt(sumsq / max(1, written))
    return RenderSummary(
        path=output,
        seconds=written / engine.samplerate,
        samplerate=engine.samplerate,
        speakers=tuple(s.name for s in engine.layout.speakers),
        peak_db=tuple(_db(float(p)) for p in peak),
        rms_db=tuple(_db(float(r)) for r in rms),
        wall_s=wall,
    )
