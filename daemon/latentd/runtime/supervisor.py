"""Live playback: ``latentd run``. Start in order, a short main loop, stop in reverse.

Lifecycle: config → engine process (models, engine, recorder, state, schedule, OSC; ring pre-filled) →
(private jackd) → JACK client → ready → main loop (JACK reconnection, watchdog, status lines, duration,
signals) → shutdown in reverse with timeouts. This process holds the real-time callback and nothing that
competes with it for the GIL: it never loads torch.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from latentd.config import Config
from latentd.engine.ring import BlockRing
from latentd.engine.shared_ring import XRUNS, SharedBlockRing
from latentd.outputs.jack_out import JackOutput
from latentd.outputs.jackd import JackServer
from latentd.runtime.diagnostics import StackDumpSignal, enable_fatal_dumps
from latentd.runtime.engine_process import EngineProcess
from latentd.runtime.notify import Notifier, ReadyGate, WatchdogGate
from latentd.runtime.process import configure_process, thaw_heap

if TYPE_CHECKING:
    from latentd.runtime.engine_host import EngineHost

log = structlog.get_logger("latentd.runtime.supervisor")

STATUS_EVERY_S = 5.0
TICK_S = 0.1


@dataclass
class StopFlags:
    """Set by signal handlers; read by the main loop. Handlers do nothing else."""

    stop: bool = False
    signals: int = 0


def port_names(config: Config) -> tuple[list[str], list[str] | None]:
    """(our port names, ports to connect them to or None for system:playback_1..N)."""
    speakers = config.layout.speakers
    names = [s.name for s in speakers]
    jack = config.venue.jack
    if jack.playback_ports:
        return names, list(jack.playback_ports)
    ports = [s.port for s in speakers]
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
    # Reads and unsets NOTIFY_SOCKET / WATCHDOG_*: jackd and the engine process must not inherit them.
    notifier = Notifier()
    stack_dump = StackDumpSignal().install()  # SIGUSR1 -> "threads.dump" event from the main loop
    enable_fatal_dumps()  # the watchdog's SIGABRT prints every thread's stack to the journal
    audio = config.venue.audio
    jack_cfg = config.venue.jack
    n_channels = config.layout.n_channels
    server: JackServer | None = None
    output: JackOutput | None = None
    child: EngineProcess | None = None
    host: EngineHost | None = None
    ring: BlockRing | SharedBlockRing | None = None
    try:
        configure_process(audio.torch_threads, realtime=True, load_torch=not audio.engine_process)
        if audio.engine_process:
            shared = SharedBlockRing(jack_cfg.ring_blocks, audio.blocksize, n_channels, consumer=True)
            ring = shared
            child = EngineProcess(config, shared, record=record, label=label)
            code = child.start()
            if code:
                log.error("engine_process.failed_to_start", exit_code=code)
                return code

            def blocks() -> int:
                return shared.blocks_written

            def xruns_to_child() -> None:
                shared.header[XRUNS] = output.xruns if output is not None else 0
        else:
            from latentd.runtime.engine_host import EngineHost  # loads torch: only in the threaded mode

            ring = BlockRing(jack_cfg.ring_blocks, audio.blocksize, n_channels)
            host = EngineHost(
                config, ring, record=record, label=label, xruns=lambda: output.xruns if output else 0
            )
            host.start()
            engine_host = host

            def blocks() -> int:
                assert engine_host.engine is not None
                return engine_host.engine.counters.blocks

            def xruns_to_child() -> None:
                pass

        ready = ReadyGate(notifier, blocks)
        server_name = jack_cfg.server_name or None
        if jack_cfg.start_server:
            server = JackServer(
                server_name or f"latentd-{config.venue.name}",
                samplerate=audio.samplerate,
                period=jack_cfg.period,
                driver=jack_cfg.driver,
                device=jack_cfg.device,
                playback_channels=n_channels,
            )
            server.start()
            server_name = server.name
        names, connect = port_names(config)
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
        out = output
        watchdog = WatchdogGate(notifier, blocks, idle=lambda: not out.connected)
        log.info(
            "ready",
            piece=config.piece.name,
            channels=n_channels,
            samplerate=audio.samplerate,
            engine="process" if child is not None else "thread",
        )
        started = time.monotonic()
        last_status = started
        while not flags.stop:
            time.sleep(TICK_S)
            output.poll()
            xruns_to_child()
            if host is not None:
                host.tick()
                if host.error is not None:
                    return 1
            if child is not None and child.error:
                log.error("engine_process.died", exit_code=child.exit_code)
                return child.exit_code
            stack_dump.poll(log)
            ready.tick(status=f"playing {config.piece.name}")
            watchdog.tick()
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                notifier.status(f"blocks {blocks()}, xruns {output.xruns}, underruns {ring.underruns}")
                log.info(
                    "status",
                    blocks=blocks(),
                    xruns=output.xruns,
                    underruns=ring.underruns,
                    connected=output.connected,
                )
            if duration_s is not None and now - started >= duration_s:
                break
        log.info("stopping", xruns=output.xruns, underruns=ring.underruns, blocks=blocks())
        return 0
    finally:
        notifier.stopping()
        if output is not None:
            output.stop()
        if child is not None:
            child.stop()
        if host is not None:
            host.stop()
        if isinstance(ring, SharedBlockRing):
            ring.close()
            ring.unlink()
        if server is not None:
            server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        stack_dump.uninstall()
        notifier.close()


def run_from_file(path: Path, duration_s: float | None, record: bool = False, label: str = "") -> int:
    """``latentd run``: load the config and play."""
    from latentd.config import load_config
    from latentd.runtime.logs import setup_logging

    config = load_config(path)
    setup_logging(config.venue.logging.level, config.venue.logging.format)
    try:
        return run(config, duration_s=duration_s, record=record, label=label)
    finally:
        thaw_heap()
