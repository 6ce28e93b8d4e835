"""Latent sources: seeded generators of latent frames (pure numpy, no I/O while stepping).

``build_source(spec, ...)`` turns a validated spec into a ``Source``; every source answers ``step``,
``reseed``, ``trigger``, ``set_param`` and ``params``.
"""

from __future__ import annotations

from pathlib import Path

from latentd.sources.base import Source
from latentd.sources.constant import ConstantSource
from latentd.sources.latentfile import FileSource
from latentd.sources.lfo import LfoSource
from latentd.sources.noise import NoiseSource
from latentd.sources.pattern import PatternSource
from latentd.sources.presets import PresetsSource
from latentd.sources.specs import (
    ConstantSpec,
    FileSpec,
    LfoSpec,
    NoiseSpec,
    PatternSpec,
    PoolSpec,
    PresetsSpec,
    PriorSpec,
    SourceSpec,
    StepsSpec,
    TableSpec,
    WalkSpec,
)
from latentd.sources.steps import StepsSource
from latentd.sources.table import TableSource
from latentd.sources.walk import WalkSource

__all__ = [
    "ConstantSpec",
    "FileSpec",
    "LfoSpec",
    "NoiseSpec",
    "PatternSpec",
    "PoolSpec",
    "PresetsSpec",
    "PriorSpec",
    "Source",
    "SourceSpec",
    "StepsSpec",
    "TableSpec",
    "WalkSpec",
    "build_source",
]


def build_source(
    spec: SourceSpec,
    *,
    latent_size: int,
    latent_rate_hz: float,
    ratio: int,
    seed: int,
    base_dir: Path | None = None,
) -> Source:
    """Build the source a spec describes, for a model of ``latent_size`` dims at ``latent_rate_hz``.

    Args:
        spec: a validated source spec.
        latent_size: latent dimensions of the model the source feeds.
        latent_rate_hz: the model's latent frames per second (``sr / ratio``).
        ratio: audio samples per latent frame (the noise source samples its audio-rate stream by it).
        seed: the voice seed.
        base_dir: folder that relative file paths in the spec are read from.

    Raises:
        ValueError: a per-dimension list or a latent file does not match ``latent_size``, or the model
            numbers are invalid.
    """
    if latent_size < 1:
        raise ValueError(f"latent_size must be >= 1, got {latent_size}")
    if not latent_rate_hz > 0:
        raise ValueError(f"latent_rate_hz must be > 0, got {latent_rate_hz}")
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    size, rate = latent_size, latent_rate_hz
    match spec:
        case NoiseSpec():
            return NoiseSource(spec, ratio=ratio, latent_size=size, latent_rate_hz=rate, seed=seed)
        case LfoSpec():
            return LfoSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case WalkSpec():
            return WalkSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case ConstantSpec():
            return ConstantSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case TableSpec():
            return TableSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case StepsSpec():
            return StepsSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case PresetsSpec():
            return PresetsSource(spec, latent_size=size, latent_rate_hz=rate, seed=seed)
        case PatternSpec():
            return PatternSource(spec, base_dir=base_dir, latent_size=size, latent_rate_hz=rate, seed=seed)
        case FileSpec():
            return FileSource(spec, base_dir=base_dir, latent_size=size, latent_rate_hz=rate, seed=seed)
        case PriorSpec():
            # Imported here: the prior is the one source that runs a model, and loading torch is slow.
            from latentd.sources.prior import PriorSource

            return PriorSource(
                spec, base_dir=base_dir, ratio=ratio, latent_size=size, latent_rate_hz=rate, seed=seed
            )
        case PoolSpec():
            from latentd.sources.pool import PoolSource

            return PoolSource(spec, base_dir=base_dir, latent_size=size, latent_rate_hz=rate, seed=seed)
    raise TypeError(f"not a source spec: {spec!r}")
