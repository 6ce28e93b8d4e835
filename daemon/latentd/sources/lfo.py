"""Slow per-dimension LFOs: cosine or saw, with intensity, direction and phase reset."""

from __future__ import annotations

import numpy as np

from latentd.sources.base import Clocked, per_dim, summary
from latentd.sources.specs import LfoSpec


class LfoSource(Clocked):
    """Per-dimension oscillators; the phase is a function of the frame count, so blocks do not matter.

    The phase of frame ``t`` is ``anchor + direction * freq_hz * (t - anchor_t) / latent_rate_hz``
    (cycles); changing ``freq_hz`` or triggering moves the anchor, so the phase never jumps on a
    frequency change and a trigger returns it to the start phase. Cosine gives ``cos(2 pi phase)``, saw
    ``2 * frac(phase) - 1``; both are multiplied by ``intensity``.
    """

    _start_phase: np.ndarray
    _anchor_phase: np.ndarray

    def __init__(self, spec: LfoSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._saw = spec.shape == "saw"
        self._freq_hz = per_dim(spec.freq_hz, "freq_hz", latent_size)
        self._direction = per_dim(spec.direction, "direction", latent_size)
        self._fixed_phase = None if spec.phase is None else per_dim(spec.phase, "phase", latent_size)
        self._intensity = spec.intensity
        self._add_param("freq_hz", 0.001, 0.1, lambda: summary(self._freq_hz), self._set_freq)
        self._add_param("intensity", 0.0, 100.0, lambda: self._intensity, self._set_intensity)
        self._restart(seed)

    @property
    def start_phase(self) -> np.ndarray:
        """Each dimension's start phase in cycles (0..1), the phase a trigger returns to."""
        return self._start_phase.copy()

    def trigger(self) -> None:
        """Phase reset: back to the start phase from the next frame on."""
        self._anchor_phase = self._start_phase.copy()
        self._anchor_t = self._t

    def _restart(self, seed: int) -> None:
        if self._fixed_phase is None:
            self._start_phase = np.random.default_rng(seed).uniform(0.0, 1.0, size=(self.latent_size,))
        else:
            self._start_phase = self._fixed_phase.copy()
        self._t = 0
        self._anchor_t = 0
        self._anchor_phase = self._start_phase.copy()

    def _increment(self) -> np.ndarray:
        return self._direction * self._freq_hz / self.latent_rate_hz

    def _set_freq(self, value: float) -> None:
        self._anchor_phase = np.mod(self._anchor_phase + self._increment() * (self._t - self._anchor_t), 1.0)
        self._anchor_t = self._t
        self._freq_hz = np.full(self.latent_size, value)

    def _set_intensity(self, value: float) -> None:
        self._intensity = value

    def _generate(self, n_frames: int) -> np.ndarray:
        frames = np.arange(self._t - self._anchor_t, self._t - self._anchor_t + n_frames, dtype=np.float64)
        phase = np.mod(self._anchor_phase[:, None] + self._increment()[:, None] * frames[None, :], 1.0)
        self._t += n_frames
        shape = 2.0 * phase - 1.0 if self._saw else np.cos(2.0 * np.pi * phase)
        return self._intensity * shape
