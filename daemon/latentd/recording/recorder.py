"""The session recorder: the master bus (all N channels) to rotating files, from its own ring.

Threads:
    engine worker — :meth:`Recorder.on_block`, :meth:`Recorder.on_latent`, :meth:`Recorder.on_command`
        and the StartRecording/StopRecording handlers. They copy into preallocated memory or put a small
        tuple on a queue and return: no I/O, no locks that a slow disk could hold. They read only what
        they are handed and the engine's published snapshot.
    writer thread — drains the ring and the event queue in block order and hands them to a
        :class:`~latentd.recording.writer.SessionWriter` (audio, latents, command log, ``session.json``).
        Of the engine it reads only ``engine.snapshot``; an event of block ``b`` that needs the engine's
        state (a start, a latent chunk) waits until the snapshot has moved past ``b``.

Files are written so that a SIGKILL or power cut at any moment leaves them readable (see
:mod:`latentd.recording.segments`); every ``flush_s`` of audio they are synced, so at most that much is
lost to a power cut.

Wiring (``latentd run``)::

    recorder = attach_recorder(engine, config, label=args.record_label)  # after Engine(), before blocks
    if args.record:
        recorder.request_start(label)
    ...
    recorder.close()  # in shutdown, before the engine worker stops

Replay alignment: a session records engine blocks ``start_block`` .. ``stop_block - 1``. Each segment
begins with a checkpoint the engine worker takes right before the segment's first block (after its
commands): ``latentd replay`` restores it and renders on with the session's command log, so a segment
replays alone and starting a recording costs the same on any day (it writes a checkpoint, not the
history). Every applied command also streams to ``commands.jsonl`` beside the session folders (rotated
by size): the engine itself keeps only a short tail.
"""

from __future__ import annotations

import math
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import structlog

from latentd.config import Config
from latentd.engine import commands as c
from latentd.engine.checkpoint import Checkpoint, capture
from latentd.engine.engine import Engine
from latentd.engine.ring import BlockRing
from latentd.recording.config import RecordingConfig
from latentd.recording.segments import segment_frames
from latentd.recording.session import CommandJournal, config_hash, sha256_file
from latentd.recording.session_file import ModelFile, SessionStatic
from latentd.recording.writer import SessionWriter

log = structlog.get_logger("latentd.recorder")

POLL_S = 0.02  # the writer looks for new blocks this often; the ring holds seconds, so this is plenty
STOP_AT_END = math.inf  # a stop event that waits for every block already in the ring
_NEEDS_SNAPSHOT = ("start", "latent")  # events read in the snapshot published after their block
RECENT_COMMANDS = 64  # commands of the current block kept for a start in that block (bounded)


class DiskUsage(NamedTuple):
    """What ``shutil.disk_usage`` returns."""

    total: int
    used: int
    free: int


class _Event(NamedTuple):
    kind: str  # "start", "stop", "command", "latent", "checkpoint"
    block: float  # applies before this engine block
    data: Any


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
        n_slots = max(2, math.ceil(config.ring_s * static.samplerate / static.blocksize))
        self.ring = BlockRing(n_slots, static.blocksize, len(static.speakers), tagged=True)
        self.ring_dropped = 0  # blocks refused because the writer fell behind (engine worker counts)
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._active = False  # read by the engine worker: copy blocks or not
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latentd-recorder", daemon=True)
        self._pending: deque[_Event] = deque()
        self._busy = False  # the writer is between taking work and finishing it
        # Engine-worker side of the checkpoints: where the session started, the frame where the segment
        # of the last checkpoint begins, and the block of the next one (a rotation).
        self.segment_frames = segment_frames(
            config, static.samplerate, static.blocksize, len(static.speakers)
        )
        self._start_block = 0
        self._checkpoint_frame = 0
        self._next_checkpoint = -1
        self._resume_wanted = False  # set by the writer thread: a checkpoint at the next block
        self._model_attributes: dict[str, dict[str, float | str]] = {}  # model → attribute → value
        self._recent: deque[tuple[int, c.Command]] = deque(maxlen=RECENT_COMMANDS)
        self.journal = CommandJournal(self.folder)
        self.writer = SessionWriter(
            config,
            self.folder,
            static,
            disk_usage=disk_usage,
            stats=stats,
            now=now,
            ring_dropped=lambda: self.ring_dropped,
            stop_taking=self._stop_taking,
            voice_rate_hz=self._voice_rate_hz,
            request_checkpoint=self._request_checkpoint,
        )
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self) -> None:
        """Register the listeners and command handlers on the engine and start the writer thread."""
        self.engine.block_listeners.append(self.on_block)
        self.engine.latent_listeners.append(self.on_latent)
        self.engine.command_listeners.append(self.on_command)
        self.engine.block_start_listeners.append(self.on_block_start)
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
        """True while a session is being written (False while paused, stopped or failed)."""
        return self._active and self.error is None and self.writer.paused is None

    def status(self) -> dict[str, Any]:
        """The recorder for ``/status``, JSON-ready (any thread).

        ``state`` is ``"recording"``, ``"paused"`` (``reason`` says why; it resumes by itself in a new
        segment), ``"off"``, or ``"failed"`` (the writer stopped after an internal error: ``reason``).
        ``journal`` appears while the command journal cannot write (``queued``: lines waiting in memory)
        or has lost lines (``lost``), whatever the state.
        """
        out = self._state()
        journal = self.journal
        queued, lost = journal.queued, journal.lost
        if queued or lost:
            out["journal"] = {"queued": queued, "lost": lost, "file": str(journal.path)}
        return out

    def _state(self) -> dict[str, Any]:
        if self.error is not None:
            return {"state": "failed", "reason": f"{type(self.error).__name__}: {self.error}"}
        session = self.writer.session
        if not self._active and session is None:
            return {"state": "off"}
        paused = self.writer.paused
        out: dict[str, Any] = {"state": "recording" if paused is None else "paused"}
        if paused is not None:
            out["reason"] = paused
        if session is not None:
            out["session"] = session.folder.name
            out["segments"] = len(session.audio.segments)
        return out

    @property
    def dropped_blocks(self) -> int:
        """Blocks lost because the writer fell behind (0 in normal use)."""
        return self.ring_dropped

    @property
    def sessions(self) -> list[Path]:
        """Session folders made so far (written by the writer thread)."""
        return self.writer.sessions

    # ------------------------------------------------------------------ engine worker side
    def on_block(self, block_index: int, block: np.ndarray) -> None:
        """Engine worker, every master block: copy it into the ring while recording. Never blocks.

        Allocates nothing and takes no lock: a full ring drops the block and counts it.
        """
        if self._active and not self.ring.write(block, tag=block_index):
            self.ring_dropped += 1

    def on_latent(self, block_index: int, voice: str, z: np.ndarray) -> None:
        """Engine worker, every decoded chunk: queue a copy of z [latent_size, n_frames] while recording."""
        if self._active and self.config.latents:
            self._events.put_nowait(_Event("latent", block_index, (voice, z.copy())))

    def on_command(self, block_index: int, command: c.Command) -> None:
        """Engine worker, every applied command: queue it for the command logs."""
        if isinstance(command, c.SetModelAttribute):
            model = self.engine.voice_models.get(command.voice)
            if model is not None:
                self._model_attributes.setdefault(model, {})[command.attribute] = command.value
        self._events.put_nowait(_Event("command", block_index, command))

    def on_block_start(self, block_index: int) -> None:
        """Engine worker, before each block (its commands applied): take a checkpoint where one is due.

        Due at a session's first block, at the block holding each segment boundary, and at the next
        block after the writer asked to resume. Copies memory only; a failure is logged and the
        segment goes without (replay then starts from an earlier checkpoint).
        """
        if not self._active:
            return
        opens = True  # a start's or a resume's checkpoint opens a segment; a rotation's waits for it
        if self._resume_wanted:
            self._resume_wanted = False
            self._checkpoint_frame = (block_index - self._start_block) * self.static.blocksize
        elif block_index != self._next_checkpoint:
            return
        else:
            opens = self._checkpoint_frame == 0
        checkpoint: Checkpoint | None
        try:
            checkpoint = capture(self.engine, self._model_attributes)
        except Exception:  # the engine plays on whatever a checkpoint meets
            log.exception("recording.checkpoint_failed", block=block_index)
            checkpoint = None
        self._events.put_nowait(_Event("checkpoint", block_index, (checkpoint, opens)))
        self._checkpoint_frame += self.segment_frames
        self._next_checkpoint = self._start_block + self._checkpoint_frame // self.static.blocksize

    def start_from_command(self, command: c.Command) -> None:
        """Engine worker: a StartRecording is applied; the block about to be rendered is the first recorded.

        The published snapshot's ``block`` is that block (it is published after every block, and commands
        are applied before the next one). Seeds are read by the writer thread from the snapshot published
        after this block; the session's first checkpoint is taken before the block is rendered.

        Raises:
            ValueError: the writer has stopped after an internal error (the start is refused, not lost).
        """
        assert isinstance(command, c.StartRecording)
        if self.error is not None or not self._thread.is_alive():
            reason = f"{type(self.error).__name__}: {self.error}" if self.error else "it is not running"
            raise ValueError(f"recording is not available: the recorder's writer has stopped ({reason})")
        block = self.engine.snapshot.block
        self._events.put_nowait(_Event("start", block, command))
        self._start_block = block
        self._checkpoint_frame = 0
        self._next_checkpoint = block
        self._resume_wanted = False
        self._active = True

    def stop_from_command(self, command: c.Command) -> None:
        """Engine worker: a StopRecording is applied; the block about to be rendered is not recorded."""
        self._active = False
        # The engine logs this command after its handler returns: carry it so the log ends with it.
        self._events.put_nowait(_Event("stop", self.engine.snapshot.block, ("command", command)))

    def _stop_taking(self) -> None:
        self._active = False

    def _request_checkpoint(self) -> None:
        self._resume_wanted = True

    def _voice_rate_hz(self, voice: str) -> float | None:
        state = self.engine.snapshot.voices.get(voice)
        return None if state is None else state.latent_rate_hz

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
            drained = self.ring.readable() == 0 and self._events.empty() and not self._pending
            if drained and not self._busy:
                return True
            time.sleep(POLL_S / 2)
        return False

    def _run(self) -> None:
        try:
            while True:
                quitting = self._quit.is_set()
                self._busy = True
                self._drain(quitting)
                # Lines a full disk refused, once it takes them (retried per second of audio, like the
                # writer's own disk checks; on the way out, once more whatever the time).
                self.journal.poll(self._audio_s(self.engine.snapshot.block), force=quitting)
                self._busy = False
                if quitting:
                    break
                time.sleep(POLL_S)
        except BaseException as exc:  # the engine plays on; the error is reported and kept
            self.error = exc
            self._active = False
            log.exception(
                "recording.failed", folder=str(self.folder), action="recording is off until restart"
            )
            try:
                self.writer.finish(None, "error")
            except Exception:
                log.exception("recording.close_failed", folder=str(self.folder))
        finally:
            self.journal.shutdown()

    def _drain(self, quitting: bool) -> None:
        """Handle the blocks and events taken so far, in block order."""
        pending = self._pending
        while True:
            try:
                pending.append(self._events.get_nowait())
            except queue.Empty:
                break
        # Every event seen was queued after the blocks before it were pushed: count the ring's blocks
        # only now, and handle blocks and events in block order.
        available = self.ring.readable()
        while pending or available:
            if available:
                index, block = self.ring.peek()
                if not pending or index < pending[0].block:
                    self.writer.block(index, block.T)
                    self.ring.advance()
                    available -= 1
                    continue
            event = pending[0]
            if event.kind in _NEEDS_SNAPSHOT and self.engine.snapshot.block <= event.block and not quitting:
                return  # its block is still being rendered: next round
            self._handle(pending.popleft())

    def _audio_s(self, block: int) -> float:
        """The journal's clock: seconds of audio played before ``block``."""
        return block * self.static.blocksize / self.static.samplerate

    def _journal(self, block: int, command: c.Command) -> None:
        """Every applied command to the journal beside the sessions; the latest ones kept for a start."""
        self.journal.write(block, command, self._audio_s(block))
        self._recent.append((block, command))

    def _handle(self, event: _Event) -> None:
        writer = self.writer
        session = writer.session
        if event.kind == "start":
            block = int(event.block)
            if session is not None:
                writer.finish(block, "restarted")
            snapshot = self.engine.snapshot
            seeds = {name: int(v.seed) for name, v in snapshot.voices.items()}
            earlier = [(b, cmd) for b, cmd in self._recent if b == block]
            writer.start(block, event.data.label, seeds, earlier)
        elif event.kind == "stop":
            reason, command = event.data
            stop_block = None if event.block == STOP_AT_END else int(event.block)
            if command is not None:
                self._journal(int(event.block), command)
                writer.command(int(event.block), command)
            writer.finish(stop_block, reason)
        elif event.kind == "command":
            self._journal(int(event.block), event.data)
            if session is not None and event.block >= session.start_block:
                writer.command(int(event.block), event.data)
        elif session is None or event.block < session.start_block:
            return
        elif event.kind == "checkpoint":
            checkpoint, opens = event.data
            writer.checkpoint(int(event.block), checkpoint, opens=opens)
        elif event.kind == "latent":
            voice, z = event.data
            writer.latent(voice, z)


def session_static(engine: Engine, config: Config) -> SessionStatic:
    """What every session of this run records: names, hashes, seeds, rates, speakers."""
    inst = engine.installation
    models = {
        name: ModelFile(str(config.model_path(name)), sha256_file(config.model_path(name)))
        for name in config.piece.models
    }
    rates = {}
    for name, voice in config.piece.voices.items():
        info = inst.models[voice.model].info
        rates[name] = info.latent_rate_hz
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
        call_shapes={name: shape.to_json() for name, shape in inst.call_shapes.items()},
        decode_threads=config.venue.audio.decode_threads,
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
