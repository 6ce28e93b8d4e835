"""A :class:`BlockRing` in shared memory: the engine runs in its own process, JACK in this one.

Measured here: a decoding thread beside the JACK callback costs xruns at 256-frame periods (the GIL), the
same work in another process none. The ring is the boundary: the engine process writes blocks, the JACK
process reads them, each side alone stores its index (one producer, one consumer, as in the threaded
ring). The header also carries a few counters both sides need (blocks for the watchdog, xruns for the
recording's session file, a stop request, the engine's state).

Memory order across processes: the producer stores the block, then the index. x86 keeps stores in order;
a weakly ordered CPU (ARM64, a Raspberry Pi) may not, so the consumer leaves the newest published block
alone until the next one is published (``lag = 1``): by then the earlier block's data has long been
visible. It costs one block of latency.

Segments are named ``latentd-ring-<pid>-<random>`` after the process that owns them. A process killed
with SIGKILL cannot remove its segment; :func:`remove_stale_segments` (called before a new ring is made)
removes those whose owner no longer runs, and never touches a live process's.
"""

from __future__ import annotations

import os
import platform
import secrets
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from latentd.engine.ring import BlockRing

HEADER_SLOTS = 8
WRITE, READ, UNDERRUNS, STOP, XRUNS, STATE, EXIT_CODE, _SPARE = range(HEADER_SLOTS)
STARTING, READY, FAILED, DONE = 0, 1, 2, 3  # values of the STATE slot


SEGMENT_PREFIX = "latentd-ring-"
SHM_DIR = Path("/dev/shm")  # where Linux keeps POSIX shared memory


def segment_name(pid: int | None = None) -> str:
    """A new segment name that carries the owner's process id (this process by default)."""
    return f"{SEGMENT_PREFIX}{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"


def segment_owner(name: str) -> int | None:
    """The owner's process id written in a segment name, or None for a name not made by latentd."""
    if not name.startswith(SEGMENT_PREFIX):
        return None
    pid, _, rest = name[len(SEGMENT_PREFIX) :].partition("-")
    return int(pid) if pid.isdigit() and rest else None


def _running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def remove_stale_segments(folder: Path = SHM_DIR) -> list[str]:
    """Remove the ring segments of dead latentd processes; returns their names.

    Only names that carry a process id are considered, and only when that process no longer runs, so a
    live run's ring is never touched (nor another program's segments).
    """
    removed: list[str] = []
    try:
        entries = sorted(folder.glob(SEGMENT_PREFIX + "*"))
    except OSError:
        return removed
    for entry in entries:
        pid = segment_owner(entry.name)
        if pid is None or _running(pid):
            continue
        try:
            entry.unlink()
        except FileNotFoundError:
            continue  # another starting run removed it first
        except OSError:
            continue  # not ours to remove (another user's): left alone
        removed.append(entry.name)
    return removed


def _weakly_ordered() -> bool:
    return platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686")


class SharedBlockRing(BlockRing):
    """A block ring whose storage and indices live in a named shared-memory segment.

    The creating process owns the segment (:meth:`unlink` removes it); another process attaches with
    ``name``. Both must pass the same sizes. ``consumer`` marks the reading side (the JACK process),
    which keeps its distance from the newest block on weakly ordered CPUs.
    """

    def __init__(
        self,
        n_blocks: int,
        blocksize: int,
        n_channels: int,
        *,
        name: str | None = None,
        consumer: bool = False,
    ) -> None:
        data_bytes = n_blocks * n_channels * blocksize * 4
        self._owner = name is None
        self._shm = shared_memory.SharedMemory(
            name=segment_name() if name is None else name,
            create=self._owner,
            size=HEADER_SLOTS * 8 + data_bytes,
        )
        shm_buf = self._shm.buf
        assert shm_buf is not None  # None only after close()
        self.header = np.ndarray((HEADER_SLOTS,), dtype=np.int64, buffer=shm_buf[: HEADER_SLOTS * 8])
        buffer = np.ndarray(
            (n_blocks, n_channels, blocksize), dtype=np.float32, buffer=shm_buf[HEADER_SLOTS * 8 :]
        )
        self._lag = 1 if consumer and _weakly_ordered() else 0
        super().__init__(n_blocks, blocksize, n_channels, buffer=buffer)

    def _init_indices(self) -> None:
        if self._owner:  # an attaching process finds the indices as the owner left them
            self.header[:] = 0

    @property
    def name(self) -> str:
        """The shared-memory segment's name, for the other process."""
        return self._shm.name

    # The indices are header slots, so both processes see them.
    @property
    def _write_index(self) -> int:  # type: ignore[override]
        if self._lag:
            return max(int(self.header[WRITE]) - self._lag, int(self.header[READ]))
        return int(self.header[WRITE])

    @_write_index.setter
    def _write_index(self, value: int) -> None:
        self.header[WRITE] = value

    @property
    def _read_index(self) -> int:  # type: ignore[override]
        return int(self.header[READ])

    @_read_index.setter
    def _read_index(self, value: int) -> None:
        self.header[READ] = value

    @property
    def underruns(self) -> int:  # type: ignore[override]
        return int(self.header[UNDERRUNS])

    @underruns.setter
    def underruns(self, value: int) -> None:
        self.header[UNDERRUNS] = value

    @property
    def blocks_written(self) -> int:
        """Blocks the producer has published (the engine's progress, for the watchdog)."""
        return int(self.header[WRITE])

    def close(self) -> None:
        """Detach this process from the segment."""
        # The numpy views must go before the segment's buffer can be released.
        del self._views, self._buf, self.header
        self._shm.close()

    def unlink(self) -> None:
        """Remove the segment (owner only, after both sides closed it or exited)."""
        if self._owner:
            self._shm.unlink()
