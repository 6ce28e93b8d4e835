"""Latent WAVs as other programs read them: sox, soundfile and Pure Data (where installed)."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentd.recording.recover import recover_file
from latentd.recording.session import LatentRecording
from latentd.unravel.latentio import latent_rate_of, read_latents, wav_header_rate, write_latent_wav

BEYOND = np.array([[0.5, -3.25, 7.0], [7.0, 1.0, -0.0625], [-100.5, 0.125, 2.5]], dtype=np.float32)

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
needs_pd = pytest.mark.skipif(
    shutil.which("pd") is None, reason="Pure Data is not installed (apt-get install puredata-core)"
)

# Reads FILE into tables a0..a2 with soundfiler, then writes each table as text and quits.
PD_PATCH = """#N canvas 0 0 450 300 12;
#X obj 10 10 loadbang;
#X msg 10 40 read -resize {wav} a0 a1 a2;
#X obj 10 70 soundfiler;
#X obj 10 100 print frames;
#X obj 200 10 table a0;
#X obj 200 40 table a1;
#X obj 200 70 table a2;
#X msg 10 160 \\; a0 write {out}0.txt \\; a1 write {out}1.txt \\; a2 write {out}2.txt \\; pd quit;
#X obj 10 130 t b;
#X connect 0 0 1 0;
#X connect 1 0 2 0;
#X connect 2 0 3 0;
#X connect 2 0 8 0;
#X connect 8 0 7 0;
"""


def sox(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sox", *map(str, args)], capture_output=True, text=True, timeout=30, check=True)


@needs_sox
def test_sox_reads_a_latent_wav_without_a_warning(tmp_path: Path) -> None:
    path = write_latent_wav(tmp_path / "z.wav", BEYOND, 48000 / 1024)
    info = sox("--i", path)
    assert info.stderr == ""
    assert "Channels       : 3" in info.stdout
    # sox converts to integers to take statistics, so values beyond ±1 clip there (a warning of its own).
    in_range = write_latent_wav(tmp_path / "r.wav", BEYOND / 128, 48000 / 1024)
    stat = sox(in_range, "-n", "stat")
    assert "WARN" not in stat.stderr
    assert "Samples read:                 9" in stat.stderr


def test_soundfile_reads_it_without_warnings_values_intact_and_the_exact_rate_recorded(
    tmp_path: Path,
) -> None:
    path = write_latent_wav(tmp_path / "z.wav", BEYOND, 48000 / 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = soundfile.info(path)
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert (info.format, info.subtype, info.channels, info.frames) == ("WAVEX", "FLOAT", 3, 3)
    assert rate == wav_header_rate(path) == 46
    np.testing.assert_array_equal(data, BEYOND)
    np.testing.assert_array_equal(read_latents(path), BEYOND)
    assert latent_rate_of(path) == 46.875
    write_latent_wav(tmp_path / "y.wav", BEYOND, 44100 / 512)
    assert latent_rate_of(tmp_path / "y.wav") == 86.1328125


def test_a_wav_written_elsewhere_has_no_recorded_rate(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "old.wav", BEYOND, 21, subtype="FLOAT")
    assert latent_rate_of(tmp_path / "old.wav") is None
    soundfile.write(tmp_path / "bad.wav", BEYOND, 21, subtype="FLOAT")
    with soundfile.SoundFile(tmp_path / "bad.wav", "r+") as f:
        f.comment = "latent_rate_hz=fast"
    with pytest.raises(ValueError, match=r"bad\.wav: comment latent_rate_hz='fast' is not a positive"):
        latent_rate_of(tmp_path / "bad.wav")


@needs_pd
def test_pure_data_reads_values_beyond_unit_range_intact(tmp_path: Path) -> None:
    wav = write_latent_wav(tmp_path / "z.wav", BEYOND, 48000 / 1024)
    out = tmp_path / "a"
    patch = tmp_path / "read.pd"
    patch.write_text(PD_PATCH.format(wav=wav, out=out))
    done = subprocess.run(
        ["pd", "-nogui", "-noaudio", "-nomidi", "-batch", "-open", str(patch)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "frames: 3" in done.stdout + done.stderr, done.stderr
    tables = [np.loadtxt(f"{out}{j}.txt", dtype=np.float32) for j in range(3)]
    np.testing.assert_array_equal(np.stack(tables, axis=1), BEYOND)


def test_a_recording_keeps_every_frame_written_before_a_kill_and_its_exact_rate(tmp_path: Path) -> None:
    rec = LatentRecording(tmp_path, "v", 3, 44100 / 512)
    z = BEYOND.T  # [latent_size, n_frames]
    rec.write(z)
    rec.write(z[:, :2])
    rec.flush()
    # Read while the writer is still open, as after a kill: the header already counts every frame.
    copy = tmp_path / "copy.wav"
    shutil.copyfile(rec.wav_path, copy)
    np.testing.assert_array_equal(read_latents(copy), np.concatenate([BEYOND, BEYOND[:2]]))
    assert latent_rate_of(copy) == 86.1328125
    rec.close()
    npy = np.load(rec.npy_path)
    assert npy.shape == (1, 3, 5)
    np.testing.assert_array_equal(npy[0].T, read_latents(rec.wav_path))


def test_recover_writes_a_torn_latent_wav_again_with_its_exact_rate(tmp_path: Path) -> None:
    path = tmp_path / "v_latents.wav"
    write_latent_wav(path, BEYOND, 44100 / 512)
    with open(path, "ab") as f:  # frames written, header not yet updated: a kill in between
        f.write(BEYOND[:1].tobytes())
    result = recover_file(path)
    assert not result.intact and result.latents
    np.testing.assert_array_equal(read_latents(path), BEYOND)
    assert latent_rate_of(path) == 86.1328125
    assert soundfile.info(path).format == "WAVEX"
