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
from typing import Any, Literal, TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


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
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=line_logger_factory(sys.stdout),
        cache_logger_on_first_use=False,
    )
