"""Latent files: ``.npy`` arrays (1, d, N) and "latent audio" WAV files (one channel per latent dim).

A latent WAV stores frame n of dim j as sample n of channel j, as 32-bit float: Pure Data 0.53 reads that
with values beyond ±1 intact but rejects 64-bit float WAV, which older UnRAVEl wrote; both are read.

latentd writes its latent WAVs itself (:class:`LatentWavWriter`), so that every reader takes them
without a word: a ``WAVE_FORMAT_EXTENSIBLE`` header (float sub-format, as the WAV rules ask for more than
two channels) whose ``fmt`` chunk ends with two zero bytes, because sox 14.4 reads a second extension
size after the extension of a float sub-format and warns "wave header missing extended part of fmt
chunk" without them. A WAV header rate is an integer, so it holds the latent rate rounded down
(``sr // ratio``, e.g. 46 for 46.875 Hz); the exact rate is recorded in the file's ``LIST/INFO`` comment
(``ICMT``) as ``latent_rate_hz=46.875``, and latentd reads it back (:func:`latent_rate_of`).
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile

from latentd.audiofile import WAV_LIMIT_BYTES

#: Suffixes of latent files.
LATENT_SUFFIXES = (".npy", ".wav")
#: Float WAV subtypes a latent WAV may have (integer PCM would clip latents to ±1).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
#: The key of the exact latent rate in a latent WAV's comment.
RATE_KEY = "latent_rate_hz"

_EXTENSIBLE = 0xFFFE
_FLOAT_GUID = struct.pack("<IHH", 3, 0, 0x10) + bytes((0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71))


def latent_wav_rate(sr: int, ratio: int) -> int:
    """The header sample rate of a latent WAV for a model: ``sr // ratio``, at least 1."""
    if sr < 1 or ratio < 1:
        raise ValueError(f"sr and ratio must be >= 1, got sr={sr}, ratio={ratio}")
    return max(1, sr // ratio)


def read_latents(path: Path) -> np.ndarray:
    """Latent frames (N, d) float32 from a ``.npy`` of shape (1, d, N) or (d, N), or a latent WAV.

    A latent WAV holds one channel per latent dimension (32- or 64-bit float).

    Raises:
        ValueError: the file is missing, of another type, has another shape or sample format, holds no
            frames, or holds NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"latent file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            z = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a numpy array file ({exc})") from exc
        if z.ndim == 3 and z.shape[0] == 1:
            z = z[0]
        if z.ndim != 2:
            raise ValueError(f"{path}: expected latents of shape (1, d, N) or (d, N), got {z.shape}")
        if not np.issubdtype(z.dtype, np.number):
            raise ValueError(f"{path}: expected numbers, got dtype {z.dtype}")
        frames = np.ascontiguousarray(z.T, dtype=np.float32)
    elif suffix == ".wav":
        info = _wav_info(path)
        if info.subtype not in FLOAT_SUBTYPES:
            raise ValueError(
                f"{path}: a latent WAV must hold 32- or 64-bit float samples (FLOAT or DOUBLE), "
                f"got {info.subtype}; integer samples would clip latents to ±1"
            )
        frames, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    else:
        raise ValueError(f"{path}: latent files are .npy or .wav, got {path.suffix!r}")
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise ValueError(f"{path}: holds no latent frames (shape (N, d) = {frames.shape})")
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{path}: holds NaN or Inf values")
    return frames


def wav_header_rate(path: Path) -> int:
    """The header sample rate of a WAV file."""
    return int(soundfile.info(str(path)).samplerate)


def latent_rate_of(path: Path) -> float | None:
    """The exact latent rate a latent WAV records (``latent_rate_hz=`` in its comment), else None.

    None for a ``.npy`` and for a WAV written elsewhere (its header rate is then all there is).

    Raises:
        ValueError: an unreadable WAV, or a recorded rate that is not a positive number.
    """
    path = Path(path)
    if path.suffix.lower() != ".wav":
        return None
    _wav_info(path)
    with soundfile.SoundFile(str(path)) as f:
        comment = f.comment or ""
    for token in comment.split():
        key, _, value = token.partition("=")
        if key != RATE_KEY:
            continue
        try:
            rate = float(value)
        except ValueError:
            rate = float("nan")
        if not rate > 0 or rate == float("inf"):
            raise ValueError(f"{path}: comment {RATE_KEY}={value!r} is not a positive latent rate in Hz")
        return rate
    return None


def write_npy(path: Path, frames: np.ndarray) -> Path:
    """Write latent frames (N, d) as a ``.npy`` of shape (1, d, N) float32 (what ``decode`` takes)."""
    frames = _check_frames(frames)
    path = Path(path)
    np.save(path, np.ascontiguousarray(frames.T[None, :, :], dtype=np.float32))
    return path


def write_latent_wav(path: Path, frames: np.ndarray, rate_hz: float) -> Path:
    """Write latent frames (N, d) as a latent WAV (see the module docstring) at latent rate ``rate_hz``."""
    frames = _check_frames(frames)
    path = Path(path)
    with LatentWavWriter(path, frames.shape[1], rate_hz) as writer:
        writer.write(frames)
    return path


class LatentWavWriter:
    """A latent WAV written frame by frame, whose header is brought up to date after every write.

    A killed writer leaves a file that holds every frame written (like libsndfile's automatic header
    updates, which this writer cannot use: libsndfile writes no extension size after a float
    sub-format). Written by one thread.

    Args:
        path: the file (created, or truncated).
        latent_size: channels: one per latent dimension.
        rate_hz: the exact latent rate (frames per second); the header holds it rounded down.

    Raises:
        ValueError: no channels, or a rate that is not positive.
        OSError: the file cannot be created.
    """

    def __init__(self, path: Path, latent_size: int, rate_hz: float) -> None:
        if latent_size < 1:
            raise ValueError(f"a latent WAV needs at least one channel, got {latent_size}")
        if not 0 < rate_hz < float("inf"):
            raise ValueError(f"latent WAV rate must be > 0 Hz, got {rate_hz}")
        self.path = Path(path)
        self.latent_size = latent_size
        self.rate_hz = float(rate_hz)
        self.frames = 0
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        try:
            self._file.write(self._header())
        except BaseException:
            self._file.close()
            raise

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file.closed

    def write(self, frames: np.ndarray) -> None:
        """Append frames (N, latent_size) and update the header's sizes.

        Raises:
            ValueError: frames of another width.
            OSError: the disk refused them, or the file would pass the 4 GiB a WAV holds.
        """
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.latent_size:
            raise ValueError(f"expected frames (N, {self.latent_size}), got shape {frames.shape}")
        data = np.ascontiguousarray(frames, dtype="<f4").tobytes()
        if len(self._header()) + (self.frames + len(frames)) * 4 * self.latent_size > WAV_LIMIT_BYTES:
            raise OSError(errno.EFBIG, f"a latent WAV holds at most 4 GiB: {self.path}")
        self._file.seek(0, os.SEEK_END)
        self._file.write(data)
        self.frames += len(frames)
        self._file.seek(0)
        self._file.write(self._header())

    def flush(self) -> None:
        """Push what was written to the disk (nothing once closed)."""
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        """Finish the file."""
        self._file.close()

    def __enter__(self) -> LatentWavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _header(self) -> bytes:
        ch, header_rate = self.latent_size, max(1, int(self.rate_hz))
        block_align = 4 * ch
        fmt = struct.pack("<HHIIHH", _EXTENSIBLE, ch, header_rate, header_rate * block_align, block_align, 32)
        # Extension: 22 bytes (valid bits, no speaker mask, float sub-format), then 2 bytes for sox.
        fmt += struct.pack("<HHI", 22, 32, 0) + _FLOAT_GUID + b"\0\0"
        comment = f"{RATE_KEY}={self.rate_hz!r}".encode("ascii") + b"\0"
        info = b"INFO" + _chunk(b"ICMT", comment) + _chunk(b"ISFT", b"latentd\0")
        data_bytes = self.frames * block_align
        body = (
            b"WAVE"
            + _chunk(b"fmt ", fmt)
            + _chunk(b"fact", struct.pack("<I", self.frames))
            + _chunk(b"LIST", info)
            + b"data"
            + struct.pack("<I", data_bytes)
        )
        return b"RIFF" + struct.pack("<I", len(body) + data_bytes) + body


def _chunk(tag: bytes, body: bytes) -> bytes:
    """A RIFF chunk: tag, size, body, padded to an even length."""
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _wav_info(path: Path) -> Any:
    try:
        return soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ValueError(f"{path}: not a readable WAV file ({exc})") from exc


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] < 1 or frames.shape[1] < 1:
        raise ValueError(f"latent frames must have shape (N frames, d dims), got {frames.shape}")
    return frames
