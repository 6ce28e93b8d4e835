"""Writing one session at a time: its folder, audio segments, latents, command log and ``session.json``.

Runs in the recorder's writer thread only (see :mod:`latentd.recording.recorder` for the threads). Every
``flush_s`` of audio the files are synced, so at most that much is lost to a power cut; every second of
audio the free space is checked against the floor, where recording pauses (or stops) and playback goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from latentd.atomic import write_json_atomic
from latentd.engine import commands as c
from latentd.recording.config import RecordingConfig
from latentd.recording.segments import WRITE_ERRORS, SegmentFiles
from latentd.recording.session import CommandLog, LatentRecording, copy_configs
from latentd.recording.session_file import SESSION_FILE, LatentFiles, SessionInfo, SessionStatic

log = structlog.get_logger("latentd.recorder")

DISK_CHECK_S = 1.0  # free space is checked after every second of audio


@dataclass
class _Session:
    folder: Path
    label: str
    start_block: int
    started_utc: str
    voice_seeds: dict[str, int]
    commands: CommandLog
    audio: SegmentFiles
    latents: dict[str, LatentRecording] = field(default_factory=dict)
    next_block: int = 0  # the block expected next (a jump means dropped blocks)
    dropped_blocks: int = 0
    paused_blocks: int = 0
    stop_block: int | None = None
    ended_utc: str | None = None
    stop_reason: str | None = None
    disk_floor_hits: int = 0


def _utc(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _safe(label: str) -> str:
    """A label fit for a file name: letters, digits, '_', '-', '.'; anything else becomes '-'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", label)[:64]


class SessionWriter:
    """Writes the session in progress (at most one) into its own folder below ``folder``.

    Args:
        config: The ``[recording]`` section.
        folder: Where session folders are made.
        static: What every session records about the installation.
        disk_usage: ``shutil.disk_usage``-like callable.
        stats: Called when ``session.json`` is written; its dict (e.g. xruns, underruns) is stored there.
        now: The wall clock (UTC datetimes) for folder names and start/end times.
        ring_dropped: Blocks the recorder's ring has refused so far (stored in ``session.json``).
        stop_taking: Called when the disk floor ends recording: the engine stops handing blocks over.
        voice_rate_hz: The latent rate of a voice's current model (for the latent file of a swapped voice).
    """

    def __init__(
        self,
        config: RecordingConfig,
        folder: Path,
        static: SessionStatic,
        *,
        disk_usage: Callable[[Path], Any],
        stats: Callable[[], dict[str, Any]] | None,
        now: Callable[[], datetime],
        ring_dropped: Callable[[], int],
        stop_taking: Callable[[], None],
        voice_rate_hz: Callable[[str], float | None],
    ) -> None:
        self.config = config
        self.folder = folder
        self.static = static
        self.disk_usage = disk_usage
        self.stats = stats
        self.now = now
        self.ring_dropped = ring_dropped
        self.stop_taking = stop_taking
        self.voice_rate_hz = voice_rate_hz
        self.samplerate = static.samplerate
        self.blocksize = static.blocksize
        self.sessions: list[Path] = []  # session folders made so far
        self.session: _Session | None = None
        self.paused = False
        self._since_check = 0
        self._since_flush = 0

    # ------------------------------------------------------------------ events
    def start(
        self,
        start_block: int,
        label: str,
        voice_seeds: dict[str, int],
        history: Iterable[tuple[int, c.Command]],
    ) -> None:
        """Open a session whose first frame is engine block ``start_block``; ``history`` starts its log."""
        started = self.now()
        parts = [_safe(self.static.piece), _safe(self.static.venue), _utc(started)]
        if label:
            parts.append(_safe(label))
        base = "_".join(parts)
        self.folder.mkdir(parents=True, exist_ok=True)
        folder = self.folder / base
        n = 2
        while folder.exists():
            folder = self.folder / f"{base}-{n}"
            n += 1
        folder.mkdir()
        copy_configs(self.static.venue_path, self.static.piece_file, folder)
        commands = CommandLog(folder / "commands.jsonl")
        for block, cmd in history:
            commands.write(block, cmd)
        audio = SegmentFiles(
            self.config,
            folder,
            folder.name,
            samplerate=self.samplerate,
            blocksize=self.blocksize,
            n_channels=len(self.static.speakers),
        )
        self.session = _Session(
            folder=folder,
            label=label,
            start_block=start_block,
            started_utc=started.astimezone(UTC).isoformat(),
            voice_seeds=voice_seeds,
            commands=commands,
            audio=audio,
            next_block=start_block,
        )
        self.sessions.append(folder)
        self.paused = False
        self._since_check = self._since_flush = 0
        log.info("recording.started", folder=str(folder), block=start_block)
        if self._below_floor():
            self._hit_floor()
            return
        self._open_segment(start_block)
        self._write_json()

    def command(self, block: int, command: c.Command) -> None:
        """Log a command applied before engine block ``block``."""
        if self.session is not None:
            self.session.commands.write(block, command)

    def latent(self, voice: str, z: np.ndarray) -> None:
        """Append z [latent_size, n_frames] to the voice's latent files (a new pair when its size changes)."""
        session = self.session
        if session is None or self.paused:
            return
        rec = session.latents.get(voice)
        if rec is not None and rec.latent_size != z.shape[0]:
            # The voice was swapped to a model of another latent size: its latents go on in a new
            # file pair, <voice>.<n>, and the old pair is kept (finished with the others at stop).
            n = sum(1 for key in session.latents if key == voice or key.startswith(f"{voice}#")) + 1
            session.latents[f"{voice}#{n - 1}"] = rec
            rec = None
        if rec is None:
            n = sum(1 for key in session.latents if key.startswith(f"{voice}#")) + 1
            name = voice if n == 1 else f"{voice}.{n}"
            live = self.voice_rate_hz(voice) if n > 1 else None
            rate = max(1, int(live)) if live is not None else self.static.latent_rates.get(voice, 1)
            rec = session.latents[voice] = LatentRecording(session.folder, name, z.shape[0], rate)
        rec.write(z)

    def block(self, index: int, frames: np.ndarray) -> None:
        """Write engine block ``index`` (frames × channels), unless paused at the disk floor."""
        session = self.session
        if session is None or index < session.start_block:
            return  # taken after a stop, or before this session's start
        if index > session.next_block and not self.paused:
            session.dropped_blocks += index - session.next_block
            log.warning("recording.dropped", blocks=index - session.next_block, at_block=index)
        session.next_block = index + 1
        if self.paused:
            session.paused_blocks += 1
            self._since_check += frames.shape[0]
            if self._since_check >= DISK_CHECK_S * self.samplerate:
                self._since_check = 0
                if not self._below_floor():
                    log.info("recording.resumed", block=index, folder=str(session.folder))
                    self.paused = False
                    self._open_segment(index)
                    self._since_flush = 0
                    self._write_json()
            if self.paused:
                return
        try:
            session.audio.write(index, frames, self._rotated)
        except WRITE_ERRORS as exc:
            # A full disk (ENOSPC) is the floor reached the hard way.
            log.error("recording.write_failed", error=str(exc), folder=str(session.folder))
            self._hit_floor()
            return
        self._since_check += frames.shape[0]
        self._since_flush += frames.shape[0]
        if self._since_flush >= self.config.flush_s * self.samplerate:
            self._sync()
        if self._since_check >= DISK_CHECK_S * self.samplerate:
            self._since_check = 0
            if self._below_floor():
                self._hit_floor()

    def finish(self, stop_block: int | None, reason: str) -> None:
        """Close the session in progress, if any; ``stop_block`` None: after the last block written."""
        session = self.session
        if session is None:
            return
        session.audio.close()
        for rec in session.latents.values():
            try:
                rec.close()
            except WRITE_ERRORS as exc:
                log.error("recording.latents_failed", voice=rec.voice, error=str(exc))
        session.commands.close()
        session.stop_block = session.next_block if stop_block is None else min(stop_block, session.next_block)
        session.ended_utc = self.now().astimezone(UTC).isoformat()
        session.stop_reason = reason
        self.paused = False
        self._write_json()
        log.info(
            "recording.stopped",
            folder=str(session.folder),
            reason=reason,
            frames=session.audio.frames,
            dropped_blocks=session.dropped_blocks,
        )
        self.session = None

    # ------------------------------------------------------------------ files
    def _open_segment(self, block: int) -> None:
        session = self.session
        assert session is not None
        session.audio.open(block, (block - session.start_block) * self.blocksize)

    def _rotated(self) -> None:
        session = self.session
        assert session is not None
        for rec in session.latents.values():
            rec.save_npy()
        self._write_json()

    def _sync(self) -> None:
        self._since_flush = 0
        session = self.session
        if session is None:
            return
        session.audio.sync()
        for rec in session.latents.values():
            rec.flush()
        session.commands.sync()

    def _below_floor(self) -> bool:
        usage = self.disk_usage(self.folder)
        floor_bytes = max(self.config.min_free_bytes, usage.total * self.config.min_free_percent / 100.0)
        return bool(usage.free < floor_bytes)

    def _hit_floor(self) -> None:
        session = self.session
        assert session is not None
        usage = self.disk_usage(self.folder)
        session.disk_floor_hits += 1
        session.audio.close()
        log.error(
            "recording.disk_floor",
            folder=str(self.folder),
            free_bytes=int(usage.free),
            min_free_bytes=self.config.min_free_bytes,
            min_free_percent=self.config.min_free_percent,
            action="paused until space returns" if self.config.resume_when_space else "recording stopped",
        )
        if self.config.resume_when_space:
            self.paused = True
            self._since_check = 0
            self._write_json()
        else:
            self.stop_taking()  # the engine stops handing blocks over; playback is not touched
            self.finish(None, "disk_floor")

    def _write_json(self) -> None:
        session = self.session
        assert session is not None
        stats: dict[str, Any] | None = None
        if self.stats is not None:
            try:
                stats = dict(self.stats())
            except Exception as exc:  # a status source must never break the recording
                stats = {"error": str(exc)}
        info = SessionInfo(
            format=self.config.format,
            subtype=self.config.subtype,
            static=self.static,
            label=session.label,
            voice_seeds=session.voice_seeds,
            start_utc=session.started_utc,
            end_utc=session.ended_utc,
            start_block=session.start_block,
            stop_block=session.stop_block,
            stop_reason=session.stop_reason,
            segments=[s.info() for s in session.audio.segments],
            dropped_blocks=session.dropped_blocks,
            ring_dropped_blocks=self.ring_dropped(),
            paused_blocks=session.paused_blocks,
            disk_floor_hits=session.disk_floor_hits,
            latents={
                v: LatentFiles(r.wav_path.name, r.npy_path.name, r.frames) for v, r in session.latents.items()
            },
            stats=stats,
        )
        write_json_atomic(session.folder / SESSION_FILE, info.to_json())
