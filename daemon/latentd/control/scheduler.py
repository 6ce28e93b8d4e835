"""The venue schedule in a running daemon: open/close, scheduled recordings and the daily reseed.

Opening is a state derived from the clock, not a pair of one-shot events (docs/ARCHITECTURE.md,
"Schedule and persistence"): every ``check_every_s`` the controller asks "should we be open now?" and
submits :class:`SetOpen` when the engine says otherwise, so a clock jump or a missed job is corrected at
the next check. Recordings are spans of real time with a stable identity (their UTC start), so a repeated
hour on the fall-back night or a backward clock jump never starts one twice; after a restart inside a
span, the rest of it is recorded. All decisions live in :meth:`ScheduleController.check`, a function of
the time it is given; APScheduler (3.x, explicit time zone, ``coalesce``, ``max_instances=1``) only calls it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from latentd.config import Config
from latentd.control.opening import (
    Interval,
    is_open,
    last_reseed,
    recording_intervals,
    recordings_due,
)
from latentd.control.schedule_config import ScheduleConfig
from latentd.engine import commands as c
from latentd.engine.command_base import SEED_MODULUS
from latentd.engine.engine import Engine

_KEEP_SEEN = dt.timedelta(days=2)  # forget finished recordings after this (a bounded memory)
_MISSED_SCAN = dt.timedelta(days=8)  # how far back a forward clock jump is searched for missed recordings


def day_seed(piece_seed: int, day: dt.date, voice: str) -> int:
    """The seed of ``voice`` on local date ``day``: stable across restarts and machines.

    A voice seed like any other (0..2^24 - 1), so it can be typed into a Pd patch.
    """
    return (piece_seed + zlib.crc32(f"{day.isoformat()}/{voice}".encode())) % SEED_MODULUS


class ScheduleController:
    """Compares the schedule at a given time with the engine's state and submits what differs.

    Thread-safe: :meth:`check` may be called from the scheduler thread and the main loop. The engine's
    state is read from its published snapshot only.
    """

    def __init__(self, engine: Engine, schedule: ScheduleConfig, *, log: Any = None) -> None:
        self.engine = engine
        self.piece_seed = engine.installation.seed  # fixed for the run: read once, here
        self.schedule = schedule
        self.log = log if log is not None else structlog.get_logger("latentd.schedule")
        self._lock = threading.Lock()
        self._pending_open: bool | None = None
        self._seen: dict[str, dt.datetime] = {}  # recording key → its end, once started (or missed)
        self._running: set[str] = set()  # keys of the spans the current recording covers
        self._recording = False
        self._last_reseed: dt.datetime | None = None
        self._last_check: dt.datetime | None = None
        self.last_check_monotonic = -float("inf")

    def check(self, now: dt.datetime) -> list[c.Command]:
        """Bring the engine in line with the schedule at ``now`` (aware); returns the commands submitted."""
        now = now.astimezone(dt.UTC)  # compare instants, never wall-clock fields (see opening.py)
        with self._lock:
            out: list[c.Command] = []
            self._opening(now, out)
            self._recordings(now, out)
            self._reseed(now, out)
            for cmd in out:
                self.engine.submit(cmd)
                self.log.info("schedule.submit", at=now.isoformat(), **cmd.to_json())
            self._last_check = now
            self.last_check_monotonic = time.monotonic()
            return out

    def _opening(self, now: dt.datetime, out: list[c.Command]) -> None:
        want = is_open(self.schedule, now)
        if self.engine.snapshot.open == want:
            self._pending_open = None
            return
        if self._pending_open == want:
            return  # submitted already; the engine applies it at its next block
        fade = self.schedule.fade_in_s if want else self.schedule.fade_out_s
        out.append(c.SetOpen(want, fade))
        self._pending_open = want

    def _recordings(self, now: dt.datetime, out: list[c.Command]) -> None:
        if not self.schedule.recordings:
            return
        due = recordings_due(self.schedule, now)
        self._report_missed(now, {i.key for i in due})
        for iv in due:
            if iv.key not in self._seen:
                self._seen[iv.key] = iv.end
                self._running.add(iv.key)
        self._running &= {i.key for i in due}
        if self._running and not self._recording:
            label = next(i.label for i in due if i.key in self._running)
            out.append(c.StartRecording(label))
            self._recording = True
        elif not self._running and self._recording:
            out.append(c.StopRecording())
            self._recording = False
        for key, end in list(self._seen.items()):
            if end < now - _KEEP_SEEN:
                del self._seen[key]

    def _report_missed(self, now: dt.datetime, due: set[str]) -> None:
        # A forward clock jump (or a long stall) can skip a whole recording: say so, once.
        if self._last_check is None or now <= self._last_check:
            return
        since = max(self._last_check, now - _MISSED_SCAN)
        tz = self.schedule.tz
        spans: list[Interval] = recording_intervals(
            self.schedule, since.astimezone(tz).date(), now.astimezone(tz).date()
        )
        for iv in spans:
            if since < iv.start <= now and iv.key not in due and iv.key not in self._seen:
                self._seen[iv.key] = iv.end
                self.log.warning(
                    "schedule.recording_missed",
                    label=iv.label,
                    start=iv.start.isoformat(),
                    at=now.isoformat(),
                )

    def _reseed(self, now: dt.datetime, out: list[c.Command]) -> None:
        last = last_reseed(self.schedule, now)
        if last is None or (self._last_reseed is not None and last <= self._last_reseed):
            return  # a backward clock jump never reseeds to an older day
        self._last_reseed = last
        day = last.astimezone(self.schedule.tz).date()
        for name, voice in self.engine.snapshot.voices.items():
            seed = day_seed(self.piece_seed, day, name)
            if voice.seed != seed:
                out.append(c.ReseedVoice(name, seed))
        # The voices of the other machines of several: the command goes to their nodes (node_control).
        for name in sorted(self.engine.remote.owners):
            out.append(c.ReseedVoice(name, day_seed(self.piece_seed, day, name)))


class ScheduleHandle:
    """A running schedule: ``poll()`` from the main loop (optional), ``stop()`` at shutdown."""

    def __init__(
        self,
        controller: ScheduleController,
        scheduler: BackgroundScheduler,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.controller = controller
        self.scheduler = scheduler
        self._clock = clock

    def check_now(self) -> list[c.Command]:
        """Run a check at the current time."""
        return self.controller.check(self._clock())

    def poll(self) -> None:
        """Check if no check ran for ``check_every_s`` of monotonic time.

        APScheduler counts its interval in wall-clock time, so after a backward clock jump of N minutes
        its next run comes N minutes late; a main loop that calls this keeps the checks regular.
        """
        overdue = time.monotonic() - self.controller.last_check_monotonic
        if overdue >= self.controller.schedule.check_every_s:
            self.check_now()

    def stop(self) -> None:
        """Stop the scheduler thread (running checks finish; nothing more is submitted)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)


def start_scheduler(
    engine: Engine,
    config: Config,
    log: Any = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
) -> ScheduleHandle:
    """Check the schedule once now (the engine starts in the state it says), then every ``check_every_s``.

    Args:
        engine: The engine commands are submitted to.
        config: The loaded config; its ``[schedule]`` section is used.
        log: A structlog logger (default ``latentd.schedule``).
        clock: Returns the current aware time (default: now in the schedule's zone); tests pass a fake.
    """
    schedule = config.venue.schedule
    tz = schedule.tz
    now: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(tz))
    controller = ScheduleController(engine, schedule, log=log)
    controller.check(now())

    def job() -> None:
        try:
            controller.check(now())
        except Exception:  # a failed check must not stop later ones
            controller.log.exception("schedule.check_failed")

    scheduler = BackgroundScheduler(
        timezone=tz,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            # A late check is still worth running: it reads the clock when it runs.
            "misfire_grace_time": max(1, int(schedule.check_every_s * 10)),
        },
    )
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=schedule.check_every_s, timezone=tz),
        id="latentd-schedule-check",
        name="schedule check",
    )
    scheduler.start()
    controller.log.info(
        "schedule.started",
        timezone=schedule.timezone,
        check_every_s=schedule.check_every_s,
        open=is_open(schedule, now()),
    )
    return ScheduleHandle(controller, scheduler, now)
