"""The engine and everything that hangs on it, filling a block ring: run in its own process or a thread.

An :class:`EngineHost` loads the models, builds the engine, attaches the recorder, restores the state
file, starts the scheduler, the state writer and the OSC server, and keeps the ring full from a worker
thread. ``latentd run`` runs it in a child process (:func:`child_main`) writing into shared memory, so
the JACK process holds only the real-time callback: decoding beside the callback costs xruns at small
periods (the GIL), in another process none. With ``audio.engine_process = false`` it runs as a thread
of the JACK process instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from latentd.config import Config, ConfigError
from latentd.control.osc import OscServer, make_status_provider
from latentd.control.scheduler import ScheduleHandle, start_scheduler
from latentd.diffusion.piece_pools import PiecePools
from latentd.engine import commands as c
from latentd.engine.engine import Engine
from latentd.engine.node_bus import NodeBus
from latentd.engine.node_sync import CommandLead, ProgrammeClock
from latentd.engine.remote_voices import RemoteVoices
from latentd.engine.ring import BlockRing
from latentd.offline.build import build_engine
from latentd.offline.snapshot import snapshot_now
from latentd.recording.recorder import Recorder, attach_recorder
from latentd.runtime.node_control import NodeReceiver, NodeReports, NodeSender
from latentd.runtime.process import freeze_heap
from latentd.runtime.state import StateWriter, restore_state, state_path
from latentd.web.feed import WebFeed
from latentd.web.process import WebProcess

log = structlog.get_logger("latentd.runtime.engine_host")

STATUS_EVERY_S = 5.0
NODE_FADE_S = 2.0  # a worker node that leaves fades out (and in, when it is back) over this time
TICK_S = 0.1


class EngineWorker(threading.Thread):
    """Keeps the block ring full: the only thread that runs the engine (decode, mix, master)."""

    def __init__(self, engine: Engine, ring: BlockRing) -> None:
        super().__init__(name="latentd-engine", daemon=True)
        self.engine = engine
        self.ring = ring
        self._stop_event = threading.Event()
        self.error: BaseException | None = None
        self._period_s = engine.blocksize / engine.samplerate

    def fill(self) -> int:
        """Write blocks until the ring is full; returns how many were written."""
        written = 0
        while self.ring.writable() > 0:
            self.ring.write(self.engine.next_block())
            written += 1
        return written

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                if self.fill() == 0:
                    # Sleep about half a period: short enough to refill in time, long enough to leave the GIL.
                    self._stop_event.wait(self._period_s / 2)
        except BaseException as exc:  # the host reports it and the daemon stops cleanly
            self.error = exc
            log.exception("engine.failed")

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)


class SnapshotRequests:
    """The ``/snapshot`` handler: each request writes the piece snapshot in its own background thread.

    Called in the engine thread (it only starts the thread). The thread waits for the snapshot published
    after the block the request was applied at, so the commands sent before it count; then merges the
    live state into the piece, writes the file and answers the sender ``/snapshot <path>`` (or
    ``/error /snapshot <reason>``) through ``answer``.
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        answer: Callable[[c.Command, str, list[Any]], None],
        wait_s: float = 2.0,
    ) -> None:
        self.config = config
        self.engine = engine
        self.answer = answer
        self.wait_s = wait_s
        self._threads: list[threading.Thread] = []

    def __call__(self, cmd: c.Command) -> None:
        block = self.engine.counters.blocks
        thread = threading.Thread(target=self._write, args=(cmd, block), name="latentd-snapshot", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]  # bounded: finished ones go
        thread.start()

    def _write(self, cmd: c.Command, block: int) -> None:
        deadline = time.monotonic() + self.wait_s
        while self.engine.snapshot.block <= block and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            path, merged = snapshot_now(self.config, self.engine.snapshot, self.engine.seed)
        except (ConfigError, OSError, ValueError) as exc:
            reason = " ".join(str(exc).split())
            log.error("snapshot.failed", error=reason)
            self.answer(cmd, "/error", ["/snapshot", f"no snapshot written: {reason}"])
            return
        log.info("snapshot.written", path=str(path), written=merged.written, not_kept=merged.left_out)
        self.answer(cmd, "/snapshot", [str(path)])

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for the snapshots being written."""
        for thread in self._threads:
            thread.join(timeout_s)


class EngineHost:
    """Start in order, stop in reverse: pools, models, engine, recorder, state, scheduler, worker, OSC,
    web page."""

    def __init__(
        self,
        config: Config,
        ring: BlockRing,
        *,
        record: bool,
        label: str,
        xruns: Callable[[], int],
        status_every_s: float = STATUS_EVERY_S,
        node_rings: Mapping[str, BlockRing] | None = None,
    ) -> None:
        self.config = config
        self.node_rings = dict(node_rings or {})
        self.sender: NodeSender | None = None
        self.receiver: NodeReceiver | None = None
        self.reports: NodeReports | None = None
        self.status_every_s = status_every_s
        self.ring = ring
        self.record = record
        self.label = label
        self.xruns = xruns
        self.engine: Engine | None = None
        self.worker: EngineWorker | None = None
        self.recorder: Recorder | None = None
        self.osc: OscServer | None = None
        self.schedule: ScheduleHandle | None = None
        self.state: StateWriter | None = None
        self.pools: PiecePools | None = None
        self.snapshots: SnapshotRequests | None = None
        self.feed: WebFeed | None = None
        self.web: WebProcess | None = None
        self._engine_status: Callable[[], dict[str, Any]] | None = None
        self._last_status = time.monotonic()

    def start(self) -> None:
        """Load everything and pre-fill the ring; raises ConfigError for a bad piece or model."""
        config = self.config
        # Generators start first: their checkpoints load in their own processes while the models load here.
        self.pools = PiecePools.start(config, log)
        engine = self.engine = build_engine(config)
        self._join_nodes(engine)
        ring = self.ring
        # Attached before the first block: recordings and the command log count from block 0 (replay).
        recorder = self.recorder = attach_recorder(
            engine, config, self.label, stats=lambda: {"xruns": self.xruns(), "underruns": ring.underruns}
        )
        if self.record and not recorder.recording:
            recorder.request_start(self.label)
        # Registered before the worker starts: the engine thread reads its handlers.
        engine.handlers[c.SnapshotPiece] = self.snapshots = SnapshotRequests(config, engine, self._answer)
        # Before the first block: resume where the state file says, then let the clock decide whether the
        # venue is open (a closed venue starts silent).
        restore_state(engine, state_path(config), log)
        venue = config.venue
        if venue.node not in venue.nodes or venue.nodes[venue.node].role != "worker":
            # A worker has no schedule of its own: the master's opens, closes and reseeds for it.
            self.schedule = start_scheduler(engine, config, log)
        self.state = StateWriter(engine, state_path(config), config.venue.schedule.state_every_s, log).start()
        if config.venue.web.enabled:
            # Made before the worker starts: the feed's meter listens to the engine thread's blocks.
            web = self.web = WebProcess(
                config.venue.web, config.venue.logging.level, config.venue.logging.format
            )
            self.feed = WebFeed(
                engine,
                config,
                web.conn,
                recorder=recorder,
                counts=lambda: {"xruns": self.xruns(), "underruns": ring.underruns},
            )
        self.worker = EngineWorker(engine, ring)
        self.worker.fill()  # pre-fill before the JACK client is activated: the first callbacks find audio
        freeze_heap()
        self.worker.start()
        # "recording" in /status: {"state": "recording" | "paused" | "off" | "failed", "reason": ...}.
        self._engine_status = make_status_provider(engine, xruns=self.xruns, recording=recorder.status)
        if config.venue.osc.enabled:
            self.osc = OscServer(engine, config.venue.osc, self.status, log)
            self.osc.start()
        if self.web is not None and self.feed is not None:
            self.web.start()
            self.feed.start()

    def _join_nodes(self, engine: Engine) -> None:
        """A venue of several machines: the master mixes its workers and sends them its commands with
        their blocks; a worker applies them at those blocks (``engine/node_sync.py``). The master's
        programme is the clock: a worker's never ends a section by itself."""
        venue = self.config.venue
        if venue.node not in venue.nodes:
            return
        ring_blocks = venue.jack.ring_blocks
        owners = {
            voice: name for name, node in venue.nodes.items() if name != venue.node for voice in node.voices
        }
        engine.remote = RemoteVoices(owners)
        this = venue.nodes[venue.node]
        if this.role == "worker":
            engine.lead = CommandLead(0)
            engine.programme.follows = True
            # Silent until the master's programme reaches it (FollowProgramme): never a section of its own.
            engine.fade.set(0.0, now=True)
            [master] = [n for n in venue.nodes.values() if n.role == "master"]
            self.receiver = NodeReceiver(
                engine,
                this.address,
                this.control_port,
                node=venue.node,
                master=(master.address, master.control_port),
                fade_s=NODE_FADE_S,
            ).start()
            return
        buses = {}
        for node, node_ring in self.node_rings.items():
            # The cushion matches how far the engine runs ahead of JACK (see engine/node_bus.py).
            cushion = min(ring_blocks, node_ring.n_blocks)
            buses[node] = NodeBus(
                node, node_ring, engine.samplerate, cushion_blocks=cushion, fade_s=NODE_FADE_S
            )
        engine.buses.extend(buses.values())
        if buses:
            # Ahead of the worker's block: its ring, the network, this cushion, and some more.
            engine.lead = CommandLead(3 * ring_blocks + 8)
            clock = ProgrammeClock(engine, engine.lead)
            targets = {n: (venue.nodes[n].address, venue.nodes[n].control_port) for n in buses}
            self.sender = NodeSender(buses, targets, clock, owners)
            engine.remote.watch(lambda: {node: bus.present for node, bus in buses.items()})
            addresses = {n: venue.nodes[n].address for n in buses}
            self.reports = NodeReports(engine, this.address, this.control_port, addresses, targets).start()
            engine.lead.listeners.append(self.sender)
            # The sender first: a node heard again gets the state before any new section end.
            engine.block_start_listeners.append(self.sender.on_block)
            engine.block_start_listeners.append(clock)

    def _answer(self, cmd: c.Command, address: str, args: list[Any]) -> None:
        if self.osc is not None:
            self.osc.answer(cmd, address, args)

    def status(self) -> dict[str, Any]:
        """The ``/status`` reply: the engine's status, plus ``pools`` (each pool's state; see
        ``PiecePools.status``). Called from the OSC thread; reads only published state."""
        reply = self._engine_status() if self._engine_status is not None else {}
        reply["pools"] = self.pools.status() if self.pools is not None else {}
        return reply

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the engine worker, if any."""
        return self.worker.error if self.worker is not None else None

    def tick(self) -> None:
        """Housekeeping from a main loop, every ~100 ms: schedule checks and a status line."""
        if self.schedule is not None:
            self.schedule.poll()
        if self.pools is not None:
            self.pools.check()
        now = time.monotonic()
        if self.engine is not None and now - self._last_status >= self.status_every_s:
            self._last_status = now
            if self.pools is not None:
                self.pools.report(now)  # a failing pool says so every status interval, not once
            st: dict[str, Any] = self.engine.snapshot.status()  # the worker thread owns the engine
            log.info(
                "engine.status",
                section=st["section"],
                seconds=round(float(st["seconds"]), 1),
                open=st.get("open"),
                limiter_db=round(float(st["limiter_db"]), 1),
                refused_commands=st["refused_commands"],
                recording=self.recorder.recording if self.recorder else False,
            )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop in reverse order; safe after a partial start.

        Args:
            timeout_s: how long the engine worker may take to finish its block.
        """
        if self.schedule is not None:
            self.schedule.stop()
        if self.feed is not None:
            self.feed.stop()
        if self.web is not None:
            self.web.stop()
        if self.osc is not None:
            self.osc.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.reports is not None:
            self.reports.stop()
        if self.worker is not None:
            self.worker.stop(timeout_s)
        if self.sender is not None:
            self.sender.close()
        if self.snapshots is not None:
            self.snapshots.join(timeout_s)
        if self.recorder is not None:
            self.recorder.close()
        if self.state is not None:
            self.state.stop()
        if self.pools is not None:
            self.pools.stop()
