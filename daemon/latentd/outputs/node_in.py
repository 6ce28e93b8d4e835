"""The master's side of a venue of several machines: worker nodes' ports into input rings.

A JACK client of its own (``<client_name>-nodes``; the output client is left as it is) with one input
port per speaker per worker node (``<node>_<speaker>``) and one for the node's heartbeat
(``<node>_beat``, see ``outputs/node_beat.py``). Its process callback copies each node's ports into that
node's input ring, one block per period, with one more channel: the node's beat while its ports are
there (which worker block this is, plus one), else 0; the engine mixes the rings (``engine/node_bus.py``).
:meth:`NodeInputs.poll`, from the main loop, finds each node's ports (``<node>:from_slave_N``, made by
the netmanager when the node joins, gone when it leaves) and connects them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jack
import numpy as np
from structlog.typing import FilteringBoundLogger

from latentd.engine.ring import BlockRing
from latentd.outputs.jack_out import JackOutputError, PortBuffer, close_client, open_client, port_names
from latentd.outputs.netjack import node_ports
from latentd.realtime import realtime


class _NodePlan(NamedTuple):
    """What the callback needs for one node: its ring, the block it fills, each speaker's row of that
    block with its port's buffer, the beat's row and the beat port's buffer."""

    node: str
    ring: BlockRing
    block: np.ndarray
    rows: list[tuple[np.ndarray, PortBuffer]]
    beat_row: np.ndarray
    beat: PortBuffer


class NodeInputs:
    """Worker nodes' speaker channels from JACK into one ring per node.

    Attributes:
        dropped: Blocks a full ring could not take (the engine stalled), by node.
        callbacks: Periods the process callback ran.
    """

    def __init__(
        self,
        rings: Mapping[str, BlockRing],
        speakers: Sequence[str],
        *,
        client_name: str,
        server_name: str | None,
        log: FilteringBoundLogger,
    ) -> None:
        """Describe the client; nothing is opened yet.

        Args:
            rings: One ring per worker node, ``[len(speakers) + 1, period]``.
            speakers: The venue's speaker names, in channel order.
            client_name: This client's name.
            server_name: The master's JACK server (None: the default).
            log: For nodes joining and leaving.
        """
        for node, ring in rings.items():
            if ring.n_channels != len(speakers) + 1:
                raise ValueError(
                    f"node {node!r}: its ring has {ring.n_channels} channels, not {len(speakers) + 1}"
                )
        self.rings = dict(rings)
        self.speakers = list(speakers)
        self.client_name = client_name
        self.server_name = server_name
        self.log = log
        self.dropped = dict.fromkeys(rings, 0)
        self.callbacks = 0
        self._client: jack.Client | None = None
        self._ports: dict[str, list[jack.OwnPort]] = {}
        # Per node, made once so that the callback only copies: see _NodePlan.
        self._plans: list[_NodePlan] = []
        self._present = dict.fromkeys(rings, False)
        self._sources: dict[str, list[str]] = {node: [] for node in rings}
        self._blocks = {
            node: np.zeros((ring.n_channels, ring.blocksize), np.float32) for node, ring in rings.items()
        }

    def start(self) -> None:
        """Open the client, register the ports, activate, connect the nodes that are there.

        Raises:
            JackOutputError: If no server answers or its period is not the rings' blocksize.
        """
        client = open_client(self.client_name, self.server_name)
        blocksize = next(iter(self.rings.values())).blocksize
        if client.blocksize != blocksize:
            client.close()
            raise JackOutputError(
                f"JACK server {self.server_name or 'default'!r} runs {client.blocksize}-frame periods: a "
                f"venue of several machines needs audio.blocksize = the JACK period ({blocksize} now)"
            )
        self._ports = {
            node: [client.inports.register(f"{node}_{name}") for name in [*self.speakers, "beat"]]
            for node in self.rings
        }
        self._plans = []
        for node, ports in self._ports.items():
            block = self._blocks[node]
            rows = [(block[i], PortBuffer(port)) for i, port in enumerate(ports[:-1])]
            beat = PortBuffer(ports[-1])
            self._plans.append(_NodePlan(node, self.rings[node], block, rows, block[-1], beat))
        client.set_process_callback(self._process)
        client.activate()
        self._client = client
        self.poll()

    def stop(self) -> None:
        """Deactivate and close. Idempotent."""
        client, self._client = self._client, None
        close_client(client)

    def poll(self) -> None:
        """Find each node's ports and connect them (from the main loop, every ~100 ms)."""
        client = self._client
        if client is None:
            return
        names = port_names(client, ":from_slave_")
        if names is None:
            return  # a node's ports were leaving while listed: the next poll sees where they went
        for node, ports in self._ports.items():
            sources = node_ports(names, node)
            present = len(sources) >= len(ports)
            if sources and not present and self._sources[node] != sources:
                self._sources[node] = sources
                self.log.error(
                    "node.too_few_ports",
                    node=node,
                    ports=len(sources),
                    needed=len(ports),
                    hint=f"start the node's jackd with -d net -P {len(ports)}: speakers and heartbeat",
                )
            if present and sources != self._sources[node]:
                for source, port in zip(sources, ports, strict=False):
                    try:
                        client.connect(source, port)
                    except jack.JackError as exc:
                        self.log.warning("node.connect_failed", node=node, port=source, reason=str(exc))
                self._sources[node] = sources
            if present != self._present[node]:
                self.log.info("node.joined" if present else "node.left", node=node, ports=sources)
                self._present[node] = present
                if not present:
                    self._sources[node] = []

    @realtime
    def _process(self, frames: int) -> None:
        """JACK process callback: each node's ports into its ring. Real-time: copies into blocks made at
        start, through port views made once (see ``PortBuffer``); never raises."""
        try:
            self.callbacks += 1
            present = self._present
            for plan in self._plans:
                block = plan.block
                if frames != block.shape[1]:
                    continue
                for row, buffer in plan.rows:
                    np.copyto(row, buffer.get(frames))
                # The worker's beat: the block it plays, plus one (0: its program is not there).
                plan.beat_row.fill(plan.beat.get(frames)[0] if present[plan.node] else 0.0)
                if not plan.ring.write(block):
                    self.dropped[plan.node] += 1
        except BaseException:
            return
