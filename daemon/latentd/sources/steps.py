"""Stepped sequences: 1-16 seeded steps per dimension, advanced by time or trigger, with decay."""

from __future__ import annotations

import math

import numpy as np

from latentd.sources.base import Clocked
from latentd.sources.specs import StepsSpec
from latentd.tempo import TempoMatch, nearest_k_at_rate

BPM_MAX = 2000.0  # above this a step is shorter than most latent frames


class StepsSource(Clocked):
    """Per dimension, ``n_steps`` values drawn from the seed, held one step each and looped.

    ``fill = "uniform"`` draws U(-1, 1); ``"gaussian"`` the mean of 4 such draws (a bell on [-1, 1]).
    Steps advance every ``step_s`` seconds, or only on ``trigger()`` when ``advance = "trigger"``
    (then a time-advanced sequence restarts at step 0 on a trigger). With ``decay_s > 0`` each step's value
    is multiplied by ``exp(-time_in_step / decay_s)``. Smoothing (``smooth_s``) rounds the edges. With
    ``bpm``, a step lasts the whole number of latent frames nearest one beat (``tempo`` tells which).
    """

    _anchor_pos: float

    def __init__(self, spec: StepsSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._n_steps = spec.n_steps
        self._gaussian = spec.fill == "gaussian"
        self._by_trigger = spec.advance == "trigger"
        # The tempo followed (``bpm`` in the spec): k latent frames per step, as near the asked BPM as can be.
        self.tempo: TempoMatch | None = None
        self._step_s = spec.step_s
        if spec.bpm is not None:
            self.tempo = nearest_k_at_rate(latent_rate_hz, spec.bpm)
            self._step_s = self.tempo.k / latent_rate_hz
        self._decay_s = spec.decay_s
        self._amplitude = spec.amplitude
        self._add_param("step_s", 0.01, 60.0, lambda: self._step_s, self._set_step_s)
        self._add_param("decay_s", 0.0, 60.0, lambda: self._decay_s, self._set_decay_s)
        self._add_param("amplitude", 0.0, 100.0, lambda: self._amplitude, self._set_amplitude)
        # Following a tempo (a section's BPM): reads back the BPM actually achieved, 0 when none is set.
        self._add_param("bpm", 0.0, BPM_MAX, lambda: self.tempo.bpm if self.tempo else 0.0, self._set_bpm)
        self._restart(seed)

    @property
    def sequence(self) -> np.ndarray:
        """The step values, (latent_size, n_steps), before amplitude and decay."""
        return self._values.copy()

    def trigger(self) -> None:
        """Next step (``advance = "trigger"``) or back to step 0 (``advance = "time"``)."""
        if self._by_trigger:
            self._anchor_pos = math.floor(self._anchor_pos) + 1.0
        else:
            self._anchor_pos = 0.0
        self._anchor_t = self._t

    def _restart(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        if self._gaussian:
            self._values = rng.uniform(-1.0, 1.0, (4, self.latent_size, self._n_steps)).mean(axis=0)
        else:
            self._values = rng.uniform(-1.0, 1.0, (self.latent_size, self._n_steps))
        self._t = 0
        self._anchor_t = 0
        self._anchor_pos = 0.0

    def _steps_per_frame(self) -> float:
        return 0.0 if self._by_trigger else 1.0 / (self._step_s * self.latent_rate_hz)

    def _set_step_s(self, value: float) -> None:
        # Keep the position reached so far (in steps); only the speed from here on changes.
        self._anchor_pos += self._steps_per_frame() * (self._t - self._anchor_t)
        self._anchor_t = self._t
        self._step_s = value

    def _set_bpm(self, value: float) -> None:
        if value <= 0.0:
            self.tempo = None  # back to step_s as it stands
            return
        self.tempo = nearest_k_at_rate(self.latent_rate_hz, value)
        self._set_step_s(self.tempo.k / self.latent_rate_hz)

    def _set_decay_s(self, value: float) -> None:
        self._decay_s = value

    def _set_amplitude(self, value: float) -> None:
        self._amplitude = value

    def _generate(self, n_frames: int) -> np.ndarray:
        since_anchor = np.arange(
            self._t - self._anchor_t, self._t - self._anchor_t + n_frames, dtype=np.float64
        )
        self._t += n_frames
        pos = self._anchor_pos + self._steps_per_frame() * since_anchor
        whole = np.floor(pos)
        out = self._values[:, whole.astype(np.int64) % self._n_steps] * self._amplitude
        if self._decay_s > 0:
            if self._by_trigger:
                time_in_step_s = since_anchor / self.latent_rate_hz
            else:
                time_in_step_s = (pos - whole) * self._step_s
            out = out * np.exp(-time_in_step_s / self._decay_s)[None, :]
        return out
