"""The engine process: the engine host in a child process, filling a shared-memory ring.

Both sides live here: :class:`EngineProcess` in the JACK process starts the child and watches it;
:func:`child_main` runs in the child. The child loads torch and the models; the JACK process never does,
so its real-time callback never waits for a GIL that a decoder holds. The ring's header carries the
handshake (``STATE``), the stop request (``STOP``), the xrun count for the recording's session file
(``XRUNS``) and the child's exit status.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

import structlog

from latentd.config import Config, ConfigError
from latentd.engine.shared_ring import (
    DONE,
    EXIT_CODE,
    FAILED,
    READY,
    STARTING,
    STATE,
    STOP,
    XRUNS,
    SharedBlockRing,
)
from latentd.runtime import logs
from latentd.runtime.process import thaw_heap

log = structlog.get_logger("latentd.runtime.engine_process")

TICK_S = 0.1
PROBLEM_BYTES = 3000  # a forwarded problem fits one atomic pipe write (PIPE_BUF is 4096)


class ProblemPipe:
    """The JACK process's warnings and errors, forwarded to the engine process, whose status page shows
    them with its own (a lost jackd, a missing speaker port, a stop that timed out).

    The JACK process never waits on it: its end does not block, and a problem that does not fit (the
    engine process is not reading) is dropped. Each problem is one pipe write, so none is ever torn.
    """

    def __init__(self, context: multiprocessing.context.SpawnContext) -> None:
        self.receiving, self._sending = context.Pipe(duplex=False)
        os.set_blocking(self._sending.fileno(), False)

    def start(self) -> None:
        """Forward every problem logged from now on (JACK process, after the child has started)."""
        logs.problem_listeners.append(self._send)
        self.receiving.close()  # the child holds its own copy

    def close(self) -> None:
        """Stop forwarding; the child's reader sees the end."""
        if self._send in logs.problem_listeners:
            logs.problem_listeners.remove(self._send)
        self._sending.close()

    def _send(self, problem: dict[str, str]) -> None:
        data = json.dumps(problem).encode()[:PROBLEM_BYTES]
        with contextlib.suppress(OSError, ValueError):  # full (dropped), or closed meanwhile
            self._sending.send_bytes(data)


def receive_problems(conn: Connection) -> None:
    """Keep the JACK process's problems beside this process's own, until the JACK process closes its end
    (engine process; a daemon thread)."""
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            problem = json.loads(data)
        except ValueError:
            continue  # cut at PROBLEM_BYTES: a very long line is not worth a crash
        if isinstance(problem, dict):
            logs.recent_problems.append({str(k): str(v) for k, v in problem.items()})


def jack_ring_blocks(rings: Mapping[str, SharedBlockRing] | None) -> int:
    """The length of the node input rings (they all have one), 0 without any."""
    return next(iter(rings.values())).n_blocks if rings else 0


class EngineProcess:
    """The engine host in a child process, writing into a shared-memory ring (see engine_host)."""

    def __init__(
        self,
        config: Config,
        ring: SharedBlockRing,
        *,
        record: bool,
        label: str,
        node_rings: Mapping[str, SharedBlockRing] | None = None,
    ) -> None:
        # "spawn": a fresh interpreter; this process never loads torch, so it never forks its threads.
        context = multiprocessing.get_context("spawn")
        self.ring = ring
        self.problems = ProblemPipe(context)
        self.process = context.Process(
            target=child_main,
            args=(
                str(config.venue_path),
                config.venue.node,
                ring.name,
                ring.n_blocks,
                ring.blocksize,
                ring.n_channels,
                record,
                label,
                {node: r.name for node, r in (node_rings or {}).items()},
                jack_ring_blocks(node_rings),
                self.problems.receiving,
            ),
            name="latentd-engine",
            daemon=False,
        )

    def start(self, timeout_s: float = 600.0) -> int:
        """Start and wait until the ring is pre-filled; returns 0, or the child's exit status."""
        self.process.start()
        self.problems.start()
        deadline = time.monotonic() + timeout_s
        while self.ring.header[STATE] == STARTING:
            if not self.process.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if self.ring.header[STATE] == READY:
            return 0
        self.process.join(5.0)
        code = self.process.exitcode
        return code if code else 1

    @property
    def error(self) -> bool:
        """True when the engine process stopped on its own (it logged why)."""
        return not self.process.is_alive()

    @property
    def exit_code(self) -> int:
        code = self.process.exitcode
        return int(code) if code else 1

    def stop(self, timeout_s: float = 15.0, *, forced: Callable[[], bool] | None = None) -> None:
        """Ask the child to stop (it finishes recordings and the state file), then make sure it did.

        Args:
            timeout_s: how long the child may take before it is killed.
            forced: polled while waiting; when it turns True the child is killed at once.
        """
        if self.process.pid is None:  # never started
            return
        self.problems.close()  # what goes wrong from here on is the JACK process's log alone
        self.ring.header[STOP] = 1
        deadline = time.monotonic() + timeout_s
        while self.process.is_alive() and time.monotonic() < deadline:
            if forced is not None and forced():
                break
            self.process.join(min(TICK_S, max(0.0, deadline - time.monotonic())))
        if self.process.is_alive():
            log.error("engine_process.stop_timeout", timeout_s=timeout_s, forced=bool(forced and forced()))
            self.process.kill()
            self.process.join(5.0)


def child_main(config_path: str, node: str, ring_name: str, n_blocks: int, blocksize: int, n_channels: int,
               record: bool, label: str, node_ring_names: dict[str, str],
               node_ring_blocks: int, problems: Connection) -> None:  # fmt: skip
    """The engine process: fill the shared ring until the JACK process asks it to stop (or dies)."""
    from latentd.config import load_config
    from latentd.runtime.engine_host import EngineHost  # torch is loaded here, in the engine process only
    from latentd.runtime.logs import setup_logging

    # The JACK process coordinates the stop; a Ctrl-C or a closed terminal reaches both processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(
        target=receive_problems, args=(problems,), name="latentd-jack-problems", daemon=True
    ).start()
    parent = os.getppid()
    ring = SharedBlockRing(n_blocks, blocksize, n_channels, name=ring_name)
    code = 0
    node_rings: dict[str, SharedBlockRing] = {}
    host = None
    try:
        config = load_config(Path(config_path), node=node or None)
        setup_logging(config.venue.logging.level, config.venue.logging.format)
        node_rings |= {
            name: SharedBlockRing(node_ring_blocks, blocksize, n_channels + 1, name=segment, consumer=True)
            for name, segment in node_ring_names.items()
        }
        host = EngineHost(
            config,
            ring,
            record=record,
            label=label,
            xruns=lambda: int(ring.header[XRUNS]),
            node_rings=node_rings,
        )
        try:
            host.start()
        except ConfigError as exc:
            sys.stderr.write(f"{exc}\n")
            code = 2
            return
        ring.header[STATE] = READY
        while not stop.is_set() and not ring.header[STOP] and os.getppid() == parent:
            stop.wait(TICK_S)
            host.tick()
            if host.error is not None:
                code = 1
                break
    except BaseException:
        log.exception("engine_process.failed")
        code = 1
    finally:
        if host is not None:
            host.stop()
        ring.header[EXIT_CODE] = code
        ring.header[STATE] = FAILED if code else DONE
        ring.close()
        for node_ring in node_rings.values():
            node_ring.close()
        # os._exit skips multiprocessing's exit hooks: whatever multiprocessing objects hold (a semaphore
        # is reported leaked by the resource tracker, and stays in /dev/shm if the tracker is killed too)
        # is released by their finalizers when the host goes.
        host = None
        thaw_heap()
        sys.stdout.flush()
        os._exit(code)  # no interpreter teardown of torch's threads in a child
