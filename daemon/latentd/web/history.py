"""The page's history plots: levels and decode load at 1 s for the last hour, 1 min for the last day.

Bounded by construction: 3600 + 1440 points, whatever the uptime. Kept in the web process's memory only
(a restart starts the plots again).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

HOUR_POINTS = 3600
DAY_POINTS = 1440


def to_db(value: float) -> float | None:
    """A linear level in dBFS (None for silence)."""
    return round(20.0 * math.log10(value), 1) if value > 1e-6 else None


class _Bucket:
    """Statuses falling in one time slot: mean power, largest peak, largest load."""

    __slots__ = ("load", "n", "peak", "power", "slot")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.power = 0.0
        self.peak = 0.0
        self.load: float | None = None
        self.n = 0

    def add(self, power: float, peak: float, load: float | None) -> None:
        self.power += power
        self.peak = max(self.peak, peak)
        if load is not None:
            self.load = load if self.load is None else max(self.load, load)
        self.n += 1

    def point(self, width_s: int) -> list[Any]:
        rms = math.sqrt(self.power / self.n) if self.n else 0.0
        return [self.slot * width_s, to_db(rms), to_db(self.peak), self.load]


class History:
    """Levels (all speakers' RMS as one number, and the largest peak) and the largest decode load."""

    def __init__(self) -> None:
        self.hour: deque[list[Any]] = deque(maxlen=HOUR_POINTS)
        self.day: deque[list[Any]] = deque(maxlen=DAY_POINTS)
        self._second: _Bucket | None = None
        self._minute: _Bucket | None = None

    def add(self, now_s: float, status: dict[str, Any]) -> None:
        """Add one status received at wall-clock time ``now_s`` (seconds since the epoch)."""
        speakers = status.get("speakers") or []
        power = sum(float(s["rms"]) ** 2 for s in speakers) / len(speakers) if speakers else 0.0
        peak = max((float(s["peak"]) for s in speakers), default=0.0)
        loads = [m["load"] for m in status.get("models") or [] if m.get("load") is not None]
        load = max(loads) if loads else None
        self._second = self._roll(self._second, int(now_s), self.hour, 1)
        self._second.add(power, peak, load)
        self._minute = self._roll(self._minute, int(now_s) // 60, self.day, 60)
        self._minute.add(power, peak, load)

    @staticmethod
    def _roll(bucket: _Bucket | None, slot: int, into: deque[list[Any]], width_s: int) -> _Bucket:
        if bucket is not None and bucket.slot == slot:
            return bucket
        if bucket is not None:
            into.append(bucket.point(width_s))
        return _Bucket(slot)

    def points(self, span: str) -> list[list[Any]]:
        """``[time_s, rms_db, peak_db, load]`` rows, oldest first, for ``hour`` or ``day``."""
        return list(self.hour if span == "hour" else self.day)
