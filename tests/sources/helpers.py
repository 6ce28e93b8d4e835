"""Shared builders for the source tests."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from latentd.sources import Source, SourceSpec, build_source

SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceSpec)
LATENT_RATE_HZ = 44100 / 2048


def make(
    spec: dict[str, Any], *, latent_size: int = 4, seed: int = 7, ratio: int = 2048, **kw: Any
) -> Source:
    """Validate a spec dict and build its source."""
    return build_source(
        SPEC_ADAPTER.validate_python(spec),
        latent_size=latent_size,
        latent_rate_hz=kw.pop("latent_rate_hz", LATENT_RATE_HZ),
        ratio=ratio,
        seed=seed,
        **kw,
    )
