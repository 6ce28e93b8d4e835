"""`unravel stats`: statistics of latent files, the stats file and its plot."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from latentd.unravel.stats import load_stats

from .helpers import run


@pytest.fixture
def encodings(tmp_path: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    mix = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.2, 2.0]])
    zs = [(mix @ rng.standard_normal((3, n)) + [[1], [-2], [0.5]])[None].astype(np.float32) for n in (40, 71)]
    folder = tmp_path / "enc"
    folder.mkdir()
    for i, z in enumerate(zs):
        np.save(folder / f"e{i}.npy", z)
    return zs


def test_stats_equal_numpys_on_the_concatenated_frames(tmp_path: Path, encodings: list[np.ndarray]) -> None:
    assert run(["unravel", "stats", tmp_path / "enc", "--iqr", "--output", tmp_path / "s.npz"]) == 0
    z = np.concatenate([e[0] for e in encodings], axis=1).astype(np.float64)  # (d, T)
    stats = load_stats(tmp_path / "s.npz")
    np.testing.assert_allclose(stats["mean"], z.mean(axis=1))
    np.testing.assert_allclose(stats["std"], z.std(axis=1, ddof=0))
    np.testing.assert_allclose(stats["covariance"], np.cov(z, ddof=0))
    np.testing.assert_allclose(stats["correlation"], np.corrcoef(z))
    q1, q3 = np.percentile(z, [25, 75], axis=1)
    np.testing.assert_allclose(stats["lower_bound"], q1 - 1.5 * (q3 - q1))
    np.testing.assert_allclose(stats["upper_bound"], q3 + 1.5 * (q3 - q1))
    np.testing.assert_allclose(stats["centre"], (q1 + q3) / 2)
    np.testing.assert_allclose(stats["spread"], (q3 - q1) / 1.35)
    assert stats["n_frames"] == 111


def test_without_iqr_generators_draw_around_mean_and_std(tmp_path: Path, encodings: list[np.ndarray]) -> None:
    files = [tmp_path / "enc" / "e0.npy", tmp_path / "enc" / "e1.npy"]
    assert run(["unravel", "stats", *files, "--output", tmp_path / "s.npz"]) == 0
    stats = load_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(stats["centre"], stats["mean"])
    np.testing.assert_array_equal(stats["spread"], stats["std"])
    assert "lower_bound" not in stats


def test_plot_is_a_png_with_one_violin_per_dim(tmp_path: Path, encodings: list[np.ndarray]) -> None:
    out = tmp_path / "s.png"
    assert (
        run(["unravel", "stats", tmp_path / "enc", "--iqr", "--output", tmp_path / "s.npz", "--plot", out])
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000  # axes, labels and three violins, not an empty canvas


def test_no_latent_files_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert run(["unravel", "stats", tmp_path / "empty", "--output", tmp_path / "s.npz"]) == 2
    err = capsys.readouterr().err
    assert (
        f"no latent (.npy or latent WAV) files found in {tmp_path / 'empty'} (looked for .npy, .wav)" in err
    )
    assert "Traceback" not in err


def test_files_of_different_dims_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "a.npy", np.zeros((1, 2, 5), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros((1, 3, 5), dtype=np.float32))
    assert run(["unravel", "stats", tmp_path, "--output", tmp_path / "s.npz"]) == 2
    assert "different numbers of dims (a.npy: 2, b.npy: 3)" in capsys.readouterr().err


def test_without_matplotlib_a_plot_is_a_clear_error_before_any_work(
    tmp_path: Path,
    encodings: list[np.ndarray],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails as if absent
    argv = [
        "unravel",
        "stats",
        tmp_path / "enc",
        "--output",
        tmp_path / "s.npz",
        "--plot",
        tmp_path / "s.png",
    ]
    assert run(argv) == 2
    assert (
        "plots need matplotlib, which is not installed: pip install 'latentd[plots]'"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "s.npz").exists()
