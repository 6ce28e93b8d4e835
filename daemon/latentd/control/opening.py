"""The venue's timetable as pure functions of the clock: open or not, recordings due, reseeds, next changes.

Every local time of the schedule names *the first instant the wall clock reads that time or later* that
day. So on the spring-forward night (Europe/Berlin 02:00 → 03:00) a 02:30 event happens at 03:00, and on
the fall-back night (02:00–03:00 happens twice) it happens once, on the first pass. Opening ranges become
intervals of real time ([open, close)), so a range spanning the changed hour lasts one hour less or more.
Nothing here reads the clock: callers pass aware datetimes, which keeps DST nights and clock jumps testable.
Instants are returned in UTC: Python compares and subtracts two datetimes of the *same* zone by their
wall-clock fields, ignoring ``fold``, which is wrong on exactly the nights that matter here.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from latentd.control.schedule_config import DAY_MIN, EVERY_OPENING, ScheduleConfig

UTC = dt.UTC
EventKind = Literal["open", "close", "record", "reseed"]


def _aware(when: dt.datetime, name: str = "when") -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), got naive {when.isoformat()}")
    return when


def wall_instant(tz: ZoneInfo, day: dt.date, minute: int) -> dt.datetime:
    """The first instant (UTC) at which the clock in ``tz`` reads ``day`` + ``minute`` minutes or later.

    ``minute`` may pass 1440 (a time on a following day). A time inside a DST gap gives the instant of
    the jump; a time that happens twice gives its first occurrence.
    """
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # A gap: fold=1 reads the time with the offset after the jump, which lands before the jump.
    lo = int(naive.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, UTC)


@dataclass(frozen=True)
class Interval:
    """A span of real time [start, end), both in UTC."""

    start: dt.datetime
    end: dt.datetime
    label: str = ""

    def contains(self, when: dt.datetime) -> bool:
        """Whether ``when`` lies in [start, end)."""
        return self.start <= when.astimezone(UTC) < self.end

    @property
    def key(self) -> str:
        """A stable identity: label and UTC start (the same on both passes of a repeated hour)."""
        return f"{self.label}@{self.start.astimezone(UTC).isoformat()}"


@dataclass(frozen=True)
class Event:
    """One line of the timetable (``when`` in UTC)."""

    when: dt.datetime
    kind: EventKind
    label: str = ""
    duration_s: float | None = None


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def opening_intervals(schedule: ScheduleConfig, first: dt.date, last: dt.date) -> list[Interval]:
    """Merged opening intervals of ranges starting on local dates ``first - 1`` .. ``last``."""
    tz = schedule.tz
    raw: list[tuple[dt.datetime, dt.datetime]] = []
    for day in _days(first - dt.timedelta(days=1), last):
        for start_min, end_min in schedule.ranges_on(day):
            start = wall_instant(tz, day, start_min)
            end = wall_instant(tz, day, end_min if end_min > start_min else end_min + DAY_MIN)
            if end > start:  # "02:00-02:30" on the spring-forward night is empty
                raw.append((start, end))
    merged: list[list[dt.datetime]] = []
    for start, end in sorted(raw):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [Interval(s, e, "open") for s, e in merged]


def _local_day(schedule: ScheduleConfig, when: dt.datetime) -> dt.date:
    return _aware(when).astimezone(schedule.tz).date()


def is_open(schedule: ScheduleConfig, when: dt.datetime) -> bool:
    """Whether the venue is open at ``when`` (an aware datetime)."""
    day = _local_day(schedule, when)
    return any(i.contains(when) for i in opening_intervals(schedule, day, day))


def recording_intervals(schedule: ScheduleConfig, first: dt.date, last: dt.date) -> list[Interval]:
    """Scheduled recordings starting on local dates ``first`` .. ``last``, in start order.

    A crontab time fires once per day even when the clock shows it twice; two times that fall into the
    same DST gap (02:30 and 02:45) start one recording, not two.
    """
    tz = schedule.tz
    found: dict[str, Interval] = {}
    openings = opening_intervals(schedule, first, last + dt.timedelta(days=8))
    for rec in schedule.recordings:
        cron = rec.cron
        if cron is None:  # every opening, up to its closing
            for iv in openings:
                if first <= iv.start.astimezone(tz).date() <= last:
                    end = iv.end if rec.duration_s is None else min(iv.end, iv.start + _sec(rec.duration_s))
                    item = Interval(iv.start, end, rec.label)
                    found.setdefault(item.key, item)
            continue
        assert rec.duration_s is not None  # checked by RecordingSchedule
        for day in _days(first, last):
            if cron.matches_date(day):
                for minute in cron.times():
                    start = wall_instant(tz, day, minute)
                    item = Interval(start, start + _sec(rec.duration_s), rec.label)
                    found.setdefault(item.key, item)
    return sorted(found.values(), key=lambda i: (i.start, i.label))


def _sec(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


def recordings_due(schedule: ScheduleConfig, when: dt.datetime) -> list[Interval]:
    """Scheduled recordings whose span contains ``when``."""
    day = _local_day(schedule, when)
    longest = max((r.duration_s or 86400.0 for r in schedule.recordings), default=0.0)
    back = dt.timedelta(days=math.ceil(longest / 86400.0) + 1)
    return [i for i in recording_intervals(schedule, day - back, day) if i.contains(when)]


def reseed_instants(schedule: ScheduleConfig, first: dt.date, last: dt.date) -> list[dt.datetime]:
    """The daily reseed instants of local dates ``first`` .. ``last`` (empty when reseeding is off)."""
    minute = schedule.reseed_minute
    if minute is None:
        return []
    return [wall_instant(schedule.tz, day, minute) for day in _days(first, last)]


def last_reseed(schedule: ScheduleConfig, when: dt.datetime) -> dt.datetime | None:
    """The latest daily reseed instant at or before ``when``, or None when reseeding is off."""
    day = _local_day(schedule, when)
    past = [
        t for t in reseed_instants(schedule, day - dt.timedelta(days=1), day) if t <= when.astimezone(UTC)
    ]
    return past[-1] if past else None


def next_changes(schedule: ScheduleConfig, start: dt.datetime, days: float) -> list[Event]:
    """Openings, closings, recordings and reseeds in [start, start + days), in time order."""
    start = _aware(start, "start").astimezone(UTC)
    end = start + dt.timedelta(days=days)
    first, last = _local_day(schedule, start), _local_day(schedule, end)
    events: list[Event] = []
    for iv in opening_intervals(schedule, first, last):
        if start <= iv.start < end:
            label = schedule.exception_label(iv.start.astimezone(schedule.tz).date())
            events.append(Event(iv.start, "open", label or ""))
        if start <= iv.end < end:
            events.append(Event(iv.end, "close"))
    for iv in recording_intervals(schedule, first, last):
        if start <= iv.start < end:
            events.append(Event(iv.start, "record", iv.label, (iv.end - iv.start).total_seconds()))
    events.extend(Event(t, "reseed") for t in reseed_instants(schedule, first, last) if start <= t < end)
    order = {"close": 0, "open": 1, "reseed": 2, "record": 3}
    return sorted(events, key=lambda e: (e.when, order[e.kind]))


__all__ = [
    "EVERY_OPENING",
    "Event",
    "Interval",
    "is_open",
    "last_reseed",
    "next_changes",
    "opening_intervals",
    "recording_intervals",
    "recordings_due",
    "reseed_instants",
    "wall_instant",
]
