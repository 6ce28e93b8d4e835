"""A smooth, mean-reverting random walk (discrete Ornstein-Uhlenbeck), clipped to a hard bound."""

from __future__ import annotations

import math

import numpy as np

from latentd.sources.base import Source
from latentd.sources.specs import WalkSpec


class WalkSource(Source):
    """``x[n] = clip(a * x[n-1] + step_std * sqrt(dt) * e[n], -limit, limit)``, ``a = exp(-pull * dt)``.

    ``dt = 1 / latent_rate_hz``, so ``step_std`` and ``pull`` are per second whatever the model's rate.
    The walk starts from a draw of its stationary spread, so voices do not all begin at the centre.
    Gaussian increments come frame by frame from one seeded ``default_rng``.
    """

    def __init__(self, spec: WalkSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._step_std = spec.step_std
        self._pull = spec.pull
        self._limit = spec.limit
        self._add_param("step_std", 0.0, 10.0, lambda: self._step_std, self._set_step_std)
        self._add_param("pull", 0.0, 10.0, lambda: self._pull, self._set_pull)
        self._restart(seed)

    def _set_step_std(self, value: float) -> None:
        self._step_std = value

    def _set_pull(self, value: float) -> None:
        self._pull = value

    def _restart(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        dt = 1.0 / self.latent_rate_hz
        a = math.exp(-self._pull * dt)
        spread = self._step_std * math.sqrt(dt / (1.0 - a * a)) if self._pull > 0 else 0.0
        self._x = np.clip(self._rng.standard_normal(self.latent_size) * spread, -self._limit, self._limit)

    def _generate(self, n_frames: int) -> np.ndarray:
        dt = 1.0 / self.latent_rate_hz
        a = math.exp(-self._pull * dt)
        # Frame-major draws keep the stream independent of how frames are split into blocks.
        kicks = self._rng.standard_normal((n_frames, self.latent_size)) * (self._step_std * math.sqrt(dt))
        out = np.empty((self.latent_size, n_frames))
        x = self._x
        for n in range(n_frames):
            x = np.clip(a * x + kicks[n], -self._limit, self._limit)
            out[:, n] = x
        self._x = x
        return out
