"""Offline rendering: the live engine, driven as fast as the CPU allows, into an N-channel file."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from latentd.engine.engine import Engine
from latentd.offline.loop import render_to_file


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


def render(engine: Engine, seconds: float, output: Path, *, progress: bool | None = None) -> RenderSummary:
    """Render ``seconds`` of the engine's output into ``output`` and summarise it.

    Args:
        engine: an engine at block 0.
        seconds: length of the render; the last block is cut to it.
        output: the file to write (.wav, .w64, .rf64, .flac).
        progress: show a progress bar; default: when stderr is a terminal.

    Raises:
        ValueError: the file's extension is not a known audio format.
    """
    rendered = render_to_file(
        engine,
        output,
        stop_block=math.ceil(seconds * engine.samplerate / engine.blocksize),
        frames=round(seconds * engine.samplerate),
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    return RenderSummary(
        path=output,
        seconds=rendered.frames / rendered.samplerate,
        samplerate=rendered.samplerate,
        speakers=tuple(s.name for s in engine.layout.speakers),
        peak_db=tuple(_db(p) for p in rendered.peak),
        rms_db=tuple(_db(r) for r in rendered.rms),
        wall_s=rendered.wall_s,
    )
