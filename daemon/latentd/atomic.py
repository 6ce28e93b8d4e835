"""Atomic file replacement: a reader, a kill or a power cut sees the old file or the new one, whole.

The new content goes to a temporary file in the same folder, is synced, renamed over the target, and the
folder is synced so the rename itself survives a power cut. Used for the state file, ``session.json``,
latent ``.npy`` files, pool items and built models.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, it replaces ``path``.

    Parent folders are created. On error the temporary file is removed and ``path`` is left as it was.
    The temporary name starts with ``.`` and ends with ``.tmp``, so folder scans for ``path``'s pattern
    never see it.

    Args:
        path: The file to replace.
        durable: Sync the new file and the folder (survives a power cut); False only orders the
            rename after the write (enough for readers in other processes, cheaper).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


@contextmanager
def open_atomic(path: Path, mode: str = "wb", *, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` when the block ends without error.

    Args:
        path: The file to replace.
        mode: ``"wb"`` for bytes, ``"w"`` for UTF-8 text.
        durable: As for :func:`replacing`.
    """
    with replacing(path, durable=durable) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as f:
            yield f


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that a crash leaves the old or the new file, whole."""
    with open_atomic(path, "w") as f:
        f.write(text)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as indented JSON (one trailing newline), atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
