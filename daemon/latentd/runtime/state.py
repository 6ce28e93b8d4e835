"""The state file: programme position, voice seeds and operator overrides, kept across restarts.

Written atomically (temp file in the same folder, fsync, rename, fsync of the folder), so a power cut
leaves either the old file or the new one, never half of one. Read at start-up: a missing, unreadable or
foreign file (another piece, changed sections) means the piece starts from its beginning, with a warning.
The opening state is not stored: it comes from the schedule and the clock.

The file is not trusted: every value is checked by the rules an OSC command meets (the command's field
types and ``bounds``, the piece's voices, sections and dimensions), and a value that fails is skipped
with a warning naming it. Only operator overrides are restored; an action found among them (starting a
recording, opening the venue, a section change) is skipped, never run.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from latentd.atomic import write_atomic
from latentd.config import Config
from latentd.engine import commands as c
from latentd.engine.engine import Engine

if TYPE_CHECKING:
    from latentd.engine.snapshot import EngineSnapshot

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
        if not isinstance(data["programme"], dict):
            raise ValueError("programme must be a table")
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
    commands: list[c.Command] = []
    programme = _checked(
        lambda: c.RestoreProgramme(p["step"], p["section"], p["position_s"], p.get("hold", False)),
        snapshot,
    )
    if isinstance(programme, str):
        log.warning(
            "state.programme_skipped",
            path=str(path),
            programme=p,
            reason=programme,
            action="the programme starts from its beginning",
        )
    else:
        commands.append(programme)
    for name, seed in data["seeds"].items():
        voice = snapshot.voices.get(name)
        if voice is None or seed == voice.seed:
            continue  # a voice no longer in the piece, or nothing to change
        reseed = _checked(functools.partial(c.ReseedVoice, name, seed), snapshot)
        if isinstance(reseed, str):
            log.warning("state.seed_skipped", path=str(path), voice=name, seed=seed, reason=reseed)
        else:
            commands.append(reseed)
    overrides = 0
    for entry in data["overrides"]:
        cmd = _checked(functools.partial(_override_from_json, entry), snapshot)
        if isinstance(cmd, str):
            log.warning("state.override_skipped", path=str(path), override=entry, reason=cmd)
            continue
        commands.append(cmd)
        overrides += 1
    for cmd in commands:
        engine.submit(cmd)
    log.info(
        "state.restored",
        path=str(path),
        section=programme.section if isinstance(programme, c.RestoreProgramme) else None,
        position_s=programme.position_s if isinstance(programme, c.RestoreProgramme) else None,
        overrides=overrides,
    )
    return True


def _override_from_json(entry: object) -> c.Command:
    """An operator override stored as ``{"cmd": name, **fields}``.

    Raises:
        ValueError: not such an entry, or an action rather than an override.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("cmd"), str):
        raise ValueError('an override must be a table {"cmd": name, fields...}')
    cls = c.COMMANDS.get(entry["cmd"])
    if cls is None:
        raise ValueError(f"unknown command {entry['cmd']!r}")
    if cls.override is None or cls.resets_overrides:
        raise ValueError(f"{cls.name} is an action, not an operator override: actions are never restored")
    return c.command_from_json(entry)


def _checked(build: Callable[[], c.Command], snapshot: EngineSnapshot) -> c.Command | str:
    """The command ``build`` makes, checked as an OSC command is, or the reason it is refused."""
    try:
        cmd = build()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
    reason = c.check(cmd, snapshot)
    return cmd if reason is None else reason


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
