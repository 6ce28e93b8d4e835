"""Known signals through netjack2: a worker probe (its own process) and a master probe (this process).

The master probe sends its frame counter to the node (``to_slave_1``); the worker probe copies what it
receives back (``from_slave_1``) and sends its own frame counter too (``from_slave_2``). Counters are
``frame mod 2**24`` in float32, exact, so the master reads per block: the round trip in frames (its frame
time minus the counter that came back), whether every sample came through bit-exact, and whether the
node's own counter runs on without a gap (no lost or repeated period).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jack
import numpy as np

from latentd.outputs.jack_out import open_client
from tests.nodes.probe_client import COUNTER_MODULO


class WorkerProbe:
    """``tests.nodes.probe_client`` running in a child process on a worker's server."""

    def __init__(self, server_name: str) -> None:
        """Start it and wait until its client is active."""
        self.server_name = server_name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.nodes.probe_client", server_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],  # where ``tests`` is importable
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        if line != "ready":
            rest = self.proc.stdout.read().decode(errors="replace")
            self._reap()
            raise RuntimeError(f"probe client on {server_name!r} did not start: {line}\n{rest}")

    def kill(self) -> None:
        """SIGKILL it (a crashed worker program) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def stop(self) -> None:
        """Stop it (close its stdin; SIGKILL after 5 s)."""
        if self.proc.poll() is None and self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()


@dataclass(frozen=True)
class ProbeReport:
    """What the master heard from one node.

    Attributes:
        blocks: Blocks recorded.
        sounding: Blocks in which the echo channel was not silent.
        round_trip_frames: Round trip master → node → master in frames, by how many blocks showed it.
        exact_blocks: Sounding blocks whose echo was the exact counter ramp (bit-exact transport).
        counter_gaps: Places where the node's own counter did not continue from the block before.
    """

    blocks: int
    sounding: int
    round_trip_frames: Counter[int]
    exact_blocks: int
    counter_gaps: int


class MasterProbe:
    """A client on the master's server: sends its frame counter to a node, records what comes back."""

    def __init__(self, server_name: str, capacity_blocks: int = 2000) -> None:
        """Open, register ``clock``, ``in_1``, ``in_2``, activate (not recording yet)."""
        self.client = open_client("master-probe", server_name)
        self.clock = self.client.outports.register("clock")
        self.inports = [self.client.inports.register(f"in_{c + 1}") for c in range(2)]
        blocksize = self.client.blocksize
        self.blocksize = blocksize
        self.times = np.zeros(capacity_blocks, dtype=np.int64)
        self.data = np.zeros((capacity_blocks, 2, blocksize), dtype=np.float32)
        self._ramp = np.arange(blocksize, dtype=np.int64)
        self._n = 0
        self._recording = False
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        now = self.client.last_frame_time
        self.clock.get_array()[:] = (now + self._ramp) % COUNTER_MODULO
        if not self._recording or self._n >= len(self.times):
            return
        self.times[self._n] = now
        for c, port in enumerate(self.inports):
            self.data[self._n, c] = port.get_array()
        self._n += 1

    def disconnect_all(self) -> None:
        """Drop every connection of the probe's own ports (before connecting them again)."""
        for port in [self.clock, *self.inports]:
            port.disconnect()

    def connect(self, node_ports_to: list[str], node_ports_from: list[str]) -> None:
        """Connect ``clock`` to the node's first ``to_slave`` port and its two ``from_slave`` ports in."""
        if node_ports_to:
            self.client.connect(self.clock, node_ports_to[0])
        for source, port in zip(node_ports_from, self.inports, strict=False):
            self.client.connect(source, port)

    def record(self) -> None:
        """Start recording at the beginning of the buffer."""
        self._recording = False
        self._n = 0
        self._recording = True

    @property
    def recorded_blocks(self) -> int:
        """Blocks recorded so far."""
        return self._n

    def report(self, skip_blocks: int = 0) -> ProbeReport:
        """Analyse the recording (after ``skip_blocks``)."""
        n = self._n
        times, data = self.times[skip_blocks:n], self.data[skip_blocks:n]
        trips: Counter[int] = Counter()
        exact = sounding = gaps = 0
        previous_end: int | None = None
        for t, block in zip(times, data, strict=True):
            echo, counter = block[0], block[1]
            if echo.any():
                sounding += 1
                first = int(echo[0])
                trips[int((t - first) % COUNTER_MODULO)] += 1
                ramp = ((first + self._ramp) % COUNTER_MODULO).astype(np.float32)
                exact += bool(np.array_equal(echo, ramp))
            if counter.any():
                if previous_end is not None and int(counter[0]) != (previous_end + 1) % COUNTER_MODULO:
                    gaps += 1
                previous_end = int(counter[-1])
        return ProbeReport(len(times), sounding, trips, exact, gaps)

    def close(self) -> None:
        """Deactivate and close."""
        try:
            self.client.deactivate()
            self.client.close()
        except jack.JackError:
            pass
