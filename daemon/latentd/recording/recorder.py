"""The session recorder: the master bus (all N channels) to rotating files, from its own ring.

Threads:
    engine worker — :meth:`Recorder.on_block`, :meth:`Recorder.on_latent`, :meth:`Recorder.on_command`
        and the StartRecording/StopRecording handlers. They copy into preallocated memory or put a small
        tuple on a queue and return: no I/O, no locks that a slow disk could hold.
    writer thread — drains the ring and the event queue in block order; writes audio, latents, the
    command log and ``session.json``; syncs to disk every ``flush_s`` of audio; watches free space.

Files are written so that a SIGKILL or power cut at any moment leaves them readable (DESIGN §8): W64 by
default (libsndfile and sox read a killed W64 to its last write), RF64/WAV with libsndfile's automatic
header updates, FLAC closed by ``latentd recover``. Every ``flush_s`` of audio the file is synced
(``sf_write_sync`` = fsync), so at most that much is lost to a power cut.

Wiring (``latentd run``)::

    recorder = attach_recorder(engine, config, label=args.record_label)  # after Engine(), before blocks
    if args.record:
        recorder.request_start(label)
    ...
    recorder.close()  # in shutdown, before the engine worker stops

Replay alignment: a session records engine blocks ``start_block`` .. ``stop_block - 1``; the command log
holds every command applied since engine block 0, so ``latentd replay`` can render from block 0 and cut.
"""

from __future__ import annotations

import math
import queue
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import structlog

from latentd.config import Config
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.recording.config import RecordingConfig
from latentd.recording.session import (
    SESSION_FILE,
    CommandLog,
    LatentRecording,
    config_hash,
    copy_configs,
    fsync_dir,
    set_header_auto,
    sha256_file,
    write_json_atomic,
)

log = structlog.get_logger("latentd.recorder")

POLL_S = 0.02  # the writer looks for new blocks this often; the ring holds seconds, so this is plenty
DISK_CHECK_S = 1.0  # free space is checked after every second of audio
WAV_LIMIT_BYTES = 4 * 2**30 - 2**20  # plain WAV cannot pass 4 GiB: rotate before
FORMATS = {
    "w64": ("W64", ".w64"),
    "rf64": ("RF64", ".wav"),
    "wav": ("WAV", ".wav"),
    "flac": ("FLAC", ".flac"),
}
SUBTYPES = {"float32": ("FLOAT", 4), "pcm24": ("PCM_24", 3)}
STOP_AT_END = math.inf  # a stop event that waits for every block already in the ring


def realtime(func: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a function called from the engine worker for every block: copy and return, nothing more."""
    return func


class DiskUsage(NamedTuple):
    """What ``shutil.disk_usage`` returns."""

    total: int
    used: int
    free: int


class _Event(NamedTuple):
    kind: str  # "start", "stop", "command", "latent"
    block: float  # applies before this engine block
    data: Any


class BlockRing:
    """Preallocated single-producer/single-consumer ring of master blocks, stored frames × channels.

    The engine worker writes (``push``), the writer thread reads (``peek``/``advance``). Counters only
    grow; a full ring drops the new block and counts it.
    """

    def __init__(self, n_slots: int, blocksize: int, n_channels: int) -> None:
        self.slots = np.zeros((n_slots, blocksize, n_channels), dtype=np.float32)
        self.block_index = np.zeros(n_slots, dtype=np.int64)
        self.n_slots = n_slots
        self.written = 0
        self.read = 0
        self.dropped = 0

    @realtime
    def push(self, index: int, block: np.ndarray) -> bool:
        """Copy ``block`` [n_channels, blocksize]; False (and counted) when the ring is full."""
        if self.written - self.read >= self.n_slots:
            self.dropped += 1
            return False
        slot = self.written % self.n_slots
        np.copyto(self.slots[slot], block.T)
        self.block_index[slot] = index
        self.written += 1  # published last: the reader sees the slot only once it is complete
        return True

    def peek(self) -> tuple[int, np.ndarray]:
        """(block index, frames × channels view) of the oldest unread block."""
        slot = self.read % self.n_slots
        return int(self.block_index[slot]), self.slots[slot]

    def advance(self) -> None:
        """Release the oldest unread block."""
        self.read += 1


@dataclass
class SessionStatic:
    """What a session records about the installation (the same for every session of a run)."""

    piece: str
    venue: str
    venue_path: Path
    piece_file: Path
    config_hash: str
    models: dict[str, dict[str, str]]
    seed: int
    samplerate: int
    blocksize: int
    speakers: list[str]
    torch_threads: int
    fade_in_s: float
    latent_rates: dict[str, int]  # voice → header rate of its latent WAV (sr // ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "piece": self.piece,
            "venue": self.venue,
            "venue_config": str(self.venue_path),
            "piece_file": str(self.piece_file),
            "config_sha256": self.config_hash,
            "models": self.models,
            "seed": self.seed,
            "samplerate": self.samplerate,
            "blocksize": self.blocksize,
            "channels": len(self.speakers),
            "speakers": self.speakers,
            "torch_threads": self.torch_threads,
            "fade_in_s": self.fade_in_s,
        }


@dataclass
class _Segment:
    path: Path
    start_block: int
    start_frame: int  # from the session's first sample
    file: sf.SoundFile | None
    frames: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "start_block": self.start_block,
            "start_frame": self.start_frame,
            "frames": self.frames,
        }


@dataclass
class _Session:
    folder: Path
    base: str
    label: str
    start_block: int
    started_utc: str
    voice_seeds: dict[str, int]
    commands: CommandLog
    segments: list[_Segment] = field(default_factory=list)
    latents: dict[str, LatentRecording] = field(default_factory=dict)
    next_block: int = 0  # the block expected next (a jump means dropped blocks)
    dropped_blocks: int = 0
    paused_blocks: int = 0
    stop_block: int | None = None
    ended_utc: str | None = None
    stop_reason: str | None = None
    disk_floor_hits: int = 0

    @property
    def segment(self) -> _Segment | None:
        seg = self.segments[-1] if self.segments else None
        return seg if seg is not None and seg.file is not None else None


def _utc(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _safe(label: str) -> str:
    """A label fit for a file name: letters, digits, '_', '-', '.'; anything else becomes '-'."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", label)[:64]


class Recorder:
    """Records the engine's master bus, latents and commands into session folders.

    Args:
        engine: The engine whose blocks are recorded (listeners are added by :meth:`attach`).
        config: The ``[recording]`` section.
        folder: Where session folders are made.
        static: What every session records about the installation.
        disk_usage: ``shutil.disk_usage``-like callable (tests pass a controlled one).
        stats: Called from the writer thread when ``session.json`` is written; its dict (e.g. xruns,
            underruns) is stored there.
        now: The wall clock (UTC datetimes) for file names and start/end times.
    """

    def __init__(
        self,
        engine: Engine,
        config: RecordingConfig,
        folder: Path,
        static: SessionStatic,
        *,
        disk_usage: Callable[[Path], Any] = shutil.disk_usage,
        stats: Callable[[], dict[str, Any]] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.config = config
        self.folder = Path(folder)
        self.static = static
        self.disk_usage = disk_usage
        self.stats = stats
        self.now = now
        n_slots = max(2, math.ceil(config.ring_s * engine.samplerate / engine.blocksize))
        self.ring = BlockRing(n_slots, engine.blocksize, engine.n_channels)
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._active = False  # read by the engine worker: copy blocks or not
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latentd-recorder", daemon=True)
        self._session: _Session | None = None
        self._pending: deque[_Event] = deque()
        self._busy = False  # the writer is between taking work and finishing it
        self._paused = False
        self._since_check = 0
        self._since_flush = 0
        fmt, ext = FORMATS[config.format]
        subtype, width = SUBTYPES[config.subtype]
        self._format, self._ext, self._subtype = fmt, ext, subtype
        self._segment_frames = max(1, round(config.segment_s * engine.samplerate))
        if config.format == "wav":
            limit = (WAV_LIMIT_BYTES // (width * engine.n_channels)) // engine.blocksize * engine.blocksize
            self._segment_frames = min(self._segment_frames, limit)
        self.sessions: list[Path] = []  # session folders made so far (written by the writer thread)
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self) -> None:
        """Register the listeners and command handlers on the engine and start the writer thread."""
        self.engine.block_listeners.append(self.on_block)
        self.engine.latent_listeners.append(self.on_latent)
        self.engine.command_listeners.append(self.on_command)
        self.engine.handlers[c.StartRecording] = self.start_from_command
        self.engine.handlers[c.StopRecording] = self.stop_from_command
        self._thread.start()

    def request_start(self, label: str = "") -> None:
        """Ask the engine to start a recording before its next block (any thread)."""
        self.engine.submit(c.StartRecording(label))

    def request_stop(self) -> None:
        """Ask the engine to stop the recording before its next block (any thread)."""
        self.engine.submit(c.StopRecording())

    @property
    def recording(self) -> bool:
        """True while blocks are being taken (also while paused at the disk floor, waiting for space)."""
        return self._active

    @property
    def dropped_blocks(self) -> int:
        """Blocks lost because the writer fell behind (0 in normal use)."""
        return self.ring.dropped

    # ------------------------------------------------------------------ engine worker side
    @realtime
    def on_block(self, block_index: int, block: np.ndarray) -> None:
        """Engine worker, every master block: copy it into the ring while recording. Never blocks."""
        if self._active:
            self.ring.push(block_index, block)

    def on_latent(self, block_index: int, voice: str, z: np.ndarray) -> None:
        """Engine worker, every decoded chunk: queue a copy of z [latent_size, n_frames] while recording."""
        if self._active and self.config.latents:
            self._events.put_nowait(_Event("latent", block_index, (voice, z.copy())))

    def on_command(self, block_index: int, command: c.Command) -> None:
        """Engine worker, every applied command: queue it for the command log."""
        self._events.put_nowait(_Event("command", block_index, command))

    def start_from_command(self, command: c.Command) -> None:
        """Engine worker: a StartRecording is applied; block ``counters.blocks`` is the first recorded."""
        assert isinstance(command, c.StartRecording)
        block = self.engine.counters.blocks
        voice_seeds = {name: int(v.seed) for name, v in self.engine.voices.items()}
        history = list(self.engine.command_log)  # this command is logged after its handler returns
        self._events.put_nowait(_Event("start", block, (command.label, voice_seeds, history)))
        self._active = True

    def stop_from_command(self, command: c.Command) -> None:
        """Engine worker: a StopRecording is applied; block ``counters.blocks`` is not recorded."""
        self._active = False
        # The engine logs this command after its handler returns: carry it so the log ends with it.
        self._events.put_nowait(_Event("stop", self.engine.counters.blocks, ("command", command)))

    # ------------------------------------------------------------------ lifecycle
    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking blocks, write what the ring holds, close the session and end the writer thread."""
        self._active = False
        self._events.put_nowait(_Event("stop", STOP_AT_END, ("shutdown", None)))
        self._quit.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------ writer thread
    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until the writer has handled every block and event taken so far (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            drained = self.ring.read == self.ring.written and self._events.empty() and not self._pending
            if drained and not self._busy:
                return True
            time.sleep(POLL_S / 2)
        return False

    def _run(self) -> None:
        pending = self._pending
        try:
            while True:
                quitting = self._quit.is_set()
                self._busy = True
                while True:
                    try:
                        pending.append(self._events.get_nowait())
                    except queue.Empty:
                        break
                # Every event seen was queued after the blocks before it were pushed: read the ring's
                # count only now, and handle blocks and events in block order.
                written = self.ring.written
                while pending or self.ring.read < written:
                    if self.ring.read < written:
                        index, frames = self.ring.peek()
                        if not pending or index < pending[0].block:
                            self._write_block(index, frames)
                            self.ring.advance()
                            continue
                    self._handle(pending.popleft())
                self._busy = False
                if quitting:
                    break
                time.sleep(POLL_S)
        except BaseException as exc:  # the engine plays on; the error is reported and kept
            self.error = exc
            self._active = False
            log.exception("recording.failed", folder=str(self.folder))
            try:
                self._finish(None, "error")
            except Exception:
                log.exception("recording.close_failed", folder=str(self.folder))

    def _handle(self, event: _Event) -> None:
        session = self._session
        if event.kind == "start":
            if session is not None:
                self._finish(int(event.block), "restarted")
            label, voice_seeds, history = event.data
            self._open_session(int(event.block), label, voice_seeds, history)
        elif event.kind == "stop":
            reason, command = event.data
            stop_block = None if event.block == STOP_AT_END else int(event.block)
            if session is not None and command is not None:
                session.commands.write(int(event.block), command)
            self._finish(stop_block, reason)
        elif session is None or event.block < session.start_block:
            return
        elif event.kind == "command":
            session.commands.write(int(event.block), event.data)
        elif event.kind == "latent" and not self._paused:
            voice, z = event.data
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
                live = self.engine.voices.get(voice)
                rate = (
                    max(1, int(live.latent_rate_hz))
                    if live is not None and n > 1
                    else self.static.latent_rates.get(voice, 1)
                )
                rec = session.latents[voice] = LatentRecording(session.folder, name, z.shape[0], rate)
            rec.write(z)

    def _open_session(
        self, start_block: int, label: str, voice_seeds: dict[str, int], history: list[tuple[int, c.Command]]
    ) -> None:
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
        self._session = _Session(
            folder=folder,
            base=folder.name,
            label=label,
            start_block=start_block,
            started_utc=started.astimezone(UTC).isoformat(),
            voice_seeds=voice_seeds,
            commands=commands,
            next_block=start_block,
        )
        self.sessions.append(folder)
        self._paused = False
        self._since_check = self._since_flush = 0
        log.info("recording.started", folder=str(folder), block=start_block)
        if self._below_floor():
            self._hit_floor()
            return
        self._open_segment(start_block)
        self._write_json()

    def _new_file(self, path: Path) -> sf.SoundFile:
        f = sf.SoundFile(
            path,
            "w",
            self.engine.samplerate,
            self.engine.n_channels,
            subtype=self._subtype,
            format=self._format,
        )
        if self._format in ("WAV", "RF64"):
            set_header_auto(f)
        return f

    def _open_segment(self, block: int, start_frame: int | None = None) -> None:
        """Open the next segment; it starts at engine block ``block`` (inside it when rotating)."""
        session = self._session
        assert session is not None
        path = session.folder / f"{session.base}_{len(session.segments):03d}{self._ext}"
        if start_frame is None:
            start_frame = (block - session.start_block) * self.engine.blocksize
        session.segments.append(_Segment(path, block, start_frame, self._new_file(path)))
        fsync_dir(session.folder)

    def _close_segment(self) -> None:
        session = self._session
        seg = session.segment if session else None
        if seg is not None and seg.file is not None:
            try:
                seg.file.close()
            except (OSError, sf.SoundFileError, RuntimeError) as exc:
                log.error("recording.close_failed", file=str(seg.path), error=str(exc))
            seg.file = None

    def _write_block(self, index: int, frames: np.ndarray) -> None:
        session = self._session
        if session is None or index < session.start_block:
            return  # taken after a stop, or before this session's start
        if index > session.next_block and not self._paused:
            session.dropped_blocks += index - session.next_block
            log.warning("recording.dropped", blocks=index - session.next_block, at_block=index)
        session.next_block = index + 1
        if self._paused:
            session.paused_blocks += 1
            self._since_check += frames.shape[0]
            if self._since_check >= DISK_CHECK_S * self.engine.samplerate:
                self._since_check = 0
                if not self._below_floor():
                    log.info("recording.resumed", block=index, folder=str(session.folder))
                    self._paused = False
                    self._open_segment(index)
                    self._since_flush = 0
                    self._write_json()
            if self._paused:
                return
        try:
            self._write_frames(index, frames)
        except (OSError, sf.SoundFileError, RuntimeError) as exc:
            # A full disk (ENOSPC) is the floor reached the hard way.
            log.error("recording.write_failed", error=str(exc), folder=str(session.folder))
            self._hit_floor()
            return
        self._since_check += frames.shape[0]
        self._since_flush += frames.shape[0]
        if self._since_flush >= self.config.flush_s * self.engine.samplerate:
            self._sync()
        if self._since_check >= DISK_CHECK_S * self.engine.samplerate:
            self._since_check = 0
            if self._below_floor():
                self._hit_floor()

    def _write_frames(self, index: int, frames: np.ndarray) -> None:
        session = self._session
        assert session is not None
        done = 0
        while done < frames.shape[0]:
            seg = session.segment
            assert seg is not None
            take = min(frames.shape[0] - done, self._segment_frames - seg.frames)
            assert seg.file is not None
            seg.file.write(frames[done : done + take])
            seg.frames += take
            done += take
            if seg.frames >= self._segment_frames:
                # Rotate exactly at the boundary, even inside a block: segments stay contiguous.
                self._close_segment()
                self._open_segment(index, seg.start_frame + seg.frames)
                for rec in session.latents.values():
                    rec.save_npy()
                self._write_json()

    def _sync(self) -> None:
        self._since_flush = 0
        session = self._session
        if session is None:
            return
        seg = session.segment
        if seg is not None and seg.file is not None:
            seg.file.flush()  # sf_write_sync: fsync of the file (and its header for W64/RF64/WAV)
        for rec in session.latents.values():
            rec.flush()
        session.commands.sync()

    def _below_floor(self) -> bool:
        usage = self.disk_usage(self.folder)
        floor_bytes = max(self.config.min_free_bytes, usage.total * self.config.min_free_percent / 100.0)
        return bool(usage.free < floor_bytes)

    def _hit_floor(self) -> None:
        session = self._session
        assert session is not None
        usage = self.disk_usage(self.folder)
        session.disk_floor_hits += 1
        self._close_segment()
        log.error(
            "recording.disk_floor",
            folder=str(self.folder),
            free_bytes=int(usage.free),
            min_free_bytes=self.config.min_free_bytes,
            min_free_percent=self.config.min_free_percent,
            action="paused until space returns" if self.config.resume_when_space else "recording stopped",
        )
        if self.config.resume_when_space:
            self._paused = True
            self._since_check = 0
            self._write_json()
        else:
            self._active = False  # the engine stops copying blocks; playback is not touched
            self._finish(None, "disk_floor")

    def _finish(self, stop_block: int | None, reason: str) -> None:
        session = self._session
        if session is None:
            return
        self._close_segment()
        for rec in session.latents.values():
            try:
                rec.close()
            except (OSError, sf.SoundFileError, RuntimeError) as exc:
                log.error("recording.latents_failed", voice=rec.voice, error=str(exc))
        session.commands.close()
        session.stop_block = session.next_block if stop_block is None else min(stop_block, session.next_block)
        session.ended_utc = self.now().astimezone(UTC).isoformat()
        session.stop_reason = reason
        self._paused = False
        self._write_json()
        log.info(
            "recording.stopped",
            folder=str(session.folder),
            reason=reason,
            frames=sum(s.frames for s in session.segments),
            dropped_blocks=session.dropped_blocks,
        )
        self._session = None

    def _write_json(self) -> None:
        session = self._session
        assert session is not None
        data: dict[str, Any] = {
            "format": self.config.format,
            "subtype": self.config.subtype,
            **self.static.to_json(),
            "label": session.label,
            "voice_seeds": session.voice_seeds,
            "start_utc": session.started_utc,
            "end_utc": session.ended_utc,
            "start_block": session.start_block,
            "stop_block": session.stop_block,
            "stop_reason": session.stop_reason,
            "segments": [s.to_json() for s in session.segments],
            "frames": sum(s.frames for s in session.segments),
            "dropped_blocks": session.dropped_blocks,
            "ring_dropped_blocks": self.ring.dropped,
            "paused_blocks": session.paused_blocks,
            "disk_floor_hits": session.disk_floor_hits,
            "latents": {
                v: {"wav": r.wav_path.name, "npy": r.npy_path.name, "frames": r.frames}
                for v, r in session.latents.items()
            },
        }
        if self.stats is not None:
            try:
                data["stats"] = dict(self.stats())
            except Exception as exc:  # a status source must never break the recording
                data["stats"] = {"error": str(exc)}
        write_json_atomic(session.folder / SESSION_FILE, data)


def session_static(engine: Engine, config: Config) -> SessionStatic:
    """What every session of this run records: names, hashes, seeds, rates, speakers."""
    inst = engine.installation
    models = {
        name: {"path": str(config.model_path(name)), "sha256": sha256_file(config.model_path(name))}
        for name in config.piece.models
    }
    rates = {}
    for name, voice in config.piece.voices.items():
        info = inst.models[voice.model].info
        rates[name] = max(1, info.sr // info.ratio)
    fade = engine.fade_in_s
    return SessionStatic(
        piece=config.piece.name,
        venue=config.venue.name,
        venue_path=config.venue_path,
        piece_file=config.piece_file,
        config_hash=config_hash(config.venue_path, config.piece_file),
        models=models,
        seed=engine.seed,
        samplerate=engine.samplerate,
        blocksize=engine.blocksize,
        speakers=[s.name for s in engine.layout.speakers],
        torch_threads=config.venue.audio.torch_threads,
        fade_in_s=float(fade),
        latent_rates=rates,
    )


def recording_folder(config: Config) -> Path:
    """The absolute recordings folder (``[recording] folder`` is relative to the venue config)."""
    return (config.venue_path.parent / config.venue.recording.folder).resolve()


def attach_recorder(
    engine: Engine,
    config: Config,
    label: str = "",
    *,
    stats: Callable[[], dict[str, Any]] | None = None,
    disk_usage: Callable[[Path], Any] = shutil.disk_usage,
) -> Recorder:
    """Build a :class:`Recorder` for ``engine``, hook it up and start its writer thread.

    Call it right after ``Engine(...)`` and before the first ``next_block()``, so that recordings and
    the command log count blocks from the engine's block 0 (replay depends on it). With
    ``[recording] mode = "always"`` a recording starts at the next block (labelled ``label``). Call
    :meth:`Recorder.close` at shutdown, before the engine worker stops.

    Args:
        engine: The engine to record.
        config: The loaded configuration (its ``[recording]`` section and file paths).
        label: Added to the file names of the recording started by ``mode = "always"``.
        stats: Optional callable giving counters for ``session.json`` (``{"xruns": ..., "underruns": ...}``).
        disk_usage: Free-space probe, ``shutil.disk_usage`` by default.
    """
    rec_cfg = config.venue.recording
    recorder = Recorder(
        engine,
        rec_cfg,
        recording_folder(config),
        session_static(engine, config),
        disk_usage=disk_usage,
        stats=stats,
    )
    recorder.attach()
    if rec_cfg.mode == "always":
        recorder.request_start(label)
    return recorder
