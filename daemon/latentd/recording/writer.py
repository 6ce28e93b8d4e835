"""One session at a time: its folder, audio segments, checkpoints, latents, commands, ``session.json``.

Runs in the recorder's writer thread only (see :mod:`latentd.recording.recorder` for the threads). Every
``flush_s`` of audio the files are synced and ``session.json`` follows within a second or two, so it
describes what is on disk (a kill loses at most that; ``latentd recover`` fixes the rest).

A recorder never lies: a write error (disk full, folder not writable) or free space below the floor
pauses recording with one log line, ``session.json`` and the recorder's status say "paused" and why, and
every second of audio the writer looks whether the cause is gone. When it is, the engine takes a
checkpoint at its next block and recording goes on in a new segment that begins there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from latentd.atomic import open_atomic, write_json_atomic
from latentd.engine import commands as c
from latentd.engine.checkpoint import Checkpoint
from latentd.recording.config import RecordingConfig
from latentd.recording.disk import below_floor, existing, explain, probe
from latentd.recording.segments import WRITE_ERRORS, Segment, SegmentFiles
from latentd.recording.session import COMMANDS_FILE, CommandLog, SessionLatents, copy_configs
from latentd.recording.session_file import SESSION_FILE, LatentFiles, SessionInfo, SessionStatic

log = structlog.get_logger("latentd.recorder")

DISK_CHECK_S = 1.0  # free space (and, while paused, writability) is checked after every second of audio
JSON_EVERY_S = 1.0  # session.json follows the synced files this often (seconds of audio)
CHECKPOINT_SUFFIX = ".checkpoint"


@dataclass
class _Session:
    folder: Path
    label: str
    start_block: int
    started_utc: str
    voice_seeds: dict[str, int]
    audio: SegmentFiles
    latents: SessionLatents
    commands: CommandLog | None = None
    made: bool = False  # the folder, config copies and command log exist
    open_wanted: bool = False  # a segment opens at the next checkpoint (after a start or a resume)
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
        request_checkpoint: Asks the engine for a checkpoint at its next block (recording resumes there).
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
        request_checkpoint: Callable[[], None] = lambda: None,
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
        self.request_checkpoint = request_checkpoint
        self.samplerate = static.samplerate
        self.blocksize = static.blocksize
        self.sessions: list[Path] = []  # session folders made so far
        self.session: _Session | None = None
        self.paused: str | None = None  # why recording is paused; None while writing
        self._pending: Checkpoint | None = None  # the latest checkpoint not yet given to a segment
        self._since_check = 0
        self._since_flush = 0
        self._since_json = 0

    # ------------------------------------------------------------------ events
    def start(
        self,
        start_block: int,
        label: str,
        voice_seeds: dict[str, int],
        earlier: Iterable[tuple[int, c.Command]] = (),
    ) -> None:
        """Begin a session whose first frame is engine block ``start_block``.

        ``earlier`` are the commands of ``start_block`` applied before the start (they open the log).
        The first segment opens with the engine's checkpoint of ``start_block`` (:meth:`checkpoint`).
        """
        started = self.now()
        parts = [_safe(self.static.piece), _safe(self.static.venue), _utc(started)]
        if label:
            parts.append(_safe(label))
        base = "_".join(parts)
        folder = self.folder / base
        n = 2
        while folder.exists():
            folder = self.folder / f"{base}-{n}"
            n += 1
        audio = SegmentFiles(
            self.config,
            folder,
            folder.name,
            samplerate=self.samplerate,
            blocksize=self.blocksize,
            n_channels=len(self.static.speakers),
        )
        session = self.session = _Session(
            folder=folder,
            label=label,
            start_block=start_block,
            started_utc=started.astimezone(UTC).isoformat(),
            voice_seeds=voice_seeds,
            audio=audio,
            latents=SessionLatents(folder, self.static.latent_rates, self.voice_rate_hz),
            next_block=start_block,
        )
        self.paused = None
        self._since_check = self._since_flush = self._since_json = 0
        try:
            self._make_folder(session, list(earlier))
        except WRITE_ERRORS as exc:
            self._pause(f"cannot write the session folder {folder}: {self._explain(exc)}", block=start_block)
            return
        log.info("recording.started", folder=str(folder), block=start_block)
        if self._below_floor():
            self._hit_floor(start_block)
            return
        session.open_wanted = True
        self._write_json()

    def checkpoint(self, block: int, checkpoint: Checkpoint | None, *, opens: bool = True) -> None:
        """The engine's state before ``block``.

        ``opens``: taken for a start or a resume, it opens the segment that waits for it. Otherwise it is
        kept for the segment a rotation opens at ``block``.
        """
        session = self.session
        if session is None or self.paused is not None:
            return
        if session.open_wanted and opens:
            session.open_wanted = False
            self._pending = checkpoint
            try:
                self._open_segment(block)
            except WRITE_ERRORS as exc:
                self._pause(f"cannot open a segment in {session.folder}: {self._explain(exc)}", block=block)
                return
            self._write_json()
            return
        current = session.audio.current
        if current is not None and current.start_block == block and current.checkpoint is None:
            self._save_checkpoint(current, checkpoint)
            self._write_json()
        else:
            self._pending = checkpoint

    def command(self, block: int, command: c.Command) -> None:
        """Log a command applied before engine block ``block``."""
        session = self.session
        if session is None or session.commands is None or self.paused is not None:
            return
        try:
            session.commands.write(block, command)
        except WRITE_ERRORS as exc:
            self._pause(f"cannot write the command log: {self._explain(exc)}", block=block)

    def latent(self, voice: str, z: np.ndarray) -> None:
        """Append z [latent_size, n_frames] to the voice's latent files (a new pair when its size changes)."""
        session = self.session
        if session is None or self.paused is not None or session.audio.current is None:
            return
        try:
            session.latents.write(voice, z)
        except WRITE_ERRORS as exc:
            self._pause(f"cannot write the latents of voice {voice!r}: {self._explain(exc)}", block=None)

    def block(self, index: int, frames: np.ndarray) -> None:
        """Write engine block ``index`` (frames × channels), unless paused."""
        session = self.session
        if session is None or index < session.start_block:
            return  # taken after a stop, or before this session's start
        if index > session.next_block and self.paused is None and not session.open_wanted:
            session.dropped_blocks += index - session.next_block
            log.warning("recording.dropped", blocks=index - session.next_block, at_block=index)
        session.next_block = index + 1
        if self.paused is not None or session.audio.current is None:
            session.paused_blocks += 1
            if self.paused is not None:
                self._since_check += frames.shape[0]
                if self._since_check >= DISK_CHECK_S * self.samplerate:
                    self._since_check = 0
                    self._try_resume(index)
            return
        try:
            session.audio.write(index, frames, self._rotated)
        except WRITE_ERRORS as exc:
            self._pause(f"cannot write the audio: {self._explain(exc)}", block=index)
            return
        self._since_check += frames.shape[0]
        self._since_flush += frames.shape[0]
        self._since_json += frames.shape[0]
        if self._since_flush >= self.config.flush_s * self.samplerate:
            self._sync(index)
        if self.paused is None and self._since_check >= DISK_CHECK_S * self.samplerate:
            self._since_check = 0
            if self._below_floor():
                self._hit_floor(index)

    def finish(self, stop_block: int | None, reason: str) -> None:
        """Close the session in progress, if any; ``stop_block`` None: after the last block written."""
        session = self.session
        if session is None:
            return
        self._close_files(session)
        session.stop_block = session.next_block if stop_block is None else min(stop_block, session.next_block)
        session.ended_utc = self.now().astimezone(UTC).isoformat()
        session.stop_reason = reason
        self.paused = None
        if session.made:
            self._write_json(on_error="warn")
        log.info(
            "recording.stopped",
            folder=str(session.folder),
            reason=reason,
            frames=session.audio.frames,
            dropped_blocks=session.dropped_blocks,
        )
        self.session = None
        self._pending = None

    # ------------------------------------------------------------------ pause and resume
    def _pause(self, reason: str, *, block: int | None, say: bool = True) -> None:
        """Stop writing (files closed as well as they close), say why once, and wait for the cause to go."""
        session = self.session
        if session is None or self.paused is not None:
            return
        self.paused = reason
        session.open_wanted = False
        self._since_check = 0
        self._close_files(session, pausing=True)
        session.audio.settle()
        if say:
            log.error(
                "recording.paused",
                reason=reason,
                folder=str(session.folder),
                block=block,
                action="playback goes on; recording resumes in a new segment when the cause is gone",
            )
        if session.made:
            self._write_json(on_error="ignore")  # on a full disk it fails for the reason just said

    def _try_resume(self, block: int) -> None:
        """While paused: if the floor is passed and the folder takes a write, ask for a checkpoint."""
        session = self.session
        assert session is not None
        if self._below_floor():
            return
        try:
            if not session.made:
                self._make_folder(session, [])
            probe(session.folder)
            if session.made and session.commands is None:  # opened once the folder takes a write
                session.commands = CommandLog(session.folder / COMMANDS_FILE)
        except WRITE_ERRORS:
            return  # the cause is still there: look again after the next second of audio
        reason = self.paused
        self.paused = None
        session.open_wanted = True
        self.request_checkpoint()
        log.info("recording.resuming", folder=str(session.folder), block=block, paused_for=reason)

    def _explain(self, exc: BaseException) -> str:
        session = self.session
        return explain(exc, session.folder if session is not None and session.made else existing(self.folder))

    def _below_floor(self) -> bool:
        return below_floor(self.config, self.disk_usage, self.folder)

    def _hit_floor(self, block: int) -> None:
        session = self.session
        assert session is not None
        usage = self.disk_usage(existing(self.folder))
        session.disk_floor_hits += 1
        log.error(
            "recording.disk_floor",
            folder=str(self.folder),
            free_bytes=int(usage.free),
            min_free_bytes=self.config.min_free_bytes,
            min_free_percent=self.config.min_free_percent,
            action="paused until space returns" if self.config.resume_when_space else "recording stopped",
        )
        if self.config.resume_when_space:
            # The floor line above is the one line said.
            self._pause(f"free space {int(usage.free)} bytes is below the floor", block=block, say=False)
        else:
            self.stop_taking()  # the engine stops handing blocks over; playback is not touched
            self.finish(None, "disk_floor")

    # ------------------------------------------------------------------ files
    def _make_folder(self, session: _Session, earlier: list[tuple[int, c.Command]]) -> None:
        session.folder.mkdir(parents=True, exist_ok=True)
        if session.folder not in self.sessions:
            self.sessions.append(session.folder)
        copy_configs(self.static.venue_path, self.static.piece_file, session.folder)
        session.commands = CommandLog(session.folder / COMMANDS_FILE)
        for block, cmd in earlier:
            session.commands.write(block, cmd)
        session.made = True

    def _open_segment(self, block: int) -> None:
        session = self.session
        assert session is not None
        segment = session.audio.open(block, (block - session.start_block) * self.blocksize)
        self._since_flush = self._since_json = 0
        log.info(
            "recording.segment",
            file=segment.path.name,
            block=block,
            checkpoint=self._pending is not None and self._pending.block == block,
        )
        self._attach_pending(segment)

    def _attach_pending(self, segment: Segment) -> None:
        pending = self._pending
        if pending is not None and pending.block == segment.start_block:
            self._pending = None
            self._save_checkpoint(segment, pending)

    def _save_checkpoint(self, segment: Segment, checkpoint: Checkpoint | None) -> None:
        """Write the segment's checkpoint beside it (a write error pauses; a state that does not
        serialize leaves the segment without one, and replay starts from an earlier one)."""
        if checkpoint is None:
            return
        try:
            data = checkpoint.dumps()
        except Exception as exc:  # a source whose state does not serialize: replay starts earlier
            log.error("recording.checkpoint_failed", file=segment.path.name, error=str(exc))
            return
        path = segment.path.with_suffix(CHECKPOINT_SUFFIX)
        try:
            with open_atomic(path, "wb") as f:
                f.write(data)
        except WRITE_ERRORS as exc:
            self._pause(
                f"cannot write the checkpoint {path.name}: {self._explain(exc)}", block=segment.start_block
            )
            return
        segment.checkpoint = path.name

    def _rotated(self) -> None:
        session = self.session
        assert session is not None
        segment = session.audio.current
        if segment is not None:
            self._attach_pending(segment)
        session.latents.save_npy()
        self._write_json()

    def _close_files(self, session: _Session, *, pausing: bool = False) -> None:
        """Close every open file.

        ``pausing``: the voices' next latents go into new file pairs, and errors are not logged (the
        pause has said why; closing on a full disk fails for the same reason).
        """
        session.audio.close(quiet=pausing)
        for voice, exc in session.latents.close(retire=pausing):
            if not pausing:
                log.error("recording.latents_failed", voice=voice, error=self._explain(exc))
        if session.commands is not None:
            try:
                session.commands.close()
            except WRITE_ERRORS as exc:
                if not pausing:
                    log.error("recording.commands_failed", error=self._explain(exc))
            session.commands = None

    def _sync(self, block: int) -> None:
        self._since_flush = 0
        session = self.session
        if session is None:
            return
        try:
            session.audio.sync()
            session.latents.flush()
            if session.commands is not None:
                session.commands.sync()
        except WRITE_ERRORS as exc:
            self._pause(f"cannot sync the files: {self._explain(exc)}", block=block)
            return
        if self._since_json >= JSON_EVERY_S * self.samplerate:
            self._write_json()

    def _write_json(self, on_error: str = "pause") -> None:
        """Write ``session.json`` atomically; a write error pauses (``on_error``), is logged ("warn") or
        ignored ("ignore": while pausing, for the reason already said)."""
        session = self.session
        assert session is not None
        self._since_json = 0
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
                v: LatentFiles(r.wav_path.name, r.npy_path.name, r.frames)
                for v, r in session.latents.files.items()
            },
            stats=stats,
            paused=self.paused,
        )
        try:
            write_json_atomic(session.folder / SESSION_FILE, info.to_json())
        except WRITE_ERRORS as exc:
            if on_error == "pause" and self.paused is None:
                self._pause(f"cannot write {SESSION_FILE}: {self._explain(exc)}", block=None)
            elif on_error != "ignore":
                log.warning(
                    "recording.session_file_failed", folder=str(session.folder), error=self._explain(exc)
                )
