"""The JACK client: one output port per speaker, fed from a :class:`~latentd.engine.ring.BlockRing`.

Threads: :meth:`JackOutput.start`, :meth:`JackOutput.stop` and :meth:`JackOutput.poll` run in the main
thread. JACK calls the process callback in its real-time thread, and the xrun, shutdown and blocksize
callbacks in its notification thread; those only bump counters or set flags.

Port buffers: ``OwnPort.get_array()`` builds a cffi buffer (a GC-tracked object, so it can trigger a
garbage collection inside the callback) and a numpy view on every call. JACK output port buffers keep
their address while the port exists, so the callback asks libjack for the buffer address each period
(as JACK requires) through JACK-Client's cffi handle, and rebuilds its numpy views only when the address
changes. If that handle is missing (a future JACK-Client), it falls back to ``get_array()`` per period.
:class:`PortBuffer` does the same for one port outside the speakers' plan (the beat, node inputs).

Period and ring blocksize: equal sizes copy one block per period; a JACK period that divides the ring
blocksize copies the next part of the current block; a period that is a multiple of the ring blocksize
copies several blocks. Any other pair is refused at start.
"""

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jack
import numpy as np
from structlog.typing import FilteringBoundLogger

from latentd.engine.ring import BlockRing
from latentd.realtime import realtime

try:  # JACK-Client's cffi handle: reading a port's buffer address allocates no GC-tracked object.
    from jack import _ffi as _jack_ffi
    from jack import _lib as _jack_lib

    _PORT_GET_BUFFER: Callable[[Any, int], Any] | None = _jack_lib.jack_port_get_buffer
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed JACK-Client
    _jack_ffi = None
    _PORT_GET_BUFFER = None

RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0
_SAMPLE_BYTES = 4


BEAT_MODULO = (1 << 24) - 1  # beat values 1 .. 2**24 - 1; 0 is silence (no node)


class PortBuffer:
    """One port's buffer as a numpy view made once: remade only when libjack moves the buffer.

    For ports outside :class:`JackOutput`'s chunk plan (a worker's beat, the master's node inputs). An
    input port's buffer is the connected output's, so it moves when its connection changes, not per
    period. Without JACK-Client's cffi handle it falls back to ``get_array()`` every call.
    """

    __slots__ = ("_addr", "_ptr", "_view", "port")

    def __init__(self, port: jack.Port) -> None:
        """Wrap ``port`` (registered on an open client)."""
        self.port = port
        self._ptr = getattr(port, "_ptr", None)
        self._addr: Any = None
        self._view = np.zeros(0, dtype=np.float32)

    @realtime
    def get(self, frames: int) -> np.ndarray:
        """The buffer for this period (JACK thread): the same view while libjack keeps its address."""
        if _PORT_GET_BUFFER is None or self._ptr is None:
            return self.port.get_array()
        addr = _PORT_GET_BUFFER(self._ptr, frames)
        if addr != self._addr or self._view.shape[0] != frames:
            # First period, a new connection or a new period: one view, then none until the next.
            self._view = np.frombuffer(_jack_ffi.buffer(addr, frames * _SAMPLE_BYTES), dtype=np.float32)
            self._addr = addr
        return self._view


class JackOutputError(RuntimeError):
    """The JACK output cannot play: no server, wrong samplerate, incompatible period, bad names."""


def close_client(client: jack.Client | None) -> None:
    """Deactivate and close ``client`` (None: nothing); a server already gone is not an error."""
    if client is not None:
        with contextlib.suppress(jack.JackError):
            client.deactivate()
            client.close()


def port_names(client: jack.Client, pattern: str, tries: int = 3) -> list[str] | None:
    """The names of the ports matching ``pattern``; None when ports kept going while being listed.

    ``get_ports`` lists names, then looks each up: a port that leaves in between (a worker node that
    goes) raises. Listing again usually succeeds; None tells a poll to try at its next turn.
    """
    for _ in range(tries):
        try:
            return [port.name for port in client.get_ports(pattern)]
        except jack.JackError:
            continue
    return None


def open_client(name: str, server_name: str | None) -> jack.Client:
    """Open a JACK client without ever starting a server.

    libjack prints its complaints to stderr; while opening, they are collected instead and put into the
    error message, so that a retry loop does not flood the journal.

    Args:
        name: Client name.
        server_name: JACK server name, or None for the default server.

    Returns:
        The open (inactive) client.

    Raises:
        JackOutputError: If no server of that name accepts the client.
    """
    messages: list[str] = []
    jack.set_error_function(messages.append)
    try:
        return jack.Client(name, no_start_server=True, servername=server_name)
    except jack.JackOpenError as exc:
        # libjack's first complaints say why (e.g. "Cannot connect to server socket"); the rest is noise.
        useful = [m for m in messages if not m.startswith("JackShmReadWritePtr")]
        detail = f" ({useful[0]})" if useful else ""
        raise JackOutputError(
            f"cannot open JACK client {name!r} on server {server_name or 'default'!r}: {exc.status}{detail}"
        ) from exc
    finally:
        jack.set_error_function(None)


def plan_period(period: int, blocksize: int) -> tuple[int, int]:
    """Choose how a JACK period is filled from ring blocks.

    Args:
        period: JACK frames per process callback.
        blocksize: Ring frames per block.

    Returns:
        ``(read_frames, n_chunks)``: frames per ring read, and ring reads per period.

    Raises:
        JackOutputError: If neither size is a multiple of the other.
    """
    if blocksize % period == 0:
        return period, 1
    if period % blocksize == 0:
        return blocksize, period // blocksize
    raise JackOutputError(
        f"JACK period of {period} frames and engine blocksize of {blocksize} frames do not fit: "
        "one must be a multiple of the other (e.g. blocksize equal to the JACK period)"
    )


class JackOutput:
    """Plays a :class:`BlockRing` on one JACK output port per speaker, and reconnects after jackd dies.

    Attributes:
        xruns: xruns reported by JACK since start.
        callbacks: Process callbacks run since start.
        errors: Process callbacks that caught an exception (and played silence).
    """

    def __init__(
        self,
        ring: BlockRing,
        *,
        client_name: str,
        port_names: Sequence[str],
        server_name: str | None,
        connect_to: Sequence[str] | None,
        samplerate: int,
        blocksize: int,
        log: FilteringBoundLogger,
        beat: bool = False,
    ) -> None:
        """Check the names; nothing is opened yet.

        Args:
            ring: The ring to play; one channel per port.
            client_name: JACK client name (exactly this name is used).
            port_names: One port name per speaker, in ring channel order.
            server_name: JACK server name, or None for the default server.
            connect_to: One JACK input port per speaker to connect to ("" leaves that port unconnected);
                an empty sequence connects nothing; None means ``system:playback_1`` .. ``system:playback_N``.
            samplerate: The samplerate the engine renders at; the server must run at this rate.
            blocksize: The engine blocksize; must equal ``ring.blocksize``.
            log: structlog logger for state changes.
            beat: Register one more port, ``beat``, that plays the index of the ring block being played,
                plus one, exact in float32 below 2**24 (a worker node's heartbeat and clock for the master;
                connected to the port after the speakers' targets).

        Raises:
            ValueError: If names or sizes are inconsistent.
        """
        n = ring.n_channels
        where = f"JACK output {client_name!r}"
        if blocksize != ring.blocksize:
            raise ValueError(
                f"{where}: blocksize {blocksize} differs from the ring's blocksize {ring.blocksize}"
            )
        if not client_name or len(client_name) > jack.client_name_size() - 1:
            raise ValueError(f"{where}: client name must have 1..{jack.client_name_size() - 1} characters")
        if client_name == (server_name or "default"):
            # The client's socket would replace the server's: the server stops answering everyone.
            raise ValueError(f"{where}: the client name must differ from the server's name")
        names = list(port_names)
        if len(names) != n:
            raise ValueError(f"{where}: {len(names)} port names given for a ring of {n} channels")
        max_port = jack.port_name_size() - 1 - len(client_name) - 1
        for name in names:
            if not isinstance(name, str) or not name or ":" in name or len(name) > max_port:
                raise ValueError(f"{where}: port name {name!r} must be 1..{max_port} characters without ':'")
        if len(set(names)) != n:
            raise ValueError(f"{where}: port names must be unique, got {names}")
        if connect_to is None:
            targets = [f"system:playback_{i + 1}" for i in range(n)]
        else:
            targets = list(connect_to) or [""] * n
        if len(targets) != n:
            raise ValueError(
                f"{where}: {len(targets)} connect_to ports given for {n} channels (give one per channel, "
                "or none to leave the ports unconnected)"
            )
        if samplerate < 1:
            raise ValueError(f"{where}: samplerate must be positive, got {samplerate}")
        self._ring = ring
        self._beat = beat
        self._beat_port: jack.OwnPort | None = None
        self._beat_buffer: PortBuffer | None = None
        self._client_name = client_name
        self._port_names = names
        self._server_name = server_name
        self._targets = targets
        self._samplerate = samplerate
        self._log = log.bind(client=client_name, server=server_name or "default")
        self._client: jack.Client | None = None
        self._ports: list[jack.OwnPort] = []
        self._started = False
        self._server_lost = False
        self._shutdown_reason = ""
        self._retry_delay_s = RETRY_MIN_S
        self._next_attempt_s = 0.0
        self._lost_at_s = 0.0
        self._last_failure = ""
        self._plan_error = ""
        self._plan_error_logged = ""
        self.xruns = 0
        self.callbacks = 0
        self.errors = 0
        # Real-time state, rebuilt by _plan() while the process callback is not running.
        self._period = 0
        self._port_ptrs: list[Any] = []
        self._addrs: list[Any] = []
        self._chunks: list[list[np.ndarray]] = []

    @property
    def underruns(self) -> int:
        """Periods (or parts) the ring could not fill; played as silence."""
        return self._ring.underruns

    @property
    def connected(self) -> bool:
        """True while the client is open on a live server."""
        return self._client is not None and not self._server_lost

    @property
    def beat_port_name(self) -> str | None:
        """Full JACK name of the beat port, when there is one."""
        return f"{self._client_name}:beat" if self._beat else None

    @property
    def port_names(self) -> list[str]:
        """Full JACK names of the output ports (``client:port``)."""
        return [f"{self._client_name}:{name}" for name in self._port_names]

    def start(self) -> None:
        """Open the client, register the ports, activate and connect.

        Raises:
            JackOutputError: If no server answers, its samplerate differs, or its period does not fit
                the ring blocksize.
        """
        if self._started:
            return
        self._open()
        self._started = True
        self._log.info(
            "jack.started", samplerate=self._samplerate, period=self._period, ports=len(self._ports)
        )

    def stop(self) -> None:
        """Deactivate and close the client. Idempotent."""
        self._started = False
        if self._client is not None:
            self._close()
            self._log.info("jack.stopped")

    def poll(self) -> None:
        """Housekeeping from the main loop (every ~100 ms): notice a dead server and reconnect.

        After the shutdown callback fired, the client is closed and reopened with back-off
        (0.2 s doubling to 2 s) until the server is back; then the ports are registered and connected
        again.
        """
        if not self._started:
            return
        if self._plan_error != self._plan_error_logged:
            self._plan_error_logged = self._plan_error
            if self._plan_error:
                self._log.error("jack.period_unusable", reason=self._plan_error)
        now = time.monotonic()
        if self._client is not None:
            if not self._server_lost:
                return
            self._log.warning("jack.server_lost", reason=self._shutdown_reason, xruns=self.xruns)
            self._close()
            self._lost_at_s = now
            self._retry_delay_s = RETRY_MIN_S
            self._next_attempt_s = now + RETRY_MIN_S
            self._last_failure = ""
            return
        if now < self._next_attempt_s:
            return
        try:
            self._open()
        except (JackOutputError, jack.JackError) as exc:
            reason = str(exc)
            if reason != self._last_failure:
                # Log when the reason changes, not every attempt: an outage may last hours.
                self._last_failure = reason
                self._log.warning("jack.reconnect_failed", reason=reason, retry_s=self._retry_delay_s)
            self._next_attempt_s = now + self._retry_delay_s
            self._retry_delay_s = min(self._retry_delay_s * 2.0, RETRY_MAX_S)
            return
        self._log.info("jack.reconnected", downtime_s=round(time.monotonic() - self._lost_at_s, 3))

    def _open(self) -> None:
        client = open_client(self._client_name, self._server_name)
        try:
            if client.samplerate != self._samplerate:
                raise JackOutputError(
                    f"JACK server {self._server_name or 'default'!r} runs at {client.samplerate} Hz but the "
                    f"engine renders at {self._samplerate} Hz; refusing to play at the wrong pitch "
                    f"(restart jackd with -r {self._samplerate} or set the venue samplerate to "
                    f"{client.samplerate})"
                )
            ports = [client.outports.register(name) for name in self._port_names]
            self._ports = ports
            self._beat_port = client.outports.register("beat") if self._beat else None
            self._beat_buffer = PortBuffer(self._beat_port) if self._beat_port is not None else None
            self._plan(client.blocksize)
            self._server_lost = False
            client.set_process_callback(self._process)
            client.set_xrun_callback(self._on_xrun)
            client.set_shutdown_callback(self._on_shutdown)
            client.set_blocksize_callback(self._on_blocksize)
            client.activate()
        except BaseException:
            client.close()
            self._ports = []
            raise
        self._client = client
        self._connect(client)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if not self._server_lost:
            client.deactivate()
        client.close()
        self._ports = []

    def _connect(self, client: jack.Client) -> None:
        for port, target in zip(self._ports, self._targets, strict=True):
            if not target:
                continue
            try:
                client.get_port_by_name(target)
            except jack.JackError:
                self._log.warning("jack.port_missing", port=port.name, target=target)
                continue
            try:
                client.connect(port, target)
            except jack.JackError as exc:
                self._log.warning("jack.connect_failed", port=port.name, target=target, reason=str(exc))

    def _plan(self, period: int) -> None:
        """Build the per-period state for ``period`` frames (JACK is not running the callback)."""
        read_frames, n_chunks = plan_period(period, self._ring.blocksize)
        self._ring.set_read_frames(read_frames)
        n = len(self._ports)
        placeholder = np.zeros(read_frames, dtype=np.float32)
        self._chunks = [[placeholder] * n for _ in range(n_chunks)]
        raw = _PORT_GET_BUFFER is not None and all(hasattr(p, "_ptr") for p in self._ports)
        self._port_ptrs = [p._ptr for p in self._ports] if raw else []
        self._addrs = [None] * n
        self._period = period

    def _bind(self, i: int, out: np.ndarray) -> None:
        """Point the chunk views of port ``i`` at its buffer ``out`` (allocates; rare)."""
        step = self._ring.read_frames
        for j, chunk in enumerate(self._chunks):
            chunk[i] = out[j * step : (j + 1) * step]

    @realtime
    def _process(self, frames: int) -> None:
        """JACK process callback: copy the ring into the port buffers. Real-time; never raises."""
        try:
            self.callbacks += 1
            if frames != self._period:
                self._silence()
                return
            ptrs = self._port_ptrs
            if ptrs:
                addrs = self._addrs
                for i in range(len(ptrs)):
                    addr = _PORT_GET_BUFFER(ptrs[i], frames)  # type: ignore[misc]
                    if addr != addrs[i]:
                        # First period, or libjack moved the buffer: rebuild the views once.
                        out = np.frombuffer(_jack_ffi.buffer(addr, frames * _SAMPLE_BYTES), dtype=np.float32)
                        self._bind(i, out)
                        addrs[i] = addr
            else:
                for i, port in enumerate(self._ports):
                    self._bind(i, port.get_array())
            if self._beat_buffer is not None:
                # Below 2**24 every integer is exact in float32; the master reads it modulo that.
                self._beat_buffer.get(frames).fill(self._ring.blocks_read % BEAT_MODULO + 1)
            read_into = self._ring.read_into
            for chunk in self._chunks:
                read_into(chunk)
        except BaseException:
            # An exception leaving this callback would stop JACK calling it for good
            # (docs/ARCHITECTURE.md, "Real-time contract").
            self.errors += 1
            self._silence()

    def _silence(self) -> None:
        """Zero all port buffers. Runs in the JACK thread, on error paths only (it allocates views)."""
        try:
            for port in [*self._ports, *([self._beat_port] if self._beat_port is not None else [])]:
                port.get_array().fill(0.0)
        except BaseException:
            return

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def _on_shutdown(self, status: jack.Status, reason: str) -> None:
        # Runs in JACK's thread like a signal handler: set flags only; poll() does the work.
        self._shutdown_reason = reason
        self._server_lost = True

    def _on_blocksize(self, blocksize: int) -> None:
        # JACK does not run the process callback while this runs, so replanning is safe here.
        if blocksize == self._period:
            return
        try:
            self._plan(blocksize)
            self._plan_error = ""
        except BaseException as exc:
            # The callback then sees frames != _period and plays silence; poll() logs the reason.
            self._plan_error = str(exc)
