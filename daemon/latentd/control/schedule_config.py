"""``[schedule]`` of a venue config: opening hours, exceptions, fades, recordings, daily reseed, state file.

Times are local wall-clock times in ``timezone`` (an IANA name such as ``Europe/Berlin``). A range
``"22:00-02:00"`` runs past midnight into the next day; ``"00:00-24:00"`` is a whole day. Without an
``hours`` table the venue is open around the clock (exceptions still apply).

Example::

    [schedule]
    timezone = "Europe/Berlin"
    hours = { mon = [], tue = ["10:00-18:00"], sat = ["10:00-13:00", "14:00-22:00"] }
    exceptions = [ { date = 2026-12-25, hours = [] }, { date = 2026-12-31, hours = ["10:00-15:00"] } ]
    recordings = [ { start = "30 2 * * *", duration_s = 600, label = "night" },
                   { start = "every_opening", duration_s = 300, label = "opening" } ]
    reseed_daily = "04:00"
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_OPENING = "every_opening"
DAY_MIN = 24 * 60

_RANGE_RE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _minutes(h: str, m: str, allow_24: bool) -> int:
    hour, minute = int(h), int(m)
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not allow_24)):
        allowed = "00:00..23:59, or 24:00 as an end" if allow_24 else "00:00..23:59"
        raise ValueError(f"{h}:{m} is not a time of day ({allowed})")
    return hour * 60 + minute


def parse_range(text: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` → (start, end) in minutes after midnight; end <= start means the next day."""
    match = _RANGE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f'{text!r} is not a range of times: write "HH:MM-HH:MM", e.g. "10:00-18:00"')
    start = _minutes(match[1], match[2], allow_24=False)
    end = _minutes(match[3], match[4], allow_24=True)
    if start == end:
        raise ValueError(f'{text!r} starts and ends at the same time: for a whole day write "00:00-24:00"')
    return start, end


def parse_time(text: str) -> int:
    """``"HH:MM"`` → minutes after midnight."""
    match = _TIME_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f'{text!r} is not a time of day: write "HH:MM", e.g. "04:00"')
    return _minutes(match[1], match[2], allow_24=False)


def _check_range(text: str) -> str:
    """A range of local times "HH:MM-HH:MM" ("22:00-02:00" runs past midnight; "00:00-24:00" = all day)."""
    parse_range(text)
    return text


def _check_timezone(name: str) -> str:
    """An IANA time zone name, e.g. "Europe/Berlin" or "UTC"."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as "
            '"Europe/Berlin", "America/New_York" or "UTC"'
        ) from None
    return name


def _to_date(value: Any) -> Any:
    """A TOML date (2026-12-25) or a quoted ISO date ("2026-12-25")."""
    # TOML has date literals (2026-12-25); a quoted ISO date is accepted too.
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date: write 2026-12-25 (YYYY-MM-DD)") from None
    return value


def _check_reseed(value: str) -> str:
    """A local time "HH:MM" or "off"."""
    if value != "off":
        parse_time(value)
    return value


HoursRange = Annotated[str, AfterValidator(_check_range)]


# --------------------------------------------------------------------------------------------- cron
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_DOW_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class Cron:
    """A parsed five-field crontab line (minute hour day-of-month month day-of-week), local wall time.

    As in cron, when both day fields are restricted a day matches if either does.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday .. 6 = Sunday (Python's weekday())
    days_any: bool
    weekdays_any: bool

    def matches_date(self, day: dt.date) -> bool:
        """Whether the line fires on local date ``day`` (at some minute)."""
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, day.weekday() in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow

    def times(self) -> list[int]:
        """Minutes after midnight at which the line fires, sorted."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)


def _cron_field(text: str, name: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name} {part!r}: the step after '/' must be a positive whole number")
        if body == "*":
            first, last = low, high
        else:
            ends = body.split("-")
            nums = [_DOW_NAMES.get(e.lower(), e) if name == "day of week" else e for e in ends]
            if len(ends) > 2 or not all(isinstance(n, int) or n.isdigit() for n in nums):
                raise ValueError(f"{name} {part!r}: use *, a number, a range a-b, a list a,b or a step */n")
            first, last = int(nums[0]), int(nums[-1])
            if len(ends) == 1 and step is not None:
                last = high
        if not (low <= first <= high and low <= last <= high and first <= last):
            raise ValueError(f"{name} {part!r} is outside {low}..{high}")
        values.update(range(first, last + 1, step or 1))
    return values


def parse_cron(text: str) -> Cron:
    """Parse ``"minute hour day-of-month month day-of-week"`` (e.g. ``"30 2 * * *"``)."""
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f'{text!r} needs 5 fields (minute hour day-of-month month day-of-week), e.g. "30 2 * * *", '
            f'or "{EVERY_OPENING}"'
        )
    sets = [_cron_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, CRON_FIELDS, strict=True)]
    # cron counts Sunday as 0 or 7; Python's weekday() has Monday = 0.
    weekdays = frozenset((d - 1) % 7 for d in sets[4])
    return Cron(
        frozenset(sets[0]),
        frozenset(sets[1]),
        frozenset(sets[2]),
        frozenset(sets[3]),
        weekdays,
        days_any=parts[2] == "*",
        weekdays_any=parts[4] == "*",
    )


# ------------------------------------------------------------------------------------------- models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ExceptionDay(_Strict):
    """One dated exception: a closed day (``hours = []``) or special hours for that date."""

    date: Annotated[dt.date, BeforeValidator(_to_date)] = Field(
        description="the local date the exception is for (YYYY-MM-DD), once in the list"
    )
    hours: list[HoursRange] = Field(
        default_factory=list,
        description='opening ranges that day instead of the weekday\'s, e.g. ["10:00-15:00"]; [] = closed',
    )
    label: str = Field(
        default="", max_length=80, description="why the day differs (shown by `latentd schedule` and logged)"
    )


class RecordingSchedule(_Strict):
    """One scheduled recording."""

    start: str = Field(
        description="when to start: a five-field crontab line in local time (minute hour day-of-month month "
        f'day-of-week: "30 2 * * *" = 02:30 every day), or "{EVERY_OPENING}" = at each opening'
    )
    duration_s: float | None = Field(
        default=None,
        gt=0.0,
        le=7 * 86400.0,
        description="length of the recording in seconds; required with a crontab start; with "
        f'"{EVERY_OPENING}" it may be left out: record until closing',
    )
    label: str = Field(
        default="scheduled",
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="added to the session folder's name (1 to 64 letters, digits, `_`, `-`, `.`)",
    )

    @model_validator(mode="after")
    def _check(self) -> RecordingSchedule:
        if self.start != EVERY_OPENING:
            try:
                parse_cron(self.start)
            except ValueError as exc:
                raise PydanticCustomError(
                    "latentd", "{message}", {"field": "start", "value": self.start, "message": str(exc)}
                ) from None
            if self.duration_s is None:
                raise PydanticCustomError(
                    "latentd",
                    "{message}",
                    {"field": "duration_s", "value": None, "message": "a timed recording needs duration_s"},
                )
        return self

    @property
    def cron(self) -> Cron | None:
        """The parsed crontab line, or None for ``every_opening``."""
        return None if self.start == EVERY_OPENING else parse_cron(self.start)


class ScheduleConfig(_Strict):
    """``[schedule]``: when the venue is open, what is recorded, when voices are reseeded."""

    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        default="UTC", description="IANA time zone of every time in this section, e.g. Europe/Berlin"
    )
    hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[HoursRange]] | None = Field(
        default=None,
        description='opening ranges per weekday, e.g. mon = ["10:00-18:00"]; a day left out is closed; '
        "no table at all = open around the clock",
    )
    exceptions: list[ExceptionDay] = Field(
        default_factory=list, description="dated closed days or special hours: see [[schedule.exceptions]]"
    )
    fade_in_s: float = Field(default=5.0, ge=0.0, le=600.0, description="fade in at opening, in seconds")
    fade_out_s: float = Field(
        default=10.0, ge=0.0, le=600.0, description="fade out from closing time on, in seconds"
    )
    recordings: list[RecordingSchedule] = Field(
        default_factory=list, description="scheduled recordings: see [[schedule.recordings]]"
    )
    reseed_daily: Annotated[str, AfterValidator(_check_reseed)] = Field(
        default="off", description='local time ("04:00") at which every voice gets the day\'s seed, or "off"'
    )
    check_every_s: float = Field(
        default=10.0,
        ge=1.0,
        le=600.0,
        description='seconds between checks of "should we be open now?" against the engine\'s state '
        "(opening follows the clock within this time)",
    )
    state_file: str = Field(
        default="state/latentd-state.json",
        min_length=1,
        description="state file (programme position, seeds, overrides), relative to the venue config",
    )
    state_every_s: float = Field(
        default=30.0, ge=1.0, le=3600.0, description="seconds between writes of the state file"
    )

    @model_validator(mode="after")
    def _unique_dates(self) -> ScheduleConfig:
        seen: set[dt.date] = set()
        for day in self.exceptions:
            if day.date in seen:
                raise PydanticCustomError(
                    "latentd",
                    "{message}",
                    {"field": "exceptions", "value": str(day.date), "message": "date listed twice"},
                )
            seen.add(day.date)
        return self

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        """The time zone."""
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def reseed_minute(self) -> int | None:
        """Minutes after midnight of the daily reseed, or None when it is off."""
        return None if self.reseed_daily == "off" else parse_time(self.reseed_daily)

    def ranges_on(self, day: dt.date) -> list[tuple[int, int]]:
        """Opening ranges that start on local date ``day`` (minutes; end <= start runs into the next day)."""
        for exc in self.exceptions:
            if exc.date == day:
                return [parse_range(r) for r in exc.hours]
        if self.hours is None:
            return [(0, DAY_MIN)]
        return [parse_range(r) for r in self.hours.get(WEEKDAYS[day.weekday()], [])]  # type: ignore[call-overload]

    def exception_label(self, day: dt.date) -> str | None:
        """The exception's label (or "exception") when ``day`` has one, else None."""
        for exc in self.exceptions:
            if exc.date == day:
                return exc.label or "exception"
        return None
