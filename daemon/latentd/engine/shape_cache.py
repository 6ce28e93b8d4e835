"""The call shapes a machine has chosen, kept on disk so every later load decodes the same shapes.

A call shape is chosen by timing (:mod:`latentd.engine.callshape`), and a borderline timing may flip
between two loads; another shape may change the samples. So the first choice is written to
``call-shapes.json`` beside the venue's state file and ``latentd run``, ``render`` and ``check`` read it
from then on: the same piece, seed and commands give the same audio on a machine. An entry is keyed by
everything the choice depends on (the model file, its method and attributes, the voices, the venue's
rates and decode settings, torch's threads, the versions, the machine); change any of them and the shape
is measured again. ``latentd check --remeasure`` measures again on purpose and replaces the entry.

A file that cannot be read is ignored with a warning (and replaced at the next write); one that cannot
be written is logged once per process and the run goes on with the shapes it measured.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import torch

import latentd
from latentd.atomic import write_json_atomic
from latentd.installation.models import LoadedModel

log = structlog.get_logger("latentd.callshape")

CACHE_NAME = "call-shapes.json"
FORMAT = 1
LOCK_WAIT_S = 60.0  # another process measuring takes seconds; longer means it is stuck
MAX_ENTRIES = 64  # bounded: the oldest entries go first (a venue plays a handful of models)


@dataclass(frozen=True)
class CachedShape:
    """One stored choice: ``batch`` rows × ``frames``, with the figures it was chosen from."""

    batch: int
    frames: int
    load_pct: float
    measured: Mapping[str, str]
    measured_at: str


def shape_key(
    model: LoadedModel,
    rows: int,
    frames_per_call: int,
    latency_ms: float | None,
    pad: bool,
    *,
    samplerate: int,
    blocksize: int,
) -> dict[str, Any] | None:
    """What a call-shape choice depends on, as plain JSON values; None when the model file is gone."""
    try:
        path = model.path.resolve()
        stat = path.stat()
    except OSError:
        return None
    return {
        "model": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "method": model.info.method,
        "sr": model.info.sr,
        "attributes": {str(k): repr(v) for k, v in sorted(model.info.attributes.items())},
        "rows": rows,
        "frames_per_call": frames_per_call,
        "decode_latency_ms": latency_ms,
        "batch_padding": pad,
        "samplerate": samplerate,
        "blocksize": blocksize,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "latentd": latentd.__version__,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
    }


def key_digest(key: Mapping[str, Any]) -> str:
    """A short stable name for ``key`` (the entry's name in the file)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class ShapeCache:
    """``call-shapes.json`` in one folder: read at every lookup, replaced atomically at every store.

    Args:
        path: the cache file (``call-shapes.json`` beside the venue's state file).
        samplerate: the venue's sample rate (part of every key).
        blocksize: the venue's block size (part of every key).
        remeasure: measure every shape again and replace its entry, whatever the file holds.
    """

    def __init__(self, path: Path, *, samplerate: int, blocksize: int, remeasure: bool = False) -> None:
        self.path = Path(path)
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.remeasure = remeasure

    def key(
        self, model: LoadedModel, rows: int, frames_per_call: int, latency_ms: float | None, pad: bool
    ) -> dict[str, Any] | None:
        """:func:`shape_key` with this venue's rates."""
        return shape_key(
            model,
            rows,
            frames_per_call,
            latency_ms,
            pad,
            samplerate=self.samplerate,
            blocksize=self.blocksize,
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cache's lock: two processes loading at once measure once and agree on the shape.

        Without a writable folder there is no lock (and no file to agree through): the block runs anyway.
        """
        lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield
            return
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        # A stopped process holds it: a start never hangs on it, it measures alone.
                        log.warning("model.call_shape_cache_locked", path=str(lock), waited_s=LOCK_WAIT_S)
                        break
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def lookup(self, key: Mapping[str, Any], rows: int, max_batch: int) -> CachedShape | None:
        """The stored shape for ``key``, or None (none stored, ``remeasure``, or an entry that misfits)."""
        if self.remeasure:
            return None
        entry = self._read().get(key_digest(key))
        if not isinstance(entry, dict) or entry.get("key") != json.loads(json.dumps(key)):
            return None
        batch, frames = entry.get("batch"), entry.get("frames")
        if not (isinstance(batch, int) and isinstance(frames, int)):
            return None
        if not (rows <= batch <= max(rows, max_batch) and frames >= 1):
            return None
        measured = entry.get("measured")
        load_pct = entry.get("load_pct")
        return CachedShape(
            batch,
            frames,
            float(load_pct) if isinstance(load_pct, int | float) else float("nan"),
            {str(k): str(v) for k, v in measured.items()} if isinstance(measured, dict) else {},
            str(entry.get("measured_at", "")),
        )

    def store(
        self, key: Mapping[str, Any], batch: int, frames: int, load_pct: float, measured: Mapping[str, str]
    ) -> None:
        """Add (or replace) the entry for ``key``; logged once per file when it cannot be written."""
        entries = self._read()
        digest = key_digest(key)
        entries.pop(digest, None)
        entries[digest] = {
            "key": dict(key),
            "batch": batch,
            "frames": frames,
            "load_pct": load_pct,
            "measured": dict(measured),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))  # the oldest written
        try:
            write_json_atomic(self.path, {"format": FORMAT, "shapes": entries})
        except OSError as exc:
            if self.path not in _REPORTED:
                _REPORTED.add(self.path)
                log.warning(
                    "model.call_shape_cache_unwritable",
                    path=str(self.path),
                    error=str(exc),
                    effect="shapes are measured again at the next load (and may differ)",
                )

    def _read(self) -> dict[str, Any]:
        """The file's entries; an absent file is empty, an unreadable one is empty with a warning."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            self._unreadable(str(exc))
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self._unreadable(f"not JSON: {exc}")
            return {}
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("shapes"), dict)
        ):
            self._unreadable(f'expected {{"format": {FORMAT}, "shapes": {{...}}}}')
            return {}
        shapes: dict[str, Any] = data["shapes"]
        return shapes

    def _unreadable(self, error: str) -> None:
        if (self.path, error) in _REPORTED:
            return  # the lookup and the store of one load read the same bad file: one warning
        _REPORTED.add((self.path, error))
        log.warning(
            "model.call_shape_cache_unreadable",
            path=str(self.path),
            error=error,
            effect="ignored: shapes are measured and the file is written again",
        )


# Problems already reported in this process: a cache file that cannot be written (its path), one that
# cannot be read (its path and the error). Bounded by the venues and errors a process meets.
_REPORTED: set[object] = set()
