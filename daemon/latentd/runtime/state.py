"""The state file: programme position, voice seeds and operator overrides, kept across restarts.

Written atomically (temp file in the same folder, fsync, rename, fsync of the folder), so a power cut
leaves either the old file or the new one, never half of one. Read at start-up: a missing, unreadable or
foreign file (another piece, changed sections) means the piece starts from its beginning, with a warning.
The opening state is not stored: it comes from the schedule and the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

import structlog

from latentd.atomic import write_atomic
from latentd.config import Config
from latentd.engine import commands as c
from latentd.engine.engine import Engine

STATE_VERSION = 1

_log = structlog.get_logger("latentd.runtime.state")


def state_path(config: Config) -> Path:
    """The state file of a venue (``schedule.state_file`` is relative to the venue config)."""
    path = Path(config.venue.schedule.state_file)
    return path if path.is_absolute() else config.venue_path.parent / path


def load_state(path: Path, log: Any = None) -> dict[str, Any] | None:
    """The state stored in ``path``, or None (with a warning) when it is missing or unusable.

    A corrupt file is moved aside to ``<name>.corrupt`` for inspection.
    """
    log = log if log is not None else _log
    if not path.exists():
        log.warning("state.missing", path=str(path), action="starting from the beginning of the piece")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a latentd state file of version {STATE_VERSION}")
        programme = data["programme"]
        for key, kind in (("step", int), ("section", str), ("position_s", float), ("hold", bool)):
            if not isinstance(programme[key], kind):
                raise ValueError(f"programme.{key} must be a {kind.__name__}")
        if not isinstance(data["seeds"], dict) or not isinstance(data["overrides"], list):
            raise ValueError("seeds must be a table and overrides a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        log.warning(
            "state.corrupt",
            path=str(path),
            kept_as=str(aside),
            error=str(exc),
            action="starting from the beginning of the piece",
        )
        return None
    return data


def restore_state(engine: Engine, path: Path, log: Any = None) -> bool:
    """Submit the commands that bring a fresh engine to the stored state; False if it starts afresh.

    Call before the engine renders its first block. The position is the one saved (time spent switched
    off does not count).
    """
    log = log if log is not None else _log
    data = load_state(path, log)
    if data is None:
        return False
    snapshot = engine.snapshot
    if data.get("piece") != snapshot.piece or data.get("sections") != list(snapshot.sections):
        log.warning(
            "state.other_piece",
            path=str(path),
            stored=data.get("piece"),
            action="the piece or its sections changed: starting from the beginning of the piece",
        )
        return False
    p = data["programme"]
    commands: list[c.Command] = [c.RestoreProgramme(p["step"], p["section"], p["position_s"], p["hold"])]
    for name, seed in data["seeds"].items():
        voice = snapshot.voices.get(name)
        if voice is not None and isinstance(seed, int) and seed != voice.seed:
            commands.append(c.ReseedVoice(name, seed))
    for entry in data["overrides"]:
        try:
            cmd = c.command_from_json(entry)
        except (KeyError, TypeError) as exc:
            log.warning("state.override_skipped", override=entry, error=str(exc))
            continue
        reason = c.check(cmd, snapshot)
        if reason is not None:
            log.warning("state.override_skipped", override=entry, error=reason)
            continue
        commands.append(cmd)
    for cmd in commands:
        engine.submit(cmd)
    log.info(
        "state.restored",
        path=str(path),
        section=p["section"],
        position_s=p["position_s"],
        overrides=len(commands) - 1,
    )
    return True


class StateWriter:
    """Writes the engine's state every ``every_s`` seconds (and once more at ``stop()``).

    The state is read from the snapshot the engine publishes after every block, so the section and its
    position, the seeds and the overrides always belong together; the file is written from this
    object's own thread.
    """

    def __init__(self, engine: Engine, path: Path, every_s: float = 30.0, log: Any = None) -> None:
        self.engine = engine
        self.path = path
        self.every_s = every_s
        self.log = log if log is not None else _log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data."""
        s = self.engine.snapshot
        return {
            "version": STATE_VERSION,
            "saved_at": dt.datetime.now(dt.UTC).isoformat(),
            "piece": s.piece,
            "sections": list(s.sections),
            "programme": {
                "step": s.step,
                "section": s.section,
                "position_s": s.position_s,
                "hold": s.hold,
            },
            "seeds": {name: v.seed for name, v in s.voices.items()},
            "overrides": [cmd.to_json() for cmd in s.overrides],
        }

    def write(self) -> None:
        """Write the state file now."""
        try:
            write_atomic(self.path, json.dumps(self.snapshot(), indent=1) + "\n")
        except OSError as exc:  # a full or read-only disk must not stop the music
            self.log.error("state.write_failed", path=str(self.path), error=str(exc))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.write()

    def start(self) -> StateWriter:
        """Start writing in a background thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="latentd-state", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and write a last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.write()
