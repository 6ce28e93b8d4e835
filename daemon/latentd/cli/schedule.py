"""``latentd schedule``: print the venue's timetable (openings, closings, recordings, reseeds, clock changes).

Every line shows the local time with its UTC offset, so a technician sees the DST nights as they will be.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import IO, Any
from zoneinfo import ZoneInfo

from latentd.cli.common import EXIT_OK, add_parser, config_arg, config_errors
from latentd.config import ConfigError, load_config
from latentd.control.opening import Event, is_open, next_changes
from latentd.control.schedule_config import ScheduleConfig

_WHAT = {"open": "open", "close": "close", "record": "record", "reseed": "reseed voices"}


def clock_changes(schedule: ScheduleConfig, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Instants in [start, end) at which the zone's UTC offset changes (DST), to the second."""
    tz = schedule.tz
    found: list[dt.datetime] = []
    t = int(start.timestamp())
    stop = int(end.timestamp())
    step = 1800  # zones change their offset on the hour or half hour
    while t < stop:
        a, b = dt.datetime.fromtimestamp(t, tz), dt.datetime.fromtimestamp(min(t + step, stop), tz)
        if a.utcoffset() != b.utcoffset():
            lo, hi = t, min(t + step, stop)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if dt.datetime.fromtimestamp(mid, tz).utcoffset() == a.utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(dt.datetime.fromtimestamp(hi, tz))
        t += step
    return found


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %a %H:%M ") + when.isoformat()[-6:]


def _line(event: Event, tz: ZoneInfo) -> str:
    text = _WHAT[event.kind]
    if event.kind == "record":
        text += f" {event.label!r} for {_duration(event.duration_s or 0.0)}"
    elif event.label:
        text += f" ({event.label})"
    return f"{_stamp(event.when.astimezone(tz))}  {text}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" + (f"{secs:02d}s" if secs else "")


def timetable(schedule: ScheduleConfig, start: dt.datetime, days: float) -> list[str]:
    """The lines ``latentd schedule`` prints for ``days`` days from ``start`` (aware)."""
    tz = schedule.tz
    start = start.astimezone(tz)
    end = start + dt.timedelta(days=days)
    state = "open" if is_open(schedule, start) else "closed"
    lines = [
        f"time zone {schedule.timezone}; {days:g} day(s) from {_stamp(start)}",
        f"{_stamp(start)}  ({state})",
    ]
    events = next_changes(schedule, start, days)
    rows: list[tuple[dt.datetime, int, str]] = [(e.when, 1, _line(e, tz)) for e in events]
    for t in clock_changes(schedule, start, end):
        before = (t - dt.timedelta(seconds=1)).astimezone(tz)
        change = f"clock change: UTC{before.isoformat()[-6:]} → UTC{t.isoformat()[-6:]}"
        rows.append((t, 0, f"{_stamp(t)}  {change}"))
    lines.extend(text for _, _, text in sorted(rows, key=lambda r: r[:2]))
    return lines


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write YYYY-MM-DD, e.g. 2026-03-28"
        ) from None


def run_schedule(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """``latentd schedule``: print the timetable; exit code 0, or 2 for a bad config."""
    out = out or sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return config_errors(exc)
    schedule = config.venue.schedule
    tz = schedule.tz
    if args.from_date is not None:
        start = dt.datetime.combine(args.from_date, dt.time(), tzinfo=tz)
    else:
        start = dt.datetime.now(tz).replace(second=0, microsecond=0)
    for line in timetable(schedule, start, args.days):
        print(line, file=out)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``schedule`` to the ``latentd`` command line."""
    p = add_parser(
        sub,
        "schedule",
        help="print the venue's timetable (local times with UTC offsets)",
        description=__doc__,
    )
    config_arg(p)
    p.add_argument("--days", type=float, default=7.0, help="how many days to show")
    p.add_argument(
        "--from",
        dest="from_date",
        type=_parse_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="first local date (default: now)",
    )
    p.set_defaults(func=run_schedule)
