"""The files beside a recording: the command log, the config copies and the latents each voice decoded.

All of them are written by the recorder's writer thread, never by the engine worker. ``session.json``
has its own module, :mod:`latentd.recording.session_file`.

Session folder layout::

    <piece>_<venue>_<UTC start>[_<label>]/
        <piece>_<venue>_<UTC start>[_<label>]_000.w64   audio segments, contiguous
        session.json                                      what, when, with which config/models/seeds
        <stem>_000.checkpoint                             the engine's state where each segment begins
        commands.jsonl                                    the commands applied since the session's start
        venue.toml, piece.toml                            copies of both config files
        <voice>_latents.wav, <voice>.npy                  latents decoded while recording
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf
import structlog

from latentd.atomic import open_atomic
from latentd.engine.commands import Command
from latentd.recording.segments import WRITE_ERRORS
from latentd.unravel.latentio import LatentWavWriter

log = structlog.get_logger("latentd.recorder")

COMMANDS_FILE = "commands.jsonl"
JOURNAL_BYTES = 16 * 2**20  # the command journal beside the recordings rotates at this size
JOURNAL_KEEP = 4  # and keeps this many earlier files (commands.1.jsonl is the newest of them)
JOURNAL_QUEUE = 100_000  # journal lines kept in memory while the disk refuses them
VENUE_COPY = "venue.toml"
PIECE_COPY = "piece.toml"
HASH_CHUNK = 2**20


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(venue_path: Path, piece_file: Path) -> str:
    """SHA-256 over both configuration files (venue config, then piece), as bytes."""
    digest = hashlib.sha256()
    for path in (venue_path, piece_file):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def copy_configs(venue_path: Path, piece_file: Path, folder: Path) -> None:
    """Keep copies of both config files in the session folder (the originals may change later)."""
    shutil.copyfile(venue_path, folder / VENUE_COPY)
    shutil.copyfile(piece_file, folder / PIECE_COPY)


class CommandLog:
    """``commands.jsonl``: one line ``{"block": i, "cmd": name, ...fields}`` per applied command.

    Each line is flushed to the kernel as soon as it is written, so a killed process keeps it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, block: int, command: Command) -> None:
        """Append one applied command.

        Raises:
            OSError: the disk refused it.
        """
        self._file.write(command_line(block, command))
        self._file.flush()

    def sync(self) -> None:
        """Push the log to the disk."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Sync and close (a write error is raised after the file is closed)."""
        if not self._file.closed:
            try:
                self.sync()
            finally:
                # A buffered line the disk refused: sync has raised already, or the kernel has it.
                with contextlib.suppress(OSError):
                    self._file.close()


def command_line(block: int, command: Command) -> str:
    """One command-log line (with its newline)."""
    return json.dumps({"block": block, **command.to_json()}) + "\n"


class CommandJournal:
    """Every applied command, streamed to ``<folder>/commands.jsonl`` and rotated by size.

    Written by the recorder's writer thread whether or not a session is recording, so the engine keeps
    only a short tail in memory. At ``max_bytes`` the file becomes ``commands.1.jsonl`` (the older ones
    move up, the oldest beyond ``keep`` is deleted): the disk it takes is bounded too.

    A write error (a full disk, a missing folder) is logged once; from then on lines wait in memory, in
    order, and the journal tries again every ``retry_s`` (:meth:`poll`, called by the writer thread) until
    the disk takes them. At most ``max_queued`` lines wait; the ones after that are counted, and one line
    ``{"block": first, "cmd": "journal.lost", "lost": n, "first_block": first, "last_block": last}`` takes
    their place in the file.
    """

    def __init__(
        self,
        folder: Path,
        max_bytes: int = JOURNAL_BYTES,
        keep: int = JOURNAL_KEEP,
        retry_s: float = 1.0,
        max_queued: int = JOURNAL_QUEUE,
    ) -> None:
        self.folder = folder
        self.path = folder / COMMANDS_FILE
        self.max_bytes = max_bytes
        self.keep = keep
        self.retry_s = retry_s
        self.max_queued = max_queued
        self.lost = 0  # lines dropped because the queue was full (each said in a journal.lost line)
        self._queue: deque[str] = deque()
        self._dropped = 0  # dropped since the last journal.lost line was written
        self._dropped_blocks = (0, 0)
        self._file: IO[bytes] | None = None
        self._size = 0
        self._failed_at: float | None = None

    @property
    def queued(self) -> int:
        """Lines waiting in memory for the disk."""
        return len(self._queue)

    def write(self, block: int, command: Command, now: float) -> None:
        """Append one applied command (``now``: a monotonic clock in seconds, for the retry after an error;
        the recorder passes seconds of audio)."""
        if len(self._queue) < self.max_queued:
            self._queue.append(command_line(block, command))
        else:
            if self._dropped == 0:
                self._dropped_blocks = (block, block)
            self._dropped += 1
            self._dropped_blocks = (self._dropped_blocks[0], block)
            self.lost += 1
        self.poll(now)

    def poll(self, now: float, force: bool = False) -> None:
        """Write what waits, unless the last error was less than ``retry_s`` ago (``force``: try anyway)."""
        if not force and self._failed_at is not None and now - self._failed_at < self.retry_s:
            return
        if not self._queue and not self._dropped:
            return
        try:
            while self._queue:
                self._append(self._queue[0])
                self._queue.popleft()
            if self._dropped:
                first, last = self._dropped_blocks
                note = {"block": first, "cmd": "journal.lost", "lost": self._dropped}
                self._append(json.dumps({**note, "first_block": first, "last_block": last}) + "\n")
                self._dropped = 0
            if self._failed_at is not None:
                log.info("commands.journal_resumed", file=str(self.path), lost=self.lost)
                self._failed_at = None
        except OSError as exc:
            if self._failed_at is None:
                log.error(
                    "commands.journal_failed",
                    file=str(self.path),
                    error=str(exc),
                    retry_s=self.retry_s,
                    action=f"lines wait in memory (at most {self.max_queued})",
                )
            self._failed_at = now
            self.close()

    def _append(self, line: str) -> None:
        """Write one whole line or none of it (a refused line is cut off again, to be written later)."""
        data = line.encode("utf-8")
        if self._file is None:
            self._open()
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._rotate()
        assert self._file is not None
        try:
            view = memoryview(data)
            while view:  # unbuffered: one system call each, which may take part of it
                written = self._file.write(view)
                if not written:
                    raise OSError(errno.EIO, "the file took no bytes", str(self.path))
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self._size)
            raise
        self._size += len(data)

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        self._size = self._file.seek(0, os.SEEK_END)
        _cut_torn_line(self._file, self._size)
        self._size = self._file.seek(0, os.SEEK_END)

    def _rotate(self) -> None:
        self.close()
        oldest = self.folder / f"commands.{self.keep}.jsonl"
        oldest.unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            older = self.folder / f"commands.{n}.jsonl"
            if older.exists():
                older.replace(self.folder / f"commands.{n + 1}.jsonl")
        self.path.replace(self.folder / "commands.1.jsonl")
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        self._size = 0

    def shutdown(self) -> None:
        """Close for good: lines the disk still refuses are lost now, and the log says how many."""
        self.close()
        if self._queue or self._dropped:
            log.error(
                "commands.journal_unwritten",
                file=str(self.path),
                lines=len(self._queue) + self._dropped,
                reason="the disk refused them until the recorder stopped",
            )

    def close(self) -> None:
        """Close the file (the next write opens it again; lines still waiting stay queued)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _cut_torn_line(file: IO[bytes], size: int) -> None:
    """Cut a partial last line (a write cut short by a full disk or a kill) back to the last newline."""
    if size == 0:
        return
    with open(file.name, "rb") as reader:
        tail_start = max(0, size - 2**16)
        reader.seek(tail_start)
        tail = reader.read()
    if tail.endswith(b"\n"):
        return
    newline = tail.rfind(b"\n")
    os.ftruncate(file.fileno(), tail_start + newline + 1 if newline >= 0 else 0)


def read_command_log(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``commands.jsonl`` as (block, command JSON) in file order; a torn last line (a kill) is skipped.

    Raises:
        ValueError: a line other than the last is not valid JSON or has no ``block``.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            block = int(data.pop("block"))
        except (ValueError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:
                break  # the process died while writing this line
            raise ValueError(f"{path}:{i + 1}: not a command log line ({exc}): {line[:80]!r}") from exc
        out.append((block, data))
    return out


class LatentRecording:
    """The latents one voice decoded while recording: a latent WAV written as they come, and an .npy.

    ``<voice>_latents.wav``: 32-bit float, one channel per latent dimension, the header rate ``sr //
    ratio`` and the exact latent rate in its comment (the form Pure Data, sox and latentd read: see
    :mod:`latentd.unravel.latentio`). ``<voice>.npy``: shape (1, latent_size, n_frames) float32, what
    ``decode`` takes; rewritten from the WAV by :meth:`save_npy` (at rotation and stop).
    """

    def __init__(self, folder: Path, voice: str, latent_size: int, rate_hz: float) -> None:
        self.voice = voice
        self.latent_size = latent_size
        self.wav_path = folder / f"{voice}_latents.wav"
        self.npy_path = folder / f"{voice}.npy"
        self._file = LatentWavWriter(self.wav_path, latent_size, rate_hz)

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._file.frames

    def write(self, z: np.ndarray) -> None:
        """Append z [latent_size, n_frames]."""
        self._file.write(z.T)

    def flush(self) -> None:
        """Push what was written to the disk (nothing once closed)."""
        self._file.flush()

    def save_npy(self) -> None:
        """(Re)write ``<voice>.npy`` with every frame so far (closing wrote it last)."""
        if self._file.closed:
            return
        self._file.flush()
        with sf.SoundFile(self.wav_path) as f:
            data = f.read(self.frames, dtype="float32", always_2d=True)
        with open_atomic(self.npy_path, "wb") as out:
            np.save(out, data.T[None, :, :])

    def close(self) -> None:
        """Write the .npy and close the WAV."""
        if not self._file.closed:
            try:
                self.save_npy()
            finally:
                # The WAV holds what the disk took; save_npy has raised the error already.
                with contextlib.suppress(*WRITE_ERRORS):
                    self._file.close()


class SessionLatents:
    """The latent files of one session, by voice.

    A voice gets a new file pair (``<voice>.<n>``) when its latent size changes (a model swap) or after
    a pause; the earlier pairs stay listed as ``<voice>#<n>`` and are finished with the others.

    Args:
        folder: The session folder.
        rates: Voice → latent rate (Hz) of its first latent WAV.
        live_rate_hz: The latent rate of a voice's current model (for the pair of a swapped voice).
    """

    def __init__(
        self, folder: Path, rates: dict[str, float], live_rate_hz: Callable[[str], float | None]
    ) -> None:
        self.folder = folder
        self.rates = rates
        self.live_rate_hz = live_rate_hz
        self.files: dict[str, LatentRecording] = {}

    def write(self, voice: str, z: np.ndarray) -> None:
        """Append z [latent_size, n_frames] to the voice's pair (a new pair when its size changed).

        Raises:
            OSError, soundfile.SoundFileError, RuntimeError: the disk refused it.
        """
        rec = self.files.get(voice)
        if rec is not None and rec.latent_size != z.shape[0]:
            self.retire(voice)
            rec = None
        if rec is None:
            n = sum(1 for key in self.files if key.startswith(f"{voice}#")) + 1
            name = voice if n == 1 else f"{voice}.{n}"
            live = self.live_rate_hz(voice) if n > 1 else None
            rate = live if live is not None else self.rates.get(voice, 1.0)
            rec = self.files[voice] = LatentRecording(self.folder, name, z.shape[0], rate)
        rec.write(z)

    def retire(self, voice: str) -> None:
        """Keep a voice's pair as ``<voice>#<n>``: its next latents go into a new pair."""
        rec = self.files.pop(voice)
        n = sum(1 for key in self.files if key.startswith(f"{voice}#")) + 1
        self.files[f"{voice}#{n}"] = rec

    def close(self, retire: bool = False) -> list[tuple[str, BaseException]]:
        """Finish every pair (``retire``: the next latents go into new pairs); the errors met, by voice."""
        errors: list[tuple[str, BaseException]] = []
        for voice in list(self.files):
            try:
                self.files[voice].close()
            except WRITE_ERRORS as exc:
                errors.append((voice, exc))
            if retire and "#" not in voice:
                self.retire(voice)
        return errors

    def flush(self) -> None:
        """Push what was written to the disk."""
        for rec in self.files.values():
            rec.flush()

    def save_npy(self) -> None:
        """(Re)write every open pair's ``.npy``."""
        for rec in self.files.values():
            rec.save_npy()
