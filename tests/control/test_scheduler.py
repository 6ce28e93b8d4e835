"""The schedule controller on a real engine, driven by injected times: DST nights, clock jumps, reseeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from latentd.cli.schedule import add_commands
from latentd.config import load_config
from latentd.control.opening import is_open
from latentd.control.scheduler import ScheduleController, day_seed, start_scheduler
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.installation.piece import load_installation
from latentd.modelkit.builder import SynthSpec
from tests.pieces import write_piece

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
NIGHT = {
    "timezone": "Europe/Berlin",
    "hours": {"sat": ["22:00-04:00"], "tue": ["10:00-18:00"]},
    "recordings": [{"start": "30 2 * * *", "duration_s": 600, "label": "night"}],
    "fade_in_s": 2.0,
    "fade_out_s": 3.0,
}


@pytest.fixture
def venue(tmp_path, model_factory):
    def make(schedule: dict) -> Path:
        model = model_factory(SynthSpec(latent_size=4, ratio=1024, sr=48000))
        return write_piece(
            tmp_path,
            models={"a": model},
            voices={
                "v": {"model": "a", "source": {"kind": "noise"}},
                "w": {"model": "a", "source": {"kind": "walk"}},
            },
            extra_venue={"schedule": schedule},
        )

    return make


class Logged:
    """A structlog-like logger that keeps (level, event) pairs, whatever logging setup other tests left."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda event, **kw: self.records.append((level, event, kw))

    def events(self, level: str | None = None) -> list[str]:
        return [e for lv, e, _ in self.records if level in (None, lv)]


class Recorder:
    """Stands in for the recorder: the engine hands it the recording commands it sequences."""

    def __init__(self, engine: Engine) -> None:
        self.events: list[str] = []
        engine.handlers[c.StartRecording] = lambda cmd: self.events.append(f"start {cmd.label}")
        engine.handlers[c.StopRecording] = lambda cmd: self.events.append("stop")


def setup(config_path: Path) -> tuple[Engine, ScheduleController, Recorder]:
    config = load_config(config_path)
    engine = Engine(load_installation(config), fade_in_s=0.0)
    recorder = Recorder(engine)
    return engine, ScheduleController(engine, config.venue.schedule, log=Logged()), recorder


def run_checks(engine, controller, start: dt.datetime, stop: dt.datetime, every_s: float = 10.0):
    t = start
    while t < stop:
        controller.check(t)
        engine.next_block()  # the engine applies what was submitted
        yield t
        t += dt.timedelta(seconds=every_s)


@pytest.mark.parametrize(
    ("start", "stop", "recording_start"),
    [
        (
            dt.datetime(2026, 3, 28, 20, 0, tzinfo=UTC),
            dt.datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
            dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 CEST
        ),
        (
            dt.datetime(2026, 10, 24, 19, 0, tzinfo=UTC),
            dt.datetime(2026, 10, 25, 4, 0, tzinfo=UTC),
            dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST)
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_dst_nights_open_close_and_record_once(venue, start, stop, recording_start):
    engine, controller, recorder = setup(venue(NIGHT))
    schedule = controller.schedule
    seen_open = []
    for t in run_checks(engine, controller, start, stop, every_s=60.0):
        assert engine.is_open == is_open(schedule, t), f"wrong state at {t.astimezone(BERLIN)}"
        seen_open.append(engine.is_open)
    assert recorder.events == ["start night", "stop"], "the 02:30 recording must run exactly once"
    starts = [b for b, cmd in engine.command_log if isinstance(cmd, c.StartRecording)]
    stops = [b for b, cmd in engine.command_log if isinstance(cmd, c.StopRecording)]
    assert (stops[0] - starts[0]) == 10, "a 600 s recording spans 10 checks of 60 s"
    assert start + dt.timedelta(seconds=60 * starts[0]) == recording_start
    assert seen_open.count(True) > 0 and not seen_open[0] and not seen_open[-1]
    opens = [cmd for _, cmd in engine.command_log if isinstance(cmd, c.SetOpen)]
    # The engine starts open; the first check closes it (fading out), the night opens and closes it.
    assert opens == [c.SetOpen(False, 3.0), c.SetOpen(True, 2.0), c.SetOpen(False, 3.0)]


def test_forward_jump_of_hours_is_fixed_at_the_next_check(venue):
    engine, controller, recorder = setup(venue(NIGHT))
    controller.check(dt.datetime(2026, 6, 6, 21, 0, tzinfo=BERLIN))  # Saturday, closed
    engine.next_block()
    assert not engine.is_open
    # The clock jumps from 21:00 to 03:00 (the Pi's clock set by NTP): open, and the 02:30 recording
    # that ran from 02:30 to 02:40 was skipped, which the log says.
    controller.check(dt.datetime(2026, 6, 7, 3, 0, tzinfo=BERLIN))
    engine.next_block()
    assert engine.is_open
    assert recorder.events == []
    assert controller.log.events("warning") == ["schedule.recording_missed"]
    controller.check(dt.datetime(2026, 6, 7, 4, 0, 5, tzinfo=BERLIN))
    engine.next_block()
    assert not engine.is_open


def test_backward_jump_of_minutes_is_fixed_and_never_records_twice(venue):
    engine, controller, recorder = setup(venue(NIGHT))
    night = dt.datetime(2026, 6, 7, 2, 25, tzinfo=BERLIN)
    list(run_checks(engine, controller, night, night + dt.timedelta(minutes=20)))  # to 02:45
    assert recorder.events == ["start night", "stop"]
    controller.check(dt.datetime(2026, 6, 7, 2, 35, tzinfo=BERLIN))  # back ten minutes, inside the span
    engine.next_block()
    assert recorder.events == ["start night", "stop"]
    # Tuesday 18:00:05 closed; the clock goes back to 17:58: it is opening time again, so open.
    controller.check(dt.datetime(2026, 6, 9, 18, 0, 5, tzinfo=BERLIN))
    engine.next_block()
    assert not engine.is_open
    controller.check(dt.datetime(2026, 6, 9, 17, 58, tzinfo=BERLIN))
    engine.next_block()
    assert engine.is_open


def test_restart_inside_a_recording_records_the_rest(venue):
    engine, controller, recorder = setup(venue(NIGHT))
    controller.check(dt.datetime(2026, 6, 7, 2, 36, tzinfo=BERLIN))
    engine.next_block()
    assert recorder.events == ["start night"]


def test_daily_reseed_once_per_day_with_the_days_seed(venue):
    engine, controller, _ = setup(venue({"timezone": "Europe/Berlin", "reseed_daily": "04:00"}))
    day = dt.date(2026, 6, 6)
    sent = controller.check(dt.datetime(2026, 6, 6, 4, 0, 5, tzinfo=BERLIN))
    assert sorted(sent, key=lambda cmd: cmd.voice) == [  # type: ignore[attr-defined]
        c.ReseedVoice("v", day_seed(engine.seed, day, "v")),
        c.ReseedVoice("w", day_seed(engine.seed, day, "w")),
    ]
    assert controller.log.events() == ["schedule.submit", "schedule.submit"]
    engine.next_block()
    assert engine.voices["v"].seed == day_seed(engine.seed, day, "v")
    assert controller.check(dt.datetime(2026, 6, 6, 4, 0, 15, tzinfo=BERLIN)) == []
    assert controller.check(dt.datetime(2026, 6, 6, 3, 59, tzinfo=BERLIN)) == []  # clock went back
    next_day = controller.check(dt.datetime(2026, 6, 7, 4, 0, 5, tzinfo=BERLIN))
    assert len(next_day) == 2 and day_seed(engine.seed, day, "v") != day_seed(
        engine.seed, day.replace(day=7), "v"
    )


def test_start_scheduler_checks_at_once_and_configures_apscheduler(venue):
    config = load_config(venue({**NIGHT, "check_every_s": 5.0}))
    engine = Engine(load_installation(config), fade_in_s=0.0)
    closed = dt.datetime(2026, 6, 9, 20, 0, tzinfo=BERLIN)
    handle = start_scheduler(engine, config, clock=lambda: closed)
    try:
        engine.next_block()
        assert not engine.is_open
        (job,) = handle.scheduler.get_jobs()
        assert (job.coalesce, job.max_instances) == (True, 1)
        assert job.misfire_grace_time >= 5
        assert str(handle.scheduler.timezone) == "Europe/Berlin"
        assert job.trigger.interval == dt.timedelta(seconds=5)
    finally:
        handle.stop()
    assert not handle.scheduler.running


def test_schedule_command_prints_dst_offsets(venue, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["schedule", "--config", str(venue(NIGHT)), "--days", "2", "--from", "2026-10-24"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "2026-10-24 Sat 22:00 +02:00  open" in out
    assert "2026-10-25 Sun 02:30 +02:00  record 'night'" in out
    assert "2026-10-25 Sun 04:00 +01:00  close" in out
    assert "clock change: UTC+02:00 → UTC+01:00" in out
    assert out.count("record 'night'") == 2  # Saturday's and Sunday's, not a third on the repeated hour
