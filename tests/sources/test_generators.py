"""UnRAVEl statistics and base-array generators."""

from __future__ import annotations

import numpy as np
import pytest

from latentd.sources import generators


def test_stats_over_concatenated_encodings() -> None:
    z1 = np.array([[[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]]])
    z2 = np.array([[4.0], [1.0]])
    stats = generators.latent_stats([z1, z2])
    np.testing.assert_allclose(stats.mean, [2.5, 1.0])
    np.testing.assert_allclose(stats.std, np.std([[1, 2, 3, 4], [0, 0, 3, 1]], axis=1))
    q1, q3 = 1.75, 3.25
    assert stats.midhinge[0] == pytest.approx((q1 + q3) / 2)
    assert stats.iqr_spread[0] == pytest.approx((q3 - q1) / 1.35)
    assert stats.lower_bound[0] == pytest.approx(q1 - 1.5 * (q3 - q1))
    assert stats.upper_bound[0] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert stats.covariance.shape == (2, 2) and stats.correlation[0, 0] == pytest.approx(1.0)


def test_generators_follow_their_statistics() -> None:
    rng = np.random.default_rng(0)
    mean, std = np.array([0.0, 5.0]), np.array([1.0, 0.1])
    normal = generators.gen_normal(mean, std, 20_000, rng)
    np.testing.assert_allclose(normal.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(normal.std(axis=0), std, rtol=0.05)
    uniform = generators.gen_uniform(mean, std, 1000, rng)
    assert np.all(uniform >= mean - 3 * std) and np.all(uniform <= mean + 3 * std)
    iqr = generators.gen_iqr_uniform(np.array([-1.0, 2.0]), np.array([1.0, 3.0]), 1000, rng)
    assert iqr.shape == (1000, 2) and np.all((iqr[:, 1] >= 2.0) & (iqr[:, 1] <= 3.0))
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    corr = generators.gen_correlated(mean, cov, 20_000, rng)
    assert np.corrcoef(corr.T)[0, 1] == pytest.approx(0.9, abs=0.02)


def test_correlated_refuses_a_matrix_that_is_not_psd() -> None:
    with pytest.raises(ValueError, match="not positive semi-definite"):
        generators.gen_correlated(
            np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), 4, np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="covariance must be 3x3"):
        generators.gen_correlated(np.zeros(3), np.eye(2), 4, np.random.default_rng(0))
