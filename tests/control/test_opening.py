"""Opening hours, recordings and reseeds as functions of the clock, on ordinary days and both DST nights."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from latentd.config import ConfigError, load_config
from latentd.control.opening import (
    is_open,
    last_reseed,
    next_changes,
    opening_intervals,
    recording_intervals,
    recordings_due,
)
from latentd.control.schedule_config import ScheduleConfig
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def berlin(**kw) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"timezone": "Europe/Berlin", **kw})


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


NIGHT = berlin(
    hours={"sat": ["22:00-04:00"]},
    recordings=[{"start": "30 2 * * *", "duration_s": 600, "label": "night"}],
)


def test_weekday_hours_and_past_midnight():
    s = berlin(hours={"mon": ["10:00-12:00", "14:00-18:00"], "fri": ["20:00-02:00"]})
    assert is_open(s, dt.datetime(2026, 6, 1, 11, 0, tzinfo=BERLIN))  # a Monday
    assert not is_open(s, dt.datetime(2026, 6, 1, 13, 0, tzinfo=BERLIN))
    assert not is_open(s, dt.datetime(2026, 6, 1, 18, 0, tzinfo=BERLIN))  # closing time is closed
    assert not is_open(s, dt.datetime(2026, 6, 2, 11, 0, tzinfo=BERLIN))  # Tuesday: not listed
    assert is_open(s, dt.datetime(2026, 6, 6, 1, 59, tzinfo=BERLIN))  # Friday's range runs into Saturday
    assert not is_open(s, dt.datetime(2026, 6, 6, 2, 0, tzinfo=BERLIN))
    assert is_open(s, utc(2026, 6, 1, 9, 30))  # any zone in, the venue's zone decides


def test_exceptions_close_a_day_or_change_its_hours():
    s = berlin(
        hours={"fri": ["10:00-18:00"]},
        exceptions=[{"date": "2026-12-25", "hours": []}, {"date": "2027-01-01", "hours": ["14:00-16:00"]}],
    )
    assert not is_open(s, dt.datetime(2026, 12, 25, 12, tzinfo=BERLIN))
    assert is_open(s, dt.datetime(2026, 12, 18, 12, tzinfo=BERLIN))
    assert not is_open(s, dt.datetime(2027, 1, 1, 12, tzinfo=BERLIN))
    assert is_open(s, dt.datetime(2027, 1, 1, 15, tzinfo=BERLIN))


def test_no_hours_table_means_open_around_the_clock():
    s = berlin()
    assert all(is_open(s, utc(2026, 3, 29, h)) for h in range(24))


def test_spring_forward_night_opening_is_an_hour_shorter():
    (night,) = opening_intervals(NIGHT, dt.date(2026, 3, 28), dt.date(2026, 3, 28))
    assert night.start == utc(2026, 3, 28, 21, 0) and night.end == utc(2026, 3, 29, 2, 0)  # 04:00 CEST
    assert night.end - night.start == dt.timedelta(hours=5)
    assert is_open(NIGHT, utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert is_open(NIGHT, utc(2026, 3, 29, 1, 0))  # 03:00 CEST, straight after the jump
    assert not is_open(NIGHT, utc(2026, 3, 29, 2, 0))


def test_fall_back_night_opening_is_an_hour_longer_and_open_on_both_passes():
    (night,) = opening_intervals(NIGHT, dt.date(2026, 10, 24), dt.date(2026, 10, 24))
    assert night.end - night.start == dt.timedelta(hours=7)
    first = dt.datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0)
    second = dt.datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    assert second - first == dt.timedelta(0) and second.astimezone(UTC) - first.astimezone(
        UTC
    ) == dt.timedelta(hours=1)
    assert is_open(NIGHT, first) and is_open(NIGHT, second)
    assert not is_open(NIGHT, dt.datetime(2026, 10, 25, 4, 0, tzinfo=BERLIN))


def test_a_range_inside_the_missing_hour_starts_at_the_jump():
    s = berlin(hours={"sun": ["02:30-03:30"]})
    (iv,) = opening_intervals(s, dt.date(2026, 3, 29), dt.date(2026, 3, 29))
    assert iv.start == utc(2026, 3, 29, 1, 0) and iv.end == utc(2026, 3, 29, 1, 30)


def test_recording_at_0230_runs_once_on_both_dst_nights():
    spring = recording_intervals(NIGHT, dt.date(2026, 3, 29), dt.date(2026, 3, 29))
    assert [(i.start, i.end) for i in spring] == [(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 10))]
    autumn = recording_intervals(NIGHT, dt.date(2026, 10, 25), dt.date(2026, 10, 25))
    assert [i.start for i in autumn] == [utc(2026, 10, 25, 0, 30)]  # the first 02:30 only
    second_pass = dt.datetime(2026, 10, 25, 2, 35, tzinfo=BERLIN, fold=1)
    assert recordings_due(NIGHT, second_pass) == []
    assert [i.label for i in recordings_due(NIGHT, utc(2026, 10, 25, 0, 35))] == ["night"]


def test_every_opening_recording_starts_at_each_opening_and_stops_at_closing():
    s = berlin(
        hours={"sat": ["10:00-11:00", "20:00-21:00"]},
        recordings=[
            {"start": "every_opening", "label": "door"},
            {"start": "every_opening", "duration_s": 60},
        ],
    )
    found = recording_intervals(s, dt.date(2026, 6, 6), dt.date(2026, 6, 6))
    door = [
        (i.start.astimezone(BERLIN).hour, i.end.astimezone(BERLIN).hour) for i in found if i.label == "door"
    ]
    assert door == [(10, 11), (20, 21)]
    assert {(i.end - i.start).total_seconds() for i in found if i.label == "scheduled"} == {60.0}


def test_reseed_follows_the_local_clock():
    s = berlin(reseed_daily="04:00")
    assert last_reseed(s, dt.datetime(2026, 6, 6, 3, 59, tzinfo=BERLIN)) == dt.datetime(
        2026, 6, 5, 4, tzinfo=BERLIN
    )
    assert last_reseed(s, dt.datetime(2026, 6, 6, 4, 0, tzinfo=BERLIN)) == dt.datetime(
        2026, 6, 6, 4, tzinfo=BERLIN
    )
    assert last_reseed(berlin(), utc(2026, 6, 6)) is None


def test_next_changes_lists_the_night_in_order():
    events = next_changes(NIGHT, dt.datetime(2026, 10, 24, 12, tzinfo=BERLIN), 1)
    assert [(e.kind, e.when.astimezone(BERLIN).isoformat()) for e in events] == [
        ("open", "2026-10-24T22:00:00+02:00"),
        ("record", "2026-10-25T02:30:00+02:00"),
        ("close", "2026-10-25T04:00:00+01:00"),
    ]


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="aware"):
        is_open(NIGHT, dt.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"timezone": "Europe/Berlln"}, "unknown time zone"),
        ({"hours": {"mon": ["10-18"]}}, "HH:MM-HH:MM"),
        ({"hours": {"mon": ["10:00-10:00"]}}, "00:00-24:00"),
        ({"hours": {"mon": ["25:00-26:00"]}}, "not a time of day"),
        ({"hours": {"monday": ["10:00-11:00"]}}, "mon"),
        ({"recordings": [{"start": "30 2 * *", "duration_s": 60}]}, "5 fields"),
        ({"recordings": [{"start": "61 2 * * *", "duration_s": 60}]}, "outside 0..59"),
        ({"recordings": [{"start": "30 2 * * *"}]}, "needs duration_s"),
        ({"reseed_daily": "4am"}, "HH:MM"),
        ({"exceptions": [{"date": "2026-13-01"}]}, "not a date"),
    ],
)
def test_bad_schedules_say_what_is_wrong(schedule, words):
    with pytest.raises(ValidationError, match=words):
        ScheduleConfig.model_validate(schedule)


def test_load_config_reports_schedule_problems_with_file_and_key(tmp_path, model_factory):
    model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
    config = write_piece(
        tmp_path,
        models={"a": model},
        voices={"v": {"model": "a", "source": {"kind": "noise"}}},
        extra_venue={"schedule": {"timezone": "Mars/Olympus", "hours": {"mon": ["10:00-18:00"]}}},
    )
    with pytest.raises(ConfigError) as err:
        load_config(config)
    text = str(err.value)
    assert "venue.toml" in text and "schedule.timezone" in text and "unknown time zone" in text
