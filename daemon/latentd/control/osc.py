"""The OSC server: a UDP thread that turns allowed, well-formed, valid messages into engine commands.

Transport and handling are kept apart: :meth:`OscServer.handle_datagram` is a pure function of (bytes,
sender) → replies that tests drive without sockets; the thread only moves bytes. Order of checks, cheapest
first so a flood costs little: sender's network (drop silently), sender's rate (drop silently), size (drop
silently), strict parse, address map, the command's checks against the engine's published snapshot
(:func:`~latentd.engine.commands.check`; the engine checks again when it applies it). A packet is all
or nothing: if any message of a bundle is refused, none of it is applied, and the sender gets
``/error <address> <reason>``.

A command can also be refused later, inside the engine (a model refusing an attribute value, a model
swap that fails to load). Each command the server submits carries its origin (:class:`OscOrigin`); the
engine publishes its refusals to :meth:`OscServer._engine_refused`, which queues them (bounded) and wakes
the server thread, which answers ``/error`` to that sender. ``/status`` counts both kinds of refusal.

A sender over its rate is logged once per episode (``osc.rate_limited``) and, once it has kept within
its rate for :data:`EPISODE_QUIET_S`, once more with the count of packets dropped
(``osc.rate_limit_ended``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from latentd.control.osc_config import OscConfig, host_allowed
from latentd.control.osc_map import Refusal, StatusRequest, map_message
from latentd.control.osc_parse import OscParseError, encode_message, parse_packet
from latentd.control.port_holders import describe_udp_port
from latentd.engine.commands import Command, check
from latentd.engine.engine import Engine

Sender = tuple[str, int]
Reply = tuple[bytes, Sender]
StatusProvider = Callable[[], dict[str, Any]]

RECV_TIMEOUT_S = 0.2  # how often the thread looks at its stop flag
MAX_TRACKED_HOSTS = 4096  # bound on per-host state, so a spoofed-source flood cannot grow memory
MAX_PENDING_REFUSALS = 256  # engine refusals waiting to be answered; older ones give way
EPISODE_QUIET_S = 1.0  # a rate-limit episode ends after this long without a dropped packet


class OscServerError(RuntimeError):
    """The server could not start (address in use, bad bind address)."""


@dataclass
class OscCounters:
    """Packets seen by the server, by fate. Written by the server thread only."""

    received: int = 0
    accepted: int = 0
    refused: int = 0
    dropped_foreign: int = 0
    dropped_rate: int = 0
    dropped_size: int = 0
    internal_errors: int = 0


@dataclass(frozen=True)
class OscOrigin:
    """Who sent a command: the server that took it, the OSC address and where replies go."""

    server: int
    address: str
    reply_to: Sender


@dataclass
class _Episode:
    """A sender's time over its rate: when it began, the last drop, how many packets were dropped."""

    started: float
    last_drop: float
    dropped: int = 0


class _Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("last", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.last = now


def make_status_provider(
    engine: Engine,
    *,
    xruns: Callable[[], int] | None = None,
    recording: Callable[[], object] | None = None,
) -> StatusProvider:
    """A ``/status`` provider: the engine's status plus uptime, output peaks, xruns and recording state.

    The provider reads only the engine's published snapshot (it runs in the OSC thread).

    Args:
        engine: the running engine.
        xruns: returns the output's xrun/underrun count (None: reported as null).
        recording: returns the recorder's state, JSON-ready (None: reported as null).
    """
    started = time.monotonic()
    speakers = [s.name for s in engine.layout.speakers]  # fixed by the venue: read once, here

    def status() -> dict[str, Any]:
        snapshot = engine.snapshot
        reply = dict(snapshot.status())
        reply["uptime_s"] = round(time.monotonic() - started, 3)
        reply["peaks"] = dict(zip(speakers, snapshot.peaks, strict=True))
        reply["xruns"] = xruns() if xruns else None
        reply["recording"] = recording() if recording else None
        return reply

    return status


class OscServer:
    """The UDP OSC control surface of one engine.

    Threads: :meth:`start` and :meth:`stop` are called by the main thread; the server thread calls
    :meth:`handle_datagram`, :meth:`engine_replies` and :meth:`tick` and alone writes the counters and
    per-host state; the engine thread calls :meth:`_engine_refused` (it only appends to a bounded
    queue and wakes the server thread).
    """

    def __init__(
        self,
        engine: Engine,
        config: OscConfig,
        status_provider: StatusProvider,
        log: Any = None,
        *,
        port: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build the server (nothing is bound until :meth:`start`).

        Args:
            engine: receives the commands (``submit``); the server reads only its ``snapshot``.
            config: the venue's ``[osc]`` section.
            status_provider: builds the ``/status`` reply.
            log: a structlog logger (default ``latentd.osc``).
            port: listen on this port instead of ``config.port`` (0 = any free port).
            clock: monotonic seconds, for the rate limit.
        """
        self.engine = engine
        self.config = config
        self.status_provider = status_provider
        self.log = log if log is not None else structlog.get_logger("latentd.osc")
        self.counters = OscCounters()
        self._port = config.port if port is None else port
        self._clock = clock
        self._networks = config.networks()
        self._allowed: dict[str, bool] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._episodes: dict[str, _Episode] = {}
        self._token = id(self)
        self._refusals: deque[tuple[OscOrigin, str]] = deque(maxlen=MAX_PENDING_REFUSALS)
        self._answers: deque[Reply] = deque(maxlen=MAX_PENDING_REFUSALS)
        self._wake: tuple[socket.socket, socket.socket] | None = None
        engine.refusal_listeners.append(self._engine_refused)  # removed by stop()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()

    # ------------------------------------------------------------------ transport
    @property
    def address(self) -> Sender:
        """The bound (host, port); valid after :meth:`start`."""
        if self._sock is None:
            raise RuntimeError("the OSC server is not started")
        host, port = self._sock.getsockname()[:2]
        return host, port

    def start(self) -> None:
        """Bind the socket and start the server thread.

        Raises:
            OscServerError: the address cannot be bound (in use, not local).
        """
        family = socket.AF_INET6 if ":" in self.config.bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.config.bind, self._port))
        except OSError as exc:
            sock.close()
            held = f" ({describe_udp_port(self._port)})" if exc.errno == errno.EADDRINUSE else ""
            raise OscServerError(
                f"cannot listen for OSC on {self.config.bind}:{self._port}: {exc.strerror or exc}{held}; "
                "change [osc] bind/port or stop the other program using it"
            ) from None
        sock.settimeout(RECV_TIMEOUT_S)
        self._sock = sock
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._wake = (wake_r, wake_w)
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._serve, name="latentd-osc", daemon=True)
        self._thread.start()
        host, port = self.address
        self.log.info("osc.listening", host=host, port=port, allow=[str(n) for n in self._networks])

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and close the socket (safe to call twice or before :meth:`start`)."""
        self._stop_event.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._engine_refused in self.engine.refusal_listeners:
            self.engine.refusal_listeners.remove(self._engine_refused)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None
        self.tick(force=True)
        self.log.info("osc.stopped", **asdict(self.counters))

    def _serve(self) -> None:
        sock, wake = self._sock, self._wake
        assert sock is not None and wake is not None
        size = self.config.max_packet_bytes + 1  # one more byte than allowed: tells an oversized packet
        while not self._stop_event.is_set():
            try:
                readable, _, _ = select.select([sock, wake[0]], [], [], RECV_TIMEOUT_S)
            except (OSError, ValueError):  # closed under us by stop()
                break
            if wake[0] in readable:
                with contextlib.suppress(OSError):  # BlockingIOError: drained
                    while wake[0].recv(512):
                        pass
            self._send(sock, self.engine_replies())
            self.tick()
            if sock not in readable:
                continue
            try:
                data, sender = sock.recvfrom(size)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop_event.is_set():
                    break
                self.log.warning("osc.receive_failed", error=str(exc))
                continue
            try:
                replies = self.handle_datagram(data, (sender[0], sender[1]))
            except Exception:  # the control surface must outlive any packet
                self.counters.internal_errors += 1
                self.log.exception("osc.internal_error", sender=sender[0])
                continue
            self._send(sock, replies)

    def _send(self, sock: socket.socket, replies: list[Reply]) -> None:
        for payload, target in replies:
            try:
                sock.sendto(payload, target)
            except OSError as exc:
                self.log.warning("osc.reply_failed", target=f"{target[0]}:{target[1]}", error=str(exc))

    # ------------------------------------------------------------------ refusals inside the engine
    def _engine_refused(self, command: Command, reason: str) -> None:
        """Engine thread: queue a refusal of a command this server submitted, and wake the server."""
        origin = command.origin
        if not isinstance(origin, OscOrigin) or origin.server != self._token:
            return
        self._refusals.append((origin, reason))  # a deque with maxlen: bounded, never blocks
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):  # full (already woken) or closing
                wake[1].send(b"\0")

    def answer(self, command: Command, address: str, args: list[Any]) -> None:
        """Any thread: queue ``address args`` for the sender of ``command``, if this server took it.

        For work done after a command was applied (``/snapshot`` replies with the file it wrote).
        """
        origin = command.origin
        if not isinstance(origin, OscOrigin) or origin.server != self._token:
            return
        self._answers.append((encode_message(address, args), origin.reply_to))  # bounded, never blocks
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"\0")

    def engine_replies(self) -> list[Reply]:
        """``/error <address> <reason>`` for every refusal the engine published since the last call, and
        the answers queued by :meth:`answer`."""
        replies: list[Reply] = []
        while self._answers:
            replies.append(self._answers.popleft())
        while True:
            try:
                origin, reason = self._refusals.popleft()
            except IndexError:
                return replies
            replies.append((encode_message("/error", [origin.address, reason]), origin.reply_to))

    # ------------------------------------------------------------------ handling
    def handle_datagram(self, data: bytes, sender: Sender) -> list[Reply]:
        """Handle one datagram from ``sender``; return the replies to send (possibly none)."""
        self.counters.received += 1
        host = sender[0]
        if not self._is_allowed(host):
            self.counters.dropped_foreign += 1
            return []
        if not self._take_token(host):
            self.counters.dropped_rate += 1
            return []
        reply_to = (host, self.config.reply_port or sender[1])
        if len(data) > self.config.max_packet_bytes:
            self.counters.dropped_size += 1
            self.log.warning("osc.too_large", sender=host, bytes=len(data), max=self.config.max_packet_bytes)
            return []
        try:
            messages = parse_packet(data)
        except OscParseError as exc:
            return self._refuse(exc.address, f"malformed packet: {exc.reason}", host, reply_to)
        planned: list[Command | StatusRequest] = []
        message_of: dict[int, str] = {}  # id(planned item) → its address, for a later refusal
        view = self.engine.snapshot  # one snapshot for the whole packet
        for message in messages:
            mapped = map_message(message)
            if isinstance(mapped, Refusal):
                reason = mapped.reason
            elif isinstance(mapped, StatusRequest):
                reason = None
            else:
                reason = check(mapped, view)
            if reason is not None:
                if len(messages) > 1:
                    reason += f" (the whole bundle of {len(messages)} messages was refused)"
                return self._refuse(message.address, reason, host, reply_to)
            planned.append(mapped)  # type: ignore[arg-type]
            message_of[id(mapped)] = message.address
        self.counters.accepted += 1
        replies: list[Reply] = []
        for item in planned:
            if isinstance(item, StatusRequest):
                replies.append((self._status_reply(), reply_to))
                continue
            self.engine.submit(
                dataclasses.replace(item, origin=OscOrigin(self._token, message_of[id(item)], reply_to))
            )
            self.log.debug("osc.accepted", sender=host, **item.to_json())
        return replies

    def _refuse(self, address: str, reason: str, host: str, reply_to: Sender) -> list[Reply]:
        self.counters.refused += 1
        self.log.warning("osc.refused", sender=host, address=address, reason=reason)
        return [(encode_message("/error", [address, reason]), reply_to)]

    def _status_reply(self) -> bytes:
        try:
            status = dict(self.status_provider())
            # Refusals happen in two places: here (the packet never reached the engine) and there.
            status["refused_commands"] = int(status.get("refused_commands") or 0) + self.counters.refused
            status["osc"] = asdict(self.counters)
            text = json.dumps(status, default=str, allow_nan=False)
        except (ValueError, TypeError) as exc:
            text = json.dumps({"error": f"status unavailable: {exc}"})
        return encode_message("/status", [text])

    def _is_allowed(self, host: str) -> bool:
        allowed = self._allowed.get(host)
        if allowed is None:
            allowed = host_allowed(host, self._networks)
            if len(self._allowed) >= MAX_TRACKED_HOSTS:
                self._allowed.clear()
            self._allowed[host] = allowed
            if not allowed:
                # Logged once per host (until the cache is cleared), not once per packet.
                self.log.warning("osc.foreign_sender", sender=host)
        return allowed

    def _take_token(self, host: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(host)
        burst = float(self.config.rate_burst)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_HOSTS:
                self._buckets.clear()
            bucket = self._buckets[host] = _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.last) * self.config.rate_limit_per_s)
        bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        episode = self._episodes.get(host)
        if episode is None:
            if len(self._episodes) >= MAX_TRACKED_HOSTS:  # bounded: one line for them all, not thousands
                self.log.warning(
                    "osc.rate_limit_ended",
                    senders=len(self._episodes),
                    dropped=sum(e.dropped for e in self._episodes.values()),
                    action="too many senders over their rate to follow one by one",
                )
                self._episodes.clear()
            episode = self._episodes[host] = _Episode(now, now)
            self.log.warning(
                "osc.rate_limited",
                sender=host,
                rate_per_s=self.config.rate_limit_per_s,
                action="dropping its packets until it slows down; one line when it does",
            )
        episode.dropped += 1
        episode.last_drop = now
        return False

    def tick(self, *, force: bool = False) -> None:
        """End the rate-limit episodes of senders quiet for :data:`EPISODE_QUIET_S` (all, if ``force``),
        logging each once with its count of dropped packets. Server thread (and :meth:`stop`)."""
        if not self._episodes:
            return
        now = self._clock()
        for host, episode in list(self._episodes.items()):
            if force or now - episode.last_drop >= EPISODE_QUIET_S:
                del self._episodes[host]
                self.log.info(
                    "osc.rate_limit_ended",
                    sender=host,
                    dropped=episode.dropped,
                    duration_s=round(episode.last_drop - episode.started, 3),
                )
