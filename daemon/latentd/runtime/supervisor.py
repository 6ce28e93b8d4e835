"""Live playback: ``latentd run``. Start in order, a short main loop, stop in reverse.

Lifecycle (:class:`Supervisor`): :meth:`~Supervisor.startup` (signal flags → systemd notifier → stack
dumps → process settings → engine process with its ring pre-filled (models, engine, recorder, state,
schedule, OSC) → private jackd → JACK client) → :meth:`~Supervisor.main_loop` (a 100 ms tick: JACK
reconnection, readiness and watchdog, status lines, duration, signal flags) → :meth:`~Supervisor.shutdown`
in reverse order of startup, every step bounded. This process holds the real-time callback and nothing
that competes with it for the GIL: it never loads torch.

Signals: the first SIGTERM/SIGINT/SIGHUP sets a flag the main loop reads (SIGHUP: the terminal closed;
latentd has no configuration to re-read while playing). A second one forces: it interrupts a start-up
step that is still loading, and shortens every wait of the shutdown to :data:`FORCE_GRACE_S`.

What a SIGKILL leaves behind is bounded: the private jackd ends with this process (parent-death signal,
see :mod:`latentd.outputs.jackd`), the engine process notices its parent is gone within a tick, and the
ring's shared-memory segment, named after this process, is removed by the next run's start-up.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from latentd.config import Config
from latentd.config.checks import jack_server_name
from latentd.config.writable import writable_problems
from latentd.engine.ring import BlockRing
from latentd.engine.shared_ring import XRUNS, SharedBlockRing, remove_stale_segments
from latentd.outputs.jack_out import JackOutput
from latentd.outputs.jackd import JackServer
from latentd.outputs.netjack import NetjackError, load_netmanager, unload_netmanager
from latentd.outputs.node_beat import NodeBeat
from latentd.outputs.node_in import NodeInputs
from latentd.runtime.diagnostics import StackDumpSignal, enable_fatal_dumps
from latentd.runtime.engine_process import EngineProcess
from latentd.runtime.notify import Notifier, ReadyGate, WatchdogGate
from latentd.runtime.process import configure_process, thaw_heap

if TYPE_CHECKING:
    from latentd.runtime.engine_host import EngineHost

log = structlog.get_logger("latentd.runtime.supervisor")

STATUS_EVERY_S = 5.0
TICK_S = 0.1
STOP_GRACE_S = 15.0  # the engine finishes its recordings and the state file within this
FORCE_GRACE_S = 2.0  # after a second signal: each remaining shutdown step waits at most this
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class StopFlags:
    """Set by signal handlers; read by the main loop and the shutdown. Handlers do nothing else.

    Attributes:
        stop: a stop was asked for (first signal).
        force: a second signal came: waits are cut short.
        signals: how many stop signals arrived.
    """

    stop: bool = False
    force: bool = False
    signals: int = 0


def port_names(config: Config) -> tuple[list[str], list[str] | None]:
    """(our port names, ports to connect them to or None for system:playback_1..N)."""
    speakers = config.layout.speakers
    names = [s.name for s in speakers]
    if is_worker(config):
        # Its speakers go to its net driver's ports, in channel order, whatever ports the layout names
        # (those are the master's sound card's).
        return names, None
    jack = config.venue.jack
    if jack.playback_ports:
        return names, list(jack.playback_ports)
    ports = [s.port for s in speakers]
    if all(ports):
        return names, [p for p in ports if p]
    return names, None


class Supervisor:
    """``latentd run``: startup in order, a main loop, shutdown in reverse (see the module docstring).

    Args:
        config: the validated venue and piece.
        duration_s: stop cleanly after this time (None: until a signal).
        record: record the master bus from the start.
        label: added to the recording's file names.
        fresh: play the piece from its start: the state file is removed before the engine starts (and
            written anew while playing), instead of resuming where it says.
    """

    def __init__(
        self,
        config: Config,
        *,
        duration_s: float | None = None,
        record: bool = False,
        label: str = "",
        fresh: bool = False,
    ) -> None:
        self.config = config
        self.duration_s = duration_s
        self.record = record
        self.label = label
        self.fresh = fresh
        self.flags = StopFlags()
        self.notifier: Notifier | None = None
        self.stack_dump: StackDumpSignal | None = None
        self.ring: BlockRing | SharedBlockRing | None = None
        self.child: EngineProcess | None = None
        self.host: EngineHost | None = None
        self.server: JackServer | None = None
        self.output: JackOutput | None = None
        self.node_rings: dict[str, BlockRing] = {}  # worker nodes' audio, on a master (venue [nodes])
        self.inputs: NodeInputs | None = None
        self.beat: NodeBeat | None = None  # a worker node's heartbeat to the master
        self.ready: ReadyGate | None = None
        self.watchdog: WatchdogGate | None = None
        # Each start-up step pushes its undo here; the shutdown unwinds it, last in first out.
        self._undo = contextlib.ExitStack()
        self._shutting_down = False
        self._previous_handlers: dict[int, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Start, play until stopped, stop; returns the exit status."""
        try:
            code = self.startup()
            return code if code is not None else self.main_loop()
        finally:
            self.shutdown()

    def startup(self) -> int | None:
        """Start everything in order; None when playing, else the exit status to stop with.

        Raises:
            ConfigError: the piece or a model is bad (threaded engine; the engine process reports it with
                its exit status instead).
            JackOutputError, JackServerError: JACK cannot be started or reached.
        """
        config = self.config
        audio = config.venue.audio
        jack_cfg = config.venue.jack
        n_channels = config.layout.n_channels
        self._install_signal_handlers()
        # Reads and unsets NOTIFY_SOCKET / WATCHDOG_*: jackd and the engine process must not inherit them.
        notifier = self.notifier = self._undo.enter_context(Notifier())
        stack_dump = self.stack_dump = StackDumpSignal().install()  # SIGUSR1 -> "threads.dump" event
        self._undo.callback(stack_dump.uninstall)
        enable_fatal_dumps()  # the watchdog's SIGABRT prints every thread's stack to the journal
        configure_process(audio.torch_threads, realtime=True, load_torch=not audio.engine_process)
        for problem in writable_problems(config):  # `latentd check` refuses these; a run says so and plays
            log.warning(
                "config.not_writable", file=str(problem.file), key=problem.key, reason=problem.message
            )
        if self.fresh:
            _forget_state(config)
        workers = worker_nodes(config)
        # A node ring holds twice what the engine runs ahead of JACK: the bus's cushion and as much again.
        node_blocks = 2 * jack_cfg.ring_blocks + 2
        if audio.engine_process:
            stale = remove_stale_segments()
            if stale:
                log.info("ring.stale_removed", segments=stale)
            shared = self.ring = SharedBlockRing(
                jack_cfg.ring_blocks, audio.blocksize, n_channels, consumer=True
            )
            self._undo.callback(_release, shared)
            shared_nodes = {
                node: SharedBlockRing(node_blocks, audio.blocksize, n_channels + 1) for node in workers
            }
            for node_ring in shared_nodes.values():
                self._undo.callback(_release, node_ring)
            self.node_rings = dict(shared_nodes)
            child = self.child = EngineProcess(
                config, shared, record=self.record, label=self.label, node_rings=shared_nodes
            )
            self._undo.callback(lambda: child.stop(self._grace_s(), forced=lambda: self.flags.force))
            code = child.start()
            if code:
                log.error("engine_process.failed_to_start", exit_code=code)
                return code
        else:
            from latentd.runtime.engine_host import EngineHost  # loads torch: only in the threaded mode

            ring = self.ring = BlockRing(jack_cfg.ring_blocks, audio.blocksize, n_channels)
            self.node_rings = {
                node: BlockRing(node_blocks, audio.blocksize, n_channels + 1) for node in workers
            }
            host = self.host = EngineHost(
                config,
                ring,
                record=self.record,
                label=self.label,
                xruns=self.xruns,
                node_rings=self.node_rings,
            )
            self._undo.callback(lambda: host.stop(min(5.0, self._grace_s())))
            host.start()
        self.ready = ReadyGate(notifier, self.blocks)
        if self.flags.stop:  # asked while the engine was starting: JACK is not worth starting
            log.info("stopping", blocks=self.blocks())
            return 0
        server_name = jack_cfg.server_name or None
        if jack_cfg.start_server:
            server = self.server = JackServer(
                jack_server_name(config.venue.name, jack_cfg.server_name, start_server=True),
                samplerate=audio.samplerate,
                period=jack_cfg.period,
                driver=jack_cfg.driver,
                device=jack_cfg.device,
                playback_channels=n_channels,
            )
            self._undo.callback(lambda: server.stop(min(5.0, self._grace_s())))
            server.start()
            server_name = server.name
            if self.node_rings:
                self._serve_nodes(server.name, config)
        names, connect = port_names(config)
        output = self.output = JackOutput(
            self.ring,
            client_name=jack_cfg.client_name,
            port_names=names,
            server_name=server_name,
            connect_to=connect if jack_cfg.autoconnect else [],
            samplerate=audio.samplerate,
            blocksize=audio.blocksize,
            log=log,
            beat=is_worker(config),
        )
        self._undo.callback(output.stop)
        output.start()
        if self.node_rings:
            inputs = self.inputs = NodeInputs(
                self.node_rings,
                config.layout.names,
                client_name=f"{jack_cfg.client_name}-nodes",
                server_name=server_name,
                log=log,
            )
            self._undo.callback(inputs.stop)
            inputs.start()
        if is_worker(config):
            beat = self.beat = NodeBeat(
                [*output.port_names, f"{jack_cfg.client_name}:beat"],
                client_name=f"{jack_cfg.client_name}-beat",
                server_name=server_name,
                log=log,
            )
            self._undo.callback(beat.stop)
            beat.start()
        self.watchdog = WatchdogGate(notifier, self.blocks, idle=lambda: not output.connected)
        log.info(
            "ready",
            piece=config.piece.name,
            channels=n_channels,
            samplerate=audio.samplerate,
            engine="process" if self.child is not None else "thread",
        )
        return None

    def _serve_nodes(self, server_name: str, config: Config) -> None:
        """The master of several machines on a jackd of its own: load the netmanager, on the node's
        address, so workers join; unloaded first at shutdown (with it, jackd takes ~13 s to stop)."""
        address = config.venue.nodes[config.venue.node].address
        try:
            load_netmanager(server_name, address)
        except NetjackError as exc:
            log.error("node.netmanager_failed", reason=str(exc), action="playing without worker nodes")
            return
        log.info("node.netmanager_loaded", server=server_name, address=address)

        def unload() -> None:
            try:
                unload_netmanager(server_name)
            except NetjackError as exc:
                log.warning("node.netmanager_unload_failed", reason=str(exc))
                return
            log.info("node.netmanager_unloaded", server=server_name)

        self._undo.callback(unload)

    def main_loop(self) -> int:
        """Tick until a signal, the duration or a failed engine stops it; returns the exit status."""
        started = last_status = time.monotonic()
        while not self.flags.stop:
            time.sleep(TICK_S)
            code = self.tick()
            if code is not None:
                return code
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                self._status()
            if self.duration_s is not None and now - started >= self.duration_s:
                break
        assert self.ring is not None
        log.info("stopping", xruns=self.xruns(), underruns=self.ring.underruns, blocks=self.blocks())
        return 0

    def tick(self) -> int | None:
        """One round of housekeeping; None while playing, else the exit status of a failed engine."""
        assert self.output is not None and self.ready is not None and self.watchdog is not None
        self.output.poll()
        if self.inputs is not None:
            self.inputs.poll()
        if self.beat is not None:
            self.beat.poll()
        if self.child is not None:
            self.child.ring.header[XRUNS] = self.output.xruns  # for the recording's session file
            if self.child.error:
                log.error("engine_process.died", exit_code=self.child.exit_code)
                return self.child.exit_code
        if self.host is not None:
            self.host.tick()
            if self.host.error is not None:
                return 1
        if self.stack_dump is not None:
            self.stack_dump.poll(log)
        self.ready.tick(status=f"playing {self.config.piece.name}")
        self.watchdog.tick()
        return None

    def shutdown(self) -> None:
        """Stop in reverse order of startup; safe after a partial start, every wait bounded."""
        self._shutting_down = True
        if self.notifier is not None:
            self.notifier.stopping()
        try:
            self._undo.close()
        finally:
            self._restore_signal_handlers()

    # ------------------------------------------------------------------ reads
    def blocks(self) -> int:
        """Blocks the engine has rendered so far (from the shared ring or the engine's snapshot)."""
        if isinstance(self.ring, SharedBlockRing):
            return self.ring.blocks_written
        if self.host is not None and self.host.engine is not None:
            return self.host.engine.snapshot.block
        return 0

    def xruns(self) -> int:
        """JACK xruns so far (0 before the client starts)."""
        return self.output.xruns if self.output is not None else 0

    def _status(self) -> None:
        assert self.output is not None and self.ring is not None and self.notifier is not None
        blocks, xruns, underruns = self.blocks(), self.output.xruns, self.ring.underruns
        self.notifier.status(f"blocks {blocks}, xruns {xruns}, underruns {underruns}")
        log.info("status", blocks=blocks, xruns=xruns, underruns=underruns, connected=self.output.connected)

    def _grace_s(self) -> float:
        return FORCE_GRACE_S if self.flags.force else STOP_GRACE_S

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> None:
        self._previous_handlers = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        flags = self.flags
        flags.signals += 1
        flags.stop = True
        if flags.signals > 1:
            flags.force = True
            if not self._shutting_down:
                # Interrupts a start-up step that may load for minutes; the shutdown still runs, briefly.
                raise SystemExit(130)


def worker_nodes(config: Config) -> list[str]:
    """The worker nodes whose audio this machine mixes: all of them on the master, none elsewhere."""
    venue = config.venue
    if venue.node not in venue.nodes or venue.nodes[venue.node].role != "master":
        return []
    return [name for name, node in venue.nodes.items() if node.role == "worker"]


def is_worker(config: Config) -> bool:
    """True when this machine is a worker node of the venue."""
    venue = config.venue
    return venue.node in venue.nodes and venue.nodes[venue.node].role == "worker"


def _release(ring: SharedBlockRing) -> None:
    ring.close()
    ring.unlink()


def _forget_state(config: Config) -> None:
    """``run --fresh``: remove the state file so the engine starts at the piece's beginning."""
    path = config.state_file
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    log.info("state.fresh", path=str(path), action="starting from the beginning of the piece")


def run(
    config: Config,
    *,
    duration_s: float | None = None,
    record: bool = False,
    label: str = "",
    fresh: bool = False,
) -> int:
    """Play the piece on JACK until stopped (signal or ``duration_s``). Returns the exit status."""
    return Supervisor(config, duration_s=duration_s, record=record, label=label, fresh=fresh).run()


def run_from_file(
    path: Path,
    duration_s: float | None,
    record: bool = False,
    label: str = "",
    fresh: bool = False,
    node: str | None = None,
) -> int:
    """``latentd run``: load the config (as ``node``'s, for a venue of several machines) and play."""
    from latentd.config import MISSING, ConfigError, load_config
    from latentd.runtime.logs import setup_logging

    config = load_config(path, node=node)
    if config.venue.nodes and not config.venue.node:
        message = f"the venue plays on the nodes {', '.join(config.venue.nodes)}: say which this machine is "
        raise ConfigError.single(
            path, "node", MISSING, message + '(node = "<name>" or latentd run --node NAME)'
        )
    setup_logging(config.venue.logging.level, config.venue.logging.format)
    try:
        return run(config, duration_s=duration_s, record=record, label=label, fresh=fresh)
    finally:
        thaw_heap()
