"""Latent files: ``.npy`` arrays (1, d, N) and "latent audio" WAV files (one channel per latent dim).

A latent WAV stores frame n of dim j as sample n of channel j, with the header sample rate
``sr // ratio`` (21 at 44.1 kHz, ratio 2048). It is written as 32-bit float: Pure Data 0.53 reads that
with values beyond ±1 intact but rejects 64-bit float WAV, which older UnRAVEl wrote; both are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

#: Suffixes of latent files.
LATENT_SUFFIXES = (".npy", ".wav")
#: Float WAV subtypes a latent WAV may have (integer PCM would clip latents to ±1).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


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
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise ValueError(f"{path}: not a readable WAV file ({exc})") from exc
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


def write_npy(path: Path, frames: np.ndarray) -> Path:
    """Write latent frames (N, d) as a ``.npy`` of shape (1, d, N) float32 (what ``decode`` takes)."""
    frames = _check_frames(frames)
    path = Path(path)
    np.save(path, np.ascontiguousarray(frames.T[None, :, :], dtype=np.float32))
    return path


def write_latent_wav(path: Path, frames: np.ndarray, rate: int) -> Path:
    """Write latent frames (N, d) as a 32-bit float WAV with one channel per dim at header ``rate``."""
    frames = _check_frames(frames)
    if rate < 1:
        raise ValueError(f"latent WAV rate must be >= 1, got {rate}")
    path = Path(path)
    soundfile.write(str(path), frames.astype(np.float32), rate, subtype="FLOAT", format="WAV")
    return path


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] < 1 or frames.shape[1] < 1:
        raise ValueError(f"latent frames must have shape (N frames, d dims), got {frames.shape}")
    return frames
