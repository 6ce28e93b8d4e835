"""A worker node's speakers and heartbeat, kept connected to its net driver's ports.

On a worker, ``system:playback_1..N`` are its net driver's ports: what they carry arrives on the master.
They exist only while a master has the node, and are made anew each time one takes it, which drops
every connection to them. The output client's speakers go to ``system:playback_1..N`` and its ``beat``
port (``JackOutput(beat=True)``: the index of the block being played, plus one) to the next one, so the
master hears the worker's program alive, and which of its blocks it mixes. :class:`NodeBeat` is a
JACK client of its own (``<client_name>-beat``, no ports) whose :meth:`~NodeBeat.poll` (from the main
loop) connects them again whenever the system ports are new.
"""

from __future__ import annotations

from collections.abc import Sequence

import jack
from structlog.typing import FilteringBoundLogger

from latentd.outputs.jack_out import close_client, open_client, port_names


class NodeBeat:
    """Keeps a worker node's speakers and beat connected to its net driver's playback ports."""

    def __init__(
        self, sources: Sequence[str], *, client_name: str, server_name: str | None, log: FilteringBoundLogger
    ) -> None:
        """Describe the client; nothing is opened yet.

        Args:
            sources: Full port names to connect to ``system:playback_1..``, in order (the speakers, then
                the beat).
            client_name: This client's name.
            server_name: The worker's JACK server (its net driver), None for the default.
            log: For the master coming and going.
        """
        self.sources = list(sources)
        self.client_name = client_name
        self.server_name = server_name
        self.log = log
        self._client: jack.Client | None = None
        self._seen: set[str] = set()

    def start(self) -> None:
        """Open, activate (JACK connects ports only for an active client) and connect what is there."""
        client = open_client(self.client_name, self.server_name)
        client.activate()
        self._client = client
        self.poll()

    def stop(self) -> None:
        """Close. Idempotent."""
        client, self._client = self._client, None
        close_client(client)

    def poll(self) -> None:
        """Connect the sources to the system ports when those are new (every ~100 ms)."""
        client = self._client
        if client is None:
            return
        listed = port_names(client, "system:playback_")
        if listed is None:
            return  # the master's ports were leaving while listed: the next poll sees them gone
        system = set(listed)
        if system == self._seen:
            return
        self._seen = system
        if not system:
            # Its latentd's beats stopped too, if that went with it (node.master_lost, node_control).
            self.log.warning(
                "node.master_ports_lost",
                reason="the master's jackd is gone: the net driver dropped its ports",
                action="waiting for a master to take this node again",
            )
            return
        targets = [f"system:playback_{i + 1}" for i in range(len(self.sources))]
        missing = [t for t in targets if t not in system]
        for source, target in zip(self.sources, targets, strict=True):
            if target in system and target not in {p.name for p in client.get_all_connections(source)}:
                try:
                    client.connect(source, target)
                except jack.JackError as exc:
                    self.log.warning("node.connect_failed", port=source, target=target, reason=str(exc))
        self.log.info("node.master_joined", ports=len(system), missing=missing)
