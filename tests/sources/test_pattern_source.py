"""The pattern source: loops over generated or loaded bases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from latentd.sources import patterns

from .helpers import SPEC_ADAPTER, make


def test_plays_the_pattern_as_a_loop(tmp_path: Path) -> None:
    z = np.arange(2 * 6, dtype=np.float32).reshape(1, 2, 6)
    np.save(tmp_path / "z.npy", z)
    source = make(
        {"kind": "pattern", "pattern": "fibo", "base": "file", "file": "z.npy"},
        latent_size=2,
        base_dir=tmp_path,
    )
    expected = patterns.fibo(z[0].T, 1).T  # 1+2+3+5 = 11 frames
    frames = source.step(25)
    np.testing.assert_array_equal(frames[:, :11], expected)
    np.testing.assert_array_equal(frames[:, 11:22], expected)
    source.trigger()
    np.testing.assert_array_equal(source.step(3), expected[:, :3])


def test_reads_latent_wav_files(tmp_path: Path) -> None:
    a1 = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32) * 3  # values beyond +-1 kept
    a2 = a1 + 10
    soundfile.write(tmp_path / "a.wav", a1, 21, subtype="FLOAT")
    soundfile.write(tmp_path / "b.wav", a2.astype(np.float64), 21, subtype="DOUBLE")
    spec = {"kind": "pattern", "pattern": "blender", "base": "file", "file": "a.wav", "file2": "b.wav"}
    frames = make(spec, latent_size=3, base_dir=tmp_path).step(4 * (4 * 3 + 1))
    np.testing.assert_allclose(frames[:, :4], a1.T)
    np.testing.assert_allclose(frames[:, -4:], a2.T)


def test_generated_base_follows_mean_and_std() -> None:
    source = make({"kind": "pattern", "frames": 4096, "mean": [0, 3], "std": [1, 0.01]}, latent_size=2)
    frames = source.step(4096)
    np.testing.assert_allclose(frames.mean(axis=1), [0, 3], atol=0.1)
    assert frames[1].std() < 0.02


def test_file_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.zeros((1, 3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"3 latent dims, but latent_size is 4"):
        make({"kind": "pattern", "base": "file", "file": "z.npy"}, latent_size=4, base_dir=tmp_path)
    with pytest.raises(ValueError, match="latent file not found"):
        make({"kind": "pattern", "base": "file", "file": "missing.npy"}, base_dir=tmp_path)
    with pytest.raises(ValidationError, match='pattern "swapper" with base = "file" needs `file2`'):
        SPEC_ADAPTER.validate_python(
            {"kind": "pattern", "pattern": "swapper", "base": "file", "file": "z.npy"}
        )
    with pytest.raises(ValueError, match=r"`covariance`: shape \(2, 2\) given, but latent_size is 4"):
        make({"kind": "pattern", "base": "correlated", "covariance": [[1, 0], [0, 1]]}, latent_size=4)
