"""``latentd recover FILE|DIR``: turn interrupted recordings into clean, closed files.

A recording cut by SIGKILL or a power cut may have a stale header (WAV/RF64 without automatic header
updates read as 0 frames; FLAC has no length and ``soundfile.read`` fails on it). Recovery reads every
frame that decodes — through libsndfile block by block, or, when the header claims no frames, straight
from the bytes of the ``data`` chunk — writes them into a new file of the same format and sample type,
and atomically replaces the original. The result opens everywhere (soundfile, sox) with its true length.
A file whose header already matches what it holds is left alone ("intact").

Latent WAVs (``<voice>_latents.wav``) are made whole the same way but are not audio: they are reported
apart and not counted. In each session folder, ``session.json`` is brought in line with the files: the
real frames of every segment (a segment the process opened but never listed is added) and, for a
session whose process was killed, ``stop_reason: "interrupted"`` with its stop block.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from latentd.atomic import replacing, write_json_atomic
from latentd.recording.session_file import SESSION_FILE
from latentd.unravel.latentio import LatentWavWriter, latent_rate_of

AUDIO_SUFFIXES = (".w64", ".wav", ".rf64", ".flac")
READ_FRAMES = 65536
FLAC_READ_FRAMES = 4096  # libsndfile's FLAC block size
RAW_DTYPES = {"FLOAT": "<f4", "DOUBLE": "<f8", "PCM_16": "<i2", "PCM_32": "<i4", "PCM_24": "pcm24"}
LATENTS_SUFFIX = "_latents.wav"


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
    intact: bool = False  # the file was whole already and was left alone
    latents: bool = False  # a latent WAV: not audio, not counted

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0

    def describe(self) -> str:
        """One line for the terminal."""
        what = "latents, " if self.latents else ""
        head = f"{self.path}: {what}{self.format}/{self.subtype}, {self.channels} ch at {self.samplerate} Hz"
        if self.intact:
            return f"{head}: intact, {self.frames} frames ({self.seconds:.2f} s)"
        claimed = "unknown" if self.header_frames < 0 else str(self.header_frames)
        return f"{head}: recovered {self.frames} frames ({self.seconds:.2f} s); header said {claimed}"


@dataclass(frozen=True)
class SessionFix:
    """What recovery changed in one session's ``session.json`` (``changes`` empty: it was right)."""

    path: Path
    changes: tuple[str, ...]

    def describe(self) -> str:
        """One line for the terminal."""
        if not self.changes:
            return f"{self.path}: intact"
        return f"{self.path}: fixed: {'; '.join(self.changes)}"


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


def _w64_whole(path: Path) -> bool:
    """Whether a W64 file's header sizes (the riff size, the data chunk's) match the file's length."""
    with open(path, "rb") as f:
        head = f.read(40)
        size = os.fstat(f.fileno()).st_size
        if len(head) < 40 or head[:4] != b"riff" or struct.unpack("<Q", head[16:24])[0] != size:
            return False
        pos = 40
        while pos + 24 <= size:
            f.seek(pos)
            chunk = f.read(24)
            length = struct.unpack("<Q", chunk[16:24])[0]
            if chunk[:4] == b"data":
                return pos + length == size
            if length < 24:
                return False
            pos += (length + 7) // 8 * 8
    return False


def _riff_sizes_whole(path: Path, data_bytes: int) -> bool:
    """Whether a RIFF/RF64 header declares the file's real size and its data chunk's real length."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        riff_size = struct.unpack("<I", head[4:8])[0]
        declared = None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"ds64":  # RF64: the real sizes live here (the 32-bit fields say 0xFFFFFFFF)
                riff_size, declared = struct.unpack("<QQ", f.read(16))
            elif cid == b"data":
                declared = clen if declared is None else declared
                break
            pos += 8 + clen + (clen & 1)
    return riff_size == size - 8 and declared == data_bytes


def _is_whole(path: Path, src: sf.SoundFile) -> bool:
    """Whether the file's header says exactly what it holds (a file closed cleanly): read it through."""
    if src.format == "FLAC" and src.frames <= 0:
        return False
    if src.format == "W64" and not _w64_whole(path):
        return False
    if src.format in ("WAV", "WAVEX", "RF64"):
        found = _riff_data(path)
        if found is None or src.frames != found[1] // found[3] or not _riff_sizes_whole(path, found[1]):
            return False
    return sum(len(block) for block in _sf_blocks(src)) == src.frames  # consumes src


def recover_file(path: Path) -> Recovered:
    """Rewrite one interrupted recording as a clean closed file (atomic replace) and report it.

    A file that is whole already is left as it is (reported ``intact``).

    Raises:
        RecoverError: the file does not open as audio.
    """
    path = Path(path)
    try:
        src = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise RecoverError(f"{path}: not a readable audio file: {exc}") from exc
    latents = path.name.endswith(LATENTS_SUFFIX)
    with src:
        if _is_whole(path, src):
            fmt, subtype, sr, ch = src.format, src.subtype, src.samplerate, src.channels
            return Recovered(path, fmt, subtype, int(src.frames), sr, ch, int(src.frames), True, latents)
    rate_hz = _latent_rate(path) if latents else None
    src = sf.SoundFile(path)
    with replacing(path) as tmp, src:
        fmt, subtype, sr, ch = src.format, src.subtype, src.samplerate, src.channels
        header = -1 if fmt == "FLAC" else int(src.frames)
        blocks = _sf_blocks(src) if header != 0 else _raw_blocks(path, subtype, ch)
        frames = 0
        # A latent WAV is written again as latentd writes them, its exact latent rate kept.
        rewrite = latents and subtype == "FLOAT" and fmt in ("WAV", "WAVEX")
        out: sf.SoundFile | LatentWavWriter = (
            LatentWavWriter(tmp, ch, rate_hz or sr)
            if rewrite
            else sf.SoundFile(tmp, "w", sr, ch, subtype=subtype, format=fmt)
        )
        with out:
            for block in blocks:
                out.write(block)
                frames += len(block)
    return Recovered(path, fmt, subtype, frames, sr, ch, header, False, latents)


def _latent_rate(path: Path) -> float | None:
    """The exact latent rate a latent WAV records, None when it records none or it cannot be read."""
    try:
        return latent_rate_of(path)
    except ValueError:
        return None


def audio_files(target: Path) -> list[Path]:
    """The recordings under ``target`` (a file, or every audio file below a folder)."""
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return [target]


def recover(target: Path) -> list[Recovered]:
    """Recover a file, or every recording below a folder (intact files are left alone).

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


def session_files(target: Path) -> list[Path]:
    """The ``session.json`` files of the sessions at or below ``target`` (or holding the file ``target``)."""
    target = Path(target)
    if target.is_dir():
        return sorted(target.rglob(SESSION_FILE))
    beside = target.parent / SESSION_FILE
    return [beside] if beside.exists() else []


def _frames_of(path: Path) -> int:
    try:
        with sf.SoundFile(path) as f:
            return sum(len(block) for block in _sf_blocks(f))
    except (sf.LibsndfileError, RuntimeError):
        return 0


def fix_session(path: Path) -> SessionFix:
    """Bring one ``session.json`` in line with the files beside it (after :func:`recover_file`).

    Every listed segment gets the frames its file holds; a segment file the process opened but never
    listed is added; a session without a ``stop_reason`` (its process was killed) gets
    ``"interrupted"``, the block after its last frame as ``stop_block`` and its last file's time as
    ``end_utc``. The file is rewritten (atomically) only when something changed.

    Raises:
        RecoverError: the file is not a session file.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        segments = doc["segments"]
        blocksize = int(doc["blocksize"])
        start_block = int(doc["start_block"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecoverError(f"{path}: not a session file: {exc}") from exc
    folder = path.parent
    changes = []
    listed = {s["file"] for s in segments}
    if segments:
        first = segments[0]["file"]
        suffix = Path(first).suffix
        stem = first[: -len("000") - len(suffix)]  # segment n is <stem><nnn><suffix>
        n = len(segments)
        while (folder / f"{stem}{n:03d}{suffix}").exists() and f"{stem}{n:03d}{suffix}" not in listed:
            last = segments[-1]
            start_frame = int(last["start_frame"]) + _frames_of(folder / last["file"])
            name = f"{stem}{n:03d}{suffix}"
            checkpoint = Path(name).with_suffix(".checkpoint").name
            segments.append(
                {
                    "file": name,
                    "start_block": start_block + start_frame // blocksize,
                    "start_frame": start_frame,
                    "frames": 0,
                    "checkpoint": checkpoint if (folder / checkpoint).exists() else None,
                }
            )
            changes.append(f"added segment {name}")
            n += 1
    for seg in segments:
        file = folder / seg["file"]
        frames = _frames_of(file) if file.exists() else 0
        if frames != seg.get("frames"):
            changes.append(f"{seg['file']}: frames {seg.get('frames')} → {frames}")
            seg["frames"] = frames
    total = sum(int(s["frames"]) for s in segments)
    if doc.get("frames") != total:
        doc["frames"] = total
    if doc.get("stop_reason") is None:
        end = max((int(s["start_frame"]) + int(s["frames"]) for s in segments), default=0)
        doc["stop_reason"] = "interrupted"
        doc["stop_block"] = start_block + -(-end // blocksize)
        doc["paused"] = None
        last_files = [folder / s["file"] for s in segments if (folder / s["file"]).exists()]
        if last_files and doc.get("end_utc") is None:
            mtime = last_files[-1].stat().st_mtime
            doc["end_utc"] = datetime.fromtimestamp(mtime, UTC).isoformat()
        changes.append(f"stop_reason interrupted at block {doc['stop_block']}")
    if changes:
        write_json_atomic(path, doc)
    return SessionFix(path, tuple(changes))
