"""Live playback: ``latentd run``. Start in order, a short main loop, stop in reverse.

Lifecycle: logs → config → models → engine → ring pre-fill → (private jackd) → JACK client → ready →
main loop (status lines, JACK reconnection, duration, signals) → shutdown in reverse with timeouts.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog

from latentd.app import configure_process, freeze_heap, thaw_heap
from latentd.config import Config
from latentd.control.osc import OscServer, make_status_provider
from latentd.control.scheduler import ScheduleHandle, start_scheduler
from latentd.diagnostics import StackDumpSignal, enable_fatal_dumps
from latentd.engine.engine import Engine
from latentd.engine.ring import BlockRing
from latentd.installation.piece import load_installation
from latentd.notify import Notifier, ReadyGate, WatchdogGate
from latentd.outputs.jack_out import JackOutput
from latentd.outputs.jackd import JackServer
from latentd.outputs.recorder import Recorder, attach_recorder
from latentd.state import StateWriter, restore_state, state_path

log = structlog.get_logger("latentd.live")

STATUS_EVERY_S = 5.0
TICK_S = 0.1


@dataclass
class StopFlags:
    """Set by signal handlers; read by the main loop. Handlers do nothing else."""

    stop: bool = False
    signals: int = 0


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
        except BaseException as exc:  # the main loop reports it and stops cleanly
            self.error = exc
            log.exception("engine.failed")

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout_s)


def port_names(config: Config, engine: Engine) -> tuple[list[str], list[str] | None]:
    """(our port names, ports to connect them to or None for system:playback_1..N)."""
    names = [s.name for s in engine.layout.speakers]
    jack = config.venue.jack
    if jack.playback_ports:
        return names, list(jack.playback_ports)
    ports = [s.port for s in engine.layout.speakers]
    if all(ports):
        return names, [p for p in ports if p]
    return names, None


def run(config: Config, *, duration_s: float | None = None, record: bool = False, label: str = "") -> int:
    """Play the piece on JACK until stopped (signal or ``duration_s``). Returns the exit status."""
    flags = StopFlags()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        flags.signals += 1
        flags.stop = True
        if flags.signals > 1:
            raise SystemExit(130)  # a second signal forces the stop

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    notifier = (
        Notifier()
    )  # reads and unsets NOTIFY_SOCKET / WATCHDOG_*: a private jackd must not inherit them
    stack_dump = StackDumpSignal().install()  # SIGUSR1 -> "threads.dump" event from the main loop
    enable_fatal_dumps()  # the watchdog's SIGABRT prints every thread's stack to the journal
    audio = config.venue.audio
    jack_cfg = config.venue.jack
    server: JackServer | None = None
    output: JackOutput | None = None
    worker: EngineWorker | None = None
    recorder: Recorder | None = None
    osc: OscServer | None = None
    schedule: ScheduleHandle | None = None
    state: StateWriter | None = None
    try:
        configure_process(audio.torch_threads, realtime=True)
        installation = load_installation(config)
        engine = Engine(installation)
        ring = BlockRing(jack_cfg.ring_blocks, audio.blocksize, engine.n_channels)
        # Attached before the first block: recordings and the command log count from block 0 (replay).
        recorder = attach_recorder(
            engine,
            config,
            label,
            stats=lambda: {
                "xruns": output.xruns if output else 0,
                "underruns": ring.underruns,
            },
        )
        if record and not recorder.recording:
            recorder.request_start(label)
        # Before the first block: resume where the state file says, then let the clock decide whether
        # the venue is open (a closed venue starts silent).
        restore_state(engine, state_path(config), log)
        schedule = start_scheduler(engine, config, log)
        state = StateWriter(engine, state_path(config), config.venue.schedule.state_every_s, log).start()
        worker = EngineWorker(engine, ring)
        worker.fill()  # pre-fill before the client is activated: the first callbacks find audio
        ready = ReadyGate(notifier, lambda: engine.counters.blocks)
        freeze_heap()
        server_name = jack_cfg.server_name or None
        if jack_cfg.start_server:
            server = JackServer(
                server_name or f"latentd-{config.venue.name}",
                samplerate=audio.samplerate,
                period=jack_cfg.period,
                driver=jack_cfg.driver,
                device=jack_cfg.device,
                playback_channels=engine.n_channels,
            )
            server.start()
            server_name = server.name
        names, connect = port_names(config, engine)
        output = JackOutput(
            ring,
            client_name=jack_cfg.client_name,
            port_names=names,
            server_name=server_name,
            connect_to=connect if jack_cfg.autoconnect else [],
            samplerate=audio.samplerate,
            blocksize=audio.blocksize,
            log=log,
        )
        output.start()
        worker.start()
        out = output
        watchdog = WatchdogGate(notifier, lambda: engine.counters.blocks, idle=lambda: not out.connected)
        if config.venue.osc.enabled:
            out = output
            osc = OscServer(
                engine,
                config.venue.osc,
                make_status_provider(
                    engine,
                    xruns=lambda: out.xruns,
                    recording=lambda: recorder.recording if recorder is not None else False,
                ),
                log,
            )
            osc.start()
        log.info("ready", piece=config.piece.name, channels=engine.n_channels, samplerate=audio.samplerate)
        started = time.monotonic()
        last_status = started
        while not flags.stop:
            time.sleep(TICK_S)
            output.poll()
            schedule.poll()
            stack_dump.poll(log)
            ready.tick(status=f"playing {config.piece.name}")
            watchdog.tick()
            if worker.error is not None:
                return 1
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                st = engine.status()
                notifier.status(f"section {st['section']}, xruns {output.xruns}, underruns {ring.underruns}")
                log.info(
                    "status",
                    section=st["section"],
                    seconds=round(float(st["seconds"]), 1),  # type: ignore[arg-type]
                    xruns=output.xruns,
                    underruns=ring.underruns,
                    connected=output.connected,
                    limiter_db=round(float(st["limiter_db"]), 1),  # type: ignore[arg-type]
                )
            if duration_s is not None and now - started >= duration_s:
                break
        log.info("stopping", xruns=output.xruns, underruns=ring.underruns, blocks=engine.counters.blocks)
        return 0
    finally:
        notifier.stopping()
        if schedule is not None:
            schedule.stop()
        if osc is not None:
            osc.stop()
        if output is not None:
            output.stop()
        if worker is not None:
            worker.stop()
        if recorder is not None:
            recorder.close()
        if state is not None:
            state.stop()
        if server is not None:
            server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        stack_dump.uninstall()
        notifier.close()


def run_from_file(path: Path, duration_s: float | None, record: bool = False, label: str = "") -> int:
    """``latentd run``: load the config and play."""
    from latentd.config import load_config
    from latentd.logs import setup_logging

    config = load_config(path)
    setup_logging(config.venue.logging.level, config.venue.logging.format)
    try:
        return run(config, duration_s=duration_s, record=record, label=label)
    finally:
        thaw_heap()
