"""The file source: latents played from .npy and latent WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from latentd.unravel.latentio import write_latent_wav

from .helpers import SPEC_ADAPTER, make

RATE_HZ = 20.0


@pytest.fixture
def ramp(tmp_path: Path) -> Path:
    """Two dims x 6 frames: dim 0 counts 0..5, dim 1 is 10 times dim 0."""
    z = np.stack([np.arange(6.0), 10 * np.arange(6.0)])[None].astype(np.float32)
    np.save(tmp_path / "ramp.npy", z)
    return tmp_path / "ramp.npy"


def play(path: Path, n: int, **spec: object) -> np.ndarray:
    source = make(
        {"kind": "file", "path": path.name, **spec},
        latent_size=2,
        base_dir=path.parent,
        latent_rate_hz=RATE_HZ,
    )
    return source.step(n)


def test_plays_the_file_frame_by_frame_and_loops(ramp: Path) -> None:
    frames = play(ramp, 14)
    np.testing.assert_array_equal(frames[0], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1])
    np.testing.assert_array_equal(frames[1], frames[0] * 10)


def test_without_loop_holds_the_last_frame(ramp: Path) -> None:
    np.testing.assert_array_equal(play(ramp, 9, loop=False)[0], [0, 1, 2, 3, 4, 5, 5, 5, 5])


def test_fractional_speed_interpolates_linearly(ramp: Path) -> None:
    np.testing.assert_allclose(play(ramp, 5, speed=0.25)[0], [0, 0.25, 0.5, 0.75, 1.0])
    # Looping, the last frame leads back into the first.
    np.testing.assert_allclose(play(ramp, 14, speed=0.5)[0, 10:], [5, 2.5, 0, 0.5])


def test_fast_speed_skips_frames(ramp: Path) -> None:
    np.testing.assert_array_equal(play(ramp, 5, speed=2)[0], [0, 2, 4, 0, 2])
    np.testing.assert_array_equal(play(ramp, 5, speed=2, loop=False)[0], [0, 2, 4, 5, 5])


def test_start_offset_in_frames_or_seconds(ramp: Path) -> None:
    np.testing.assert_array_equal(play(ramp, 4, start_frame=4)[0], [4, 5, 0, 1])
    # 0.1 s at 20 latent frames/s is frame 2.
    np.testing.assert_array_equal(play(ramp, 3, start_s=0.1)[0], [2, 3, 4])


def test_trigger_returns_to_the_start(ramp: Path) -> None:
    source = make({"kind": "file", "path": str(ramp), "start_frame": 1}, latent_size=2)
    source.step(3)
    source.trigger()
    np.testing.assert_array_equal(source.step(2)[0], [1, 2])


def test_speed_change_keeps_the_position(ramp: Path) -> None:
    source = make({"kind": "file", "path": str(ramp)}, latent_size=2)
    source.step(3)  # next position 3
    source.set_param("speed", 0.5)
    np.testing.assert_allclose(source.step(3)[0], [3, 3.5, 4])
    with pytest.raises(ValueError, match=r"'speed' of file source must be in 0.01..16, got 20"):
        source.set_param("speed", 20)


def test_split_steps_equal_one_step_with_fractional_speed(ramp: Path) -> None:
    whole = play(ramp, 50, speed=0.37, start_frame=2)
    source = make(
        {"kind": "file", "path": ramp.name, "speed": 0.37, "start_frame": 2},
        latent_size=2,
        base_dir=ramp.parent,
    )
    parts = np.concatenate([source.step(n) for n in (7, 0, 1, 30, 12)], axis=1)
    np.testing.assert_array_equal(parts, whole)


def test_reads_latent_wav_float32_and_float64_beyond_unit_range(tmp_path: Path) -> None:
    frames = np.array([[3.5, -2.0], [-7.25, 1.5], [0.0, 12.0]])
    write_latent_wav(tmp_path / "a.wav", frames, 21)
    soundfile.write(tmp_path / "b.wav", frames, 21, subtype="DOUBLE")
    for name in ("a.wav", "b.wav"):
        np.testing.assert_array_equal(play(tmp_path / name, 3).T, frames)


def test_dims_differing_from_the_model_name_file_dims_and_latent_size(ramp: Path) -> None:
    with pytest.raises(ValueError, match=r"ramp\.npy: 2 latent dims .*but the model's latent_size is 8"):
        make({"kind": "file", "path": str(ramp)}, latent_size=8)


def test_bad_files_and_options_are_refused(ramp: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"latent file not found: .*missing\.npy"):
        play(tmp_path / "missing.npy", 1)
    with pytest.raises(ValueError, match=r"start at frame 6 .*beyond its end: it holds 6 frames"):
        play(ramp, 1, start_frame=6)
    soundfile.write(tmp_path / "pcm.wav", np.zeros((4, 2)), 21, subtype="PCM_16")
    with pytest.raises(ValueError, match=r"pcm\.wav: a latent WAV must hold 32- or 64-bit float.*PCM_16"):
        play(tmp_path / "pcm.wav", 1)
    with pytest.raises(ValidationError, match="either `start_s` or `start_frame`"):
        SPEC_ADAPTER.validate_python({"kind": "file", "path": "x.npy", "start_s": 1, "start_frame": 2})
    with pytest.raises(ValidationError, match=r"less than or equal to 16"):
        SPEC_ADAPTER.validate_python({"kind": "file", "path": "x.npy", "speed": 17})


def test_start_s_counts_seconds_at_the_rate_a_latent_wav_records(tmp_path: Path) -> None:
    frames = np.stack([np.arange(20.0), -np.arange(20.0)], axis=1)
    write_latent_wav(tmp_path / "exact.wav", frames, 2.5)  # header rate 2, exact rate 2.5 Hz
    soundfile.write(tmp_path / "plain.wav", frames, 2, subtype="FLOAT")  # no recorded rate
    assert play(tmp_path / "exact.wav", 1, start_s=2.0)[0, 0] == 5.0  # 2 s at 2.5 Hz
    assert play(tmp_path / "plain.wav", 1, start_s=0.5)[0, 0] == 10.0  # 0.5 s at the model's 20 Hz
