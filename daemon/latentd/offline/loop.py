"""The render-to-file loop: an engine driven block by block, as fast as the CPU allows, into a file.

``latentd render`` and replay both run this loop; replay submits its logged commands from the per-block
hook, right before the block they were applied at live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from latentd.audiofile import wav_fits
from latentd.engine.engine import Engine


def file_format(path: Path, n_channels: int, frames: int) -> tuple[str, str]:
    """(format, subtype) for ``path``: float32, RF64 when a .wav would pass the 4 GiB limit."""
    ext = path.suffix.lower()
    if ext == ".flac":
        return "FLAC", "PCM_24"
    if ext == ".w64":
        return "W64", "FLOAT"
    if ext == ".wav" and not wav_fits(frames, n_channels, 4):
        return "RF64", "FLOAT"
    if ext in (".wav", ".rf64"):
        return ("RF64" if ext == ".rf64" else "WAV"), "FLOAT"
    raise ValueError(f"{path}: unknown audio file extension {ext!r}; allowed: .wav, .w64, .rf64, .flac")


@dataclass(frozen=True)
class RenderedFile:
    """What the loop wrote: frames, and the peak and RMS level of each channel (linear)."""

    path: Path
    frames: int
    samplerate: int
    n_channels: int
    peak: tuple[float, ...]
    rms: tuple[float, ...]
    wall_s: float


def render_to_file(
    engine: Engine,
    output: Path,
    *,
    stop_block: int,
    start_block: int = 0,
    skip_frames: int = 0,
    frames: int | None = None,
    before_block: Callable[[int], None] | None = None,
    progress: bool = False,
) -> RenderedFile:
    """Run the engine from its current block to ``stop_block`` and write the blocks from ``start_block`` on.

    Args:
        engine: the engine (at block 0, or restored from a checkpoint), used by this thread only.
        output: the file to write (.wav, .w64, .rf64, .flac); its folder is created.
        stop_block: the block index the loop stops before.
        start_block: blocks before it are rendered (the engine's state depends on them) but not written.
        skip_frames: frames of ``start_block`` (and on) left out too: the file starts this far into it.
        frames: write at most this many frames (the last block is cut); default: every written block.
        before_block: called with each block's index right before the engine renders it (replay submits
            the commands logged at that block here).
        progress: show a progress bar on stderr.

    Raises:
        ValueError: the file's extension is not a known audio format.
    """
    limit = (stop_block - start_block) * engine.blocksize - skip_frames if frames is None else frames
    fmt, subtype = file_format(output, engine.n_channels, limit)
    output.parent.mkdir(parents=True, exist_ok=True)
    peak = np.zeros(engine.n_channels)
    sumsq = np.zeros(engine.n_channels)
    written = 0
    start = time.perf_counter()
    with (
        sf.SoundFile(output, "w", engine.samplerate, engine.n_channels, subtype=subtype, format=fmt) as f,
        tqdm(total=stop_block, disable=not progress, unit="block", desc="render", leave=False) as bar,
    ):
        for index in range(engine.counters.blocks, stop_block):
            if before_block is not None:
                before_block(index)
            audio = engine.next_block()
            bar.update(1)
            if index < start_block:
                continue
            if skip_frames:
                audio, skip_frames = audio[:, skip_frames:], max(0, skip_frames - audio.shape[1])
            block = audio[:, : limit - written]
            f.write(block.T)
            written += block.shape[1]
            peak = np.maximum(peak, np.max(np.abs(block), axis=1, initial=0.0))
            sumsq += np.sum(block.astype(np.float64) ** 2, axis=1)
    return RenderedFile(
        path=output,
        frames=written,
        samplerate=engine.samplerate,
        n_channels=engine.n_channels,
        peak=tuple(float(p) for p in peak),
        rms=tuple(float(r) for r in np.sqrt(sumsq / max(1, written))),
        wall_s=time.perf_counter() - start,
    )
