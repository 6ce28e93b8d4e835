"""The toolkit end to end: audio -> encode -> stats -> generate -> decode -> audio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentd.modelkit.builder import SynthSpec
from latentd.unravel.latentio import write_latent_wav, write_npy
from tests.conftest import SHARED_MODELS_DIR

from .helpers import run, write_sweep

SYNTH = SynthSpec(latent_size=4, ratio=256, sr=16000, seed=3)
RAVE = (SHARED_MODELS_DIR / "rave-v2small-c16.ts").resolve()


def pipeline(tmp_path: Path, model: Path, *, seconds: float, samplerate: int, k: int, loops: int) -> Path:
    """Encode two sweeps, take IQR stats, generate one file, decode it; returns the decoded WAV."""
    audio = tmp_path / "audio"
    audio.mkdir()
    write_sweep(audio / "sweep.wav", seconds, samplerate, channels=2)
    write_sweep(audio / "other.flac", seconds / 2, 22050, seed=1)
    assert run(["unravel", "encode", "--model", model, audio, "--output", tmp_path / "enc"]) == 0
    assert run(["unravel", "stats", tmp_path / "enc", "--iqr", "--output", tmp_path / "stats.npz"]) == 0
    gen = ["--stats", tmp_path / "stats.npz", "--num-latents", k, "--num-loops", loops, "--name", "g"]
    assert (
        run(["unravel", "generate", *gen, "--seed", 4, "--output", tmp_path / "gen", "--model", model]) == 0
    )
    assert run(["unravel", "decode", "--model", model, tmp_path / "gen", "--output", tmp_path / "dec"]) == 0
    return tmp_path / "dec" / "g_0.wav"


def test_with_a_synth_model(tmp_path: Path, model_factory: Callable[[SynthSpec], Path]) -> None:
    model = model_factory(SYNTH)
    decoded = pipeline(tmp_path, model, seconds=1.0, samplerate=48000, k=6, loops=3)
    # 1 s at 48 kHz is 16000 samples at the model's 16 kHz: 62.5 -> 63 frames of 256.
    assert np.load(tmp_path / "enc" / "sweep.npy").shape == (1, 4, 63)
    assert np.load(tmp_path / "enc" / "other.npy").shape == (1, 4, 32)
    audio, sr = soundfile.read(decoded, dtype="float32", always_2d=True)
    assert sr == 16000 and audio.shape == (6 * 3 * 256, 1)
    assert soundfile.info(decoded).subtype == "FLOAT"
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() > 1e-3


def test_decoding_a_latent_wav_matches_its_npy(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path]
) -> None:
    model = model_factory(SYNTH)
    frames = np.random.default_rng(2).standard_normal((20, 4)).astype(np.float32)
    write_npy(tmp_path / "a.npy", frames)
    write_latent_wav(tmp_path / "b.latent.wav", frames, 16000 / 256)
    files = [tmp_path / "a.npy", tmp_path / "b.latent.wav"]
    assert run(["unravel", "decode", "--model", model, *files, "--output", tmp_path / "dec"]) == 0
    a = soundfile.read(tmp_path / "dec" / "a.wav")[0]
    np.testing.assert_array_equal(a, soundfile.read(tmp_path / "dec" / "b.wav")[0])


def test_dims_not_matching_the_model_are_refused(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_factory(SYNTH)
    np.save(tmp_path / "z.npy", np.zeros((1, 3, 10), dtype=np.float32))
    assert run(["unravel", "decode", "--model", model, tmp_path / "z.npy", "--output", tmp_path / "dec"]) == 2
    err = capsys.readouterr().err
    assert "z.npy: 3 latent dims, but" in err and "decodes 4 (latent_size 4)" in err
    assert not (tmp_path / "dec").exists()


def test_audio_wav_is_not_taken_for_latents(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_factory(SynthSpec(latent_size=1, ratio=256, sr=16000))
    write_sweep(tmp_path / "song.wav", 0.1, 16000)
    soundfile.write(tmp_path / "song.wav", soundfile.read(tmp_path / "song.wav")[0], 16000, subtype="FLOAT")
    assert (
        run(["unravel", "decode", "--model", model, tmp_path / "song.wav", "--output", tmp_path / "d"]) == 2
    )
    assert "header rate 16000 Hz, but a latent WAV for" in capsys.readouterr().err


def test_the_exact_rate_a_latent_wav_records_is_checked_not_its_rounded_header_rate(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = model_factory(SYNTH)  # 16000 / 256 = 62.5 Hz, header rate 62
    write_latent_wav(tmp_path / "z.wav", np.zeros((10, 4), dtype=np.float32), 62.0)
    assert run(["unravel", "decode", "--model", model, tmp_path / "z.wav", "--output", tmp_path / "d"]) == 2
    assert "z.wav: latents at 62 Hz (recorded in the file), but" in capsys.readouterr().err


def test_no_audio_files_says_where_it_looked(
    tmp_path: Path, model_factory: Callable[[SynthSpec], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    model = model_factory(SYNTH)
    assert run(["unravel", "encode", "--model", model, tmp_path, "--output", tmp_path / "enc"]) == 2
    err = capsys.readouterr().err
    assert f"no audio files found in {tmp_path} (looked for .wav, .flac, .aiff, .aif, .ogg)" in err
    assert run(["unravel", "encode", "--model", model, tmp_path / "gone", "--output", tmp_path / "enc"]) == 2
    assert "gone: no such file or folder" in capsys.readouterr().err


@pytest.fixture
def rave() -> Path:
    if not RAVE.is_file():
        pytest.skip(f"real RAVE export not found at {RAVE} (the shared models live beside the project)")
    return RAVE


def test_with_the_shared_rave_export(tmp_path: Path, rave: Path) -> None:
    decoded = pipeline(tmp_path, rave, seconds=2.0, samplerate=44100, k=8, loops=2)
    # 2 s at 44.1 kHz: 88200 samples -> ceil(88200 / 512) = 173 frames of latent_size 1.
    assert np.load(tmp_path / "enc" / "sweep.npy").shape == (1, 1, 173)
    audio, sr = soundfile.read(decoded, dtype="float32", always_2d=True)
    assert sr == 44100 and audio.shape == (8 * 2 * 512, 1)
    assert np.all(np.isfinite(audio))
    # The variational decoder draws the other 127 dims from torch's generator: seeded, it repeats.
    again = tmp_path / "again"
    assert run(["unravel", "decode", "--model", rave, tmp_path / "gen", "--output", again]) == 0
    np.testing.assert_array_equal(
        soundfile.read(again / "g_0.wav", dtype="float32", always_2d=True)[0], audio
    )
