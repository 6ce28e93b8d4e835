"""UnRAVEl statistics and the seeded base-array generators that draw from them.

Statistics are taken over one or more encodings ``z`` of shape (1, d, T) (or (d, T)) concatenated in
time. Generators return float32 arrays of shape (k frames, d dims) from one ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatentStats:
    """Per-dimension statistics of encoded latents.

    Attributes:
        mean: per-dimension mean (d,).
        std: per-dimension population standard deviation (d,).
        correlation: (d, d) correlation matrix.
        covariance: (d, d) population covariance matrix.
        midhinge: (Q1 + Q3) / 2 per dimension.
        iqr_spread: IQR / 1.35 per dimension (a std estimate robust to outliers).
        lower_bound: Q1 - 1.5 IQR per dimension.
        upper_bound: Q3 + 1.5 IQR per dimension.
    """

    mean: np.ndarray
    std: np.ndarray
    correlation: np.ndarray
    covariance: np.ndarray
    midhinge: np.ndarray
    iqr_spread: np.ndarray
    lower_bound: np.ndarray
    upper_bound: np.ndarray


def latent_stats(encodings: Sequence[np.ndarray]) -> LatentStats:
    """Statistics over encodings concatenated in time (each (1, d, T) or (d, T))."""
    if not encodings:
        raise ValueError("latent_stats needs at least one encoding")
    frames = []
    for i, z in enumerate(encodings):
        z2 = np.asarray(z, dtype=np.float64)
        if z2.ndim == 3 and z2.shape[0] == 1:
            z2 = z2[0]
        if z2.ndim != 2:
            raise ValueError(f"encoding {i}: expected shape (1, d, T) or (d, T), got {np.shape(z)}")
        frames.append(z2)
    dims = {f.shape[0] for f in frames}
    if len(dims) != 1:
        raise ValueError(f"encodings have different latent sizes: {sorted(dims)}")
    z_all = np.concatenate(frames, axis=1)  # (d, T)
    q1, q3 = np.percentile(z_all, [25, 75], axis=1)
    iqr = q3 - q1
    return LatentStats(
        mean=z_all.mean(axis=1),
        std=z_all.std(axis=1),
        correlation=np.atleast_2d(np.corrcoef(z_all)),
        covariance=np.atleast_2d(np.cov(z_all, bias=True)),
        midhinge=(q1 + q3) / 2.0,
        iqr_spread=iqr / 1.35,
        lower_bound=q1 - 1.5 * iqr,
        upper_bound=q3 + 1.5 * iqr,
    )


def gen_normal(mean: np.ndarray, std: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k frames from normal(mean, std) per dimension."""
    return rng.normal(mean, std, size=(k, len(mean))).astype(np.float32)


def gen_uniform(mean: np.ndarray, std: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k frames uniform in mean ± 3·std per dimension."""
    return rng.uniform(mean - 3 * std, mean + 3 * std, size=(k, len(mean))).astype(np.float32)


def gen_iqr_uniform(lower: np.ndarray, upper: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k frames uniform between the IQR bounds per dimension."""
    return rng.uniform(lower, upper, size=(k, len(lower))).astype(np.float32)


def gen_correlated(mean: np.ndarray, covariance: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k frames from a multivariate normal with ``covariance``.

    Raises:
        ValueError: the covariance is not square of size d, not symmetric, or not positive semi-definite.
    """
    d = len(mean)
    if covariance.shape != (d, d):
        raise ValueError(f"covariance must be {d}x{d} for {d} dims, got shape {covariance.shape}")
    if not np.allclose(covariance, covariance.T):
        raise ValueError("covariance matrix is not symmetric")
    smallest = float(np.linalg.eigvalsh(covariance).min())
    if smallest < -1e-12:
        raise ValueError(
            f"covariance matrix is not positive semi-definite (smallest eigenvalue {smallest:.3g})"
        )
    return rng.multivariate_normal(mean, covariance, size=k).astype(np.float32)
