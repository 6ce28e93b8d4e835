"""Mixing primitives of the engine worker: gain ramps, DC blocking, trims and the limiter.

All of these run in the engine worker (not the JACK thread), block by block, and keep their state
between blocks so that block edges are inaudible.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def db_to_gain(db: float) -> float:
    """Linear gain of ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


class Ramp:
    """A value that glides linearly to its target over a fixed time instead of stepping.

    Works for scalars and for per-dimension vectors (``np.ndarray``): ``values(n)`` returns the next
    ``n`` values along the last axis.
    """

    def __init__(self, value: float | np.ndarray, ramp_steps: int) -> None:
        self.current = np.asarray(value, dtype=np.float64).copy()
        self.target = self.current.copy()
        self.ramp_steps = max(1, int(ramp_steps))
        self._left = 0
        self._start = self.current.copy()
        self._steady: np.ndarray | None = None  # values(n) of a value at rest, kept while it rests

    def set(self, target: float | np.ndarray, now: bool = False) -> None:
        """Glide to ``target`` (or jump at once with ``now=True``)."""
        self.target = np.broadcast_to(np.asarray(target, dtype=np.float64), self.current.shape).copy()
        self._steady = None
        if now:
            self.current = self.target.copy()
            self._left = 0
        else:
            self._start = self.current.copy()
            self._left = self.ramp_steps

    def set_at(self, index: int, value: float) -> None:
        """Glide one element of a vector ramp to ``value``; the other elements keep their targets."""
        target = self.target.copy()
        target[index] = value
        self.set(target)

    @property
    def moving(self) -> bool:
        """True while a glide is in progress."""
        return self._left > 0

    def values(self, n: int) -> np.ndarray:
        """The next ``n`` values, shape ``current.shape + (n,)``; advances the ramp.

        A steady value comes back as the same read-only array block after block: copy before writing.
        """
        if self._left <= 0:
            steady = self._steady
            if steady is None or steady.shape[-1] != n:
                steady = self._steady = np.repeat(self.current[..., None], n, axis=-1)
                steady.flags.writeable = False
            return steady
        self._steady = None
        done = self.ramp_steps - self._left
        steps = np.minimum(np.arange(done + 1, done + n + 1), self.ramp_steps) / self.ramp_steps
        out = self._start[..., None] + (self.target - self._start)[..., None] * steps
        self._left = max(0, self._left - n)
        self.current = out[..., -1].copy()
        if self._left == 0:
            self.current = self.target.copy()
        return out


class DcBlocker:
    """One-pole DC-blocking high-pass per channel: y[n] = x[n] - x[n-1] + r*y[n-1]."""

    def __init__(self, n_channels: int, cutoff_hz: float, samplerate: int) -> None:
        self.enabled = cutoff_hz > 0
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / samplerate) if self.enabled else 0.0
        self._x1 = np.zeros(n_channels, dtype=np.float64)
        self._y1 = np.zeros(n_channels, dtype=np.float64)
        self._powers = np.ones(0)  # r ** (0..n) for blocks of n frames, made on the first block
        self._x = self._d = self._y = np.zeros((0, 0))  # the block's working buffers, likewise

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter ``block`` ([channels, frames]) in place and return it."""
        if not self.enabled:
            return block
        # The recursion is done with a closed form per block so no Python loop runs per sample:
        # y = filter of d = x - x[-1], which is an IIR with pole r; use the impulse-response trick.
        # y[k] = sum_{j<=k} r^(k-j) d[j] + r^(k+1) y1  -> cumulative sum in scaled domain.
        # Every step writes into buffers made on the first block: this runs for every block.
        n = block.shape[1]
        if self._y.shape != block.shape:
            self._powers = self.r ** np.arange(n + 1)
            self._x = np.zeros((block.shape[0], n + 1), dtype=np.float64)  # x[-1], then the block
            self._d = np.zeros(block.shape, dtype=np.float64)
            self._y = np.zeros(block.shape, dtype=np.float64)
        x, d, y = self._x, self._d, self._y
        lead, tail = self._powers[:n], self._powers[1:]
        x[:, 0] = self._x1
        np.copyto(x[:, 1:], block)
        np.subtract(x[:, 1:], x[:, :-1], out=d)
        np.divide(d, lead, out=d)
        # torch's running sum adds in the same order as numpy's (so the same values), four times faster.
        torch.cumsum(torch.from_numpy(d), 1, out=torch.from_numpy(y))
        np.multiply(y, lead, out=y)
        np.multiply(self._y1[:, None], tail, out=d)
        np.add(y, d, out=y)
        self._x1 = x[:, -1].copy()
        self._y1 = y[:, -1].copy()
        np.copyto(block, y, casting="same_kind")
        return block


class Trims:
    """Per-speaker calibration: gain (dB) and delay (ms), applied to the master bus."""

    def __init__(self, gains_db: np.ndarray, delays_ms: np.ndarray, samplerate: int) -> None:
        self.gains = (10.0 ** (np.asarray(gains_db, dtype=np.float64) / 20.0)).astype(np.float32)
        self.delays = np.round(np.asarray(delays_ms, dtype=np.float64) * samplerate / 1000.0).astype(int)
        self.enabled = bool(np.any(self.gains != 1.0) or np.any(self.delays > 0))
        self._history = [np.zeros(d, dtype=np.float32) for d in self.delays]

    def process(self, block: np.ndarray) -> np.ndarray:
        """Apply trims to ``block`` ([channels, frames]) in place and return it."""
        if not self.enabled:
            return block
        for c, delay in enumerate(self.delays):
            if delay > 0:
                joined = np.concatenate([self._history[c], block[c]])
                self._history[c] = joined[-delay:].copy()
                block[c] = joined[: block.shape[1]]
        block *= self.gains[:, None]
        return block


class Limiter:
    """Look-ahead peak limiter whose ceiling is never exceeded.

    The output is delayed by one block. The gain at the end of each output block already accounts for
    the peak of the block that follows, and within a block the gain moves linearly between two values
    that are both safe for that block, so no sample passes the ceiling; a final clip only catches float
    rounding.
    """

    DELAY_BLOCKS = 1  # blocks from a block's mix to its output

    def __init__(
        self, n_channels: int, blocksize: int, ceiling_db: float, release_ms: float, samplerate: int
    ):
        self.ceiling = db_to_gain(ceiling_db)
        self._gain = 1.0
        self._held = np.zeros((n_channels, blocksize), dtype=np.float32)
        self._held_peak = 0.0
        self._held_peaks = np.zeros(n_channels, dtype=np.float32)  # per channel, of ``_held``
        self._peaks_of = self._held  # the block ``_held_peaks`` belongs to (a restored state may not)
        self.out_peaks = self._held_peaks  # per channel, of the block ``process`` returned last
        # Release: the gain may rise by at most this factor per block.
        self._release = math.exp(blocksize / max(1.0, release_ms * samplerate / 1000.0))
        self._ramp = np.arange(1, blocksize + 1, dtype=np.float32) / blocksize
        self.reduction_db = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Push ``block`` in; return the limited previous block (a new array); see ``out_peaks``."""
        peaks = np.abs(block).max(axis=1) if block.size else np.zeros(block.shape[0], dtype=np.float32)
        peak = float(peaks.max()) if block.size else 0.0
        need = max(self._held_peak, peak)
        safe = self.ceiling / need if need > self.ceiling else 1.0
        target = min(safe, self._gain * self._release, 1.0)
        if target == 1.0 and self._gain == 1.0 and self._held_peak <= self.ceiling:
            # At rest: every gain is 1 and no held sample passes the ceiling, so the product and the
            # clip below would both leave the held block as it is (the usual case, worth skipping).
            out: np.ndarray = self._held
            if self._peaks_of is not out:
                self._held_peaks = np.abs(out).max(axis=1) if out.size else self._held_peaks
            self.out_peaks = self._held_peaks
        else:
            gains = self._gain + (target - self._gain) * self._ramp
            out = self._held * gains[None, :]
            np.clip(out, -self.ceiling, self.ceiling, out=out)
            self.out_peaks = np.abs(out).max(axis=1) if out.size else self._held_peaks
        self._gain = target
        self.reduction_db = -20.0 * math.log10(max(target, 1e-9))
        self._held = self._peaks_of = block.astype(np.float32, copy=True)
        self._held_peak = peak
        self._held_peaks = peaks
        return out
