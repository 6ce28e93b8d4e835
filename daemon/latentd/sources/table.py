"""Random table loop: seeded uniform points read by a phasor with Pd ``tabread4~`` interpolation."""

from __future__ import annotations

import math

import numpy as np

from latentd.sources.base import Clocked
from latentd.sources.specs import TableSpec


def tabread4(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Pd ``tabread4~`` 4-point interpolation on looping tables.

    Args:
        table: (latent_size, n_points) values; indices wrap around (the table is a loop).
        index: (latent_size, n_frames) fractional read positions.

    Returns:
        (latent_size, n_frames) interpolated values; integral indices return the points exactly.
    """
    n_points = table.shape[1]
    whole = np.floor(index)
    frac = index - whole
    i = whole.astype(np.int64)
    rows = np.arange(table.shape[0])[:, None]
    a = table[rows, (i - 1) % n_points]
    b = table[rows, i % n_points]
    c = table[rows, (i + 1) % n_points]
    d = table[rows, (i + 2) % n_points]
    c_minus_b = c - b
    # Pd's formula (d_array.c), a cubic through the four points.
    return b + frac * (
        c_minus_b - (1.0 / 6.0) * (1.0 - frac) * ((d - a - 3.0 * c_minus_b) * frac + (d + 2.0 * a - 3.0 * b))
    )


class TableSource(Clocked):
    """Per dimension, a loop of seeded uniform points in [-width, width], read at ``loop_hz`` loops/s.

    With ``one_point_per_frame`` the table holds ``ceil(latent_rate_hz / loop_hz)`` points, so each latent
    frame reads about one point. A trigger restarts the loop at its first point.
    """

    def __init__(self, spec: TableSpec, *, latent_size: int, latent_rate_hz: float, seed: int) -> None:
        super().__init__(spec, latent_size=latent_size, latent_rate_hz=latent_rate_hz, seed=seed)
        self._loop_hz = spec.loop_hz
        self._width = spec.width
        if spec.one_point_per_frame:
            self._n_points = math.ceil(latent_rate_hz / spec.loop_hz)
        else:
            self._n_points = spec.points
        self._add_param("loop_hz", 0.001, 10.0, lambda: self._loop_hz, self._set_loop_hz)
        self._add_param("width", 0.0, 100.0, lambda: self._width, self._set_width)
        self._restart(seed)

    @property
    def n_points(self) -> int:
        """Points in each dimension's table."""
        return self._n_points

    @property
    def points(self) -> np.ndarray:
        """The table of each dimension, (latent_size, n_points), before width, scale and offset."""
        return self._table.copy()

    def trigger(self) -> None:
        """Restart the loop at its first point."""
        self._anchor_phase = 0.0
        self._anchor_t = self._t

    def _restart(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self._table = rng.uniform(-1.0, 1.0, (self.latent_size, self._n_points))
        self._t = 0
        self._anchor_t = 0
        self._anchor_phase = 0.0

    def _set_loop_hz(self, value: float) -> None:
        self._anchor_phase = (self._anchor_phase + self._increment() * (self._t - self._anchor_t)) % 1.0
        self._anchor_t = self._t
        self._loop_hz = value

    def _set_width(self, value: float) -> None:
        self._width = value

    def _increment(self) -> float:
        return self._loop_hz / self.latent_rate_hz

    def _generate(self, n_frames: int) -> np.ndarray:
        frames = np.arange(self._t - self._anchor_t, self._t - self._anchor_t + n_frames, dtype=np.float64)
        self._t += n_frames
        phase = np.mod(self._anchor_phase + self._increment() * frames, 1.0)
        index = np.broadcast_to(phase * self._n_points, (self.latent_size, n_frames))
        return self._width * tabread4(self._table, index)
