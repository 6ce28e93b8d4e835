"""Sound-file facts shared by recordings and renders: what plain WAV holds, headers that survive kills."""

from __future__ import annotations

import soundfile as sf

WAV_LIMIT_BYTES = 4 * 2**30 - 2**20
"""Plain WAV cannot pass 4 GiB (32-bit sizes): renders switch to RF64 and recordings rotate before it."""

SFC_SET_UPDATE_HEADER_AUTO = 0x1061  # sndfile.h; reachable only through soundfile's private handle


def wav_fits(frames: int, n_channels: int, sample_bytes: int) -> bool:
    """Whether ``frames`` frames of ``n_channels`` samples of ``sample_bytes`` bytes fit in a plain WAV."""
    return frames * n_channels * sample_bytes <= WAV_LIMIT_BYTES


def wav_max_frames(n_channels: int, sample_bytes: int, multiple_of: int = 1) -> int:
    """The most frames a plain WAV holds, rounded down to a multiple of ``multiple_of`` (e.g. a block)."""
    return (WAV_LIMIT_BYTES // (sample_bytes * n_channels)) // multiple_of * multiple_of


def set_header_auto(f: sf.SoundFile) -> None:
    """Let libsndfile rewrite the header after every write, so a killed WAV/RF64 still has its length.

    Measured: RF64 without this reads as 0 frames after SIGKILL; with it, everything.
    """
    sf._snd.sf_command(f._file, SFC_SET_UPDATE_HEADER_AUTO, sf._ffi.NULL, 1)
