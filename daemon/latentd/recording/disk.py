"""What the recorder asks of its disk: free space against the floor, a probe write, errors in words.

Called from the recorder's writer thread only (never from the engine worker).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentd.recording.config import RecordingConfig

PROBE_FILE = ".latentd-probe"
PROBE_BYTES = 65536  # a probe this large needs real free blocks, not just a directory entry


def existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (free space is asked of a folder that exists)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def error_text(exc: BaseException) -> str:
    """An OS error as its message and file; anything else as it says itself."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc)


def probe(folder: Path) -> None:
    """Write, sync and delete a small file in ``folder``.

    Raises:
        OSError: the folder does not take the write (full, read-only, missing, not a folder).
    """
    path = folder / PROBE_FILE
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    finally:
        path.unlink(missing_ok=True)


def explain(exc: BaseException, folder: Path) -> str:
    """A write error in words. libsndfile only says "System error": then the disk is asked what is wrong."""
    if isinstance(exc, OSError):
        return error_text(exc)
    try:
        probe(folder)
    except OSError as refused:
        return f"{exc} ({refused.strerror or refused})"
    return str(exc)


def below_floor(config: RecordingConfig, disk_usage: Callable[[Path], Any], folder: Path) -> bool:
    """Whether free space where ``folder`` is (or would be) is below ``[recording]``'s floor."""
    try:
        usage = disk_usage(existing(folder))
    except OSError:
        return False  # no answer: the write itself will tell
    floor_bytes = max(config.min_free_bytes, usage.total * config.min_free_percent / 100.0)
    return bool(usage.free < floor_bytes)
