"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``), without a dependency.

systemd passes an AF_UNIX datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace) and, with ``WatchdogSec=``, the timeout in ``$WATCHDOG_USEC`` and the pid meant to ping in
``$WATCHDOG_PID``. A message is newline-separated ``KEY=value`` assignments: ``READY=1``, ``STOPPING=1``,
``STATUS=...``, ``WATCHDOG=1``.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op that returns False, so the same code runs
on a terminal, in tests and under systemd.

Threads: all methods run in the main thread (the main loop's tick); sending is one non-blocking
``sendto``, never a wait.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, MutableMapping

import structlog

log = structlog.get_logger("latentd.runtime.notify")

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def notify_address(value: str) -> str | bytes | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when it names no AF_UNIX socket.

    ``/path`` is a filesystem socket; ``@name`` is the abstract namespace (a leading NUL byte).
    Other forms (``vsock:...`` of newer systemd) are not AF_UNIX and are not supported.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None


class Notifier:
    """Sends notify messages to systemd, or does nothing when not started by systemd with Type=notify.

    Args:
        environ: Where to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``
            (default: ``os.environ``).
        unset_environment: Remove those variables from ``environ`` after reading them, as
            ``sd_notify(unset_environment=1)`` does. Child processes (a private jackd, which links
            libsystemd and notifies too) must not talk to our service manager: with ``NotifyAccess=main``
            systemd would reject and log their messages.
    """

    def __init__(
        self, environ: MutableMapping[str, str] | None = None, *, unset_environment: bool = True
    ) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = notify_address(raw) if raw else None
        if raw and self._address is None:
            log.warning("notify.unsupported_socket", notify_socket=raw, supported="/path or @abstract")
        self._watchdog_usec = _watchdog_usec(env)
        if unset_environment:
            for key in _ENV_KEYS:
                env.pop(key, None)
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given (running as a systemd Type=notify service)."""
        return self._address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram.

        Returns:
            True when the datagram was sent; False when not under systemd or when sending failed
            (the failure is logged and counted: notifications must never stop the daemon).
        """
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            self.failed += 1
            log.warning("notify.send_failed", message=payload.decode(errors="replace"), error=str(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up finished (systemd then starts the units ordered after us)."""
        return self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown begun (``systemctl status`` shows "deactivating")."""
        return self.send("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        """``STATUS=...``: one line shown by ``systemctl status``."""
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: we are alive. Only meaningful when :meth:`watchdog_interval_s` is not None."""
        return self.send("WATCHDOG=1")

    def watchdog_timeout_s(self) -> float | None:
        """systemd's watchdog timeout (``WatchdogSec=``) for this process, or None when off."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1e6

    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the timeout, as sd_watchdog_enabled(3) advises; None when off."""
        timeout_s = self.watchdog_timeout_s()
        return None if timeout_s is None else timeout_s / 2

    def close(self) -> None:
        """Close the socket. Idempotent; a later send reopens it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _watchdog_usec(env: MutableMapping[str, str]) -> int | None:
    """``$WATCHDOG_USEC`` when the watchdog is on and meant for this process (``$WATCHDOG_PID``)."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec)


def _one_line(text: str) -> str:
    # A newline would start a new assignment in the datagram.
    return " ".join(text.split())


class ReadyGate:
    """Sends ``READY=1`` once, on the first tick after the engine's block counter passed a baseline.

    Created after the ring is pre-filled (the baseline is the blocks written so far): the counter can
    only move past it when the JACK callback has consumed audio and the engine refilled the ring, that
    is, once audio flows.

    Args:
        notifier: Where to send.
        counter: Returns the engine's block counter (``lambda: engine.counters.blocks``).
    """

    def __init__(self, notifier: Notifier, counter: Callable[[], int]) -> None:
        self._notifier = notifier
        self._counter = counter
        self._baseline = counter()
        self.ready = False

    def tick(self, status: str | None = None) -> bool:
        """Check the counter; returns True on the tick that declared readiness."""
        if self.ready or self._counter() <= self._baseline:
            return False
        self.ready = True
        self._notifier.ready(status)
        return True


class WatchdogGate:
    """Sends ``WATCHDOG=1`` only while a counter advances: a wedged engine is restarted by systemd.

    Each :meth:`tick` (from the main loop) at least ``interval_s`` after the last ping reads the
    counter; when it moved since the last ping, it pings. When it did not, no ping: if that lasts for
    ``WatchdogSec``, systemd kills and restarts the service. ``idle`` names the times when a still
    counter is expected (the JACK server is gone and the client is reconnecting: nothing consumes
    audio, so the engine rightly waits); then the main loop's own liveness is what is pinged.

    Args:
        notifier: Where to send.
        counter: Returns the engine's block counter (``lambda: engine.counters.blocks``).
        interval_s: Least time between pings; default the notifier's :meth:`Notifier.watchdog_interval_s`.
            With neither (no ``WatchdogSec=``), the gate never pings.
        idle: Returns True while a still counter is expected.
        clock: Monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        notifier: Notifier,
        counter: Callable[[], int],
        *,
        interval_s: float | None = None,
        idle: Callable[[], bool] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._notifier = notifier
        self._counter = counter
        self._interval_s = notifier.watchdog_interval_s() if interval_s is None else interval_s
        self._idle = idle
        self._clock = clock or time.monotonic
        self._last_value = counter()
        self._last_ping_s = self._clock()
        self._stalled_since_s: float | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        """True when pings go anywhere (a notify socket and a watchdog interval)."""
        return self._notifier.enabled and self._interval_s is not None

    def stalled_s(self) -> float:
        """How long the counter has been still, counted from the last ping (0 while it advances)."""
        return 0.0 if self._stalled_since_s is None else self._clock() - self._stalled_since_s

    def tick(self) -> bool:
        """Ping when due and the counter advanced (or idling is expected); returns True when pinged."""
        if self._interval_s is None:
            return False
        now = self._clock()
        if now - self._last_ping_s < self._interval_s:
            return False
        value = self._counter()
        if value == self._last_value and not (self._idle is not None and self._idle()):
            if self._stalled_since_s is None:
                # The counter last moved before the last ping at the latest.
                self._stalled_since_s = self._last_ping_s
                log.warning("watchdog.stalled", blocks=value)
            return False
        if self._stalled_since_s is not None:
            log.info("watchdog.resumed", blocks=value, stalled_s=round(now - self._stalled_since_s, 3))
            self._stalled_since_s = None
        self._last_value = value
        self._last_ping_s = now
        if self._notifier.watchdog():
            self.pings += 1
            return True
        return False
