"""Logging: structlog to unbuffered stdout, JSON lines under systemd, a readable console on a terminal.

The supervisor and the engine process share one stdout (a pipe to journald, or a terminal). Each line is
written whole, message and newline in a single ``os.write``, so the lines of the two processes never
merge: a pipe keeps writes of up to ``PIPE_BUF`` (4096) bytes together, and a longer line is still
written in as few calls as the kernel allows. ``print`` (structlog's ``PrintLogger``) writes the message
and the newline separately, and another process's line could land between them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
RECENT_KEPT = 20  # warnings and errors kept for the status page; older ones give way
# The latest warnings and errors of this process, newest last, as short dicts (the status page shows them).
recent_problems: deque[dict[str, str]] = deque(maxlen=RECENT_KEPT)
# Called with each problem as it is kept (the JACK process forwards its own to the engine process, whose
# status page shows them); each must return at once, from any thread.
problem_listeners: list[Callable[[dict[str, str]], None]] = []
_PROBLEM_LEVELS = frozenset(("warning", "error", "critical", "exception"))


def keep_recent_problems(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: keep a short copy of each warning and error in :data:`recent_problems`."""
    level = str(event.get("level", ""))
    if level in _PROBLEM_LEVELS:
        details = " ".join(
            f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "timestamp", "exc_info")
        )
        problem = {
            "time": str(event.get("timestamp", "")),
            "level": level,
            "event": str(event.get("event", "")),
            "details": details[:300],
        }
        recent_problems.append(problem)
        for listener in problem_listeners:
            listener(problem)
    return event


class LineLogger:
    """A structlog logger that writes each rendered line with one write of message + newline.

    Writes go straight to the file descriptor of ``file`` (no Python buffer in between); a stream
    without one (a test's capture) gets one ``write`` of the whole line and a flush. A lock keeps the
    threads of one process from interleaving the rare line that needs more than one ``os.write``.
    """

    def __init__(self, file: TextIO | None = None) -> None:
        self._file = file if file is not None else sys.stdout
        self._lock = threading.Lock()
        try:
            self._fd: int | None = self._file.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO and friends have no descriptor
            self._fd = None

    def msg(self, message: str) -> None:
        """Write ``message`` and a newline as one line."""
        line = message + "\n"
        with self._lock:
            if self._fd is None:
                self._file.write(line)
                self._file.flush()
                return
            data = line.encode("utf-8", "backslashreplace")
            try:
                self._file.flush()  # anything print() left in Python's buffer goes first
                while data:
                    written = os.write(self._fd, data)
                    data = data[written:]
            except (BrokenPipeError, OSError):  # a closed journal pipe must not stop the music
                pass

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def line_logger_factory(file: TextIO | None = None) -> Any:
    """A structlog ``logger_factory`` whose loggers share one :class:`LineLogger` on ``file``."""
    shared = LineLogger(file)

    def factory(*_args: Any) -> LineLogger:
        return shared

    return factory


def setup_logging(level: str = "info", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    """Configure structlog once for the process.

    ``auto`` picks the console renderer when stdout is a terminal and JSON lines otherwise (journald).
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            keep_recent_problems,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=line_logger_factory(sys.stdout),
        cache_logger_on_first_use=False,
    )
