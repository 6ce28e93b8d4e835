"""The engine process's side of the status page: meters, the status the page shows, and its actions.

:class:`LevelMeter` is a block listener (engine thread): per speaker, the peak and the sum of squares of
the blocks since the feed last took them. It only reads the blocks, so it never changes the audio
(replay stays bit-exact). :class:`WebFeed` is the ``latentd-web-feed`` thread: about ten times a second it
takes the meters, reads the engine's published snapshot and sends one JSON-able status through the pipe
to the web process. It never blocks the engine: the web process acknowledges each status, and while two
are unacknowledged the next is dropped. Actions come back through the same pipe; each becomes the OSC
message it stands for and goes through the OSC route table and the engine's checks, so it is refused for
the same reasons, in the same words, and logged and submitted the same way. The page hears "applied"
only once the engine has applied it (a command listener), or the engine's reason if it refused it then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import structlog

from latentd.config import Config
from latentd.control.opening import is_open, next_changes
from latentd.control.osc_map import Refusal, StatusRequest, map_message
from latentd.control.osc_parse import OscArg, OscMessage
from latentd.engine.commands import Command, SetMasterMute, check
from latentd.engine.engine import Engine
from latentd.recording.recorder import Recorder, recording_folder
from latentd.runtime.logs import recent_problems

log = structlog.get_logger("latentd.web")

FEED_EVERY_S = 0.1  # meters at about 10 Hz
SLOW_EVERY_S = 1.0  # the schedule line, disk space and decode load: once a second
MAX_IN_FLIGHT = 2  # statuses sent but not yet acknowledged; more are dropped, never queued
RECENT_SHOWN = 10  # warnings and errors on the page
MAX_PENDING = 256  # the page's commands waiting for the engine's outcome
PENDING_S = 10.0  # forgotten after this long (the page stops waiting sooner)

# Web actions: name → (OSC address, whether it takes a value). The page's action is that OSC message.
ACTIONS: dict[str, tuple[str, bool]] = {
    "next": ("/section/next", False),
    "hold": ("/section/hold", True),
    "fade_out": ("/master/mute", False),
    "fade_in": ("/master/mute", False),
    "master_gain": ("/master/gain", True),
    "record_start": ("/record/start", False),
    "record_stop": ("/record/stop", False),
}
_FIXED_ARGS: dict[str, tuple[OscArg, ...]] = {"fade_out": (1,), "fade_in": (0,)}


@dataclass(frozen=True)
class WebOrigin:
    """A command sent from the status page: its action and a number the engine's outcome is matched by."""

    action: str
    ident: int


def action_message(name: str, value: Any) -> OscMessage | str:
    """The OSC message a web action stands for, or why it is refused."""
    if name not in ACTIONS:
        return f"unknown action {name!r}; one of {', '.join(ACTIONS)}"
    address, takes_value = ACTIONS[name]
    if takes_value:
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f'{name} takes a number in "value", got {type(value).__name__}'
        args: tuple[OscArg, ...] = (value,)
        tags = "i" if isinstance(value, int) else "f"
    else:
        args = _FIXED_ARGS.get(name, ())
        tags = "i" * len(args)
    return OscMessage(address, tags, args)


class LevelMeter:
    """Per-speaker peak and sum of squares since the last :meth:`take` (a block listener).

    The engine thread adds; the feed thread takes. Taking swaps in fresh arrays, so a block the engine
    is adding while they are taken lands in the old ones and is missed by one window, never counted twice.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._n = engine.n_channels
        self._peak = np.zeros(self._n)
        self._sumsq = np.zeros(self._n)
        self._frames = 0

    def __call__(self, index: int, block: np.ndarray) -> None:
        """Engine thread: add one master block [n_channels, blocksize] (reads it only)."""
        peak, sumsq = self._peak, self._sumsq
        np.maximum(peak, self._engine.limiter.out_peaks, out=peak)  # the limiter found the block's peaks
        sumsq += np.einsum("ij,ij->i", block, block, dtype=np.float64)
        self._frames += block.shape[1]

    def take(self) -> tuple[list[float], list[float]]:
        """Feed thread: (peak, rms) per speaker since the last take, and start again."""
        peak, sumsq, frames = self._peak, self._sumsq, self._frames
        self._peak, self._sumsq, self._frames = np.zeros(self._n), np.zeros(self._n), 0
        rms = np.sqrt(sumsq / frames) if frames else np.zeros(self._n)
        return [round(float(p), 5) for p in peak], [round(float(r), 5) for r in rms]


def _local(when: dt.datetime, tz: dt.tzinfo) -> str:
    """A time as the staff read it: local, with its UTC offset (``2026-12-01 18:00 +01:00``)."""
    return when.astimezone(tz).isoformat(sep=" ", timespec="minutes")


def schedule_line(config: Config, now: dt.datetime, snapshot_open: bool, fading: bool) -> dict[str, Any]:
    """The schedule part of the page: open or closed and why, the next opening and closing."""
    schedule = config.venue.schedule
    tz = schedule.tz
    wanted = is_open(schedule, now)
    events = next_changes(schedule, now, days=8)
    next_open = next((e for e in events if e.kind == "open"), None)
    next_close = next((e for e in events if e.kind == "close"), None)
    label = schedule.exception_label(now.astimezone(tz).date())
    if schedule.hours is None and not label:
        why = "open around the clock (no opening hours)"
    elif wanted:
        why = "within opening hours" + (f" ({label})" if label else "")
    else:
        why = "outside opening hours" + (f" ({label})" if label else "")
    if fading:
        state = "fading in" if snapshot_open else "fading out"
    else:
        state = "playing" if snapshot_open else "closed"
    return {
        "state": state,
        "why": why,
        "timezone": schedule.timezone,
        "now": _local(now, tz),
        "next_open": _local(next_open.when, tz) if next_open else None,
        "next_close": _local(next_close.when, tz) if next_close else None,
    }


class WebFeed(threading.Thread):
    """``latentd-web-feed``: sends the status to the web process and takes its actions (engine process)."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        conn: Connection,
        *,
        recorder: Recorder | None,
        counts: Callable[[], dict[str, int]],
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__(name="latentd-web-feed", daemon=True)
        self.engine = engine
        self.config = config
        self.conn = conn
        self.recorder = recorder
        self.counts = counts
        self.meter = LevelMeter(engine)
        self.url: str | None = None
        self.ready = threading.Event()
        self.dropped = 0
        self._idents = itertools.count(1)
        # Engine thread → feed thread: (ident, None) once applied, (ident, reason) once refused. Bounded.
        self._outcomes: deque[tuple[int, str | None]] = deque(maxlen=MAX_PENDING)
        self._pending: dict[int, tuple[Any, float]] = {}  # ident → (the web process's reply id, when sent)
        tz = config.venue.schedule.tz
        self._clock = clock or (lambda: dt.datetime.now(tz))
        self._stop_event = threading.Event()
        self._in_flight = 0
        self._slow: dict[str, Any] = {}
        self._slow_at = -math.inf
        self._loads: dict[str, tuple[float, float]] = {}  # model → (decode_s, decoded_s) at the last look
        self._born = time.monotonic()
        self._speakers = [{"name": s.name, "azimuth_deg": s.azimuth_deg} for s in engine.layout.speakers]
        engine.block_listeners.append(self.meter)
        engine.refusal_listeners.append(self._engine_refused)
        engine.command_listeners.append(self._engine_applied)

    def _engine_refused(self, command: Command, reason: str) -> None:
        """Engine thread: note that the engine refused a page's command (it logged why)."""
        if isinstance(command.origin, WebOrigin):
            self._outcomes.append((command.origin.ident, reason))

    def _engine_applied(self, block: int, command: Command) -> None:
        """Engine thread: note that the engine applied a page's command."""
        if isinstance(command.origin, WebOrigin):
            self._outcomes.append((command.origin.ident, None))

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (the web process is stopped by its owner)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)

    def run(self) -> None:
        while not self._stop_event.wait(FEED_EVERY_S):
            try:
                self._receive()
                if self._in_flight < MAX_IN_FLIGHT:
                    self.conn.send({"status": self.status()})
                    self._in_flight += 1
                else:
                    self.dropped += 1
            except (EOFError, OSError):
                log.warning("web.feed_stopped", reason="the web process closed its pipe")
                return
            except Exception:  # a bug here must not stop the engine process
                log.exception("web.feed_failed")
                return

    def _receive(self) -> None:
        while self.conn.poll(0):
            msg = self.conn.recv()
            if not isinstance(msg, dict):
                continue
            if "ack" in msg:
                self._in_flight = max(0, self._in_flight - 1)
            elif "ready" in msg:
                self.url = str(msg["ready"])
                self.ready.set()
            elif "error" in msg:
                log.error("web.failed", reason=str(msg["error"]))  # the page is gone; the music plays on
                self.ready.set()
            elif "action" in msg:
                ident = next(self._idents)
                ok, reason = self.act(str(msg["action"]), msg.get("value"), str(msg.get("peer", "")), ident)
                if ok:  # answered once the engine has applied or refused it (see _answer)
                    self._pending[ident] = (msg.get("id"), time.monotonic())
                else:
                    self.conn.send({"reply": msg.get("id"), "ok": False, "reason": reason})
        self._answer()

    def _answer(self) -> None:
        """Tell the web process what the engine made of the page's commands."""
        while self._outcomes:
            ident, reason = self._outcomes.popleft()
            waiting = self._pending.pop(ident, None)
            if waiting is not None:
                self.conn.send({"reply": waiting[0], "ok": reason is None, "reason": reason or ""})
        stale = time.monotonic() - PENDING_S
        for ident in [i for i, (_, sent) in self._pending.items() if sent < stale]:
            del self._pending[ident]  # the page has given up waiting (see web.app ACTION_TIMEOUT_S)

    def act(self, name: str, value: Any, peer: str = "", ident: int = 0) -> tuple[bool, str]:
        """Check and submit a web action as the OSC server would; returns (submitted, reason or "").

        The engine checks it again when it applies it; ``ident`` matches that outcome to the request.
        """
        message = action_message(name, value)
        if isinstance(message, str):
            log.warning("web.refused", action=name, sender=peer, reason=message)
            return False, message
        mapped = map_message(message)
        if isinstance(mapped, Refusal):
            reason: str | None = mapped.reason
        elif isinstance(mapped, StatusRequest):
            reason = "not an action"
        else:
            reason = check(mapped, self.engine.snapshot)
        if reason is not None or not isinstance(mapped, Command):
            log.warning("web.refused", action=name, address=message.address, sender=peer, reason=reason)
            return False, reason or "not an action"
        self.engine.submit(dataclasses.replace(mapped, origin=WebOrigin(name, ident)))
        log.info("web.accepted", action=name, sender=peer, **mapped.to_json())
        return True, ""

    def status(self) -> dict[str, Any]:
        """The page's status: the snapshot's part of ``/status``, meters, schedule, recording, problems."""
        engine = self.engine
        snap = engine.snapshot
        peaks, rms = self.meter.take()
        now = time.monotonic()
        if now - self._slow_at >= SLOW_EVERY_S:
            self._slow_at = now
            self._slow = self._slow_status(snap.open)
        length_s = engine.programme.length / engine.samplerate
        muted = any(isinstance(c, SetMasterMute) and c.mute for c in snap.overrides)
        status: dict[str, Any] = {
            "piece": snap.piece,
            "venue": self.config.venue.name,
            "uptime_s": round(now - self._born, 1),
            "seconds": round(snap.seconds, 2),
            "section": snap.section,
            "sections": list(snap.sections),
            "hold": snap.hold,
            "position_s": round(snap.position_s, 1),
            "section_s": round(length_s, 1),
            "left_s": None if snap.hold else round(max(0.0, length_s - snap.position_s), 1),
            "open": snap.open,
            "muted": muted,
            "master_gain": round(snap.master_gain, 4),
            "limiter_db": round(snap.limiter_db, 2) + 0.0,  # + 0.0: never "-0.0" on the page
            "speakers": [dict(s, peak=p, rms=r) for s, p, r in zip(self._speakers, peaks, rms, strict=True)],
            "refused_commands": snap.counters.get("refused_commands", 0),
            "voice_faults": snap.counters.get("voice_faults", 0),
            "problems": list(recent_problems)[-RECENT_SHOWN:],
            # Several machines: each worker's voice with its node, there or lost.
            "remote_voices": {} if snap.remote is None else snap.remote.status(),
            **self.counts(),
            **self._slow,
        }
        return status

    def _slow_status(self, snapshot_open: bool) -> dict[str, Any]:
        """Once a second: the schedule line, decode loads and the recording with its disk space."""
        engine = self.engine
        fading = engine.fade.moving
        try:
            schedule: dict[str, Any] = schedule_line(self.config, self._clock(), snapshot_open, fading)
        except (ValueError, OverflowError) as exc:  # a broken clock must not stop the page
            schedule = {"state": "playing" if snapshot_open else "closed", "why": f"schedule unknown: {exc}"}
        models = []
        for group in list(engine.groups):
            spent, made = group.decode_s, group.decoded_s
            before = self._loads.get(group.name, (0.0, 0.0))
            self._loads[group.name] = (spent, made)
            audio_s = made - before[1]
            load = (spent - before[0]) / audio_s if audio_s > 0 else None
            models.append({"name": group.name, "load": None if load is None else round(load, 3)})
        return {"schedule": schedule, "models": models, "recording": self._recording()}

    def _recording(self) -> dict[str, Any]:
        recorder = self.recorder
        out: dict[str, Any] = dict(recorder.status()) if recorder is not None else {"state": "off"}
        folder = recording_folder(self.config)
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            out["disk_free_bytes"] = shutil.disk_usage(probe).free
        except OSError:
            out["disk_free_bytes"] = None
        session = recorder.writer.session if recorder is not None else None
        if session is not None and out["state"] != "off":
            current = session.audio.current or (
                session.audio.segments[-1] if session.audio.segments else None
            )
            out["file"] = str(session.folder / current.path.name) if current is not None else None
            out["duration_s"] = round(session.audio.frames / self.engine.samplerate, 1)
        return out
