"""Thread stacks on demand: ``kill -USR1 <pid>`` (or ``systemctl kill -s USR1 latentd``) logs every
thread's stack as one structured event; a fatal signal prints them to stderr.

Why a flag, not a dump inside the handler: Python runs signal handlers in the main thread between
bytecodes, so a handler that formats stacks and logs would run in the middle of whatever the main
thread was doing, possibly while it holds the logger's or stdout's lock. The handler only sets a flag;
the main loop's tick (every 0.1 s) does the dumping with structlog, as JSON in the journal. The JACK
callback thread is never involved.

That leaves one case: a main thread that no longer ticks. For it, :func:`enable_fatal_dumps` turns on
``faulthandler`` for SIGABRT, SIGSEGV, SIGBUS, SIGILL and SIGFPE: its C handler writes every thread's
stack to stderr (the journal) without the GIL or any lock. systemd's watchdog kills a service that
stopped pinging with SIGABRT, so a wedged daemon leaves its stacks in ``journalctl -u latentd`` too.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, TextIO

from structlog.typing import FilteringBoundLogger


def thread_stacks() -> list[dict[str, Any]]:
    """Every live thread: name, ident, daemon flag and its stack (innermost call last)."""
    frames = sys._current_frames()
    threads = {t.ident: t for t in threading.enumerate()}
    stacks: list[dict[str, Any]] = []
    for ident, frame in frames.items():
        thread = threads.get(ident)
        stacks.append(
            {
                "name": thread.name if thread else f"<unknown {ident}>",
                "ident": ident,
                "daemon": thread.daemon if thread else None,
                "stack": [line.rstrip("\n") for line in traceback.format_stack(frame)],
            }
        )
    return sorted(stacks, key=lambda s: str(s["name"]))


def log_thread_stacks(log: FilteringBoundLogger, reason: str = "signal") -> int:
    """Log one ``threads.dump`` event with every thread's stack; returns the number of threads."""
    stacks = thread_stacks()
    log.warning("threads.dump", reason=reason, count=len(stacks), threads=stacks)
    return len(stacks)


class StackDumpSignal:
    """A signal (default SIGUSR1) that requests a stack dump from the main loop.

    Install from the main thread (Python's rule for signal handlers). Call :meth:`poll` on every tick.
    """

    def __init__(self, signum: int = signal.SIGUSR1) -> None:
        self.signum = signum
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True  # only a flag: see the module docstring

    def install(self) -> StackDumpSignal:
        """Install the handler (remembering the previous one); returns self."""
        if not self._installed:
            self._previous = signal.signal(self.signum, self._handler)
            self._installed = True
        return self

    def poll(self, log: FilteringBoundLogger) -> bool:
        """Log the stacks if a dump was requested since the last poll; returns True if it logged."""
        if not self.requested:
            return False
        self.requested = False
        log_thread_stacks(log, reason=signal.Signals(self.signum).name)
        return True

    def uninstall(self) -> None:
        """Restore the previous handler. Idempotent."""
        if self._installed:
            signal.signal(self.signum, self._previous)
            self._installed = False


def enable_fatal_dumps(file: TextIO | None = None) -> None:
    """Print every thread's stack on SIGABRT (the watchdog's kill), SIGSEGV, SIGBUS, SIGILL, SIGFPE.

    Args:
        file: Where to write (must have a file descriptor); default ``sys.stderr``, which systemd
            connects to the journal.
    """
    faulthandler.enable(file=file or sys.stderr, all_threads=True)
