"""One-pole low-pass smoothing of latent frames, carried across blocks."""

from __future__ import annotations

import math

import numpy as np


class OnePole:
    """A one-pole low-pass per latent dimension: ``y[n] = y[n-1] + (1 - a) * (x[n] - y[n-1])``.

    ``a = exp(-1 / (smooth_s * latent_rate_hz))``, so ``smooth_s`` is the time constant in seconds. The
    first frame after a reset passes unchanged (no glide up from zero); state carries over between
    calls, so splitting frames into blocks gives the same output.
    """

    def __init__(self, latent_size: int, smooth_s: float, latent_rate_hz: float) -> None:
        self._latent_rate_hz = latent_rate_hz
        self._state: np.ndarray | None = None
        self._latent_size = latent_size
        self.smooth_s = smooth_s

    @property
    def smooth_s(self) -> float:
        """The time constant in seconds (0 = pass-through)."""
        return self._smooth_s

    @smooth_s.setter
    def smooth_s(self, value: float) -> None:
        self._smooth_s = float(value)
        self._coef = math.exp(-1.0 / (value * self._latent_rate_hz)) if value > 0 else 0.0

    def reset(self) -> None:
        """Forget the state: the next frame passes unchanged."""
        self._state = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Smooth frames ``x`` of shape (latent_size, n_frames) (float64); returns a new array."""
        n_frames = x.shape[1]
        if n_frames == 0:
            return x.copy()
        if self._coef == 0.0:
            self._state = x[:, -1].copy()
            return x.copy()
        y = np.empty_like(x)
        state = x[:, 0].copy() if self._state is None else self._state
        gain = 1.0 - self._coef
        # A loop over frames (vectorised over dims): latent blocks are short, and the recursion is exact.
        for n in range(n_frames):
            state = state + gain * (x[:, n] - state)
            y[:, n] = state
        self._state = state
        return y
