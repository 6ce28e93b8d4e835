"""Latent files: .npy and latent WAV, written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentd.unravel.latentio import latent_wav_rate, read_latents, write_latent_wav, write_npy


def test_latent_wav_round_trip_keeps_values_beyond_unit_range(tmp_path: Path) -> None:
    frames = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32) * 5
    assert np.abs(frames).max() > 1
    path = write_latent_wav(tmp_path / "z.wav", frames, latent_wav_rate(44100, 2048))
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (21, 6, "FLOAT", 50)
    np.testing.assert_array_equal(read_latents(path), frames)


def test_reads_float64_latent_wav(tmp_path: Path) -> None:
    frames = np.array([[1.5, -3.25], [100.0, 0.125]])
    soundfile.write(tmp_path / "old.wav", frames, 21, subtype="DOUBLE")
    np.testing.assert_array_equal(read_latents(tmp_path / "old.wav"), frames.astype(np.float32))


def test_npy_is_written_as_1_d_n_float32_and_read_as_frames(tmp_path: Path) -> None:
    frames = np.arange(12, dtype=np.float64).reshape(4, 3)
    path = write_npy(tmp_path / "z.npy", frames)
    z = np.load(path)
    assert z.shape == (1, 3, 4) and z.dtype == np.float32
    np.testing.assert_array_equal(read_latents(path), frames)
    np.save(tmp_path / "two_d.npy", z[0])  # (d, N) is read too
    np.testing.assert_array_equal(read_latents(tmp_path / "two_d.npy"), frames)


def test_bad_latent_files(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"flat\.npy: expected latents of shape \(1, d, N\) or \(d, N\)"):
        read_latents(tmp_path / "flat.npy")
    np.save(tmp_path / "nan.npy", np.full((1, 2, 3), np.nan))
    with pytest.raises(ValueError, match=r"nan\.npy: holds NaN or Inf"):
        read_latents(tmp_path / "nan.npy")
    (tmp_path / "z.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"latent files are \.npy or \.wav, got '\.txt'"):
        read_latents(tmp_path / "z.txt")


def test_latent_wav_rate_is_sr_floor_divided_by_ratio() -> None:
    assert latent_wav_rate(44100, 2048) == 21
    assert latent_wav_rate(48000, 1024) == 46
    assert latent_wav_rate(8000, 16384) == 1
