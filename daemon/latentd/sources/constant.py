"""Constant latent values."""

from __future__ import annotations

import numpy as np

from latentd.sources.base import Source, per_dim, summary
from latentd.sources.specs import LATENT_LIMIT, ConstantSpec


class ConstantSource(Source):
    """Every frame holds ``values``; ``set_param("value", v)`` sets every dimension to ``v``.

    The seed plays no part: every seed gives the same frames.
    """

    def __init__(self, spec: ConstantSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._values = per_dim(spec.values, "values", latent_size)
        self._add_param("value", -LATENT_LIMIT, LATENT_LIMIT, lambda: summary(self._values), self._set_value)

    def _set_value(self, value: float) -> None:
        self._values = np.full(self.latent_size, value)

    def _restart(self, seed: int) -> None:
        """Nothing to restart: constants have no state."""

    def _generate(self, n_frames: int) -> np.ndarray:
        return np.repeat(self._values[:, None], n_frames, axis=1)
