"""The command line as a user runs it: check, config, render, models inspect."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentd.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_config(tmp_path: Path, demo_models: dict[str, Path]) -> Path:
    """The demo venue and piece, copied into a temporary folder with freshly built models."""
    (tmp_path / "configs").mkdir()
    piece = tmp_path / "installation" / "demo"
    (piece / "models").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "demo.toml", tmp_path / "configs" / "demo.toml")
    shutil.copy(ROOT / "installation" / "demo" / "piece.toml", piece / "piece.toml")
    for name, path in demo_models.items():
        shutil.copy(path, piece / "models" / f"{name}.ts")
    return tmp_path / "configs" / "demo.toml"


def test_demo_checks_clean(demo_config, capsys):
    assert main(["check", "--config", str(demo_config)]) == 0
    out = capsys.readouterr().out
    assert "4 voice(s)" in out and "octo (8 ch)" in out


def test_render_demo_writes_eight_non_silent_channels(demo_config, tmp_path, capsys):
    out_file = tmp_path / "demo.wav"
    assert main(["render", "--config", str(demo_config), "--seconds", "40", "--output", str(out_file)]) == 0
    data, samplerate = sf.read(out_file, dtype="float32")
    assert samplerate == 48000
    assert data.shape == (40 * 48000, 8)
    rms = np.sqrt(np.mean(data**2, axis=0))
    assert np.all(rms > 10 ** (-50 / 20)), f"every speaker should sound over 40 s: RMS {rms}"
    assert np.abs(data).max() <= 10 ** (-1 / 20) + 1e-6  # the demo venue's ceiling is -1 dBFS
    summary = capsys.readouterr().out
    assert "× real time" in summary and "peak dBFS" in summary


def test_render_same_seed_is_identical_and_seed_option_changes_it(demo_config, tmp_path):
    files = [tmp_path / f"{name}.wav" for name in ("a", "b", "c")]
    for f, seed in zip(files, ["7", "7", "8"], strict=True):
        assert main(["render", "-c", str(demo_config), "--seconds", "2", "-o", str(f), "--seed", seed]) == 0
    a, b, c = (sf.read(f, dtype="float32")[0] for f in files)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_check_reports_every_problem_with_file_and_key(demo_config, capsys):
    piece = demo_config.parent.parent / "installation" / "demo" / "piece.toml"
    text = piece.read_text()
    text = text.replace("crossfade_s = 3.0", "crosfade_s = 3.0")
    text = text.replace('model = "bells"\ngain = 0.3\n', 'model = "bells"\ngain = "loud"\n')
    text = text.replace('voices = ["ground", "tide"]', 'voices = ["ground", "tidal"]')
    piece.write_text(text)
    venue = demo_config.read_text().replace("blocksize = 256", "blocksize = 300")
    demo_config.write_text(venue)
    assert main(["check", "--config", str(demo_config)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'crossfade_s'" in err
    assert "voices.glints.gain" in err
    assert "tidal" in err
    assert "audio.blocksize" in err and "300" in err
    assert "piece.toml" in err and "demo.toml" in err


def test_check_reports_a_bad_model_file(demo_config, capsys):
    model = demo_config.parent.parent / "installation" / "demo" / "models" / "bells.ts"
    model.write_text("this is not a TorchScript archive")
    assert main(["check", "--config", str(demo_config)]) == 2
    err = capsys.readouterr().err
    assert "models.bells.path" in err and "bells.ts" in err and "TorchScript" in err


def test_check_reports_a_missing_model_file(demo_config, capsys):
    (demo_config.parent.parent / "installation" / "demo" / "models" / "drone.ts").unlink()
    assert main(["check", "--config", str(demo_config)]) == 2
    err = capsys.readouterr().err
    assert "models.drone.path" in err and "drone.ts" in err


def test_config_prints_the_effective_configuration(demo_config, capsys):
    assert main(["config", "--config", str(demo_config)]) == 0
    out = capsys.readouterr().out
    assert "samplerate = 48000" in out and "limiter_release_ms" in out and "tidal" in out


def test_models_inspect_prints_the_tempo_table(demo_models, capsys):
    assert main(["models", "inspect", str(demo_models["drone"])]) == 0
    out = capsys.readouterr().out
    assert "46.88 Hz" in out and "k=11   255.68" in out  # latent rate 48000/1024, BPM 60·46.875/11


def test_render_with_a_real_rave_export(tmp_path, shared_models_dir):
    from tests.pieces import write_piece

    config = write_piece(
        tmp_path,
        models={"rave": shared_models_dir / "rave-v2small-c16_streaming.ts"},
        voices={"v": {"model": "rave", "source": {"kind": "noise", "smooth_s": 0.1}, "route": [0]}},
    )
    out_files = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for f in out_files:
        assert main(["render", "-c", str(config), "--seconds", "2", "-o", str(f)]) == 0
    a, sr = sf.read(out_files[0], dtype="float32")
    b, _ = sf.read(out_files[1], dtype="float32")
    assert sr == 48000 and a.shape == (96000, 4)
    assert np.isfinite(a).all() and np.sqrt(np.mean(a[:, 0] ** 2)) > 1e-4
    assert np.all(a[:, 1:] == 0.0)
    # The variational decoder fills 127 dims with torch.randn: seeded by the engine, so repeatable.
    np.testing.assert_array_equal(a, b)
