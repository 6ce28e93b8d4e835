"""`unravel generate`: seeded patterns over base arrays drawn from latent statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentd.unravel.generate import expected_rows, make_pattern
from latentd.unravel.stats import save_stats

from .helpers import run


def stats_for(d: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d)) * 0.3
    mean = rng.standard_normal(d)
    std = rng.uniform(0.5, 1.5, d)
    return {
        "mean": mean,
        "std": std,
        "centre": mean,
        "spread": std,
        "covariance": a @ a.T + np.eye(d) * 0.1,
        "correlation": np.eye(d),
        "lower_bound": mean - 2,
        "upper_bound": mean + 2,
        "n_frames": np.array(100),
    }


@pytest.fixture
def stats_file(tmp_path: Path) -> Path:
    return save_stats(tmp_path / "stats.npz", stats_for(3))


def generate(stats: Path, out: Path, *extra: str | int) -> int:
    return run(
        [
            "unravel",
            "generate",
            "--stats",
            stats,
            "--output",
            out,
            "--samplerate",
            44100,
            "--ratio",
            2048,
            *extra,
        ]
    )


@pytest.mark.parametrize(("k", "d", "loops"), [(10, 8, 1), (55, 16, 4)])
@pytest.mark.parametrize("pattern", ["default", "fibo", "orale", "blender", "swapper"])
def test_patterns_have_the_design_shapes(pattern: str, k: int, d: int, loops: int) -> None:
    design = {
        (10, 8, 1): {"default": 10, "fibo": 19, "orale": 640, "blender": 810, "swapper": 100},
        (55, 16, 4): {"default": 220, "fibo": 568, "orale": 14080, "blender": 193820, "swapper": 12100},
    }[(k, d, loops)][pattern]
    out = make_pattern(stats_for(d), "normal", pattern, k, loops, np.random.default_rng(1))
    assert out.shape == (design, d) == (expected_rows(pattern, k, d, loops), d)
    assert out.dtype == np.float32


@pytest.mark.parametrize("pattern", ["default", "orale", "blender", "swapper"])
def test_generated_files_have_shape_1_d_n_and_a_latent_wav(
    tmp_path: Path, stats_file: Path, pattern: str
) -> None:
    assert (
        generate(stats_file, tmp_path / "g", "--pattern", pattern, "--num-latents", 5, "--num-loops", 2) == 0
    )
    z = np.load(tmp_path / "g" / f"{pattern}-normal_0.npy")
    assert z.shape == (1, 3, expected_rows(pattern, 5, 3, 2)) and z.dtype == np.float32
    wav = tmp_path / "g" / f"{pattern}-normal_0.latent.wav"
    info = soundfile.info(wav)
    assert (info.samplerate, info.channels, info.subtype) == (44100 // 2048, 3, "FLOAT")
    np.testing.assert_array_equal(soundfile.read(wav, dtype="float32")[0], z[0].T)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "iqr-uniform", "correlated"])
def test_same_seed_same_files_other_seed_other_files(
    tmp_path: Path, stats_file: Path, distribution: str
) -> None:
    opts = ["--distribution", distribution, "--pattern", "swapper", "--num-latents", 6, "--num-files", 2]
    for out, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert generate(stats_file, tmp_path / out, *opts, "--seed", seed) == 0
    name = f"swapper-{distribution}"

    def load(out: str, i: int) -> np.ndarray:
        return np.load(tmp_path / out / f"{name}_{i}.npy")

    for i in (0, 1):
        np.testing.assert_array_equal(load("a", i), load("b", i))
        assert not np.allclose(load("a", i), load("c", i))
    assert not np.allclose(load("a", 0), load("a", 1))  # files of one run differ


def test_uniform_stays_within_three_spreads_and_iqr_uniform_within_bounds(tmp_path: Path) -> None:
    stats = stats_for(2)
    rng = np.random.default_rng(0)
    uni = make_pattern(stats, "uniform", "default", 2000, 1, rng)
    assert np.all(np.abs(uni - stats["centre"]) <= 3 * stats["spread"] + 1e-6)
    iqr = make_pattern(stats, "iqr-uniform", "default", 2000, 1, rng)
    assert np.all((iqr >= stats["lower_bound"] - 1e-6) & (iqr <= stats["upper_bound"] + 1e-6))


def test_prints_the_tempo_of_k_and_writes_a_plot(
    tmp_path: Path, stats_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(stats_file, tmp_path / "g", "--num-latents", 11, "--plot", "--name", "x") == 0
    out = capsys.readouterr().out
    assert "a base of 11 latent frames at 44100 Hz / ratio 2048 = 117.45 BPM" in out
    png = tmp_path / "g" / "x_0.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_bad_options_are_clear_errors(
    tmp_path: Path, stats_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(stats_file, tmp_path / "g", "--pattern", "fibo", "--num-latents", 10) == 2
    assert "--num-latents 10 is too small for the fibo pattern: it needs at least 55 frames" in (
        capsys.readouterr().err
    )
    no_iqr = stats_for(3)
    for key in ("lower_bound", "upper_bound"):
        del no_iqr[key]
    save_stats(tmp_path / "plain.npz", no_iqr)
    assert generate(tmp_path / "plain.npz", tmp_path / "g", "--distribution", "iqr-uniform") == 2
    err = capsys.readouterr().err
    assert "plain.npz: missing 'lower_bound', 'upper_bound' (IQR bounds: make the stats with --iqr)" in err
    bad = stats_for(3) | {"covariance": np.diag([1.0, -1.0, 1.0])}
    save_stats(tmp_path / "bad.npz", bad)
    assert generate(tmp_path / "bad.npz", tmp_path / "g", "--distribution", "correlated") == 2
    assert "covariance matrix is not positive semi-definite" in capsys.readouterr().err
    assert run(["unravel", "generate", "--stats", stats_file, "--output", tmp_path / "g"]) == 2
    assert "give --model M.ts, or both --samplerate and --ratio" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        generate(stats_file, tmp_path / "g", "--distribution", "cauchy")
    assert exited.value.code == 2
    assert "invalid choice: 'cauchy'" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() or not list((tmp_path / "g").iterdir())
