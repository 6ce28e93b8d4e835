"""Preset banks: per-dimension offsets, switched with a linear ramp."""

from __future__ import annotations

import numpy as np

from latentd.sources.base import Source, per_dim
from latentd.sources.specs import PresetsSpec


class PresetsSource(Source):
    """Holds one bank of per-dimension values; switching ramps every value over ``ramp_s`` seconds.

    ``set_param("bank", i)`` selects bank ``i`` (an integer); ``trigger()`` selects the next bank, cycling.
    The seed plays no part. ``reseed`` returns to the spec's starting bank without a ramp.
    """

    def __init__(self, spec: PresetsSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        if spec.bank >= len(spec.banks):
            raise ValueError(
                f"`bank`: {spec.bank} given, but there are only {len(spec.banks)} banks (0-based)"
            )
        self._banks = [per_dim(bank, f"banks[{i}]", latent_size) for i, bank in enumerate(spec.banks)]
        self._first_bank = spec.bank
        self._ramp_s = spec.ramp_s
        self._add_param("bank", 0, len(self._banks) - 1, lambda: float(self._bank), self._set_bank)
        self._add_param("ramp_s", 0.0, 60.0, lambda: self._ramp_s, self._set_ramp_s)
        self._restart(seed)

    def trigger(self) -> None:
        """Ramp to the next bank, cycling."""
        self._switch((self._bank + 1) % len(self._banks))

    def _restart(self, seed: int) -> None:
        self._bank = self._first_bank
        self._t = 0
        self._ramp_from = self._banks[self._bank]
        self._ramp_t = 0
        self._ramp_frames = 0.0

    def _set_bank(self, value: float) -> None:
        if value != int(value):
            raise ValueError(f"parameter 'bank' of presets source must be a whole number, got {value:g}")
        self._switch(int(value))

    def _set_ramp_s(self, value: float) -> None:
        self._ramp_s = value

    def _current(self) -> np.ndarray:
        """The value of the last frame given out (the start of a new ramp)."""
        return self._values_at(np.array([float(self._t - 1)]))[:, 0]

    def _switch(self, bank: int) -> None:
        self._ramp_from = self._current()
        self._bank = bank
        self._ramp_t = self._t
        self._ramp_frames = self._ramp_s * self.latent_rate_hz

    def _values_at(self, t: np.ndarray) -> np.ndarray:
        target = self._banks[self._bank]
        # Frame t shows the ramp at (t - start + 1) / ramp frames, so the new bank is reached exactly.
        if self._ramp_frames <= 0:
            progress = np.ones_like(t)
        else:
            progress = np.clip((t - self._ramp_t + 1.0) / self._ramp_frames, 0.0, 1.0)
        return self._ramp_from[:, None] + (target - self._ramp_from)[:, None] * progress[None, :]

    def _generate(self, n_frames: int) -> np.ndarray:
        t = np.arange(self._t, self._t + n_frames, dtype=np.float64)
        self._t += n_frames
        return self._values_at(t)
