"""Tempo of latent loops: a loop of k latent frames lasts k / (sr / ratio) seconds.

``BPM = 60 * (sr / ratio) / k``: at 44100 Hz and ratio 2048 (21.53 latent frames/s), k = 11 gives
117.45 BPM. Counting two beats per loop ("double time") doubles it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Default number of rows of the tempo table (``latentd tempo``).
TABLE_K_MAX = 32
#: Rows of the short table shown with a model's contract (``latentd models inspect``).
INFO_K_MAX = 16


def _rate(sr: float, ratio: int) -> float:
    if not sr > 0 or ratio < 1:
        raise ValueError(f"samplerate must be > 0 and ratio >= 1, got samplerate={sr}, ratio={ratio}")
    return sr / ratio


def bpm(sr: float, ratio: int, k: int) -> float:
    """Beats per minute of a loop of ``k`` latent frames: ``60 * (sr / ratio) / k``."""
    if k < 1:
        raise ValueError(f"k (latent frames per beat) must be >= 1, got {k}")
    return 60.0 * _rate(sr, ratio) / k


def tempo_table(sr: float, ratio: int, k_max: int = TABLE_K_MAX) -> list[tuple[int, float, float]]:
    """Rows ``(k, bpm, double-time bpm)`` for k = 1..k_max."""
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    return [(k, bpm(sr, ratio, k), 2.0 * bpm(sr, ratio, k)) for k in range(1, k_max + 1)]


@dataclass(frozen=True)
class TempoMatch:
    """The achievable tempo nearest to an asked one.

    Attributes:
        k: latent frames per beat.
        bpm: the tempo a beat of ``k`` frames gives.
        asked_bpm: the tempo asked for.
        latent_rate_hz: latent frames per second of the model.
    """

    k: int
    bpm: float
    asked_bpm: float
    latent_rate_hz: float

    @property
    def exact(self) -> bool:
        """The asked tempo is achieved (to 0.005 BPM, the precision the table prints)."""
        return abs(self.bpm - self.asked_bpm) < 0.005

    @property
    def message(self) -> str:
        """A sentence for people: the tempo achieved and, when it differs, the neighbours."""
        head = f"k = {self.k} latent frames per beat at {self.latent_rate_hz:.3f} frames/s"
        if self.exact:
            return f"{self.asked_bpm:.2f} BPM is exact: {head}"
        others = [
            f"k = {k}: {60.0 * self.latent_rate_hz / k:.2f} BPM" for k in (self.k - 1, self.k + 1) if k >= 1
        ]
        return (
            f"{self.asked_bpm:.2f} BPM is not achievable exactly; nearest is {self.bpm:.2f} BPM with {head} "
            f"(neighbours: {', '.join(others)})"
        )


def nearest_k_at_rate(latent_rate_hz: float, asked_bpm: float) -> TempoMatch:
    """The number of latent frames per beat whose tempo is nearest ``asked_bpm`` (in BPM).

    Raises:
        ValueError: the rate or tempo is not positive.
    """
    if not latent_rate_hz > 0:
        raise ValueError(f"latent rate must be > 0 Hz, got {latent_rate_hz}")
    if not (asked_bpm > 0 and math.isfinite(asked_bpm)):
        raise ValueError(f"tempo must be a positive number of BPM, got {asked_bpm}")
    exact_k = 60.0 * latent_rate_hz / asked_bpm
    candidates = {max(1, math.floor(exact_k)), max(1, math.ceil(exact_k))}
    k = min(sorted(candidates), key=lambda c: abs(60.0 * latent_rate_hz / c - asked_bpm))
    return TempoMatch(k=k, bpm=60.0 * latent_rate_hz / k, asked_bpm=asked_bpm, latent_rate_hz=latent_rate_hz)


def nearest_k(sr: float, ratio: int, asked_bpm: float) -> TempoMatch:
    """The number of latent frames per beat whose tempo is nearest ``asked_bpm`` for a model.

    Returns:
        a ``TempoMatch``: ``k``, the achieved ``bpm`` and a ``message`` for people.

    Raises:
        ValueError: the model numbers or the tempo are not positive.
    """
    return nearest_k_at_rate(_rate(sr, ratio), asked_bpm)


def format_table(sr: float, ratio: int, k_max: int = TABLE_K_MAX) -> str:
    """The tempo table as text: one row per k with its BPM and double-time BPM."""
    rate = _rate(sr, ratio)
    lines = [
        f"samplerate {sr:g} Hz, ratio {ratio}: {rate:.3f} latent frames/s",
        "loop of k latent frames -> BPM = 60 * (samplerate / ratio) / k",
        f"{'k':>3}  {'BPM':>8}  {'double':>8}",
    ]
    lines += [f"{k:>3}  {one:8.2f}  {two:8.2f}" for k, one, two in tempo_table(sr, ratio, k_max)]
    return "\n".join(lines)
