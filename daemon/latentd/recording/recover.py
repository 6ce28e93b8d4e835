"""``latentd recover FILE|DIR``: turn interrupted recordings into clean, closed files.

A recording cut by SIGKILL or a power cut may have a stale header (WAV/RF64 without automatic header
updates read as 0 frames; FLAC has no length and ``soundfile.read`` fails on it). Recovery reads every
frame that decodes — through libsndfile block by block, or, when the header claims no frames, straight
from the bytes of the ``data`` chunk — writes them into a new file of the same format and sample type,
and atomically replaces the original. The result opens everywhere (soundfile, sox) with its true length.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from latentd.atomic import replacing

AUDIO_SUFFIXES = (".w64", ".wav", ".rf64", ".flac")
READ_FRAMES = 65536
FLAC_READ_FRAMES = 4096  # libsndfile's FLAC block size
RAW_DTYPES = {"FLOAT": "<f4", "DOUBLE": "<f8", "PCM_16": "<i2", "PCM_32": "<i4", "PCM_24": "pcm24"}


class RecoverError(Exception):
    """A file that cannot be recovered (not audio, unknown layout)."""


@dataclass(frozen=True)
class Recovered:
    """What recovery found in one file."""

    path: Path
    format: str
    subtype: str
    frames: int
    samplerate: int
    channels: int
    header_frames: int  # what the header claimed before recovery (FLAC: unknown → -1)

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0

    def describe(self) -> str:
        """One line for the terminal."""
        claimed = "unknown" if self.header_frames < 0 else str(self.header_frames)
        return (
            f"{self.path}: {self.format}/{self.subtype}, {self.channels} ch at {self.samplerate} Hz: "
            f"recovered {self.frames} frames ({self.seconds:.2f} s); header said {claimed}"
        )


def _riff_data(path: Path) -> tuple[int, int, int, int] | None:
    """(data offset, data bytes available, channels, bytes per frame) of a RIFF/RF64 file, or None."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        channels = block_align = 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"fmt ":
                _, channels, _, _, block_align = struct.unpack("<HHIIH", f.read(14))
            elif cid == b"data":
                if not block_align:
                    return None
                return pos + 8, size - pos - 8, channels, block_align
            pos += 8 + clen + (clen & 1)
    return None


def _raw_blocks(path: Path, subtype: str, channels: int) -> Iterator[np.ndarray]:
    """Frames of the data chunk read straight from the bytes (the header's length is not trusted)."""
    found = _riff_data(path)
    dtype = RAW_DTYPES.get(subtype)
    if found is None or dtype is None:
        return
    offset, available, _, block_align = found
    frames = available // block_align
    with open(path, "rb") as f:
        f.seek(offset)
        done = 0
        while done < frames:
            n = min(READ_FRAMES, frames - done)
            raw = f.read(n * block_align)
            values: np.ndarray
            if dtype == "pcm24":
                b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
                ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                values = np.where(ints >= 2**23, ints - 2**24, ints).astype(np.float32) / 2**23
            else:
                values = np.frombuffer(raw, dtype=dtype)
                if values.dtype.kind == "i":
                    values = values.astype(np.float32) / float(2 ** (8 * values.dtype.itemsize - 1))
            yield values.reshape(-1, channels).astype(np.float32, copy=False)
            done += n


def _sf_blocks(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """Every frame that decodes, up to the torn end of an interrupted file."""
    # A read that meets a torn FLAC end fails as a whole (and libsndfile cannot seek back after it):
    # read FLAC one encoder block at a time so that at most that much is given up.
    size = FLAC_READ_FRAMES if f.format == "FLAC" else READ_FRAMES
    while True:
        try:
            block = f.read(size, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError):
            return
        if len(block) == 0:
            return
        yield block


def recover_file(path: Path) -> Recovered:
    """Rewrite one interrupted recording as a clean closed file (atomic replace) and report it.

    Raises:
        RecoverError: the file does not open as audio.
    """
    path = Path(path)
    try:
        src = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise RecoverError(f"{path}: not a readable audio file: {exc}") from exc
    with replacing(path) as tmp, src:
        fmt, subtype, sr, ch = src.format, src.subtype, src.samplerate, src.channels
        header = -1 if fmt == "FLAC" else int(src.frames)
        blocks = _sf_blocks(src) if header != 0 else _raw_blocks(path, subtype, ch)
        frames = 0
        with sf.SoundFile(tmp, "w", sr, ch, subtype=subtype, format=fmt) as out:
            for block in blocks:
                out.write(block)
                frames += len(block)
    return Recovered(path, fmt, subtype, frames, sr, ch, header)


def audio_files(target: Path) -> list[Path]:
    """The recordings under ``target`` (a file, or every audio file below a folder)."""
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return [target]


def recover(target: Path) -> list[Recovered]:
    """Recover a file, or every recording below a folder.

    Raises:
        RecoverError: ``target`` does not exist, a folder holds no recordings, or a file is not audio.
    """
    target = Path(target)
    if not target.exists():
        raise RecoverError(f"{target}: no such file or folder")
    files = audio_files(target)
    if not files:
        raise RecoverError(f"{target}: no recordings here (looked for {', '.join(AUDIO_SUFFIXES)})")
    return [recover_file(p) for p in files]
